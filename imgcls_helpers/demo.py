"""A small Gradio demo for a trained classifier: a photo in, the top-3 classes out.

``build`` takes any ``classify(image) -> [(class_name, probability), ...]`` callable, so the
demo does not depend on how the model was saved (chapter 11 passes ``Classifier.top_k``).

Two choices differ from a plain ``gr.Interface(fn, gr.Image(type="pil"), gr.Label())``:

* The upload is read with :func:`imgcls_helpers.folders.load_rgb`, the loader the training data
  went through, instead of Gradio's own decoding. Gradio turns RGBA into RGB by dropping the
  alpha band (a transparent background becomes its hidden colour, often black) and clips
  16-bit scans to white; the model should see the same pixels it was trained on. The event
  runs with ``preprocess=False`` so the handler gets the uploaded file, not Gradio's image.
* That also makes a broken upload a clear message. Gradio's decoder fails before the handler
  runs, and the caller then gets only "The upstream Gradio app has raised an exception but has
  not enabled verbose error reporting" (the details go to the server's log). Here a
  text file renamed ``.jpg`` or a half-copied photo comes back as a ``gr.Error`` that names
  the file and says what is wrong, and the server keeps serving.

Gradio's usage statistics and version check are switched off (``analytics_enabled=False``)
and ``launch`` never makes a public share link, so the demo runs offline and the reader's
photos stay on the reader's machine.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image

from .folders import BadImageError, load_rgb

NO_IMAGE = (
    "No image: upload a photo (JPEG, PNG, WebP, ...) or pick an example, then press Classify."
)


def _read_upload(upload: dict[str, Any] | None) -> Image.Image:
    """Gradio's file data for an upload -> 8-bit RGB image, or a ``gr.Error`` naming the file."""
    if not upload or not upload.get("path"):
        raise gr.Error(NO_IMAGE)
    name = upload.get("orig_name") or Path(upload["path"]).name
    try:
        return load_rgb(upload["path"])
    except BadImageError as err:
        raise gr.Error(
            f"{name} cannot be used as an image: {err.reason}. "
            "Upload a JPEG, PNG or WebP photo that opens in an image viewer."
        ) from err


def build(
    classify: Callable[[Image.Image], list[tuple[str, float]]],
    *,
    title: str,
    description: str = "",
    examples: list[str] | None = None,
) -> gr.Blocks:
    """The demo page: an image input, a Classify button and a top-3 label output.

    ``classify`` gets an RGB ``PIL.Image`` and returns ``(class_name, probability)`` pairs,
    best first. ``examples`` are image file paths shown under the input. The event's API name
    is ``predict``, so ``gradio_client.Client(url).predict(handle_file(path),
    api_name="/predict")`` calls it from Python.
    """

    def predict(upload: dict[str, Any] | None) -> dict[str, float]:
        # gr.Label wants {class_name: confidence}; float() also accepts numpy and torch scalars.
        return {str(name): float(p) for name, p in classify(_read_upload(upload))}

    with gr.Blocks(title=title, analytics_enabled=False) as demo:
        gr.Markdown(f"# {title}\n\n{description}".strip())
        with gr.Row():
            # type="filepath" documents what the page uploads; with preprocess=False (below)
            # the handler receives the upload's file data and decodes it with load_rgb.
            image = gr.Image(type="filepath", label="Your photo")
            label = gr.Label(num_top_classes=3, label="Top 3")
        button = gr.Button("Classify", variant="primary")
        if examples:
            gr.Examples(examples, inputs=image)
        button.click(predict, inputs=image, outputs=label, api_name="predict", preprocess=False)
    return demo


def launch(demo: gr.Blocks, *, in_colab: bool | None = None, **kwargs: Any) -> Any:
    """Start ``demo`` without a public link; in Colab, show it inside the notebook.

    Gradio's own default in Colab is ``share=True``: a public ``gradio.live`` tunnel that sends
    the photos through Gradio's servers. With ``share=False`` and ``inline=True`` Gradio uses
    Colab's port proxy instead, which stays inside the reader's Colab session. ``in_colab=None``
    checks whether ``google.colab`` is imported. Other keyword arguments go to
    ``demo.launch`` (e.g. ``server_port``, ``prevent_thread_lock``); its result is returned.
    """
    if in_colab is None:
        in_colab = "google.colab" in sys.modules
    kwargs.setdefault("share", False)
    if in_colab:
        kwargs.setdefault("inline", True)
    if "server_port" not in kwargs:
        kwargs["server_port"] = free_port(kwargs.get("server_name") or "127.0.0.1")
    return demo.launch(**kwargs)


def free_port(host: str = "127.0.0.1") -> int:
    """A port the operating system reports free now.

    Gradio's own choice is the first free port from 7860, so two demos started at the same
    moment (two notebooks, or a notebook and a test, side by side) both pick 7860 and one fails
    to start. A port drawn by the system is almost never drawn twice in a row.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]
