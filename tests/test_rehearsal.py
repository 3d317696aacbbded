"""The rehearsal of the real path: stand-ins the real loaders accept, and a scan that catches
what a reader of the real path must never see, including a real-path bug put back on purpose.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from rehearsal import scan, standins

REPO = Path(__file__).resolve().parents[1]


def rehearsal_env(root: Path, **extra: str) -> dict[str, str]:
    """The environment of a rehearsal kernel: stand-ins, the md5 bypass, the cpu profile."""
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "HF_HUB_OFFLINE")}
    env.update(standins.environment(root), IMGCLS_PROFILE="cpu", OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "rehearsal" / "site"), str(REPO)])
    env.update(extra)
    return env


def run_python(code: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout + done.stderr


def test_torchvision_reads_the_dataset_stand_ins_through_the_books_loader(tmp_path):
    standins.write_cifar10(tmp_path / "data", n_train=100, n_test=20)
    standins.write_flowers102(tmp_path / "data", per_class=1)
    out = run_python(
        "from imgcls_helpers import data\n"
        "for name in ('cifar10', 'flowers102'):\n"
        "    s = data.load_dataset(name)\n"
        "    image, label = s.train[0]\n"
        "    roles = [data.split_of(d) for d in (s.train, s.val, s.test)]\n"
        "    print(s.name, len(s.train), len(s.val), len(s.test), len(s.classes), *roles,\n"
        "          image.size, label)\n"
        "    if name == 'cifar10':\n"
        "        keep, held = set(s.train.indices), set(s.val.indices)\n"
        "        _, val_labels = data.dataset_to_tensors(s.val)\n"
        "        print('disjoint', not keep & held, 'covers', len(keep | held),\n"
        "              'per class', sorted(set(val_labels.bincount().tolist())))\n",
        rehearsal_env(tmp_path),
    )
    assert "OFFLINE STAND-IN" not in out
    lines = out.strip().splitlines()
    # CIFAR-10 has no validation split: a stratified tenth of the training files, one image
    # of each class here, never also a training image
    assert lines[0].startswith("CIFAR-10 90 10 20 10 train val test (32, 32)")
    assert lines[1] == "disjoint True covers 100 per class [1]"
    # Flowers-102: its own train, val and test (one image per class each), 102 classes, a
    # JPEG about 500 pixels on its short side
    name, n_train, n_val, n_test, n_classes, *roles_and_size = lines[2].split(" ")[:10]
    assert (name, n_train, n_val, n_test, n_classes) == ("Flowers-102", "102", "102", "102", "102")
    assert roles_and_size[:3] == ["train", "val", "test"]
    size = roles_and_size[3:5]
    assert min(int(size[0].strip("(,")), int(size[1].strip(")"))) >= 480


def test_without_the_md5_bypass_the_stand_ins_are_rejected(tmp_path):
    # The bypass is what makes them load; torchvision's own check is intact otherwise.
    standins.write_cifar10(tmp_path / "data", n_train=50, n_test=20)
    env = rehearsal_env(tmp_path, PYTHONPATH=str(REPO), IMGCLS_OFFLINE="1")
    out = run_python("from imgcls_helpers import data; data.load_dataset('cifar10')", env)
    assert "OFFLINE STAND-IN" in out


def test_torchvision_weights_load_from_the_cache_path(tmp_path):
    (path,) = standins.write_torchvision_weights(tmp_path / "torch", [("resnet18", "DEFAULT")])
    assert path.name == "resnet18-f37072fd.pth"  # torchvision's file name for the download
    out = run_python(
        "import torch\n"
        "from imgcls_helpers import transfer\n"
        "loaded = transfer.pretrained_or_random('resnet18')\n"
        f"saved = torch.load({str(path)!r})\n"
        "same = all(torch.equal(v, saved[k]) for k, v in loaded.model.state_dict().items())\n"
        "print('pretrained', loaded.pretrained, 'same', same)\n",
        rehearsal_env(tmp_path, IMGCLS_OFFLINE="1"),
    )
    assert "pretrained True same True" in out
    assert "RANDOM WEIGHTS" not in out


def executed(cells: list[str], env: dict[str, str], tmp_path: Path) -> Path:
    """Execute a notebook of ``cells`` in a kernel with ``env``, as nbmake does; its path."""
    from nbclient import NotebookClient

    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    saved = os.environ.copy()
    os.environ.clear()
    os.environ.update(env)  # the kernel inherits this process's environment
    try:
        NotebookClient(notebook, timeout=600, kernel_name="python3").execute()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    path = tmp_path / "probe.ipynb"
    nbformat.write(notebook, path)
    return path


@pytest.fixture(scope="module")
def clip_standins(tmp_path_factory):
    root = tmp_path_factory.mktemp("clip")
    standins.write_open_clip_weights(root / "hf")
    return root


LOAD_CLIP = (
    "from imgcls_helpers import zeroshot\n"
    "clip = zeroshot.load_clip('ViT-B-32', 'openai')\n"
    "print('pretrained:', clip.pretrained)"
)


@pytest.mark.slow
def test_the_real_clip_path_is_clean(clip_standins, tmp_path):
    notebook = executed([LOAD_CLIP], rehearsal_env(clip_standins), tmp_path)
    outputs = json.loads(notebook.read_text())["cells"][0]["outputs"]
    assert "pretrained: True" in "".join(t for o in outputs for t in scan.output_texts(o))
    assert scan.findings(notebook) == []


@pytest.mark.slow
def test_the_rehearsal_catches_the_quickgelu_bug_when_it_is_put_back(clip_standins, tmp_path):
    # A scratch copy of the package with the fix removed: load_clip builds nn.GELU again for
    # weights trained with QuickGELU. Only the rehearsal's scan can see it (a warning).
    broken = tmp_path / "broken"
    shutil.copytree(REPO / "imgcls_helpers", broken / "imgcls_helpers")
    source = broken / "imgcls_helpers" / "zeroshot.py"
    fixed = 'quick_gelu = bool(tag.get("quick_gelu", False))'
    assert fixed in source.read_text()
    source.write_text(source.read_text().replace(fixed, "quick_gelu = False"))
    env = rehearsal_env(clip_standins)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "rehearsal" / "site"), str(broken)])
    check = "import imgcls_helpers; print(imgcls_helpers.__file__)"
    notebook = executed([check, LOAD_CLIP], env, tmp_path)
    assert str(broken) in json.dumps(json.loads(notebook.read_text())["cells"][0]["outputs"])
    problems = scan.findings(notebook)
    assert any("library warning" in p and "QuickGELU mismatch" in p for p in problems)


def notebook_with(outputs: list[dict], path: Path) -> Path:
    cell = nbformat.v4.new_code_cell("pass")
    cell.outputs = [nbformat.from_dict(o) for o in outputs]
    nbformat.write(nbformat.v4.new_notebook(cells=[cell]), path)
    return path


def stream(text: str, name: str = "stdout") -> dict:
    return {"output_type": "stream", "name": name, "text": text}


@pytest.mark.parametrize(
    ("output", "what"),
    [
        (stream("! RANDOM WEIGHTS: the pretrained weights ..."), "offline notice"),
        (stream("OFFLINE STAND-IN: cifar10 is not available"), "offline notice"),
        (stream("NOT RUN: the Flowers-102 experiment needs"), "offline notice"),
        (
            stream("data: shapes (medium, 1200 train / 400 test) (offline stand-in for cifar10)"),
            "shapes stand-in for a real dataset",
        ),  # fmt: skip
        (
            {"output_type": "error", "ename": "ValueError", "evalue": "x", "traceback": []},
            "traceback",
        ),  # fmt: skip
        (
            stream("/x/factory.py:450: UserWarning: QuickGELU mismatch", "stderr"),
            "library warning",
        ),  # fmt: skip
        (stream("ConvergenceWarning: lbfgs failed to converge", "stderr"), "library warning"),
        (stream("WARNING:root:No pretrained weights loaded", "stderr"), "library warning"),
        (
            {
                "output_type": "display_data",
                "metadata": {},
                "data": {
                    "text/html": "<p class='admonition-title'>RANDOM WEIGHTS</p>",
                    "text/plain": "<IPython.core.display.HTML object>",
                },
            },
            "offline notice",
        ),  # fmt: skip
    ],
)
def test_scan_flags_what_a_reader_must_not_see(tmp_path, output, what):
    problems = scan.findings(notebook_with([output], tmp_path / "nb.ipynb"))
    assert len(problems) == 1 and f"cell 0: {what}" in problems[0]


def test_scan_passes_real_results_and_fails_unexecuted_notebooks(tmp_path, capsys):
    clean = [
        stream("CIFAR-10: train 9000, validation 1000, test 10000\nNOT A RESULT: timing only"),
        stream("epoch 1/1  train loss 2.301 acc 10.2%  (0.1 s)", "stderr"),
    ]
    path = notebook_with(clean, tmp_path / "clean.ipynb")
    assert scan.findings(path) == []
    assert scan.main([str(path)]) == 0
    empty = notebook_with([], tmp_path / "empty.ipynb")
    assert scan.main([str(empty)]) == 1
    assert "were the notebooks executed" in capsys.readouterr().out
