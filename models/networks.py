"""Networks for 28x28 single-channel images (MNIST, Fashion-MNIST).

Only ``nn.Conv2d`` and ``nn.Linear`` hold weights that go onto crossbars; everything else
(ReLU, pooling, batch norm, the residual additions) stays digital, so
``convert_to_analog`` swaps exactly the layers a CIM macro would hold.

Use :func:`build_network` with a name from :data:`NETWORKS`.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

__all__ = ["NETWORKS", "LeNet5", "ResNetSmall", "BasicBlock", "build_network", "network_names"]


class LeNet5(nn.Module):
    """LeNet-5 for 28x28 inputs (LeCun et al., 1998, with ReLU and max pooling).

    conv 6@5x5 (padding 2) -> pool -> conv 16@5x5 -> pool -> FC 120 -> FC 84 -> FC 10.
    61,706 parameters.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, kernel_size=5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, kernel_size=5),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(16 * 5 * 5, 120),
            nn.ReLU(inplace=True),
            nn.Linear(120, 84),
            nn.ReLU(inplace=True),
            nn.Linear(84, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and an identity (or 1x1 projection) shortcut."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), nn.BatchNorm2d(out_ch)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNetSmall(nn.Module):
    """A small ResNet for 28x28 inputs (He et al., 2016, CIFAR-style).

    3x3 stem of ``width`` channels, then three stages of ``blocks`` basic blocks with
    ``width``, ``2*width``, ``4*width`` channels at 28x28, 14x14, 7x7, global average
    pooling and one linear classifier. Default (width 16, one block per stage): ~78k
    parameters.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1, width: int = 16,
                 blocks: int = 1):
        super().__init__()
        if int(width) <= 0 or int(blocks) <= 0:
            raise ValueError(f"ResNetSmall needs width > 0 and blocks > 0, got {width}, {blocks}")
        w = int(width)
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, w, 3, padding=1, bias=False),
            nn.BatchNorm2d(w),
            nn.ReLU(inplace=True),
        )
        layers: list[nn.Module] = []
        ch = w
        for stage, out_ch in enumerate((w, 2 * w, 4 * w)):
            for b in range(int(blocks)):
                stride = 2 if (stage > 0 and b == 0) else 1
                layers.append(BasicBlock(ch, out_ch, stride))
                ch = out_ch
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(ch, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.layers(self.stem(x)))
        return self.fc(torch.flatten(x, 1))


#: name -> constructor(num_classes, in_channels)
NETWORKS: dict[str, Callable[..., nn.Module]] = {
    "lenet5": LeNet5,
    "resnet-small": ResNetSmall,
}

_ALIASES = {"lenet": "lenet5", "lenet-5": "lenet5", "resnet": "resnet-small",
            "resnet_small": "resnet-small", "resnetsmall": "resnet-small"}


def network_names() -> list[str]:
    """Names accepted by :func:`build_network`."""
    return sorted(NETWORKS)


def canonical_name(name: str) -> str:
    """The registry name for ``name`` (case-insensitive, aliases allowed)."""
    if not isinstance(name, str):
        raise ValueError(f"network name must be a string, got {name!r}")
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in NETWORKS:
        raise ValueError(
            f"unknown network {name!r}; choose one of: {', '.join(network_names())}"
        )
    return key


def build_network(name: str, num_classes: int = 10, in_channels: int = 1, **kwargs) -> nn.Module:
    """Construct a fresh (randomly initialized) network by registry name.

    Seed with ``torch.manual_seed`` before calling for a reproducible initialization.
    """
    if int(num_classes) <= 0 or int(in_channels) <= 0:
        raise ValueError(
            f"num_classes and in_channels must be positive, got {num_classes}, {in_channels}"
        )
    return NETWORKS[canonical_name(name)](num_classes=int(num_classes),
                                          in_channels=int(in_channels), **kwargs)
