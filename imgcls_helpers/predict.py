"""``imgcls-predict FOLDER --model BUNDLE``: classify a folder of photos into a CSV.

The product end of chapter 11. It needs no model class and no notebook, only the bundle
that :func:`imgcls_helpers.export.save_bundle` wrote, run by onnxruntime. Preprocessing is
:func:`imgcls_helpers.data.eval_transforms` built from the numbers in ``model.json``: one
definition for validation and for serving, so the two cannot drift apart.

Real folders are messy, so every file is accounted for on stderr: hidden files and non-image
extensions are skipped, unreadable images are named with the reason, and the run goes on.
Exit codes: 0 when at least one image was classified, 1 when none could be, 2 for usage
errors (no such folder, no usable bundle). The CSV is written to a temporary file and moved
into place at the end, so an interrupted run never leaves half a CSV, and a run that
classified nothing leaves an earlier CSV alone.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from .data import eval_transforms
from .export import file_sha256, onnx_session
from .folders import IMAGE_EXTENSIONS, BadImageError, load_rgb

BUNDLE_KEYS = ("classes", "image_size", "resize", "mean", "std", "sha256")


class BundleError(ValueError):
    """A model bundle that cannot be used; the message names the file and what is wrong."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def read_bundle(folder: str | Path) -> dict:
    """``model.json`` of a bundle, after checking that ``model.onnx`` is the file it describes."""
    folder = Path(folder)
    json_path, onnx_path = folder / "model.json", folder / "model.onnx"
    if not folder.is_dir():
        raise BundleError(folder, "no such model bundle folder (save_bundle writes one)")
    for path in (json_path, onnx_path):
        if not path.is_file():
            raise BundleError(path, "missing; a bundle holds model.json and model.onnx")
    try:
        meta = json.loads(json_path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise BundleError(json_path, f"not valid JSON ({err})") from err
    missing = [key for key in BUNDLE_KEYS if not isinstance(meta, dict) or key not in meta]
    if missing:
        raise BundleError(json_path, f"lacks the key(s) {', '.join(missing)}")
    if file_sha256(onnx_path) != meta["sha256"]:
        raise BundleError(
            onnx_path,
            "its SHA-256 does not match the one in model.json: the file was changed or "
            "replaced after export; export the bundle again",
        )
    return meta


class Classifier:
    """A bundle ready to classify PIL images: ``Classifier(folder).top_k([image], k=3)[0]``."""

    def __init__(self, bundle_folder: str | Path) -> None:
        self.meta = read_bundle(bundle_folder)
        self.classes: list[str] = list(self.meta["classes"])
        self.transform = eval_transforms(
            self.meta["image_size"],
            resize=self.meta["resize"],
            mean=self.meta["mean"],
            std=self.meta["std"],
        )
        onnx_path = Path(bundle_folder) / "model.onnx"
        try:
            self.session = onnx_session(bundle_folder)
        except Exception as err:  # noqa: BLE001  onnxruntime raises its own types for bad files
            raise BundleError(onnx_path, f"onnxruntime cannot load it ({err})") from err
        self.input_name = self.session.get_inputs()[0].name
        n_outputs = self.session.get_outputs()[0].shape[-1]
        if isinstance(n_outputs, int) and n_outputs != len(self.classes):
            reason = f"{len(self.classes)} classes, but model.onnx has {n_outputs} outputs"
            raise BundleError(Path(bundle_folder) / "model.json", reason)

    def preprocess(self, image: Image.Image) -> np.ndarray:
        """A ``(3, H, W)`` float32 array, exactly as validation prepared images in training.

        Non-RGB images are converted with ``convert("RGB")``; for files, prefer
        :func:`imgcls_helpers.folders.load_rgb`, which also handles transparency and 16 bits.
        """
        if image.mode != "RGB":
            image = image.convert("RGB")
        return self.transform(image).numpy()

    def probabilities(self, images: list[Image.Image]) -> np.ndarray:
        """Softmax probabilities ``(N, C)``, one row per image, columns in ``.classes`` order."""
        if not images:
            return np.zeros((0, len(self.classes)), dtype=np.float32)
        batch = np.stack([self.preprocess(image) for image in images])
        logits = self.session.run(None, {self.input_name: batch})[0].astype(np.float64)
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        return (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)

    def top_k(self, images: list[Image.Image], k: int = 3) -> list[list[tuple[str, float]]]:
        """For each image, the ``k`` most probable ``(class, probability)``, most probable first."""
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        probs = self.probabilities(images)
        order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
        return [
            [(self.classes[j], float(p[j])) for j in row]
            for p, row in zip(probs, order, strict=True)
        ]


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="imgcls-predict",
        description="Classify every image under FOLDER with an exported model bundle.",
    )
    parser.add_argument("folder", type=Path, help="images to classify (searched recursively)")
    parser.add_argument("--model", type=Path, required=True, help="bundle folder (save_bundle)")
    parser.add_argument("--out", type=Path, default=Path("predictions.csv"), help="CSV to write")
    parser.add_argument("--batch-size", type=_positive_int, default=32)
    parser.add_argument("--top", type=_positive_int, default=3, help="classes listed per image")
    return parser


def _say(message: str) -> None:
    print(message, file=sys.stderr)


def _classify_files(
    folder: Path, files: list[Path], classifier: Classifier, writer, batch_size: int, k: int
) -> tuple[int, int, int]:
    """Write one CSV row per readable image in ``files``, report every other file on stderr,
    and return the counts ``(classified, unreadable, skipped)``."""
    n_done = n_bad = n_skipped = 0
    batch: list[tuple[str, Image.Image]] = []
    for i, path in enumerate(files):
        relative = path.relative_to(folder)
        name = relative.as_posix()
        hidden = any(part.startswith(".") for part in relative.parts)  # .DS_Store, ._IMG.jpg
        if hidden or path.suffix.lower() not in IMAGE_EXTENSIONS:
            _say(f"skipped {name}: not an image file")
            n_skipped += 1
        else:
            try:
                batch.append((name, load_rgb(path)))
            except BadImageError as err:
                _say(f"unreadable {name}: {err.reason}")
                n_bad += 1
        if batch and (len(batch) == batch_size or i == len(files) - 1):
            tops = classifier.top_k([image for _, image in batch], k=k)
            for (name, _), top in zip(batch, tops, strict=True):
                listed = ";".join(f"{label}:{p:.4f}" for label, p in top)
                writer.writerow([name, top[0][0], f"{top[0][1]:.4f}", listed])
            n_done, batch = n_done + len(batch), []
    return n_done, n_bad, n_skipped


def main(argv: list[str] | None = None) -> int:
    """Run the command; returns the exit code (argparse's own errors exit with 2)."""
    args = _parser().parse_args(argv)
    folder, out = args.folder, args.out
    if not folder.is_dir():
        _say(f"imgcls-predict: error: {folder} does not exist or is not a folder")
        return 2
    if out.is_dir() or not out.parent.is_dir():
        _say(f"imgcls-predict: error: cannot write {out}: its folder does not exist")
        return 2
    try:
        classifier = Classifier(args.model)
    except BundleError as err:
        _say(f"imgcls-predict: error: cannot use the model bundle: {err}")
        return 2
    files = sorted((p for p in folder.rglob("*") if p.is_file()), key=lambda p: p.as_posix())
    # Rows go to a temporary file beside the CSV, which replaces the CSV only at the end.
    partial = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        with open(partial, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["file", "label", "confidence", f"top{args.top}"])
            n_done, n_bad, n_skipped = _classify_files(
                folder, files, classifier, writer, args.batch_size, args.top
            )
        counts = f"{n_done} classified, {n_bad} unreadable, {n_skipped} skipped"
        if n_done == 0:
            _say(
                f"imgcls-predict: no image could be classified in {folder} ({counts}); "
                f"{out} was not written"
            )
            return 1
        os.replace(partial, out)
        _say(f"{counts}; wrote {out}")
        return 0
    finally:
        partial.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
