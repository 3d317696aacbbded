"""A small Vision Transformer (ViT) for 32x32 images, and attention rollout to see what it uses.

A ViT cuts the image into square patches, turns each patch into a vector with one linear map
(a convolution whose kernel and stride are the patch size), puts a learned *class token* in
front, adds learned *position embeddings* (attention itself ignores order) and runs a stack
of transformer encoder blocks. The class token's final vector goes to a linear head.
:class:`SmallViT` follows torchvision's ``VisionTransformer`` (pre-norm blocks, GELU MLP,
``nn.MultiheadAttention``), only much smaller, so the two read the same way.

:func:`attention_maps` records the attention weights of every ``nn.MultiheadAttention`` in
any model (this one or torchvision's ``vit_b_16``) with hooks, and :func:`attention_rollout`
combines them across layers (Abnar & Zuidema, 2020): the raw attention of one layer says
little, because after the first layer a token is already a mix of all the patches.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .models import evaluating


class ViTEmbedding(nn.Module):
    """Image (B, C, H, W) -> tokens (B, 1 + N, dim): patch embedding, class token, positions.

    ``patchify`` alone gives the N patch vectors; ``forward`` adds the class token in front
    and a learned position embedding to every token.
    """

    def __init__(self, image_size: int = 32, patch_size: int = 4, in_channels: int = 3, dim=64):
        super().__init__()
        if image_size % patch_size:
            raise ValueError(f"patch size {patch_size} does not divide image size {image_size}")
        self.patch_size = patch_size
        self.grid = image_size // patch_size  # patches per side
        self.proj = nn.Conv2d(in_channels, dim, kernel_size=patch_size, stride=patch_size)
        self.class_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embedding = nn.Parameter(torch.randn(1, 1 + self.grid**2, dim) * 0.02)

    def patchify(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, N, dim), patches in reading order (row by row)."""
        return self.proj(images).flatten(2).transpose(1, 2)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        patches = self.patchify(images)
        cls = self.class_token.expand(len(patches), -1, -1)
        return torch.cat([cls, patches], dim=1) + self.pos_embedding


class EncoderBlock(nn.Module):
    """Pre-norm transformer block: x + attention(norm(x)), then x + MLP(norm(x))."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int = 2, dropout: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attention = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, mlp_ratio * dim),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(mlp_ratio * dim, dim),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm1(x)
        x = x + self.attention(y, y, y, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class SmallViT(nn.Module):
    """A ViT sized for 32x32 images: 4x4 patches give 64 tokens plus the class token.

    Children, from the input to the head: ``embed``, ``blocks``, ``norm``, ``head``.
    """

    def __init__(
        self,
        num_classes: int,
        *,
        image_size: int = 32,
        patch_size: int = 4,
        in_channels: int = 3,
        dim: int = 64,
        depth: int = 4,
        heads: int = 4,
        mlp_ratio: int = 2,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.embed = ViTEmbedding(image_size, patch_size, in_channels, dim)
        self.blocks = nn.Sequential(
            *(EncoderBlock(dim, heads, mlp_ratio, dropout) for _ in range(depth))
        )
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        tokens = self.norm(self.blocks(self.embed(images)))
        return self.head(tokens[:, 0])  # the class token's vector


def _ask_for_weights(_module, args, kwargs):
    """Forward pre-hook: make ``nn.MultiheadAttention`` return per-head attention weights."""
    kwargs["need_weights"] = True
    kwargs["average_attn_weights"] = False
    return args, kwargs


@torch.no_grad()
def attention_maps(model: nn.Module, images: torch.Tensor) -> tuple[torch.Tensor, list]:
    """Run ``model`` (in eval mode) and record every ``nn.MultiheadAttention``'s weights.

    Returns ``(output, maps)``; ``maps`` has one ``(B, heads, T, T)`` tensor per attention
    layer, in the order they ran; row ``i`` of a map is how token ``i`` spreads its attention
    over all ``T`` tokens (it sums to 1). Works for :class:`SmallViT` and torchvision's
    vision transformers, whose blocks ask for no weights: the hooks ask for them instead.
    """
    maps, handles = [], []
    for module in model.modules():
        if isinstance(module, nn.MultiheadAttention):
            handles.append(module.register_forward_pre_hook(_ask_for_weights, with_kwargs=True))
            handles.append(module.register_forward_hook(lambda m, i, out: maps.append(out[1])))
    try:
        with evaluating(model):
            output = model(images)
    finally:
        for handle in handles:
            handle.remove()
    return output, maps


def attention_rollout(maps: list[torch.Tensor], residual: bool = True) -> torch.Tensor:
    """Attention rollout (Abnar & Zuidema, 2020): how much each token draws on each input.

    Per layer: average the heads; if ``residual``, add the identity (the skip connection
    carries each token on unchanged) and renormalise the rows to sum to 1; then multiply the
    layers' matrices from the first to the last. Returns ``(B, T, T)`` with rows summing to 1.
    """
    rollout = None
    for layer in maps:
        a = layer.float().mean(dim=1)  # (B, T, T), heads averaged
        if residual:
            a = a + torch.eye(a.shape[-1], device=a.device)
            a = a / a.sum(dim=-1, keepdim=True)
        rollout = a if rollout is None else a @ rollout
    return rollout


def class_token_map(rollout: torch.Tensor) -> torch.Tensor:
    """Row 0 of a rollout (what the class token draws on), without the class token itself,
    as a square grid of patches (B, g, g), scaled so each map's maximum is 1."""
    weights = rollout[:, 0, 1:]
    side = math.isqrt(weights.shape[-1])
    grid = weights.reshape(-1, side, side)
    return grid / grid.amax(dim=(1, 2), keepdim=True)
