"""Tests for imgcls_helpers.data: transforms, sample data, load_dataset's fallback, loaders."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as tvf
from notices import notice_text
from PIL import Image
from sklearn.datasets import load_digits
from torchvision.transforms import v2

from imgcls_helpers import data
from imgcls_helpers.data import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Splits,
    TensorLoader,
    dataset_to_tensors,
    denormalize,
    eval_transforms,
    load_dataset,
    load_digits_tensors,
    mark_split,
    random_flip,
    sample_image,
    shapes_splits,
    split_of,
    stratified_split,
    train_transforms,
)
from imgcls_helpers.synthetic import SHAPES, ShapesDataset, make_shapes

MEAN = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
STD = torch.tensor(IMAGENET_STD).view(3, 1, 1)


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    """A non-square RGB image with detail everywhere (48 x 36)."""
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (36, 48, 3), dtype=np.uint8))


# --------------------------------------------------------------------------- transforms


@pytest.mark.parametrize("make", [train_transforms, eval_transforms])
@pytest.mark.parametrize("size", [16, 24])
def test_transforms_output_shape_and_dtype(photo, make, size):
    out = make(size)(photo)
    assert isinstance(out, torch.Tensor)
    assert out.shape == (3, size, size) and out.dtype == torch.float32


def test_eval_transforms_are_deterministic(photo):
    transform = eval_transforms(16)
    assert torch.equal(transform(photo), transform(photo))


def test_train_transforms_are_random_but_follow_the_torch_seed(photo):
    transform = train_transforms(16)
    torch.manual_seed(0)
    a, b = transform(photo), transform(photo)
    assert not torch.allclose(a, b)
    torch.manual_seed(0)
    assert torch.equal(transform(photo), a)


@pytest.mark.parametrize(
    ("size", "resize", "short_side"),
    [(16, None, 18), (32, None, 37), (224, None, 256), (16, 20, 20)],
)
def test_eval_transforms_equal_a_hand_built_pipeline(photo, size, resize, short_side):
    """Resize the short side to round(size / 0.875) (or ``resize``), centre crop, normalise."""
    assert round(size / 0.875) == short_side or resize == short_side
    image = v2.functional.to_image(photo)
    image = v2.functional.resize(image, [short_side], antialias=True)
    assert min(image.shape[-2:]) == short_side
    image = v2.functional.center_crop(image, [size, size])
    image = v2.functional.to_dtype(image, torch.float32, scale=True)
    expected = v2.functional.normalize(image, list(IMAGENET_MEAN), list(IMAGENET_STD))
    got = eval_transforms(size, resize=resize)(photo)
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("make", [train_transforms, eval_transforms])
def test_normalisation_uses_imagenet_statistics(make):
    # an image whose colour is the ImageNet mean becomes ~0 (up to uint8 rounding) ...
    mean_rgb = tuple(round(m * 255) for m in IMAGENET_MEAN)
    out = make(8)(Image.new("RGB", (20, 20), mean_rgb))
    assert out.abs().max() < 0.01
    # ... and a white one becomes (1 - mean) / std in each channel
    out = make(8)(Image.new("RGB", (20, 20), (255, 255, 255)))
    torch.testing.assert_close(out, ((1 - MEAN) / STD).expand(3, 8, 8))


def test_custom_mean_and_std():
    out = eval_transforms(4, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))(
        Image.new("RGB", (4, 4), (0, 255, 0))
    )
    torch.testing.assert_close(out[:, 0, 0], torch.tensor([-1.0, 1.0, -1.0]))


@pytest.mark.parametrize("shape", [(3, 5, 7), (4, 3, 5, 7)])
@pytest.mark.parametrize(
    ("mean", "std"), [(IMAGENET_MEAN, IMAGENET_STD), ((0.1, 0.2, 0.3), (2.0, 0.5, 1.5))]
)
def test_denormalize_inverts_normalize(shape, mean, std):
    x = torch.rand(shape, dtype=torch.float64)
    normalized = tvf.normalize(x, list(mean), list(std))
    assert not torch.allclose(normalized, x)
    restored = denormalize(normalized, mean, std)
    assert restored.dtype == torch.float64 and restored.shape == x.shape
    torch.testing.assert_close(restored, x)


# --------------------------------------------------------------------------- sample data


@pytest.mark.parametrize("name", ["chelsea", "astronaut", "coffee", "rocket", "china", "flower"])
def test_sample_image(name):
    image = sample_image(name)
    assert isinstance(image, Image.Image) and image.mode == "RGB"
    assert min(image.size) >= 200
    assert np.asarray(image).std() > 20  # a photo, not a blank canvas


@pytest.mark.parametrize("name", ["cat", "Chelsea", "china.jpg"])
def test_sample_image_unknown_name(name):
    with pytest.raises(ValueError, match="unknown sample image"):
        sample_image(name)


def test_load_digits_tensors_matches_sklearn():
    images, labels = load_digits_tensors()
    assert images.shape == (1797, 1, 8, 8) and images.dtype == torch.float32
    assert labels.shape == (1797,) and labels.dtype == torch.long
    assert images.min() == 0 and images.max() == 1
    assert sorted(labels.unique().tolist()) == list(range(10))
    reference = load_digits()
    np.testing.assert_allclose(images[:, 0].numpy(), reference.images / 16.0, rtol=1e-6)
    np.testing.assert_array_equal(labels.numpy(), reference.target)


# --------------------------------------------------------------------------- load_dataset


def squeeze(text: str) -> str:
    """Text without whitespace, so a phrase split by the banner's wrapping still matches."""
    return "".join(text.split())


@pytest.fixture
def empty_data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("IMGCLS_DATA", str(tmp_path))
    return tmp_path


def identity_a(x):
    return x


def identity_b(x):
    return x


@pytest.mark.parametrize("name", ["cifar10", "flowers102"])
def test_load_dataset_smoke_falls_back_loudly(capsys, monkeypatch, empty_data_dir, name):
    real, downloads = data._torchvision_splits, []

    def spy(name, download, *transforms):
        downloads.append(download)
        return real(name, download, *transforms)

    monkeypatch.setattr(data, "_torchvision_splits", spy)
    splits = load_dataset(name, train_transform=identity_a, eval_transform=identity_b)
    assert downloads == [False]  # looked in the cache only, never asked for a download
    out = notice_text(capsys.readouterr().out)
    assert out.startswith(squeeze(f"OFFLINE STAND-IN: {name} is not available"))
    assert squeeze("this profile is offline, so no download was tried") in out
    assert squeeze(str(empty_data_dir)) in out
    assert splits.offline is True
    assert "shapes" in splits.name and f"offline stand-in for {name}" in splits.name
    assert isinstance(splits.train, ShapesDataset) and isinstance(splits.test, ShapesDataset)
    assert (len(splits.train), len(splits.test)) == (1200, 400)  # the smoke sizes
    assert splits.classes == list(SHAPES)
    assert splits.train.transform is identity_a and splits.test.transform is identity_b
    image, label = splits.test[0]
    assert isinstance(image, Image.Image) and 0 <= label < len(SHAPES)


def test_load_dataset_shapes_is_not_offline(capsys, empty_data_dir):
    splits = load_dataset("shapes")
    assert "OFFLINE" not in capsys.readouterr().out
    assert splits.offline is False
    assert splits.name.startswith("shapes") and "stand-in" not in splits.name
    assert (len(splits.train), len(splits.test)) == (1200, 400)


@pytest.mark.parametrize("name", ["imagenet", "CIFAR10", "cifar-10"])
def test_load_dataset_unknown_name_raises(capsys, empty_data_dir, name):
    with pytest.raises(ValueError, match="cifar10.*flowers102.*shapes"):
        load_dataset(name)
    assert "OFFLINE STAND-IN" not in capsys.readouterr().out


class FakeTorchvision:
    """Stands in for _torchvision_splits; ``results[download]`` is returned or raised."""

    def __init__(self, results):
        self.results, self.calls = results, []

    def __call__(self, name, download, train_transform, eval_transform):
        self.calls.append((name, download))
        result = self.results[download]
        if isinstance(result, Exception):
            raise result
        return result


@pytest.fixture
def cpu_profile(monkeypatch, empty_data_dir):
    monkeypatch.setenv("IMGCLS_PROFILE", "cpu")
    monkeypatch.delenv("IMGCLS_OFFLINE", raising=False)
    # keep the stand-in small: the cpu profile would otherwise draw 8,000 images
    monkeypatch.setattr(data, "pick", lambda **sizes: sizes["smoke"])


def real_splits():
    parts = [torch.utils.data.TensorDataset(torch.zeros(2, 1)) for _ in range(3)]
    return Splits(*parts, ["a", "b"], "CIFAR-10", False)


def test_load_dataset_uses_files_already_there(capsys, cpu_profile, monkeypatch):
    found = real_splits()
    fake = FakeTorchvision({False: found, True: AssertionError("must not download")})
    monkeypatch.setattr(data, "_torchvision_splits", fake)
    assert load_dataset("cifar10") is found
    assert fake.calls == [("cifar10", False)]
    assert "OFFLINE" not in capsys.readouterr().out


def test_load_dataset_downloads_when_online(capsys, cpu_profile, monkeypatch):
    downloaded = real_splits()
    fake = FakeTorchvision({False: RuntimeError("Dataset not found"), True: downloaded})
    monkeypatch.setattr(data, "_torchvision_splits", fake)
    assert load_dataset("cifar10") is downloaded
    assert fake.calls == [("cifar10", False), ("cifar10", True)]
    assert "OFFLINE" not in capsys.readouterr().out


def test_load_dataset_falls_back_when_download_fails(capsys, cpu_profile, monkeypatch):
    fake = FakeTorchvision({False: RuntimeError("Dataset not found"), True: OSError("no route")})
    monkeypatch.setattr(data, "_torchvision_splits", fake)
    splits = load_dataset("cifar10")
    out = notice_text(capsys.readouterr().out)
    assert fake.calls == [("cifar10", False), ("cifar10", True)]
    assert out.startswith("OFFLINESTAND-IN")
    assert squeeze("download failed: OSError: no route") in out
    assert splits.offline is True and isinstance(splits.train, ShapesDataset)


def test_load_dataset_imgcls_offline_skips_the_download(capsys, cpu_profile, monkeypatch):
    monkeypatch.setenv("IMGCLS_OFFLINE", "1")
    fake = FakeTorchvision({False: FileNotFoundError("nope"), True: AssertionError("download")})
    monkeypatch.setattr(data, "_torchvision_splits", fake)
    splits = load_dataset("flowers102")
    assert fake.calls == [("flowers102", False)]
    assert squeeze("no download was tried") in notice_text(capsys.readouterr().out)
    assert splits.offline is True


def test_shapes_splits_train_val_and_test_differ():
    splits = shapes_splits(
        40, 10, 20, size=16, difficulty="easy", seed=3, eval_transform=identity_b
    )
    train, val, test = splits.train.data, splits.val.data, splits.test.data
    assert (len(train), len(val), len(test)) == (40, 10, 20)
    assert train.images.shape[1:] == (16, 16, 3)
    seen = {image.tobytes() for image in train.images}
    for held_out in (val, test):
        assert not any(image.tobytes() in seen for image in held_out.images)
    assert not any(image.tobytes() in {i.tobytes() for i in test.images} for image in val.images)
    assert splits.classes == list(SHAPES) and splits.offline is False
    assert "easy" in splits.name and "40 train / 10 val / 20 test" in splits.name
    assert splits.train.transform is None
    assert splits.val.transform is identity_b and splits.test.transform is identity_b
    assert [split_of(d) for d in (splits.train, splits.val, splits.test)] == [
        "train",
        "val",
        "test",
    ]
    again = shapes_splits(40, 10, 20, size=16, difficulty="easy", seed=3)
    np.testing.assert_array_equal(again.test.data.images, test.images)
    other = shapes_splits(40, 10, 20, size=16, difficulty="easy", seed=4)
    assert not np.array_equal(other.train.data.images, train.images)


def test_split_labels_are_found_through_loaders_and_subsets():
    test_set = mark_split(torch.utils.data.TensorDataset(torch.zeros(4, 1)), "test")
    subset = torch.utils.data.Subset(test_set, [0, 1])
    assert split_of(torch.utils.data.DataLoader(subset, batch_size=2)) == "test"
    assert split_of(TensorLoader(torch.zeros(4, 3, 2, 2), torch.zeros(4), split="val")) == "val"
    assert split_of(TensorLoader(torch.zeros(4, 3, 2, 2), torch.zeros(4))) is None
    assert split_of([1, 2, 3]) is None
    with pytest.raises(ValueError, match="'train', 'val' or 'test'"):
        mark_split(subset, "validation")


def test_stratified_split_holds_out_the_same_share_of_every_class():
    labels = np.repeat(np.arange(4), [40, 20, 20, 20])
    keep, held_out = stratified_split(labels, 0.1, seed=0)
    assert sorted(np.concatenate([keep, held_out]).tolist()) == list(range(100))
    assert np.bincount(labels[held_out]).tolist() == [4, 2, 2, 2]
    again, _ = stratified_split(labels, 0.1, seed=0)
    np.testing.assert_array_equal(again, keep)


def test_dataset_to_tensors_of_a_subset_is_those_images():
    shapes = make_shapes(6, size=8, seed=0)
    subset = torch.utils.data.Subset(ShapesDataset(shapes), [4, 1])
    images, labels = dataset_to_tensors(subset)
    expected = torch.from_numpy(shapes.images[[4, 1]]).permute(0, 3, 1, 2)
    assert torch.equal(images, expected) and labels.tolist() == shapes.labels[[4, 1]].tolist()


# --------------------------------------------------------------------------- tensors


def test_dataset_to_tensors_keeps_pixels_and_labels():
    shapes = make_shapes(6, size=16, seed=0)
    images, labels = dataset_to_tensors(ShapesDataset(shapes))
    assert images.shape == (6, 3, 16, 16) and images.dtype == torch.uint8
    assert torch.equal(images, torch.from_numpy(shapes.images).permute(0, 3, 1, 2))
    assert labels.dtype == torch.long and labels.tolist() == shapes.labels.tolist()


def test_dataset_to_tensors_resizes_images_of_different_sizes():
    colours = [(255, 0, 0), (0, 128, 255), (10, 200, 30)]
    sizes = [(20, 12), (9, 30), (16, 16)]
    dataset = [
        (Image.new("RGB", size, colour), i)
        for i, (size, colour) in enumerate(zip(sizes, colours, strict=True))
    ]
    images, labels = dataset_to_tensors(dataset, size=8)
    assert images.shape == (3, 3, 8, 8) and images.dtype == torch.uint8
    assert labels.tolist() == [0, 1, 2]
    for image, colour in zip(images, colours, strict=True):
        assert torch.equal(
            image, torch.tensor(colour, dtype=torch.uint8).view(3, 1, 1).expand(3, 8, 8)
        )


def uint8_images(n=10, h=6, w=5, c=3, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, c), dtype=np.uint8)


def expected_batch(images_nhwc: np.ndarray, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> torch.Tensor:
    x = torch.from_numpy(images_nhwc).double().permute(0, 3, 1, 2) / 255
    c = x.shape[1]
    m = torch.tensor(mean[:c], dtype=torch.float64).view(1, c, 1, 1)
    s = torch.tensor(std[:c], dtype=torch.float64).view(1, c, 1, 1)
    return ((x - m) / s).float()


@pytest.mark.parametrize("layout", ["nhwc_numpy", "nchw_tensor"])
@pytest.mark.parametrize("channels", [1, 3])
def test_tensor_loader_layouts_and_normalisation(layout, channels):
    nhwc = uint8_images(n=7, c=channels)
    labels = np.arange(7) % 3
    images = nhwc if layout == "nhwc_numpy" else torch.from_numpy(nhwc).permute(0, 3, 1, 2)
    loader = TensorLoader(images, labels, batch_size=4, device="cpu")
    batches = list(loader)
    assert [len(x) for x, _ in batches] == [4, 3]
    x = torch.cat([b[0] for b in batches])
    y = torch.cat([b[1] for b in batches])
    assert x.shape == (7, channels, 6, 5) and x.dtype == torch.float32
    torch.testing.assert_close(x, expected_batch(nhwc), rtol=1e-5, atol=1e-5)
    assert y.dtype == torch.long and y.tolist() == labels.tolist()


def test_tensor_loader_custom_statistics_and_float_input():
    images = torch.rand(5, 3, 4, 4)
    loader = TensorLoader(images, torch.zeros(5), batch_size=5, mean=(0.5, 0, 1), std=(2, 1, 4))
    x, _ = next(iter(loader))
    m, s = torch.tensor([0.5, 0, 1]).view(1, 3, 1, 1), torch.tensor([2.0, 1, 4]).view(1, 3, 1, 1)
    torch.testing.assert_close(x, (images - m) / s)  # float images are not divided by 255


@pytest.mark.parametrize(
    ("n", "batch_size", "drop_last", "sizes"),
    [
        (10, 4, False, [4, 4, 2]),
        (10, 4, True, [4, 4]),
        (8, 4, True, [4, 4]),
        (3, 8, False, [3]),
        (3, 8, True, []),
    ],
)
@pytest.mark.parametrize("shuffle", [False, True])
def test_tensor_loader_len_and_batch_sizes(n, batch_size, drop_last, sizes, shuffle):
    loader = TensorLoader(
        uint8_images(n), np.zeros(n), batch_size=batch_size, drop_last=drop_last, shuffle=shuffle
    )
    assert len(loader) == len(sizes)
    assert [len(y) for _, y in loader] == sizes


def index_coded(n):
    """Float images whose every pixel equals the sample's index, which is also its label."""
    images = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 3, 2, 2).clone()
    return images, torch.arange(n)


def epoch_order(loader):
    order = []
    for x, y in loader:
        assert torch.equal(x[:, 0, 0, 0].long(), y)  # images and labels stay paired
        order += y.tolist()
    return order


def test_tensor_loader_shuffle_covers_every_sample_once_and_reshuffles():
    images, labels = index_coded(23)
    loader = TensorLoader(images, labels, batch_size=5, shuffle=True, mean=(0,) * 3, std=(1,) * 3)
    first, second = epoch_order(loader), epoch_order(loader)
    assert sorted(first) == sorted(second) == list(range(23))
    assert first != list(range(23))
    assert first != second
    again = TensorLoader(images, labels, batch_size=5, shuffle=True, mean=(0,) * 3, std=(1,) * 3)
    assert epoch_order(again) == first  # the same seed gives the same order
    other = TensorLoader(
        images, labels, batch_size=5, shuffle=True, mean=(0,) * 3, std=(1,) * 3, seed=1
    )
    assert epoch_order(other) != first


def test_tensor_loader_without_shuffle_keeps_order():
    images, labels = index_coded(11)
    loader = TensorLoader(images, labels, batch_size=4, mean=(0,) * 3, std=(1,) * 3)
    assert epoch_order(loader) == epoch_order(loader) == list(range(11))


@pytest.mark.parametrize("shuffle", [False, True])
def test_tensor_loader_augment_only_when_shuffling(shuffle):
    calls = []

    def augment(batch):
        calls.append(batch.shape)
        return -batch

    images = uint8_images(6)
    loader = TensorLoader(images, np.zeros(6), batch_size=4, shuffle=shuffle, augment=augment)
    x = torch.cat([b for b, _ in loader])
    assert len(calls) == (2 if shuffle else 0)
    plain = torch.cat([b for b, _ in TensorLoader(images, np.zeros(6), batch_size=6)])
    if shuffle:
        assert sorted((-x).sum(dim=(1, 2, 3)).tolist()) == pytest.approx(
            sorted(plain.sum(dim=(1, 2, 3)).tolist()), rel=1e-5
        )
    else:
        torch.testing.assert_close(x, plain)


@pytest.mark.parametrize("n_labels", [4, 6])
def test_tensor_loader_rejects_mismatched_lengths(n_labels):
    with pytest.raises(ValueError, match="5 images"):
        TensorLoader(uint8_images(5), np.zeros(n_labels))


def test_random_flip_flips_about_half():
    torch.manual_seed(0)
    batch = torch.rand(400, 3, 4, 5)
    out = random_flip(batch)
    assert out.shape == batch.shape
    same = (out == batch).flatten(1).all(dim=1)
    mirrored = (out == batch.flip(-1)).flatten(1).all(dim=1)
    assert (same ^ mirrored).all()  # each image is exactly one of the two
    assert 0.4 < mirrored.float().mean() < 0.6
    assert not torch.equal(random_flip(batch), out)  # a fresh random choice on every call


def test_random_crop_takes_one_window_of_the_reflection_padded_image_per_image():
    torch.manual_seed(0)
    batch = torch.randn(16, 3, 8, 8)
    out = data.random_crop(batch, padding=2)
    assert out.shape == batch.shape
    padded = torch.nn.functional.pad(batch, (2, 2, 2, 2), mode="reflect")
    offsets = set()
    for image, result in zip(padded, out, strict=True):
        found = [
            (dy, dx)
            for dy in range(5)
            for dx in range(5)
            if torch.equal(image[:, dy : dy + 8, dx : dx + 8], result)
        ]
        assert found, "an output image is not a window of its own padded image"
        offsets.add(found[0])
    assert len(offsets) > 3  # offsets differ between images: it is per-image, not per-batch


def test_random_crop_with_no_padding_is_the_identity_and_flip_and_crop_keeps_shape():
    batch = torch.randn(4, 3, 8, 8)
    assert torch.equal(data.random_crop(batch, padding=0), batch)
    assert data.flip_and_crop(batch).shape == batch.shape


def test_dataset_to_tensors_fast_path_equals_the_image_by_image_path():
    dataset = ShapesDataset(make_shapes(12, size=32, seed=5))
    fast_images, fast_labels = data.dataset_to_tensors(dataset)
    slow_images, slow_labels = data.dataset_to_tensors(dataset, size=32)  # per image
    assert torch.equal(fast_images, slow_images) and torch.equal(fast_labels, slow_labels)
    assert fast_images.dtype == torch.uint8 and fast_images.shape == (12, 3, 32, 32)


# --------------------------------------------------------------------------- image_transform


def training_loader(images, labels, transform, **options) -> TensorLoader:
    """A shuffled (training) loader with a per-image transform."""
    return TensorLoader(images, labels, shuffle=True, image_transform=transform, **options)


def test_image_transform_is_called_once_per_training_image_on_uint8_chw():
    seen = []

    def record(image):
        seen.append((image.shape, image.dtype))
        return image

    loader = training_loader(uint8_images(10), np.zeros(10), record, batch_size=4)
    assert [len(y) for _, y in loader] == [4, 4, 2]
    assert seen == [((3, 6, 5), torch.uint8)] * 10


def test_image_transform_is_not_applied_without_shuffle():
    def fail(image):
        raise AssertionError("image_transform ran on a test loader")

    images = uint8_images(6)
    loader = TensorLoader(images, np.zeros(6), batch_size=4, image_transform=fail)
    x = torch.cat([b for b, _ in loader])
    torch.testing.assert_close(x, expected_batch(images), rtol=1e-5, atol=1e-5)


def test_image_transform_runs_before_normalisation():
    """A mirrored uint8 image, then the usual (x / 255 - mean) / std, in float32."""
    nhwc = uint8_images(9)
    loader = training_loader(nhwc, np.arange(9), lambda image: image.flip(-1), batch_size=4)
    expected = expected_batch(nhwc).flip(-1)
    for x, y in loader:
        assert x.dtype == torch.float32 and x.shape[1:] == (3, 6, 5)
        torch.testing.assert_close(x, expected[y], rtol=1e-5, atol=1e-5)


def test_image_transform_draws_separately_for_each_image():
    """v2.RandomHorizontalFlip given a whole batch flips all or none; per image, some of each."""
    images = torch.from_numpy(uint8_images(64, h=4, w=4)).permute(0, 3, 1, 2)
    raw_pixels = {"mean": (0,) * 3, "std": (1 / 255,) * 3}  # x / 255 / (1 / 255) = x
    flip = v2.RandomHorizontalFlip()
    loader = training_loader(images, torch.arange(64), flip, batch_size=64, **raw_pixels)
    torch.manual_seed(0)
    x, y = next(iter(loader))
    mirrored = (x == images[y].flip(-1).float()).flatten(1).all(dim=1)
    same = (x == images[y].float()).flatten(1).all(dim=1)
    assert (mirrored ^ same).all()  # each image is exactly one of the two
    assert 10 < mirrored.sum() < 54  # and both occur in one batch


def test_image_transform_equals_torchvision_applied_image_by_image():
    """The loader shuffles with its own generator, so the global seed drives only the
    transform: replaying the seed over the same images in the same order must agree."""
    images = torch.from_numpy(uint8_images(12, h=16, w=16)).permute(0, 3, 1, 2)
    transform = v2.Compose([v2.TrivialAugmentWide(), v2.RandomErasing(p=0.5, value=0)])
    loader = training_loader(images, torch.arange(12), transform, batch_size=5)
    torch.manual_seed(3)
    batches = list(loader)
    torch.manual_seed(3)
    changed = 0
    for x, y in batches:
        by_hand = torch.stack([transform(images[i]) for i in y])
        changed += (by_hand != images[y]).flatten(1).any(dim=1).sum().item()
        expected = expected_batch(by_hand.permute(0, 2, 3, 1).numpy())
        torch.testing.assert_close(x, expected, rtol=1e-5, atol=1e-5)
    assert changed > 6  # the transform really altered most images


def test_image_transform_comes_before_augment():
    got = []

    def augment(batch):
        got.append(batch)
        return batch

    loader = training_loader(uint8_images(4), np.zeros(4), torch.zeros_like, augment=augment)
    next(iter(loader))
    black = (-MEAN / STD).expand(4, 3, 6, 5)  # a black uint8 image after normalisation
    torch.testing.assert_close(got[0], black)


def test_image_transform_must_keep_the_dtype():
    to_float = v2.ToDtype(torch.float32, scale=True)
    loader = training_loader(uint8_images(4), np.zeros(4), to_float)
    with pytest.raises(TypeError, match="must keep the dtype"):
        next(iter(loader))


# --------------------------------------------------------------------------- pixel_augment


def test_pixel_augment_is_called_once_per_training_batch_on_the_uint8_batch():
    seen = []

    def record(batch):
        seen.append((tuple(batch.shape), batch.dtype))
        return batch

    images = uint8_images(10)
    loader = TensorLoader(images, np.zeros(10), batch_size=4, shuffle=True, pixel_augment=record)
    assert [len(y) for _, y in loader] == [4, 4, 2]
    assert seen == [((4, 3, 6, 5), torch.uint8)] * 2 + [((2, 3, 6, 5), torch.uint8)]


def test_pixel_augment_is_not_applied_without_shuffle():
    def fail(batch):
        raise AssertionError("pixel_augment ran on a test loader")

    images = uint8_images(6)
    loader = TensorLoader(images, np.zeros(6), batch_size=4, pixel_augment=fail)
    x = torch.cat([b for b, _ in loader])
    torch.testing.assert_close(x, expected_batch(images), rtol=1e-5, atol=1e-5)


def test_pixel_augment_runs_before_normalisation():
    """A mirrored uint8 batch, then the usual (x / 255 - mean) / std, in float32."""
    nhwc = uint8_images(9)
    mirror = partial(torch.flip, dims=(-1,))
    loader = TensorLoader(nhwc, np.arange(9), batch_size=4, shuffle=True, pixel_augment=mirror)
    expected = expected_batch(nhwc).flip(-1)
    for x, y in loader:
        assert x.dtype == torch.float32 and x.shape[1:] == (3, 6, 5)
        torch.testing.assert_close(x, expected[y], rtol=1e-5, atol=1e-5)


def test_pixel_augment_comes_after_image_transform_and_before_augment():
    got = {}

    def pixel_augment(batch):
        got["pixels"] = batch.clone()
        return batch + 1  # black (0) becomes 1

    def augment(batch):
        got["normalised"] = batch
        return batch

    loader = training_loader(
        uint8_images(4), np.zeros(4), torch.zeros_like, pixel_augment=pixel_augment, augment=augment
    )
    next(iter(loader))
    assert torch.equal(got["pixels"], torch.zeros(4, 3, 6, 5, dtype=torch.uint8))
    one = ((1 / 255 - MEAN) / STD).expand(4, 3, 6, 5)
    torch.testing.assert_close(got["normalised"], one)


def test_pixel_augment_must_keep_the_dtype():
    to_float = v2.ToDtype(torch.float32, scale=True)
    loader = TensorLoader(uint8_images(4), np.zeros(4), shuffle=True, pixel_augment=to_float)
    with pytest.raises(
        TypeError, match="pixel_augment turned torch.uint8 images into torch.float32"
    ):
        next(iter(loader))
