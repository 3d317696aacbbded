"""Tests for imgcls_helpers.predict: the Classifier and the imgcls-predict command, on a real
exported bundle and folders of real, broken and non-image files written into tmp_path."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from imgcls_helpers.data import eval_transforms
from imgcls_helpers.export import save_bundle
from imgcls_helpers.folders import load_rgb
from imgcls_helpers.models import SmallCNN
from imgcls_helpers.predict import BundleError, Classifier, main

CLASSES = ["cat", "dog", "fox"]
# Not the defaults, so a preprocess that ignored the bundle's numbers would be caught.
PREP = {"image_size": 32, "resize": 40, "mean": (0.3, 0.4, 0.5), "std": (0.2, 0.25, 0.3)}


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    torch.manual_seed(0)
    model = SmallCNN(len(CLASSES), width=8)
    with torch.no_grad():
        for _ in range(3):  # non-trivial BatchNorm statistics
            model(torch.randn(8, 3, 32, 32))
    model.eval()
    return model, save_bundle(tmp_path_factory.mktemp("bundle"), model, CLASSES, **PREP)


def noise_image(seed: int, size=(48, 36)) -> Image.Image:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, 3)  # a different overall colour per image
    pixels = np.clip(base + rng.normal(0, 40, (size[1], size[0], 3)), 0, 255)
    return Image.fromarray(pixels.astype(np.uint8))


def write_photos(folder: Path) -> list[str]:
    """Five good images (nested, upper-case suffix, PNG), returned in sorted relative order."""
    names = ["a.jpg", "b.PNG", "zoo/c.jpeg", "zoo/deeper/d.png", "e.webp"]
    for i, name in enumerate(names):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        noise_image(i, size=(40 + 7 * i, 36)).save(folder / name)
    return sorted(names)


def truncated_jpeg(path: Path) -> None:
    buf = io.BytesIO()
    noise_image(99).save(buf, "JPEG")
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])


def pytorch_top(model, folder: Path, name: str) -> list[tuple[str, float]]:
    """The expected answer, computed without onnxruntime: load_rgb, eval_transforms, PyTorch."""
    size, resize = PREP["image_size"], PREP["resize"]
    x = eval_transforms(size, resize=resize, mean=PREP["mean"], std=PREP["std"])(
        load_rgb(folder / name)
    )
    with torch.inference_mode():
        probs = model(x[None]).softmax(1)[0]
    return sorted(zip(CLASSES, probs.tolist(), strict=True), key=lambda t: -t[1])


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def run(argv: list[str]) -> int:
    """main(argv), with argparse's SystemExit turned into its exit code."""
    try:
        return main([str(a) for a in argv])
    except SystemExit as exit_:
        return exit_.code


# --- Classifier ---------------------------------------------------------------------------


def test_preprocess_is_eval_transforms_with_the_bundles_numbers(bundle):
    _, folder = bundle
    classifier = Classifier(folder)
    image = noise_image(0, size=(70, 45))
    expected = eval_transforms(32, resize=40, mean=PREP["mean"], std=PREP["std"])(image)
    got = classifier.preprocess(image)
    assert got.shape == (3, 32, 32) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected.numpy(), atol=1e-6)
    assert classifier.preprocess(image.convert("L")).shape == (3, 32, 32)


def test_probabilities_and_top_k_match_pytorch(bundle, tmp_path):
    model, folder = bundle
    names = write_photos(tmp_path)
    classifier = Classifier(folder)
    images = [load_rgb(tmp_path / n) for n in names]
    probs = classifier.probabilities(images)
    assert probs.shape == (len(names), 3)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-6)
    tops = classifier.top_k(images, k=3)
    for name, top in zip(names, tops, strict=True):
        expected = pytorch_top(model, tmp_path, name)
        assert [c for c, _ in top] == [c for c, _ in expected]
        np.testing.assert_allclose([p for _, p in top], [p for _, p in expected], atol=1e-5)
    # the Gradio demo's call: one image, three (label, probability) pairs, most probable first
    first = classifier.top_k([images[0]], k=3)[0]
    assert [c for c, _ in first] == [c for c, _ in tops[0]]
    assert len(classifier.top_k(images, k=2)[0]) == 2
    assert len(classifier.top_k(images, k=10)[0]) == 3
    assert classifier.probabilities([]).shape == (0, 3)
    with pytest.raises(ValueError, match="at least 1"):
        classifier.top_k(images, k=0)


# --- the command: good and messy folders -------------------------------------------------


def test_csv_rows_are_the_pytorch_top_classes(bundle, tmp_path, capsys):
    model, folder = bundle
    photos, out = tmp_path / "photos", tmp_path / "predictions.csv"
    names = write_photos(photos)
    assert run([photos, "--model", folder, "--out", out, "--batch-size", 2]) == 0
    rows = read_csv(out)
    assert list(rows[0]) == ["file", "label", "confidence", "top3"]
    assert [r["file"] for r in rows] == names
    labels = set()
    for row in rows:
        expected = pytorch_top(model, photos, row["file"])
        assert row["label"] == expected[0][0]
        assert abs(float(row["confidence"]) - expected[0][1]) <= 5e-5 + 1e-6
        assert 0 < float(row["confidence"]) <= 1
        listed = [entry.split(":") for entry in row["top3"].split(";")]
        assert [c for c, _ in listed] == [c for c, _ in expected]
        assert listed[0] == [row["label"], row["confidence"]]
        probs = [float(p) for _, p in listed]
        assert probs == sorted(probs, reverse=True)
        labels.add(row["label"])
    assert len(labels) > 1  # the images really are told apart
    err = capsys.readouterr().err
    assert "5 classified, 0 unreadable, 0 skipped" in err and str(out) in err
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))


def test_bad_and_non_image_files_are_reported_and_the_rest_classified(bundle, tmp_path, capsys):
    _, folder = bundle
    photos, out = tmp_path / "photos", tmp_path / "out.csv"
    names = write_photos(photos)
    truncated_jpeg(photos / "zoo" / "cut.jpg")
    (photos / "text.jpg").write_text("not really a JPEG")
    (photos / "notes.txt").write_text("shopping list")
    (photos / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    noise_image(7).save(photos / "._a.jpg", "JPEG")  # macOS metadata beside a.jpg
    (photos / "zz.md").write_text("sorts last, after the images still waiting in a batch")
    assert run([photos, "--model", folder, "--out", out]) == 0
    assert [r["file"] for r in read_csv(out)] == names
    err = capsys.readouterr().err
    assert "unreadable zoo/cut.jpg: " in err and "truncated" in err
    assert "unreadable text.jpg: cannot identify image file" in err
    for name in ("notes.txt", ".DS_Store", "._a.jpg", "zz.md"):
        assert f"skipped {name}: not an image file" in err
    assert "5 classified, 2 unreadable, 4 skipped" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("contents", ["empty", "only broken"])
def test_nothing_classified_exits_1_and_keeps_the_old_csv(bundle, tmp_path, capsys, contents):
    _, folder = bundle
    photos, out = tmp_path / "photos", tmp_path / "predictions.csv"
    photos.mkdir()
    if contents == "only broken":
        truncated_jpeg(photos / "cut.jpg")
        (photos / "notes.txt").write_text("hello")
    out.write_text("an earlier run's results\n")
    assert run([photos, "--model", folder, "--out", out]) == 1
    assert out.read_text() == "an earlier run's results\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos", "predictions.csv"]
    err = capsys.readouterr().err
    assert "no image could be classified" in err and "not written" in err


def test_empty_folder_writes_no_csv(bundle, tmp_path):
    _, folder = bundle
    (tmp_path / "photos").mkdir()
    assert run([tmp_path / "photos", "--model", folder, "--out", tmp_path / "p.csv"]) == 1
    assert not (tmp_path / "p.csv").exists()


# --- the command: usage errors -------------------------------------------------------------


def test_missing_folder_exits_2_naming_it(bundle, tmp_path, capsys):
    _, folder = bundle
    missing = tmp_path / "no_such_photos"
    assert run([missing, "--model", folder, "--out", tmp_path / "p.csv"]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "Traceback" not in err
    assert not (tmp_path / "p.csv").exists()


def broken_bundle(bundle_folder: Path, target: Path, how: str) -> Path:
    shutil.copytree(bundle_folder, target)
    meta_path = target / "model.json"
    meta = json.loads(meta_path.read_text())
    if how == "no model.json":
        meta_path.unlink()
    elif how == "no model.onnx":
        (target / "model.onnx").unlink()
    elif how == "not JSON":
        meta_path.write_text("{classes: cat")
    elif how == "no classes key":
        del meta["classes"]
        meta_path.write_text(json.dumps(meta))
    elif how == "stale sha256":  # model.onnx replaced after export
        with open(target / "model.onnx", "ab") as f:
            f.write(b"\0")
    elif how == "corrupt onnx":  # the hash matches, the contents are garbage
        (target / "model.onnx").write_bytes(b"this is no ONNX model")
        meta["sha256"] = __import__("hashlib").sha256(b"this is no ONNX model").hexdigest()
        meta_path.write_text(json.dumps(meta))
    return target


@pytest.mark.parametrize(
    "how, named, why",
    [
        ("no bundle", "bundle", "no such model bundle"),
        ("no model.json", "model.json", "missing"),
        ("no model.onnx", "model.onnx", "missing"),
        ("not JSON", "model.json", "not valid JSON"),
        ("no classes key", "model.json", "lacks the key(s) classes"),
        ("stale sha256", "model.onnx", "SHA-256 does not match"),
        ("corrupt onnx", "model.onnx", "onnxruntime cannot load it"),
    ],
)
def test_unusable_bundle_exits_2_naming_the_file(bundle, tmp_path, capsys, how, named, why):
    _, folder = bundle
    photos = tmp_path / "photos"
    write_photos(photos)
    target = tmp_path / "bundle"
    if how != "no bundle":
        broken_bundle(folder, target, how)
    with pytest.raises(BundleError, match=re.escape(why)):
        Classifier(target)
    assert run([photos, "--model", target, "--out", tmp_path / "p.csv"]) == 2
    err = capsys.readouterr().err
    assert str(target / named if named != "bundle" else target) in err and why in err
    assert "Traceback" not in err
    assert not (tmp_path / "p.csv").exists()


@pytest.mark.parametrize("extra", [[], ["--batch-size", "0"], ["--top", "x"]])
def test_argparse_errors_exit_2(bundle, tmp_path, extra):
    _, folder = bundle
    model = [] if not extra else ["--model", str(folder)]
    assert run([tmp_path, *model, *extra]) == 2


# --- the command as a program ----------------------------------------------------------------


def test_the_command_runs_as_a_program(bundle, tmp_path):
    """The installed imgcls-predict (pyproject's [project.scripts]); python -m without it."""
    command = shutil.which("imgcls-predict", path=str(Path(sys.executable).parent))
    program = [command] if command else [sys.executable, "-m", "imgcls_helpers.predict"]
    _, folder = bundle
    photos, out = tmp_path / "photos", tmp_path / "p.csv"
    names = write_photos(photos)
    (photos / "notes.txt").write_text("hello")
    argv = [*program, str(photos), "--model", str(folder), "--out", str(out)]
    done = subprocess.run(argv, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert [r["file"] for r in read_csv(out)] == names
    assert "skipped notes.txt: not an image file" in done.stderr
    assert "5 classified, 0 unreadable, 1 skipped" in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
