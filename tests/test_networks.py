"""Networks: LeNet-5 and the small ResNet for 28x28 inputs, and the registry."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rramsim.models import data
from rramsim.models.networks import NETWORKS, LeNet5, ResNetSmall, build_network, canonical_name, network_names


pytestmark = pytest.mark.usefixtures("one_thread")


def test_lenet5_architecture():
    net = LeNet5()
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    fcs = [m for m in net.modules() if isinstance(m, nn.Linear)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.padding) for c in convs] == [
        (1, 6, (5, 5), (2, 2)),
        (6, 16, (5, 5), (0, 0)),
    ]
    assert [(f.in_features, f.out_features) for f in fcs] == [(400, 120), (120, 84), (84, 10)]
    assert sum(p.numel() for p in net.parameters()) == 61706
    assert sum(isinstance(m, nn.MaxPool2d) for m in net.modules()) == 2
    assert net(torch.zeros(3, 1, 28, 28)).shape == (3, 10)


def test_resnet_small_shapes_and_residual_stages():
    net = ResNetSmall()
    assert net(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    feats = {}
    x = net.stem(torch.randn(1, 1, 28, 28))
    for i, block in enumerate(net.layers):
        x = block(x)
        feats[i] = tuple(x.shape[1:])
    assert list(feats.values()) == [(16, 28, 28), (32, 14, 14), (64, 7, 7)]
    assert isinstance(net.layers[1].shortcut, nn.Sequential)  # projection where shape changes
    wide = ResNetSmall(num_classes=7, width=8, blocks=2)
    assert len(wide.layers) == 6 and wide(torch.randn(1, 1, 28, 28)).shape == (1, 7)
    n = sum(p.numel() for p in net.parameters())
    assert 50_000 < n < 120_000
    with pytest.raises(ValueError, match="width > 0"):
        ResNetSmall(width=0)


def test_registry_and_bad_names():
    assert network_names() == ["ds-cnn", "lenet5", "lstm", "resnet-small", "vit"]
    assert canonical_name("LeNet-5") == "lenet5" and canonical_name("resnet") == "resnet-small"
    assert isinstance(build_network("lenet"), LeNet5)
    assert isinstance(build_network("resnet-small", num_classes=3), ResNetSmall)
    with pytest.raises(
        ValueError, match="unknown network .vgg16.; choose one of: ds-cnn, lenet5, lstm, resnet-small, vit"
    ):
        build_network("vgg16")
    with pytest.raises(ValueError, match="num_classes"):
        build_network("lenet5", num_classes=0)
    with pytest.raises(ValueError, match="must be a string"):
        build_network(5)
    torch.manual_seed(1)
    a = build_network("lenet5")
    torch.manual_seed(1)
    b = build_network("lenet5")
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_each_network_learns_a_real_mnist_batch(name):
    """A few Adam steps on 64 real digits must cut the loss: the graph trains end to end."""
    data.ensure_dataset("mnist")
    x, y = data.get_dataset("mnist", "train", subset=64, seed=0).tensors
    torch.manual_seed(0)
    net = build_network(name)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    first = None
    for _ in range(25):
        loss = F.cross_entropy(net(x), y)
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        loss.backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())
        opt.step()
    assert float(loss.detach()) < 0.5 * first
