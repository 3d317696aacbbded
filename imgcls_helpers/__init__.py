"""Helpers for the book "Image classification with PyTorch, from pixels to CLIP".

One module a concern: ``config`` (profile, device, seeding, banner), ``data`` (datasets,
transforms, loaders), ``models`` (with ``resnet`` blocks and ``transfer`` backbones),
``train`` (``fit``), ``recipes`` (full training recipes), ``metrics``, ``features`` (HOG),
``tour`` (measured architecture facts), ``vit`` (a small Vision Transformer, attention
rollout), ``zeroshot`` (CLIP prompts and zero-shot classification), ``contrastive`` (a tiny
CLIP trained offline), ``compare`` (timing and the comparison table), ``viz``, ``checks``
(exercise auto-checks).
Chapters import the modules they need, e.g. ``from imgcls_helpers import config, data``.
"""

__version__ = "0.1.0"
