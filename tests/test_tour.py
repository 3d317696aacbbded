"""Tests for imgcls_helpers.tour: FLOP counting checked by hand, and facts read offline."""

from __future__ import annotations

import pytest
import torchvision
from torch import nn

from imgcls_helpers.models import count_parameters
from imgcls_helpers.tour import TOUR, architecture_facts, measure


def test_measure_counts_a_conv_and_a_linear_layer_by_hand():
    def build():
        return nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 16 * 16, 10)
        )

    measured = measure(build, (3, 16, 16))
    conv_macs = 8 * 16 * 16 * (3 * 3 * 3)  # one multiply-add per output value per weight
    linear_macs = 8 * 16 * 16 * 10
    assert measured.macs == conv_macs + linear_macs
    assert measured.flops == 2 * measured.macs
    assert measured.params == count_parameters(build())


def test_measure_does_not_allocate_real_weights():
    # VGG-16 has 138M parameters; on the meta device nothing is allocated or initialised.
    measured = measure(lambda: torchvision.models.vgg16(), (3, 224, 224))
    assert measured.params == count_parameters(torchvision.models.vgg16())


@pytest.mark.parametrize(("name", "label", "year"), TOUR, ids=[t[0] for t in TOUR])
def test_measured_flops_are_twice_torchvisions_published_multiply_adds(name, label, year):
    facts = architecture_facts(name, label, year)
    assert facts.name == label and facts.year == year
    assert facts.gflops / 2 == pytest.approx(facts.published_gflops, rel=0.03)
    assert 0 < facts.top5 <= 100 and 0 < facts.top1 < facts.top5
    assert facts.input_size >= 224


def test_googlenet_is_counted_without_its_training_only_auxiliary_heads():
    facts = architecture_facts("googlenet")
    with_aux = count_parameters(torchvision.models.googlenet(aux_logits=True, init_weights=False))
    assert facts.params < with_aux
    assert facts.params == count_parameters(
        torchvision.models.googlenet(aux_logits=False, init_weights=False)
    )


def test_efficientnet_b4_is_measured_at_its_own_evaluation_resolution():
    b4 = architecture_facts("efficientnet_b4")
    weights = torchvision.models.EfficientNet_B4_Weights.DEFAULT
    assert b4.input_size == weights.transforms().crop_size[0] > 224
