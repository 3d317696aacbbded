"""Helpers for the book "Image classification with PyTorch, from pixels to CLIP".

One module a concern, and each object lives in exactly one of them: ``config`` (profile,
device, seeding, banner), ``data`` (datasets with train/val/test splits, transforms,
loaders), ``augment`` (TrivialAugmentWide and RandomErasing for whole batches),
``synthetic`` (the generated shapes), ``folders`` (images from a folder), ``models`` (small
CNNs, ``evaluating``), ``resnet`` (residual blocks and networks), ``transfer`` (pretrained
backbones, freezing), ``vit`` (a small Vision Transformer, attention rollout), ``train``
(``fit``), ``recipes`` (full training recipes), ``metrics``, ``features`` (HOG), ``tour``
(measured architecture facts), ``zeroshot`` (CLIP prompts and zero-shot classification),
``contrastive`` (a tiny CLIP trained offline), ``compare`` (timing, seeds and the comparison
table), ``viz``, ``diagrams`` (block diagrams), ``checks`` (exercise auto-checks, and
``claim`` for the chapters' own text).
Chapters import the modules they need, e.g. ``from imgcls_helpers import config, data``.
"""

__version__ = "0.1.0"
