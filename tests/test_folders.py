"""Tests for imgcls_helpers.folders: every fixture is written into tmp_path with Pillow/numpy."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import v2

from imgcls_helpers.folders import BadImageError, ImageFolderDataset, load_rgb

RED, BLUE, WHITE = (255, 0, 0), (0, 0, 255), (255, 255, 255)


def save(path: Path, image: Image.Image, **save_kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **save_kw)
    return path


def write_bytes(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def truncated_jpeg(path: Path) -> Path:
    """A valid JPEG of noise with the second half of its bytes cut off."""
    noise = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(noise).save(buf, "JPEG")
    data = buf.getvalue()
    return write_bytes(path, data[: len(data) // 2])


def make_good_dataset(root: Path) -> dict[str, int]:
    """Classes created out of alphabetical order, odd sizes, an upper-case suffix, a sub-folder."""
    counts = {"zebra": 3, "ant": 2, "moth": 1}
    for name, n in counts.items():
        for i in range(n):
            save(root / name / f"{i}.png", Image.new("RGB", (20 + i, 12), BLUE))
    save(root / "ant" / "nested" / "IMG_9.PNG", Image.new("RGB", (9, 9), RED))
    return {**counts, "ant": counts["ant"] + 1}


def test_good_dataset_classes_labels_and_summary(tmp_path):
    counts = make_good_dataset(tmp_path)
    ds = ImageFolderDataset(tmp_path)
    assert ds.classes == sorted(counts)
    assert ds.class_to_idx == {name: i for i, name in enumerate(sorted(counts))}
    assert len(ds) == sum(counts.values())
    assert ds.targets == [label for _, label in ds.samples]
    for path, label in ds.samples:
        assert path.relative_to(tmp_path).parts[0] == ds.classes[label]
    assert ds.skipped == [] and ds.ignored == []
    image, label = ds[0]
    assert isinstance(image, Image.Image) and image.mode == "RGB"
    assert label == ds.samples[0][1]
    summary = ds.summary()
    assert "\n" not in summary
    for name, n in counts.items():
        assert f"{name}: {n}" in summary
    assert str(len(ds)) in repr(ds)


def test_transform_and_dataloader(tmp_path):
    make_good_dataset(tmp_path)
    transform = v2.Compose(
        [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Resize((16, 16))]
    )
    ds = ImageFolderDataset(tmp_path, transform)
    x, _ = ds[0]
    assert x.shape == (3, 16, 16) and x.dtype == torch.float32
    assert x.min() >= 0.0 and x.max() <= 1.0
    images, labels = next(iter(torch.utils.data.DataLoader(ds, batch_size=4, shuffle=True)))
    assert images.shape == (4, 3, 16, 16)
    assert labels.shape == (4,)


def gray() -> Image.Image:
    return Image.fromarray(np.array([[0, 77], [200, 255]], dtype=np.uint8))


def rgba_half_transparent() -> Image.Image:
    a = np.zeros((2, 2, 4), dtype=np.uint8)  # left column: transparent black
    a[:, 1] = (*RED, 255)  # right column: opaque red
    return Image.fromarray(a)


def la_half_transparent() -> Image.Image:
    return rgba_half_transparent().convert("LA")


def palette_with_transparency() -> Image.Image:
    im = Image.fromarray(np.array([[0, 1], [0, 1]], dtype=np.uint8), mode="P")
    im.putpalette([0, 0, 0, *RED] + [0] * 762)
    im.info["transparency"] = 0  # palette entry 0 (black) is transparent
    return im


def cmyk_cyan() -> Image.Image:
    return Image.new("CMYK", (8, 8), (255, 0, 0, 0))


@pytest.mark.parametrize(
    "make, filename, expected, tol",
    [
        (gray, "gray.png", {(0, 0): (0, 0, 0), (1, 0): (77,) * 3, (0, 1): (200,) * 3}, 0),
        (rgba_half_transparent, "rgba.png", {(0, 0): WHITE, (1, 1): RED}, 0),
        (la_half_transparent, "la.png", {(0, 0): WHITE, (1, 1): (76,) * 3}, 1),
        (palette_with_transparency, "p.png", {(0, 0): WHITE, (1, 0): RED}, 0),
        (palette_with_transparency, "p.gif", {(0, 0): WHITE, (1, 0): RED}, 0),
        (cmyk_cyan, "cmyk.jpg", {(4, 4): (0, 255, 255)}, 40),
    ],
)
def test_load_rgb_converts_modes(tmp_path, make, filename, expected, tol):
    source = make()
    path = save(tmp_path / filename, source)
    with Image.open(path) as reopened:  # the file really has the mode we mean to test
        assert reopened.mode == source.mode
    image = load_rgb(path)
    assert image.mode == "RGB"
    for xy, rgb in expected.items():
        assert np.abs(np.subtract(image.getpixel(xy), rgb)).max() <= tol, (xy, image.getpixel(xy))


@pytest.mark.parametrize(
    "dtype, filename", [(np.uint16, "gradient16.png"), (np.int32, "gradient32.tif")]
)
def test_load_rgb_scales_16_bit_instead_of_clipping(tmp_path, dtype, filename):
    ramp = np.linspace(0, 65535, 256).astype(dtype)
    path = save(tmp_path / filename, Image.fromarray(np.tile(ramp, (4, 1))))
    with Image.open(path) as reopened:
        assert reopened.mode in ("I;16", "I;16B", "I;16L", "I")
        assert np.asarray(reopened).max() == 65535
    pixels = np.asarray(load_rgb(path))
    assert (pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 1] == pixels[..., 2]).all()
    row = pixels[0, :, 0].astype(int)
    assert (np.diff(row) >= 0).all()  # monotone, like the ramp
    assert row[0] <= 2 and row[-1] >= 253  # spans the 8-bit range, not mostly 255
    assert len(np.unique(row)) > 200


def test_load_rgb_keeps_small_mode_I_values(tmp_path):
    values = np.array([[0, 10, 100, 255]], dtype=np.int32)
    path = save(tmp_path / "small.tif", Image.fromarray(values))
    assert np.asarray(load_rgb(path))[0, :, 0].tolist() == values[0].tolist()


@pytest.mark.parametrize(
    "make_bad",
    [
        truncated_jpeg,
        lambda p: write_bytes(p, b"these are my notes, not a picture"),
        lambda p: write_bytes(p, b""),
        lambda p: p,  # the file does not exist
    ],
    ids=["truncated", "text", "empty", "missing"],
)
def test_load_rgb_raises_bad_image_error_naming_the_file(tmp_path, make_bad):
    path = make_bad(tmp_path / "broken.jpg")
    with pytest.raises(BadImageError, match="broken.jpg") as info:
        load_rgb(path)
    assert info.value.path == path
    assert info.value.reason
    assert info.value.__cause__ is not None


def test_bad_files_are_skipped_with_one_warning(tmp_path):
    bad = {truncated_jpeg(tmp_path / "cats" / "half.jpg")}
    bad.add(write_bytes(tmp_path / "cats" / "x.jpg", b"just text"))
    save(tmp_path / "cats" / "good.jpg", Image.new("RGB", (8, 8), RED))
    save(tmp_path / "dogs" / "good.png", Image.new("RGB", (8, 8), BLUE))
    with pytest.warns(UserWarning, match="skipped 2") as record:
        ds = ImageFolderDataset(tmp_path, on_bad="skip")
    assert len(record) == 1
    assert "half.jpg" in str(record[0].message)
    assert {path for path, _ in ds.skipped} == bad
    assert all(reason for _, reason in ds.skipped)
    assert len(ds) == 2
    assert not bad & {path for path, _ in ds.samples}


def test_bad_file_raises_with_on_bad_raise(tmp_path):
    truncated_jpeg(tmp_path / "cats" / "half.jpg")
    save(tmp_path / "cats" / "good.jpg", Image.new("RGB", (8, 8), RED))
    with pytest.raises(BadImageError, match="half.jpg"):
        ImageFolderDataset(tmp_path, on_bad="raise")


def test_non_image_files_are_ignored_and_reported(tmp_path):
    save(tmp_path / "cats" / "a.png", Image.new("RGB", (8, 8), RED))
    others = {
        write_bytes(tmp_path / "cats" / "notes.txt", b"notes"),
        write_bytes(tmp_path / "cats" / ".DS_Store", b"\0\0"),
        write_bytes(tmp_path / "cats" / "._a.png", b"macOS resource fork"),
        write_bytes(tmp_path / "readme.md", b"loose file in root"),
    }
    with pytest.warns(UserWarning, match="(?i)ignored 4") as record:
        ds = ImageFolderDataset(tmp_path)
    assert "notes.txt" in str(record[0].message) or ".DS_Store" in str(record[0].message)
    assert set(ds.ignored) == others
    assert ds.skipped == []
    assert [path.name for path, _ in ds.samples] == ["a.png"]


@pytest.mark.parametrize(
    "fill_second_class",
    [
        lambda d: d.mkdir(),
        lambda d: truncated_jpeg(d / "only.jpg"),
        lambda d: write_bytes(d / "notes.txt", b"no images here"),
    ],
    ids=["empty", "only-corrupt", "only-non-image"],
)
def test_class_without_usable_images_is_an_error(tmp_path, fill_second_class):
    save(tmp_path / "cats" / "a.png", Image.new("RGB", (8, 8), RED))
    fill_second_class(tmp_path / "dogs")
    with warnings.catch_warnings(), pytest.raises(ValueError, match="dogs"):
        warnings.simplefilter("ignore")
        ImageFolderDataset(tmp_path, on_bad="skip")


@pytest.mark.parametrize(
    "setup, error, match",
    [
        (lambda root: root / "missing", FileNotFoundError, "missing"),
        (lambda root: save(root / "a.png", Image.new("RGB", (4, 4))).parent, ValueError, "<class>"),
    ],
    ids=["missing-root", "no-class-folders"],
)
def test_bad_root(tmp_path, setup, error, match):
    with pytest.raises(error, match=match):
        ImageFolderDataset(setup(tmp_path))


def test_clean_dataset_does_not_warn(tmp_path):
    make_good_dataset(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ImageFolderDataset(tmp_path)


def test_invalid_on_bad_is_rejected(tmp_path):
    make_good_dataset(tmp_path)
    with pytest.raises(ValueError, match="on_bad"):
        ImageFolderDataset(tmp_path, on_bad="ignore")


def test_file_broken_after_scan_fails_with_its_name(tmp_path):
    make_good_dataset(tmp_path)
    ds = ImageFolderDataset(tmp_path)
    path, _ = ds.samples[0]
    path.write_bytes(b"overwritten")
    with pytest.raises(BadImageError, match=path.name):
        ds[0]


def test_exif_orientation_is_applied(tmp_path):
    """A phone photo stored sideways with EXIF orientation 6 comes out upright."""
    stored = Image.new("RGB", (40, 20), (0, 0, 255))
    stored.paste((255, 0, 0), (0, 0, 20, 20))  # red on the left half as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = tmp_path / "sideways.jpg"
    stored.save(path, exif=exif, quality=95)
    upright = load_rgb(path)
    assert upright.size == (20, 40)
    top = np.asarray(upright)[5, 10]
    assert top[0] > 200 and top[2] < 60, "the red half must end up on top"
