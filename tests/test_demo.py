"""Tests for imgcls_helpers.demo: a real Gradio server on 127.0.0.1, driven by gradio_client.

The classifier is a fake whose answer is the palette colour nearest to the image's mean colour,
so the expected top-3 of every test image is computed here from the picture it should be.
"""

from __future__ import annotations

import io
import os
import socket
import sys
import types
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import skimage.data
from PIL import Image

pytest.importorskip("gradio", reason="gradio is not installed: the demo tests need it")
pytest.importorskip("gradio_client", reason="gradio_client is not installed")

import gradio.utils  # noqa: E402
import huggingface_hub.constants  # noqa: E402
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

from imgcls_helpers.demo import build, launch  # noqa: E402

PALETTE = {
    "black": (0, 0, 0),
    "white": (255, 255, 255),
    "grey": (128, 128, 128),
    "red": (255, 0, 0),
    "green": (0, 255, 0),
    "blue": (0, 0, 255),
}


def colour_classifier(image: Image.Image) -> list[tuple[str, float]]:
    """Top-3 palette colours by closeness to the mean colour; refuses anything but RGB."""
    if image.mode != "RGB":
        raise TypeError(f"classify got a {image.mode} image, expected RGB")
    mean = np.asarray(image, dtype=np.float64).reshape(-1, 3).mean(axis=0)
    scale = np.linalg.norm([255.0, 255.0, 255.0])
    scores = {name: 1 - np.linalg.norm(mean - rgb) / scale for name, rgb in PALETTE.items()}
    return sorted(scores.items(), key=lambda kv: kv[1], reverse=True)[:3]


def connect(demo) -> Client:
    """A client for ``demo`` that sends no usage statistics of its own.

    gradio_client 2.x sends them unless GRADIO_ANALYTICS_ENABLED is "False" when it is built
    (its ``analytics_enabled=False`` argument alone does not switch them off).
    """
    with mock.patch.dict(os.environ, {"GRADIO_ANALYTICS_ENABLED": "False"}):
        return Client(demo.local_url, verbose=False, analytics_enabled=False)


def as_label(top3: list[tuple[str, float]]) -> dict:
    """What gradio_client returns for a gr.Label output."""
    confidences = [{"label": name, "confidence": pytest.approx(float(p))} for name, p in top3]
    return {"label": top3[0][0], "confidences": confidences}


@pytest.fixture(scope="module")
def client():
    demo = build(colour_classifier, title="Colour demo")
    # No server_port: launch() asks the system for a free one (Gradio's own choice, the first
    # free port from 7860, clashes with a demo started beside it; server_port=0 is not
    # supported: the server starts but its URL says port 0).
    launch(demo, server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
    client = connect(demo)
    yield client
    client.close()
    demo.close()


def photo(tmp_path: Path) -> tuple[Path, Image.Image]:
    picture = Image.fromarray(skimage.data.chelsea())
    picture.save(tmp_path / "chelsea.png")
    return tmp_path / "chelsea.png", picture


def grey_8bit(tmp_path: Path) -> tuple[Path, Image.Image]:
    Image.new("L", (32, 24), 200).save(tmp_path / "grey.png")
    return tmp_path / "grey.png", Image.new("RGB", (32, 24), (200, 200, 200))


def grey_16bit_scan(tmp_path: Path) -> tuple[Path, Image.Image]:
    # 60 * 257 is 60 on an 8-bit scale; clipping it (Pillow's convert) would give white.
    Image.fromarray(np.full((24, 32), 60 * 257, dtype=np.uint16)).save(tmp_path / "scan.png")
    return tmp_path / "scan.png", Image.new("RGB", (32, 24), (60, 60, 60))


def transparent_background(tmp_path: Path) -> tuple[Path, Image.Image]:
    # Left half opaque red; right half fully transparent, hiding black pixels.
    rgba = np.zeros((24, 32, 4), dtype=np.uint8)
    rgba[:, :16] = (255, 0, 0, 255)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "sticker.png")
    looks_like = Image.new("RGB", (32, 24), (255, 255, 255))
    looks_like.paste((255, 0, 0), (0, 0, 16, 24))
    return tmp_path / "sticker.png", looks_like


@pytest.mark.parametrize("make", [photo, grey_8bit, grey_16bit_scan, transparent_background])
def test_upload_gets_the_classifiers_top3_of_the_picture_as_it_looks(client, tmp_path, make):
    path, looks_like = make(tmp_path)
    result = client.predict(handle_file(str(path)), api_name="/predict")
    assert result == as_label(colour_classifier(looks_like))


def test_no_image_is_a_clear_error(client):
    with pytest.raises(AppError, match="No image: upload a photo"):
        client.predict(None, api_name="/predict")


def text_file(tmp_path: Path) -> Path:
    (tmp_path / "notes.txt").write_text("shopping list: milk, eggs")
    return tmp_path / "notes.txt"


def truncated_jpeg(tmp_path: Path) -> Path:
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(noise).save(buf, "JPEG")
    (tmp_path / "half.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    return tmp_path / "half.jpg"


@pytest.mark.parametrize(
    ("make", "reason"),
    [(text_file, "cannot identify image file"), (truncated_jpeg, "image file is truncated")],
)
def test_bad_upload_is_an_error_naming_the_file_and_the_server_keeps_serving(
    client, tmp_path, make, reason
):
    path = make(tmp_path)
    with pytest.raises(AppError) as info:
        client.predict(handle_file(str(path)), api_name="/predict")
    assert f"{path.name} cannot be used as an image: {reason}" in str(info.value)
    good, looks_like = grey_8bit(tmp_path)
    result = client.predict(handle_file(str(good)), api_name="/predict")
    assert result == as_label(colour_classifier(looks_like))


@pytest.fixture
def name_lookups(monkeypatch) -> list:
    """Every host name resolved or address connected to, other than this machine's.

    gradio_client's own look-up (huggingface_hub asks huggingface.co which AI agent runs it) is
    switched off as conftest's HF_HUB_OFFLINE=1 intends; huggingface_hub read that variable
    when it was imported, before conftest set it.
    """
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    seen: list = []
    real_getaddrinfo, real_connect = socket.getaddrinfo, socket.socket.connect

    def is_remote(host) -> bool:
        return host not in (None, "", "localhost", "::1") and not str(host).startswith("127.")

    def getaddrinfo(host, *args, **kwargs):
        if is_remote(host):
            seen.append(host)
        return real_getaddrinfo(host, *args, **kwargs)

    def connect(sock, address):
        if isinstance(address, tuple) and is_remote(address[0]):
            seen.append(address)
        return real_connect(sock, address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)
    return seen


def test_local_launch_and_call_never_reach_the_network(tmp_path, name_lookups):
    demo = build(colour_classifier, title="Offline", examples=[str(photo(tmp_path)[0])])
    try:
        launch(demo, server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
        client = connect(demo)
        client.predict(handle_file(str(grey_8bit(tmp_path)[0])), api_name="/predict")
        client.close()
        assert demo.share_url is None
    finally:
        demo.close()
    assert name_lookups == []


def test_in_colab_it_is_shown_through_colabs_proxy_and_not_shared(monkeypatch, name_lookups):
    # What Colab looks like to launch() and to Gradio: google.colab is imported, and Gradio's
    # own check says Colab (where Gradio's default would be a public share link).
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setattr(gradio.utils, "colab_check", lambda: True)
    demo = build(colour_classifier, title="Colab")
    try:
        launch(demo, server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
        assert demo.share_url is None
        assert "google.colab.kernel.proxyPort" in demo.artifact.data
    finally:
        demo.close()
    assert name_lookups == []
