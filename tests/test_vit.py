"""Tests for imgcls_helpers.vit: the small ViT's shapes, its patch embedding, the recorded
attention weights (against torch's own attention) and attention rollout."""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torchvision

from imgcls_helpers import train, vit
from imgcls_helpers.data import TensorLoader


def test_embedding_and_model_shapes():
    model = vit.SmallViT(5, image_size=16, patch_size=4, dim=24, depth=2, heads=3)
    images = torch.randn(2, 3, 16, 16)
    assert model.embed.patchify(images).shape == (2, 16, 24)
    assert model.embed(images).shape == (2, 17, 24)  # class token + 4x4 patches
    assert model(images).shape == (2, 5)


def test_patch_embedding_is_unfold_then_one_linear_map():
    torch.manual_seed(0)
    embed = vit.ViTEmbedding(image_size=8, patch_size=4, in_channels=3, dim=6)
    images = torch.randn(2, 3, 8, 8)
    patches = F.unfold(images, kernel_size=4, stride=4).transpose(1, 2)  # (2, 4, 48)
    weight = embed.proj.weight.reshape(6, -1)  # (6, 3*4*4), same channel-major order
    expected = patches @ weight.T + embed.proj.bias
    torch.testing.assert_close(embed.patchify(images), expected)


def test_recorded_attention_is_what_the_layer_computes():
    torch.manual_seed(0)
    model = vit.SmallViT(3, image_size=8, patch_size=4, dim=8, depth=1, heads=2).eval()
    images = torch.randn(2, 3, 8, 8)
    _, maps = vit.attention_maps(model, images)
    assert len(maps) == 1 and maps[0].shape == (2, 2, 5, 5)
    # Recompute head 0's weights by hand from the block's projections.
    block = model.blocks[0]
    x = block.norm1(model.embed(images))
    w_q, w_k, _ = block.attention.in_proj_weight.chunk(3)
    b_q, b_k, _ = block.attention.in_proj_bias.chunk(3)
    q, k = (x @ w_q.T + b_q)[..., :4], (x @ w_k.T + b_k)[..., :4]
    expected = torch.softmax(q @ k.transpose(1, 2) / 4**0.5, dim=-1)
    torch.testing.assert_close(maps[0][:, 0], expected, atol=1e-5, rtol=1e-4)
    assert model.training is False  # it was in eval mode before, and is left as it was


def test_attention_maps_of_torchvision_vit_and_the_model_is_left_training():
    model = torchvision.models.VisionTransformer(
        image_size=32, patch_size=16, num_layers=2, num_heads=2, hidden_dim=8, mlp_dim=16
    )
    model.train()
    output, maps = vit.attention_maps(model, torch.randn(1, 3, 32, 32))
    assert output.shape == (1, 1000)
    assert [m.shape for m in maps] == [(1, 2, 5, 5)] * 2
    assert model.training


def test_rollout_rows_sum_to_one_and_match_a_hand_computation():
    torch.manual_seed(0)
    maps = [torch.softmax(torch.randn(2, 3, 4, 4), dim=-1) for _ in range(3)]
    rollout = vit.attention_rollout(maps)
    torch.testing.assert_close(rollout.sum(-1), torch.ones(2, 4))
    eye = torch.eye(4)
    layers = [(m.mean(1) + eye) / (m.mean(1) + eye).sum(-1, keepdim=True) for m in maps]
    torch.testing.assert_close(rollout, layers[2] @ layers[1] @ layers[0])
    without = vit.attention_rollout(maps, residual=False)
    torch.testing.assert_close(without, maps[2].mean(1) @ maps[1].mean(1) @ maps[0].mean(1))


def test_class_token_map_is_a_square_grid_scaled_to_one():
    rollout = torch.softmax(torch.randn(3, 17, 17), dim=-1)
    grid = vit.class_token_map(rollout)
    assert grid.shape == (3, 4, 4)
    torch.testing.assert_close(grid.amax(dim=(1, 2)), torch.ones(3))
    torch.testing.assert_close(grid[1].flatten(), rollout[1, 0, 1:] / rollout[1, 0, 1:].max())


def test_a_tiny_vit_learns_an_easy_task_above_chance():
    # Class = which half of the image is bright: a task only position information can solve.
    torch.manual_seed(0)
    n = 256
    labels = torch.randint(0, 2, (n,))
    images = torch.rand(n, 3, 8, 8) * 0.2
    images[labels == 0, :, :, :4] += 0.8
    images[labels == 1, :, :, 4:] += 0.8
    loader = TensorLoader(
        images, labels, batch_size=32, shuffle=True, mean=(0.5,) * 3, std=(0.5,) * 3,
        device="cpu",
    )  # fmt: skip
    model = vit.SmallViT(2, image_size=8, patch_size=4, dim=16, depth=1, heads=2)
    train.fit(model, loader, epochs=5, lr=3e-3, progress=False, verbose=False)
    _, accuracy = train.evaluate(model, loader, device="cpu")
    assert accuracy > 0.9
