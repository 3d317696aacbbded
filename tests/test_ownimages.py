"""Tests for imgcls_helpers.ownimages: the messy folder, splits, split CSVs, weights, zip upload."""

from __future__ import annotations

import csv
import io
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from imgcls_helpers import ownimages
from imgcls_helpers.folders import ImageFolderDataset, load_rgb
from imgcls_helpers.ownimages import (
    CLASSES,
    class_weights,
    extract_upload,
    load_split,
    make_messy_folder,
    save_split,
    split_indices,
)

SMALL = dict(per_class=5, minority=None, n_mislabeled=0, size_range=(24, 40))


def dataset(root: Path) -> ImageFolderDataset:
    with pytest.warns(UserWarning):  # the planted mess is always reported
        return ImageFolderDataset(root)


@pytest.fixture(scope="module")
def messy(tmp_path_factory):
    return make_messy_folder(tmp_path_factory.mktemp("messy") / "photos")


@pytest.fixture(scope="module")
def ds(messy):
    return dataset(messy.root)


def files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def png_bytes(colour=(200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(buf, "PNG")
    return buf.getvalue()


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


# --- make_messy_folder ------------------------------------------------------------------------


def test_builds_offline_from_bundled_photos_with_requested_counts(tmp_path):
    ownimages._photos.cache_clear()  # load the photos again, under conftest's network guard
    messy = make_messy_folder(tmp_path / "p", per_class=4, minority=("circle", 3), n_mislabeled=1)
    ds = dataset(messy.root)
    assert messy.counts == {"circle": 3, "square": 4, "star": 4, "triangle": 4}
    assert dict(Counter(ds.classes[t] for t in ds.targets)) == messy.counts


def test_planted_broken_and_ignored_files_are_found_and_nothing_else(messy, ds):
    skipped = dict(ds.skipped)
    assert set(skipped) == set(messy.broken) and len(messy.broken) == 2
    reasons = sorted(skipped.values())
    assert "cannot identify image file" in reasons[0] and "truncated" in reasons[1]
    assert set(ds.ignored) == set(messy.ignored)
    names = {p.name for p in messy.ignored}
    assert {".DS_Store", "README.txt"} <= names
    assert any(
        n.startswith("._IMG_") and n.endswith((".jpg", ".JPG", ".jpeg", ".png")) for n in names
    )
    assert (messy.root / "README.txt") in messy.ignored
    assert all(p.exists() for p in messy.broken + messy.ignored)


def test_default_counts_have_one_minority_class(messy, ds):
    counts = {ds.classes[t]: n for t, n in Counter(ds.targets).items()}
    assert counts == messy.counts == {"circle": 60, "square": 60, "star": 15, "triangle": 60}
    sizes = {load_rgb(p).size for p, _ in ds.samples[::10]}
    assert len({w for w, _ in sizes}) > 5 and any(w != h for w, h in sizes)  # mixed shapes
    suffixes = Counter(p.suffix.lower() for p, _ in ds.samples)
    assert suffixes[".png"] > 0 and suffixes[".jpg"] + suffixes[".jpeg"] > suffixes[".png"]


def test_odd_modes_are_saved_in_that_mode_and_load_as_visible_rgb(messy, ds):
    assert set(messy.odd_modes) == {"L", "CMYK", "RGBA", "I;16"}
    loaded = {p for p, _ in ds.samples}
    for mode, path in messy.odd_modes.items():
        with Image.open(path) as im:
            assert im.mode == mode, path
            size = im.size
        rgb = load_rgb(path)
        assert rgb.mode == "RGB" and rgb.size == size and path in loaded
        gray = np.asarray(rgb.convert("L"), dtype=float)
        assert gray.std() > 10, f"{mode}: the picture is (almost) flat"
    with Image.open(messy.odd_modes["I;16"]) as im:
        assert np.asarray(im).max() > 255  # real 16-bit values, not 8-bit ones in 16 bits
    rgba = np.asarray(load_rgb(messy.odd_modes["RGBA"]))
    white = (rgba == 255).all(axis=2).mean()
    assert 0.2 < white < 0.97  # a shape on a transparent (now white) background


def test_mislabeled_images_lie_in_another_class_folder_and_are_recorded(messy, ds):
    assert len(messy.mislabeled) == 4
    labels = dict(ds.samples)
    for path, shows in messy.mislabeled.items():
        assert shows in CLASSES and shows != path.parent.name
        assert ds.classes[labels[path]] == path.parent.name  # loaded with the wrong label
    assert not set(messy.mislabeled) & set(messy.odd_modes.values())


def test_same_seed_gives_the_same_bytes_other_seed_differs(tmp_path):
    a = make_messy_folder(tmp_path / "a", seed=3, **SMALL)
    b = make_messy_folder(tmp_path / "b", seed=3, **SMALL)
    c = make_messy_folder(tmp_path / "c", seed=4, **SMALL)
    assert files(a.root) == files(b.root)
    web_page = [p for p in a.broken if p.name == "download.jpg"]
    fixed = {p.read_bytes() for p in a.ignored + web_page}
    shared = set(files(a.root).values()) & set(files(c.root).values())
    assert shared == fixed  # only README, .DS_Store, ._IMG and the web page are the same


def test_refuses_a_non_empty_folder_and_bad_counts(tmp_path):
    (tmp_path / "old.jpg").write_bytes(b"x")
    with pytest.raises(FileExistsError, match=str(tmp_path)):
        make_messy_folder(tmp_path)
    with pytest.raises(ValueError, match="dog"):
        make_messy_folder(tmp_path / "new", minority=("dog", 5))
    with pytest.raises(ValueError, match="at least 3"):
        make_messy_folder(tmp_path / "new", minority=("star", 2))


# --- split_indices ----------------------------------------------------------------------------


def test_split_is_stratified_disjoint_complete_and_deterministic(ds):
    targets = np.array(ds.targets)
    split = split_indices(targets)
    assert list(split) == ["train", "val", "test"]
    everything = np.concatenate(list(split.values()))
    assert np.array_equal(np.sort(everything), np.arange(len(targets)))  # disjoint + complete
    totals = np.bincount(targets)
    for part, fraction in zip(split, (0.7, 0.15, 0.15), strict=True):
        counts = np.bincount(targets[split[part]], minlength=len(totals))
        assert np.all(np.abs(counts - totals * fraction) <= 1), (part, counts)
        assert counts.min() >= 1
    again = split_indices(targets)
    assert all(np.array_equal(split[k], again[k]) for k in split)
    other = split_indices(targets, seed=1)
    assert not np.array_equal(split["test"], other["test"])


def test_split_puts_every_class_of_a_small_data_set_in_every_split():
    targets = np.repeat([0, 1, 2], [3, 5, 40])
    split = split_indices(targets, (0.8, 0.1, 0.1))
    for part in split.values():
        assert set(targets[part]) == {0, 1, 2}


def test_split_names_a_class_that_is_too_small():
    targets = [0] * 10 + [1] * 2
    with pytest.raises(ValueError, match=r"'dog' has only 2"):
        split_indices(targets, classes=["cat", "dog"])
    with pytest.raises(ValueError, match="index 1"):
        split_indices(targets)
    with pytest.raises(ValueError, match="sum to 1"):
        split_indices([0] * 10, (0.7, 0.2, 0.2))


# --- save_split / load_split ------------------------------------------------------------------


@pytest.fixture
def small(tmp_path):
    """A small messy folder, its dataset, a split and the split saved as CSV."""
    messy = make_messy_folder(tmp_path / "photos", **SMALL)
    ds = dataset(messy.root)
    split = split_indices(ds.targets)
    csv_path = tmp_path / "split.csv"
    save_split(csv_path, ds, split)
    return messy, ds, split, csv_path


def test_save_and_load_split_round_trip(small):
    _, ds, split, csv_path = small
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(ds)
    first_path, first_label = ds.samples[0]
    assert rows[0]["file"] == first_path.relative_to(ds.root).as_posix()
    assert rows[0]["class"] == ds.classes[first_label]
    assert {r["split"] for r in rows} == {"train", "val", "test"}
    loaded = load_split(csv_path, dataset(ds.root))  # a fresh scan of the same folder
    assert loaded.keys() == split.keys()
    assert all(np.array_equal(loaded[k], split[k]) for k in split)


def test_save_split_refuses_a_split_that_leaves_images_out(small, tmp_path):
    _, ds, split, _ = small
    with pytest.raises(ValueError, match=r"1 image\(s\) of .* are in no split"):
        save_split(tmp_path / "x.csv", ds, {**split, "test": split["test"][1:]})


def test_load_split_names_a_renamed_file(small):
    messy, ds, _, csv_path = small
    old = ds.samples[3][0]
    old.rename(old.with_name("renamed.jpg"))
    with pytest.raises(ValueError, match=old.name) as err:
        load_split(csv_path, dataset(messy.root))
    assert "1 listed file(s) not in the dataset" in str(err.value)
    assert str(csv_path) in str(err.value)


def test_load_split_names_a_file_whose_class_changed(small):
    messy, _, _, csv_path = small
    with open(csv_path, newline="") as f:
        rows = list(csv.reader(f))
    rows[1][1] = "star" if rows[1][1] != "star" else "circle"
    with open(csv_path, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    with pytest.raises(ValueError, match="changed class") as err:
        load_split(csv_path, dataset(messy.root))
    assert rows[1][0] in str(err.value)


def test_load_split_refuses_a_new_image_that_no_split_lists(small):
    messy, _, _, csv_path = small
    new = messy.root / "square" / "IMG_9999.png"
    new.write_bytes(png_bytes())
    with pytest.raises(ValueError, match=r"1 image\(s\) in no split") as err:
        load_split(csv_path, dataset(messy.root))
    assert "square/IMG_9999.png" in str(err.value)


# --- class_weights ----------------------------------------------------------------------------


def test_class_weights_are_balanced():
    weights = class_weights([0] * 10 + [1] * 30, 2)
    assert weights.dtype == torch.float32
    assert torch.allclose(weights, torch.tensor([2.0, 2 / 3]))


def test_class_weights_name_an_empty_class():
    with pytest.raises(ValueError, match="class index 1 has no examples"):
        class_weights([0, 0, 2], 3)
    with pytest.raises(ValueError, match="0..1"):
        class_weights([0, 2], 2)


# --- extract_upload ---------------------------------------------------------------------------


def test_extract_upload_unwraps_one_top_folder_and_skips_macosx(tmp_path):
    zip_path = write_zip(
        tmp_path / "upload.zip",
        {
            "photos/cats/a.png": png_bytes(),
            "photos/dogs/b.png": png_bytes((0, 0, 255)),
            "__MACOSX/photos/cats/._a.png": b"\x00\x05\x16\x07",
        },
    )
    folder = extract_upload(zip_path, tmp_path / "data")
    assert folder == tmp_path / "data" / "photos"
    assert not (tmp_path / "data" / "__MACOSX").exists()
    assert ImageFolderDataset(folder).classes == ["cats", "dogs"]


def test_extract_upload_without_a_wrapping_folder(tmp_path):
    zip_path = write_zip(tmp_path / "u.zip", {"cats/a.png": png_bytes(), "dogs/b.png": png_bytes()})
    assert extract_upload(zip_path, tmp_path / "data") == tmp_path / "data"


def test_extract_upload_refuses_zip_slip_before_writing_anything(tmp_path):
    zip_path = write_zip(
        tmp_path / "evil.zip", {"cats/a.png": png_bytes(), "../../escaped.txt": b"gotcha"}
    )
    with pytest.raises(ValueError, match=r"evil\.zip.*escaped\.txt"):
        extract_upload(zip_path, tmp_path / "a" / "data")
    assert not (tmp_path / "a" / "data" / "cats").exists()
    assert not (tmp_path / "escaped.txt").exists()


def test_extract_upload_refuses_a_zip_without_class_folders(tmp_path):
    zip_path = write_zip(tmp_path / "flat.zip", {"a.png": png_bytes(), "notes.txt": b"hi"})
    with pytest.raises(ValueError, match=r"flat\.zip holds no class folders"):
        extract_upload(zip_path, tmp_path / "data")
    not_zip = tmp_path / "photos.zip"
    not_zip.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=r"photos\.zip is not a zip file"):
        extract_upload(not_zip, tmp_path / "data2")
