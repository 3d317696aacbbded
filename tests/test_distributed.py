"""fit() under torchrun: two CPU processes (gloo) train like one, and a killed run resumes.

DistributedDataParallel averages the gradients of the processes, and each process takes
every second item of the same order, so 2 processes x 16 images per step see exactly the
batches of 1 process x 32: the weights must agree up to float rounding.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from imgcls_helpers import data, distributed

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent(
    """
    import os, sys, torch
    from imgcls_helpers import data, train
    torch.set_num_threads(1)
    out, batch, epochs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    folder = sys.argv[4] if len(sys.argv) > 4 else None
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(4, 3, 4, 4, generator=g)
    labels = torch.arange(1024) % 4
    images = centres[labels] + 1.5 * torch.randn(1024, 3, 4, 4, generator=g)
    options = dict(mean=(0.0,) * 3, std=(1.0,) * 3, device="cpu")
    train_loader = data.TensorLoader(images[:512], labels[:512], batch_size=batch, shuffle=True,
                                     split="train", **options)
    val_loader = data.TensorLoader(images[512:], labels[512:], batch_size=100, split="val",
                                   **options)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 4))
    history = train.fit(model, train_loader, val_loader=val_loader, epochs=epochs,
                        optimizer="sgd", lr=0.05, scheduler="cosine", progress=False,
                        checkpoint_dir=folder, resume=folder is not None)
    if int(os.environ.get("RANK", "0")) == 0:
        torch.save({"model": model.state_dict(), "history": vars(history)}, out)
    """
)


def launch(tmp_path: Path, processes: int, *args: object) -> subprocess.Popen:
    """The script under torchrun with ``processes`` CPU processes (or plain python for 1)."""
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("IMGCLS_FAST_DEV_RUN", None)
    runner = [sys.executable, "-m", "torch.distributed.run", "--standalone",
              f"--nproc_per_node={processes}"] if processes > 1 else [sys.executable]  # fmt: skip
    return subprocess.Popen(
        [*runner, str(script), *map(str, args)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def kill_all(process: subprocess.Popen) -> None:
    """SIGKILL torchrun and its workers at once, as a lost machine would. The workers run in
    sessions of their own, so each is killed by its process id."""
    workers = subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True, text=True)
    for pid in [process.pid, *map(int, workers.stdout.split())]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    process.wait()


def finished(process: subprocess.Popen) -> str:
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 0, output
    return output


def test_two_processes_train_like_one_with_twice_the_batch(tmp_path):
    one, two = tmp_path / "one.pt", tmp_path / "two.pt"
    finished(launch(tmp_path, 1, one, 32, 3))
    output = finished(launch(tmp_path, 2, two, 16, 3))
    single, double = torch.load(one, weights_only=False), torch.load(two, weights_only=False)
    for name, value in single["model"].items():
        torch.testing.assert_close(double["model"][name], value, atol=1e-5, rtol=1e-4)
    # metrics are summed over both processes' shards, so they are those of the whole sets
    for key in ("train_loss", "train_acc", "val_loss", "val_acc"):
        assert double["history"][key] == pytest.approx(single["history"][key], abs=1e-4), key
    assert 0.3 < single["history"]["val_acc"][-1] < 1.0  # a task that is learnt, not trivially
    # only rank 0 prints: one line per epoch, not two
    assert output.count("epoch 1/3") == 1, output


def test_a_killed_two_process_run_resumes_from_its_checkpoint(tmp_path):
    folder = tmp_path / "checkpoints"
    process = launch(tmp_path, 2, tmp_path / "killed.pt", 16, 1000, folder)
    last = folder / "last.pt"
    try:
        deadline = time.time() + 300  # a liveness bound, not a speed test
        while time.time() < deadline and process.poll() is None:
            if last.exists() and torch.load(last, weights_only=False)["epoch"] >= 2:
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"no checkpoint of epoch 2 within 300 s: {process.communicate()[0]}")
    finally:
        kill_all(process)
    saved = torch.load(last, weights_only=False)
    resumed_out = tmp_path / "resumed.pt"
    output = finished(launch(tmp_path, 2, resumed_out, 16, saved["epoch"] + 1, folder))
    assert f"continuing at {saved['epoch'] + 1}" in output
    history = torch.load(resumed_out, weights_only=False)["history"]
    assert history["epoch"] == list(range(1, saved["epoch"] + 2))
    assert history["train_loss"][: saved["epoch"]] == saved["history"]["train_loss"]


def test_tensor_loader_shards_partition_each_epoch():
    images = torch.arange(10, dtype=torch.float32).view(10, 1, 1, 1).expand(10, 3, 1, 1)
    labels = torch.arange(10)
    loader = data.TensorLoader(images, labels, batch_size=2, shuffle=True, seed=3,
                               mean=(0.0,) * 3, std=(1.0,) * 3, device="cpu")  # fmt: skip
    whole = torch.cat([y for _, y in loader])
    parts = [loader.shard(rank, 3, pad=False) for rank in range(3)]
    seen = [torch.cat([y for _, y in part]) for part in parts]
    assert sorted(torch.cat(seen).tolist()) == list(range(10))  # each image once
    assert [len(s) for s in seen] == [4, 3, 3] and [len(p) for p in parts] == [2, 2, 2]
    for rank, s in enumerate(seen):
        assert s.tolist() == whole[rank::3].tolist()  # every third of the same order
    padded = [torch.cat([y for _, y in loader.shard(r, 3, pad=True)]) for r in range(3)]
    assert [len(p) for p in padded] == [4, 4, 4]  # equal, so no process waits in backward
    assert set(torch.cat(padded).tolist()) == set(range(10))


def test_a_dataloader_is_resharded_and_anything_else_is_refused():
    dataset = torch.utils.data.TensorDataset(torch.zeros(10, 1), torch.arange(10))
    loader = torch.utils.data.DataLoader(dataset, batch_size=3, shuffle=True)
    run = distributed.Run(rank=1, world=2, device=torch.device("cpu"))
    train_part = distributed.shard(loader, run, pad=True)
    assert isinstance(train_part.sampler, torch.utils.data.DistributedSampler)
    assert train_part.sampler.shuffle and train_part.batch_size == 3
    val_part = distributed.shard(loader, run, pad=False)
    assert sorted(torch.cat([y for _, y in val_part]).tolist()) == [1, 3, 5, 7, 9]
    assert distributed.shard(loader, distributed.Run(0, 1, torch.device("cpu")), pad=True) is loader
    with pytest.raises(TypeError, match="shards a TensorLoader or a DataLoader"):
        distributed.shard([(torch.zeros(1), 0)], run, pad=True)
