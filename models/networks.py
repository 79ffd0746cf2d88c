"""Networks for 28x28 single-channel images (MNIST, Fashion-MNIST).

Weight matrices (``nn.Conv2d``, ``nn.Linear``, the projections of ``nn.MultiheadAttention``,
the gate matrices of ``nn.LSTM``) go onto crossbars; everything else (ReLU, pooling, batch
and layer norms, residual additions, attention products, the LSTM's elementwise gate math)
stays digital, so ``convert_to_analog`` swaps exactly the layers a CIM macro would hold.

The networks are written the way a user writes them, with plain torch modules:
``VisionTransformer`` (patches -> ``nn.TransformerEncoder``), ``RowLSTM`` (an ``nn.LSTM``
reading the image row by row) and ``DepthwiseSeparableCNN`` (depthwise ``groups=channels``
convolutions followed by 1x1 pointwise ones, MobileNet style).

Use :func:`build_network` with a name from :data:`NETWORKS`.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

__all__ = [
    "NETWORKS",
    "LeNet5",
    "ResNetSmall",
    "BasicBlock",
    "VisionTransformer",
    "RowLSTM",
    "DepthwiseSeparableCNN",
    "build_network",
    "network_names",
]


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

    def __init__(self, num_classes: int = 10, in_channels: int = 1, width: int = 16, blocks: int = 1):
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


class VisionTransformer(nn.Module):
    """A small Vision Transformer (Dosovitskiy et al., 2021) for 28x28 images.

    The image is cut into ``patch`` x ``patch`` patches (16 tokens of 49 pixels at the
    default 7), each embedded by one ``nn.Linear``, plus a learned position embedding;
    ``depth`` pre-norm ``nn.TransformerEncoderLayer`` (``batch_first=True``) in an
    ``nn.TransformerEncoder``; a final layer norm, the mean over tokens and a linear head.
    Default (dim 64, 4 heads, MLP 128, depth 2): ~71k parameters.
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        image_size: int = 28,
        patch: int = 7,
        dim: int = 64,
        depth: int = 2,
        heads: int = 4,
        mlp_dim: int = 128,
        dropout: float = 0.1,
    ):
        super().__init__()
        if image_size % patch:
            raise ValueError(f"VisionTransformer: image_size {image_size} is not a multiple of patch {patch}")
        self.patch = int(patch)
        tokens = (image_size // patch) ** 2
        self.embed = nn.Linear(in_channels * patch * patch, dim)
        self.pos = nn.Parameter(torch.randn(1, tokens, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(dim, heads, mlp_dim, dropout, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def patches(self, x: torch.Tensor) -> torch.Tensor:
        """[B, C, H, W] -> [B, tokens, C*patch*patch] (row-major order of patches)."""
        p = self.patch
        b, c = x.shape[:2]
        x = x.unfold(2, p, p).unfold(3, p, p)  # [B, C, H/p, W/p, p, p]
        return x.permute(0, 2, 3, 1, 4, 5).reshape(b, -1, c * p * p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.encoder(self.embed(self.patches(x)) + self.pos)
        return self.head(self.norm(z).mean(dim=1))


class RowLSTM(nn.Module):
    """An ``nn.LSTM`` reading a 28x28 image one row (28 pixels) per time step; a linear
    head on the last hidden state. Default (hidden 128, one layer): ~82k parameters."""

    def __init__(
        self, num_classes: int = 10, in_channels: int = 1, image_size: int = 28, hidden: int = 128, layers: int = 1
    ):
        super().__init__()
        self.lstm = nn.LSTM(in_channels * image_size, hidden, num_layers=layers, batch_first=True)
        self.fc = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        rows = x.permute(0, 2, 1, 3).reshape(b, h, c * w)  # [B, T=H, C*W]
        _, (h_n, _) = self.lstm(rows)
        return self.fc(h_n[-1])


def _ds_block(in_ch: int, out_ch: int, stride: int) -> nn.Sequential:
    """Depthwise 3x3 (one filter per channel, ``groups=in_ch``) + pointwise 1x1, each with
    batch norm and ReLU (MobileNet v1)."""
    return nn.Sequential(
        nn.Conv2d(in_ch, in_ch, 3, stride=stride, padding=1, groups=in_ch, bias=False),
        nn.BatchNorm2d(in_ch),
        nn.ReLU(inplace=True),
        nn.Conv2d(in_ch, out_ch, 1, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    )


class DepthwiseSeparableCNN(nn.Module):
    """A MobileNet-style CNN for 28x28 images (Howard et al., 2017).

    3x3 stem of ``width`` channels, then depthwise-separable blocks to ``2*width`` (stride 2,
    14x14), ``4*width`` (stride 2, 7x7) and ``4*width`` (stride 1), global average pooling
    and a linear classifier. Default (width 32): ~30k parameters.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1, width: int = 32):
        super().__init__()
        w = int(width)
        if w <= 0:
            raise ValueError(f"DepthwiseSeparableCNN needs width > 0, got {width}")
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True)
        )
        self.blocks = nn.Sequential(_ds_block(w, 2 * w, 2), _ds_block(2 * w, 4 * w, 2), _ds_block(4 * w, 4 * w, 1))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4 * w, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.blocks(self.stem(x)))
        return self.fc(torch.flatten(x, 1))


#: name -> constructor(num_classes, in_channels)
NETWORKS: dict[str, Callable[..., nn.Module]] = {
    "lenet5": LeNet5,
    "resnet-small": ResNetSmall,
    "vit": VisionTransformer,
    "lstm": RowLSTM,
    "ds-cnn": DepthwiseSeparableCNN,
}

_ALIASES = {
    "lenet": "lenet5",
    "lenet-5": "lenet5",
    "resnet": "resnet-small",
    "resnet_small": "resnet-small",
    "resnetsmall": "resnet-small",
    "vision-transformer": "vit",
    "row-lstm": "lstm",
    "ds_cnn": "ds-cnn",
    "dscnn": "ds-cnn",
    "mobilenet": "ds-cnn",
}


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
        raise ValueError(f"unknown network {name!r}; choose one of: {', '.join(network_names())}")
    return key


def build_network(name: str, num_classes: int = 10, in_channels: int = 1, **kwargs) -> nn.Module:
    """Construct a fresh (randomly initialized) network by registry name.

    Seed with ``torch.manual_seed`` before calling for a reproducible initialization.
    """
    if int(num_classes) <= 0 or int(in_channels) <= 0:
        raise ValueError(f"num_classes and in_channels must be positive, got {num_classes}, {in_channels}")
    return NETWORKS[canonical_name(name)](num_classes=int(num_classes), in_channels=int(in_channels), **kwargs)
