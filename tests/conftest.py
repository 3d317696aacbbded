"""Shared test setup: the smoke profile, two CPU threads, and no network at all.

Any attempt to open a connection to a non-loopback address fails the test that made it,
so a helper that would download something is caught here rather than in CI.
"""

from __future__ import annotations

import os
import socket

import pytest
import torch


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
