"""Chapter 8, the Vision Transformer: the judges of its exercises."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from .. import vit
from ..labs import Exercise, as_array, close, is_integer

# ------------------------------------------------------------------ 8.1 count the patches


def _patch_count(context, num_patches, seq_len):
    if not (is_integer(num_patches) and is_integer(seq_len)):
        return "give two whole numbers: the number of patches and the sequence length"
    # fork_rng: building the embedding must not move the student's random state
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        embed = vit.ViTEmbedding(224, 14, dim=8)
        want = embed(torch.zeros(1, 3, 224, 224)).shape[1]  # the class token included
    per_side = math.isqrt(want - 1)
    if num_patches == per_side:
        return "that is the number of patches along one side; the grid is square"
    if num_patches != want - 1:
        return "patches per side = 224 / 14, and the patches form a square grid"
    if seq_len == num_patches:
        return "the sequence also holds the class token"
    if seq_len != want:
        return "the sequence is the patches plus one class token in front"
    return None


# --------------------------------------------------------- 8.2 attention weights by hand

_Q = ((1.0, 0.0), (0.0, 1.0))
_K = ((1.0, 1.0), (0.0, 2.0))


def _attention_weights(context, weights):
    if not isinstance(weights, torch.Tensor) or tuple(weights.shape) != (2, 2):
        return "give a (2, 2) tensor: row i holds the weights of query i over the two keys"
    q, k = torch.tensor(_Q), torch.tensor(_K)
    scores = q @ k.T / math.sqrt(q.shape[-1])
    if close(weights, torch.softmax(scores, dim=-1)):
        return None
    if close(weights, torch.softmax(q @ k.T, dim=-1)):
        return "divide the scores by sqrt(d) = sqrt(2) before the exponential"
    if close(weights, torch.softmax(scores, dim=0)):
        return "normalise each row (one query over all keys), not each column"
    if close(weights, scores) or close(weights, scores.exp()):
        return "take the exponential of the scores, then divide each row by its sum"
    return "scores = q @ k.T / sqrt(2); exponentiate them; divide each row by its sum"


# --------------------------------------------------------------- 8.3 attention rollout


def _rollout_variants(maps: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """The usual wrong rollouts, for a specific hint."""
    averaged = [m.float().mean(dim=1) for m in maps]
    eye = torch.eye(averaged[0].shape[-1])

    def product(layers, later_on_left=True):
        result = layers[0]
        for a in layers[1:]:
            result = a @ result if later_on_left else result @ a
        return result

    residual = [(a + eye) / (a + eye).sum(-1, keepdim=True) for a in averaged]
    return {
        "add the identity to each layer's matrix (the residual connection) before you "
        "multiply": product(averaged),
        "after adding the identity, divide each row by its sum so that it sums to 1 again": (
            product([a + eye for a in averaged])
        ),
        "multiply in the other order: a later layer's matrix goes on the left of the "
        "product so far": product(residual, later_on_left=False),
        "multiply the matrices of all the layers, not only the last one": residual[-1],
    }


def _stochastic_stacks() -> list[list[torch.Tensor]]:
    """Random attention maps (rows summing to 1) of 1, 2 and 5 layers: under them every
    usual mistake gives a different answer."""
    generator = torch.Generator().manual_seed(8)
    stacks = []
    for depth in (1, 2, 5):
        layers = [torch.rand(3, 2, 6, 6, generator=generator) for _ in range(depth)]
        stacks.append([a / a.sum(-1, keepdim=True) for a in layers])
    return stacks


def _seeded_model_maps() -> list[torch.Tensor]:
    """The attention maps of a small seeded ViT (4 layers, 2 heads) on two seeded images."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = vit.SmallViT(10, patch_size=8, dim=32, depth=4, heads=2)
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    return vit.attention_maps(model, images)[1]


def _rollout(context, my_rollout):
    if not callable(my_rollout):
        return "my_rollout must be a function: def my_rollout(attentions): ..."
    if getattr(my_rollout, "func", my_rollout) is vit.attention_rollout:
        return "that is the helper itself (no call to it, but still the helper): write your own"
    cases = [context["maps"], _seeded_model_maps(), *_stochastic_stacks()]
    for maps in cases:
        maps = [m.detach() for m in maps]
        want = vit.attention_rollout(maps).cpu()
        with torch.no_grad():
            got = my_rollout([m.clone() for m in maps])  # clones: in-place edits stay local
        if not isinstance(got, torch.Tensor) or got.shape != want.shape:
            return "return one (B, T, T) tensor: the heads averaged, the layers multiplied"
        got = got.detach().float().cpu()
        if close(got, want, atol=1e-5):
            continue
        for hint, wrong in _rollout_variants([m.cpu() for m in maps]).items():
            if close(got, wrong, atol=1e-5):
                return hint
        return (
            "per layer: average the heads, add the identity, divide each row by its sum; "
            "then multiply the layers' matrices, each later one on the left"
        )
    return None


# ------------------------------------------- 8.4 position embeddings and shuffled patches

PROBE_OPTIONS = {"patch_size": 4, "dim": 48, "depth": 3, "heads": 4, "mlp_ratio": 2}
"""The probe ViT of exercise 8.4, built after ``torch.manual_seed(0)`` with 10 classes."""


def _probe_vit() -> vit.SmallViT:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return vit.SmallViT(10, **PROBE_OPTIONS).eval()


def _probe_inputs() -> tuple[torch.Tensor, torch.Tensor]:
    """The exercise's images and patch order, drawn from their own seeded generators."""
    images = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    order = torch.randperm(64, generator=torch.Generator().manual_seed(1))
    return images, order


def _shuffle_reference(images: torch.Tensor, order: torch.Tensor, patch_size: int = 4):
    """Patch k (in reading order) of the result is patch ``order[k]`` of the input."""
    columns = F.unfold(images, patch_size, stride=patch_size)
    return F.fold(columns[:, :, order], images.shape[-2:], patch_size, stride=patch_size)


def _run(model: Callable, images: torch.Tensor) -> torch.Tensor:
    """The model's output on CPU, the images sent to wherever its parameters are."""
    device = next(iter(model.parameters())).device if hasattr(model, "parameters") else "cpu"
    with torch.no_grad():
        return model(images.to(device)).detach().float().cpu()


def _gap(model: Callable, images: torch.Tensor, order: torch.Tensor) -> float:
    shuffled = _shuffle_reference(images, order)
    return (_run(model, images) - _run(model, shuffled)).abs().max().item()


def _shuffle_hint(shuffle_patches) -> str | None:
    if not callable(shuffle_patches):
        return "shuffle_patches must be a function: def shuffle_patches(images, order, ...)"
    generator = torch.Generator().manual_seed(2)
    images = torch.rand(2, 3, 32, 32, generator=generator)
    for patch_size in (4, 8):
        order = torch.randperm((32 // patch_size) ** 2, generator=generator)
        try:
            with torch.no_grad():
                if patch_size == 4:
                    got = shuffle_patches(images.clone(), order)
                else:
                    got = shuffle_patches(images.clone(), order, patch_size=patch_size)
        except Exception as error:  # a hint that names the call, not only the error
            return (
                f"shuffle_patches(images, order, patch_size={patch_size}) raised "
                f"{type(error).__name__}: cut patches of patch_size pixels, for any batch"
            )
        if not isinstance(got, torch.Tensor) or got.shape != images.shape:
            return "shuffle_patches must return images of the same shape as its input"
        if close(got, _shuffle_reference(images, order, patch_size), atol=1e-6):
            continue
        if close(got, _shuffle_reference(images, torch.argsort(order), patch_size), atol=1e-6):
            return (
                "that is the inverse shuffle: patch k of the result must be patch order[k] "
                "of the input"
            )
        if patch_size == 8:
            return "shuffle_patches must cut patches of patch_size pixels, not always 4"
        return (
            "cut each image into 4 x 4 patches in reading order (row by row), put patch "
            "order[k] in place k, and put the patches back into a 32 x 32 image"
        )
    return None


def _number(value) -> float | None:
    try:
        array = as_array(value)
    except TypeError:
        return None
    return float(array) if array.size == 1 else None


def _position(context, shuffle_patches, no_pos_vit, gap_with_pos, gap_without_pos):
    hint = _shuffle_hint(shuffle_patches)
    if hint:
        return hint
    if not callable(no_pos_vit):
        return "no_pos_vit must be a model: a copy of probe_vit"
    reference = _probe_vit()
    without = copy.deepcopy(reference)
    with torch.no_grad():
        without.embed.pos_embedding.zero_()
    images, order = _probe_inputs()
    test_images = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    got = _run(no_pos_vit, test_images)
    if got.shape != (3, 10):
        return "no_pos_vit must give 10 class scores per image, like probe_vit"
    if close(got, _run(reference, test_images), atol=1e-5):
        return "no_pos_vit still adds the position embeddings: set its table to zeros"
    if not close(got, _run(without, test_images), atol=1e-5):
        return (
            "no_pos_vit must be probe_vit (built right after torch.manual_seed(0)) with only "
            "its position table set to zeros"
        )
    gaps = _number(gap_with_pos), _number(gap_without_pos)
    if None in gaps:
        return "give each gap as one number (the largest absolute difference of the scores)"
    with_pos, without_pos = gaps
    want = _gap(reference, images, order)
    if abs(with_pos) < 1e-4:
        return (
            "gap_with_pos is (almost) zero: measure it with probe_vit, which keeps its "
            "position table (if you zeroed probe_vit's own table, copy it first with "
            "copy.deepcopy)"
        )
    if abs(with_pos - want) > 0.01 * want + 1e-5:
        return (
            "gap_with_pos: the largest |probe_vit(probe_images) - probe_vit(shuffled)| over "
            "all scores, with probe_images shuffled by patch_order"
        )
    if not abs(without_pos) <= 1e-4:
        return "gap_without_pos: the same measurement with no_pos_vit"
    return None


EXERCISES = [
    Exercise(
        "8.1",
        "count the patches",
        1,
        ("num_patches_ex1", "seq_len_ex1"),
        _patch_count,
        "both numbers equal the length of the helper's ViTEmbedding(224, 14) output, minus "
        "the class token and with it; no embedding or unfold may be called",
        forbidden=("ViTEmbedding", "SmallViT", "patchify", "unfold", "vit_h_14"),
    ),
    Exercise(
        "8.2",
        "attention weights of a 2 x 2 example",
        1,
        ("weights_ex2",),
        _attention_weights,
        "every value equals softmax(q kᵀ / √2) over each row, computed by the judge from its "
        "own q and k; no softmax or attention function may be called",
        forbidden=("softmax", "Softmax", "log_softmax", "scaled_dot_product_attention"),
    ),
    Exercise(
        "8.3",
        "attention rollout, written yourself",
        2,
        ("my_rollout",),
        _rollout,
        "the function gives vit.attention_rollout's values on the chapter's attention maps, "
        "on a seeded 4-layer ViT's maps, and on random row-stochastic maps of 1, 2 and 5 "
        "layers; the helper may not be called",
        context=("maps",),
        forbidden=("attention_rollout",),
    ),
    Exercise(
        "8.4",
        "does the ViT know where a patch was?",
        3,
        ("shuffle_patches", "no_pos_vit", "gap_with_pos", "gap_without_pos"),
        _position,
        "shuffle_patches equals an unfold/fold reference on random images (patch sizes 4 "
        "and 8); no_pos_vit gives the seeded probe ViT's scores with a zero position table; "
        "the judge re-runs both gaps: the one with positions within 1%, the one without "
        "at rounding level",
    ),
]
