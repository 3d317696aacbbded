"""Shared test setup: the smoke profile, two CPU threads, no network at all, longest first.

Any attempt to open a connection to a non-loopback address fails the test that made it,
so a helper that would download something is caught here rather than in CI.
"""

from __future__ import annotations

import os
import socket

import pytest
import torch

# huggingface_hub reads HF_HUB_OFFLINE once, when it is first imported, and a test module may
# import it (test_demo.py does, through gradio) while pytest collects, before any fixture runs.
# Offline from the start, or every later open_clip load in that process retries a download
# that cannot succeed: two zeroshot tests took 48 s each instead of 1 to 4 s.
os.environ["HF_HUB_OFFLINE"] = "1"

# Seconds of the longest items, measured on 2 busy cores (two pytest workers, one thread each)
# in December 2026: every chapter in smoke (make test runs them in the same session as the
# unit tests) and the unit tests that take more than about 10 s (--durations). An item not
# named here counts as short.
CHAPTER_SECONDS = {"01": 17, "02": 46, "03": 36, "04": 60, "05": 149, "06": 56, "07": 27,
                   "08": 36, "09": 80, "10": 106, "11": 90, "12": 40}  # fmt: skip
TEST_SECONDS = {
    "test_grade.py::test_grading_a_class_of_crafted_submissions": 162,
    "test_otter.py::test_otter_autograder_scores_a_correct_and_a_wrong_submission": 46,
    "test_train.py::test_small_cnn_learns_shapes_and_beats_a_linear_model": 38,
    "test_rehearsal.py::test_torchvision_reads_the_dataset_stand_ins_through_the_books_loader": 27,
    "test_resnet.py::test_a_deep_residual_stack_trains_faster_than_the_same_plain_stack": 18,
    "test_distributed.py::test_a_killed_two_process_run_resumes_from_its_checkpoint": 14,
    "test_distributed.py::test_two_processes_train_like_one_with_twice_the_batch": 12,
    "test_rehearsal.py::test_without_the_md5_bypass_the_stand_ins_are_rejected": 10,
}


def expected_seconds(item: pytest.Item) -> float:
    """How long ``item`` is expected to take: a chapter notebook, a slow test, or 0."""
    if item.path.suffix == ".ipynb":
        return CHAPTER_SECONDS.get(item.path.name[:2], 90)
    name = getattr(item, "originalname", item.name)  # every parametrization of a slow test
    return TEST_SECONDS.get(f"{item.path.name}::{name}", 0)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Longest first, the rest in their usual order: pytest-xdist hands the items out in this
    # order, and a long one started last would leave the other worker idle until it ends.
    items.sort(key=expected_seconds, reverse=True)


@pytest.fixture(autouse=True)
def _offline_smoke(monkeypatch):
    monkeypatch.setenv("IMGCLS_PROFILE", "smoke")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    real_connect = socket.socket.connect

    def guarded_connect(sock, address):
        host = address[0] if isinstance(address, tuple) else ""
        loopback = host in ("localhost", "::1") or str(host).startswith("127.")
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not loopback:
            raise AssertionError(f"test tried to reach the network: {address!r}")
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    yield


@pytest.fixture(autouse=True, scope="session")
def _threads():
    # Under pytest-xdist each worker gets one thread: two workers with two threads each on a
    # two-core machine make PyTorch's threads wait for each other and run several times slower.
    torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else 2)
