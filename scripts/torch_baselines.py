"""PyTorch baselines for scripts/benchmark.py: LeNet5 and VGG-16, as the authors ran them.

Both follow torchvision's / the PyTorch CIFAR-10 tutorial's layer layout, so
their state dicts convert with the same rules as the real weights.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class TorchLeNet5(nn.Module):
    """conv 3->6 (5x5) -> pool -> conv 6->16 -> pool -> fc 120 -> fc 84 -> fc 10, ReLUs."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(400, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = nn.functional.max_pool2d(torch.relu(self.conv2(x)), 2)
        x = torch.relu(self.fc1(x.flatten(1)))
        return self.fc3(torch.relu(self.fc2(x)))


def lenet_from_flax(params: dict) -> TorchLeNet5:
    """A :class:`TorchLeNet5` holding one network's poz-jax LeNet5 parameters."""
    model = TorchLeNet5()
    with torch.no_grad():
        for name in ("conv1", "conv2", "fc1", "fc2", "fc3"):
            k = np.asarray(params[name]["kernel"])
            w = k.transpose(3, 2, 0, 1) if k.ndim == 4 else k.T  # HWIO -> OIHW; (in, out) -> T
            getattr(model, name).weight.copy_(torch.from_numpy(np.ascontiguousarray(w)))
            getattr(model, name).bias.copy_(torch.from_numpy(np.array(params[name]["bias"])))
    return model


def vgg16(seed: int = 0) -> nn.Module:
    """torchvision's vgg16 layout (same state-dict keys), He-scaled random weights, eval mode."""
    layers: list[nn.Module] = []
    cin = 3
    for v in (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512):
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(cin, v, 3, padding=1), nn.ReLU(inplace=True)]
            cin = v
    layers.append(nn.MaxPool2d(2, 2))
    model = nn.Module()
    model.features = nn.Sequential(*layers)
    model.avgpool = nn.AdaptiveAvgPool2d((7, 7))
    model.classifier = nn.Sequential(
        nn.Linear(25088, 4096),
        nn.ReLU(True),
        nn.Dropout(),
        nn.Linear(4096, 4096),
        nn.ReLU(True),
        nn.Dropout(),
        nn.Linear(4096, 1000),
    )
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                m.weight.normal_(0.0, float(np.sqrt(2.0 / m.weight[0].numel())), generator=gen)
                m.bias.uniform_(-0.1, 0.1, generator=gen)
    return model.eval()


def vgg16_fc7(model: nn.Module, images_nchw: torch.Tensor) -> torch.Tensor:
    """fc7 after its ReLU, as the authors' hook ended up capturing."""
    with torch.no_grad():
        x = model.avgpool(model.features(images_nchw)).flatten(1)
        return model.classifier[:5](x)
