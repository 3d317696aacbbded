"""Chapter 1's exercises: the solution passes, plausible wrong answers fail."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from exercise_cases import Case, assert_case
from PIL import Image
from torch import nn
from torchvision.transforms import v2

from imgcls_helpers import data


@pytest.fixture(scope="module")
def context():
    cat = data.sample_image("chelsea")
    rgb = np.asarray(cat)
    torch.manual_seed(0)
    model = nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(48, 10)).eval()
    return {
        "pil_image": cat,
        "opencv_bgr": np.ascontiguousarray(rgb[..., ::-1]),
        "model": model,
        "preprocess": data.eval_transforms(224),
    }


def _pipeline(*, drop=None, resize=256):
    steps = [
        v2.ToImage(),
        v2.Resize(resize, antialias=True),
        v2.CenterCrop(224),
        v2.ColorJitter(brightness=0.2, contrast=0.2),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(data.IMAGENET_MEAN, data.IMAGENET_STD),
    ]
    return v2.Compose([s for i, s in enumerate(steps) if i != drop])


def _probs(context, image):
    with torch.no_grad():
        return context["model"](context["preprocess"](image).unsqueeze(0)).softmax(1)[0]


def cases(context):
    cat, bgr = context["pil_image"], context["opencv_bgr"]
    red = (200 / 255 - 0.485) / 0.229
    small = data.eval_transforms(160)(cat)
    p_rgb = _probs(context, cat)
    p_bgr = _probs(context, Image.fromarray(bgr))
    top = int(p_rgb.argmax())
    return {
        "1.1": Case(
            (red,),
            {"forgot to divide by 255": ((200 - 0.485) / 0.229,), "zero": (0.0,), "text": ("0.3",)},
            forbidden="normalised_red = v2.Normalize(data.IMAGENET_MEAN, data.IMAGENET_STD)(x)",
        ),
        "1.2": Case(
            (small,),
            {
                "no normalisation": (
                    data.eval_transforms(160, mean=(0, 0, 0), std=(1, 1, 1))(cat),
                ),
                "resized to 160, nothing cropped": (data.eval_transforms(160, resize=160)(cat),),
                "random tensor of the right shape": (torch.randn(3, 160, 160),),
            },
            forbidden="small = data.eval_transforms(160)(pil_image)",
        ),
        "1.3": Case(
            (bgr[..., ::-1],),
            {"unchanged": (bgr,), "rows reversed": (bgr[::-1],), "zeros": (np.zeros_like(bgr),)},
            forbidden="rgb_by_indexing = cv2.cvtColor(opencv_bgr, cv2.COLOR_BGR2RGB)",
        ),
        "1.4": Case(
            (3, _pipeline(drop=3)),
            {
                "counted from 1": (4, _pipeline(drop=3)),
                "the buggy pipeline": (3, _pipeline()),
                "eval_tf under another name, with the wrong step dropped": (3, _pipeline(drop=2)),
                "a constant": (3, lambda image: torch.zeros(3, 224, 224)),
            },
        ),
        "1.5": Case(
            (p_rgb[top].item(), p_bgr[top].item()),
            {
                "the BGR input's own top class": (p_rgb[top].item(), p_bgr.max().item())
                if int(p_bgr.argmax()) != top
                else (p_rgb[top].item(), p_rgb[top].item() + 0.1),
                "swapped": (p_bgr[top].item(), p_rgb[top].item()),
                "uniform": (0.1, 0.1),
            },
        ),
    }


@pytest.mark.parametrize("exercise_id", ["1.1", "1.2", "1.3", "1.4", "1.5"])
def test_exercise(context, exercise_id):
    assert_case(exercise_id, cases(context)[exercise_id], context)
