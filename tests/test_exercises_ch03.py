"""Chapter 3's exercises: the solution passes, plausible wrong answers fail."""

from __future__ import annotations

import pytest
import torch
from exercise_cases import Case, assert_case
from torch import nn

from imgcls_helpers import data, models, synthetic

loss_fn = nn.CrossEntropyLoss()


def train_step(model, optimizer, images, labels):
    optimizer.zero_grad()
    loss = loss_fn(model(images), labels)
    loss.backward()
    optimizer.step()
    return loss.item()


def buggy_step(model, optimizer, images, labels):
    optimizer.zero_grad()
    loss = loss_fn(model(images), labels)
    optimizer.step()
    loss.backward()
    return loss.item()


def no_zero_grad_step(model, optimizer, images, labels):
    loss = loss_fn(model(images), labels)
    loss.backward()
    optimizer.step()
    return loss.item()


def constant_step(model, optimizer, images, labels):
    train_step(model, optimizer, images, labels)
    return 2.3


def tensor_step(model, optimizer, images, labels):
    optimizer.zero_grad()
    loss = loss_fn(model(images), labels)
    loss.backward()
    optimizer.step()
    return loss


def loss_after_step(model, optimizer, images, labels):
    train_step(model, optimizer, images, labels)
    with torch.no_grad():
        return loss_fn(model(images), labels).item()


class NoReluNet(models.TwoConvNet):
    """The solution of exercise 3.5: TwoConvNet's layers, no ReLU."""

    def forward(self, x):
        x = self.pool(self.conv1(x))
        x = self.pool(self.conv2(x))
        x = torch.flatten(x, 1)
        return self.fc3(self.fc2(self.fc1(x)))


class HalfReluNet(models.TwoConvNet):
    """A common slip: the ReLUs of the convolutions removed, those of fc1 and fc2 kept."""

    def forward(self, x):
        x = self.pool(self.conv1(x))
        x = self.pool(self.conv2(x))
        x = torch.flatten(x, 1)
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


class RenamedNet(nn.Module):
    """The right computation with other layer names: TwoConvNet's weights do not load."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 6, 5), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.MaxPool2d(2)
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(400, 120), nn.Linear(120, 84), nn.Linear(84, num_classes)
        )

    def forward(self, x):
        return self.classifier(self.features(x))


def budget_accuracy(build, train_set, val_set, num_classes):
    # The chapter's measurement for exercise 3.5, written out again here.
    torch.manual_seed(0)
    start = models.TwoConvNet(num_classes).state_dict()
    model = build(num_classes)
    model.load_state_dict(start)
    model = model.double()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    options = {"mean": data.CIFAR10_MEAN, "std": data.CIFAR10_STD, "device": "cpu"}
    loader = data.TensorLoader(*train_set, batch_size=16, shuffle=True, seed=0, **options)
    model.train()
    for _ in range(2):
        for images, labels in loader:
            train_step(model, optimizer, images.double(), labels)
    model.eval()
    val_loader = data.TensorLoader(*val_set, batch_size=len(val_set[1]), **options)
    images, labels = next(iter(val_loader))
    with torch.no_grad():
        return (model(images.double()).argmax(dim=1) == labels).double().mean().item()


@pytest.fixture(scope="module")
def context():
    shapes = synthetic.make_shapes(448, seed=0, difficulty="easy")
    images = torch.from_numpy(shapes.images).permute(0, 3, 1, 2).contiguous()
    labels = torch.from_numpy(shapes.labels)
    return {
        "budget_train": (images[:384].clone(), labels[:384].clone()),
        "budget_val": (images[384:].clone(), labels[384:].clone()),
        "num_classes": len(shapes.classes),
    }


@pytest.fixture(scope="module")
def cases(context):
    z = torch.tensor([2.0, -1.0, 0.5, -3.0, 4.0])
    t = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0])
    p = torch.sigmoid(z)
    per_example = -(t * torch.log(p) + (1 - t) * torch.log(1 - p))
    budget = (context["budget_train"], context["budget_val"], context["num_classes"])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the judge does: quicker for so small a network
    try:
        acc_with = budget_accuracy(models.TwoConvNet, *budget)
        acc_without = budget_accuracy(NoReluNet, *budget)
    finally:
        torch.set_num_threads(threads)
    tolerance = 1 / len(context["budget_val"][1])
    assert abs(acc_with - acc_without) > 2 * tolerance, "the swapped answer must be wrong"
    chance = 1 / context["num_classes"]
    assert min(abs(acc_with - chance), abs(acc_without - chance)) > 2 * tolerance
    return {
        "3.1": Case(
            (112, 56),
            {
                "no padding": (109, 55),
                "the pooling applied to 224": (112, 112),
                "rounded up": (113, 57),
                "swapped": (56, 112),
                "text": ("112", "56"),
            },
            forbidden=(
                "stem_conv = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3)\n"
                "stem_conv_size = stem_conv(torch.zeros(1, 3, 224, 224)).shape[-1]"
            ),
        ),
        "3.2": Case(
            (16 * 6 * 5 * 5 + 16,),
            {
                "no biases": (16 * 6 * 5 * 5,),
                "input channels forgotten": (16 * 5 * 5 + 16,),
                "conv1's count": (456,),
                "text": ("2416",),
            },
            forbidden="conv2_params = sum(p.numel() for p in net.conv2.parameters())",
        ),
        "3.3": Case(
            (train_step,),
            {
                "the buggy step": (buggy_step,),
                "no zero_grad": (no_zero_grad_step,),
                "returns a constant": (constant_step,),
                "returns the tensor": (tensor_step,),
                "the loss after the step": (loss_after_step,),
                "not a function": (0.5,),
            },
        ),
        "3.4": Case(
            (per_example.mean(),),
            {
                "minus sign forgotten": (-per_example.mean(),),
                "sum, not mean": (per_example.sum(),),
                "one loss per example": (per_example,),
                "no sigmoid": (-(t * torch.log(z.abs())).mean(),),
                "zero": (0.0,),
            },
            forbidden="bce_by_hand = F.binary_cross_entropy_with_logits(z, t)",
        ),
        "3.5": Case(
            (NoReluNet, acc_with, acc_without),
            {
                "the original network": (models.TwoConvNet, acc_with, acc_without),
                "only the convolutions' ReLUs removed": (HalfReluNet, acc_with, acc_without),
                "other layer names": (RenamedNet, acc_with, acc_without),
                "swapped": (NoReluNet, acc_without, acc_with),
                "chance": (NoReluNet, chance, chance),
                "percentages": (NoReluNet, 100 * acc_with, 100 * acc_without),
            },
        ),
    }


@pytest.mark.parametrize("exercise_id", ["3.1", "3.2", "3.3", "3.4", "3.5"])
def test_exercise(context, cases, exercise_id):
    assert_case(exercise_id, cases[exercise_id], context)
