"""Test models quantized by an independent sub-bit quantizer (not the frontend's).

``quantize_(model, tau_3x3, tau_1x1)`` rewrites every conv but the stem in
place: each unit (a 3x3 kernel, or 8 input channels of a 1x1 kernel) becomes
``alpha[o] * P[idx]`` where ``P`` is a random subset of ``2**tau`` of all sign
patterns and ``idx`` picks the pattern with the largest inner product.

``make_dyadic_(model)`` makes every float in the model a dyadic rational
(alpha, batch-norm statistics, the stem and the classifier), so a network on
integer inputs computes exactly, whatever the summation order: ONNX Runtime
and TVM then agree bit for bit even through ``sign``.
"""

import numpy as np
import torch
from torch import nn

UNIT_3X3 = 9
UNIT_1X1 = 8
BN_VAR = 4.0  # sqrt(4 + 0) = 2: folding batch norm stays exact
DYADIC_STEP = 1 / 8


class Sign(nn.Module):
    def forward(self, x):
        return torch.sign(x)


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride, binary):
        super().__init__()
        self.act1 = Sign() if binary else nn.Identity()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.act2 = Sign() if binary else nn.Identity()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Identity()
        if stride != 1 or cin != cout:
            act = Sign() if binary else nn.Identity()
            self.shortcut = nn.Sequential(
                act, nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(self.act1(x))))
        y = self.bn2(self.conv2(self.act2(y)))
        return torch.relu(y + self.shortcut(x))


def resnet18_cifar(width=64, classes=10, binary=False, in_channels=3):
    """CIFAR ResNet-18: 3x3 stem, four stages of two basic blocks, 1x1 downsamples."""
    layers = [nn.Conv2d(in_channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
    cin = width
    for stage in range(4):
        cout = width * 2**stage
        for block in range(2):
            stride = 2 if stage > 0 and block == 0 else 1
            layers.append(BasicBlock(cin, cout, stride, binary))
            cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, classes)]
    return nn.Sequential(*layers)


def _all_patterns(unit):
    codes = np.arange(1 << unit)
    return (2 * ((codes[:, None] >> np.arange(unit)) & 1) - 1).astype(np.float32)


def quantize_weight(weight, tau, rng):
    """Project an OIHW weight onto ``alpha * P[idx]`` with a random ``2**tau`` subset ``P``."""
    out, cin, kh, _ = weight.shape
    unit = UNIT_3X3 if kh == 3 else UNIT_1X1
    units = (
        weight.reshape(out, cin, unit)
        if unit == UNIT_3X3
        else weight.reshape(out, cin // UNIT_1X1, unit)
    )
    subset = _all_patterns(unit)[rng.choice(1 << unit, 1 << tau, replace=False)]
    idx = np.argmax(units @ subset.T, axis=-1)
    alpha = np.abs(weight).reshape(out, -1).mean(axis=1)
    return (alpha[:, None, None] * subset[idx]).reshape(weight.shape).astype(np.float32), subset


def quantize_(model, tau_3x3=5, tau_1x1=5, seed=0):
    """Quantize every conv except the first one (the stem), in place."""
    rng = np.random.default_rng(seed)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    for conv in convs[1:]:
        tau = tau_3x3 if conv.kernel_size == (3, 3) else tau_1x1
        weight, _ = quantize_weight(conv.weight.detach().numpy(), tau, rng)
        conv.weight.data = torch.from_numpy(weight)
    return model


def randomize_bn_(model, seed=0, negative_every=3):
    """Batch norm with non-trivial statistics and some negative gammas."""
    gen = torch.Generator().manual_seed(seed)
    for bn in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):
        n = bn.num_features
        bn.weight.data = torch.rand(n, generator=gen) + 0.5
        bn.weight.data[::negative_every] *= -1
        bn.bias.data = torch.randn(n, generator=gen) * 0.1
        bn.running_mean.data = torch.randn(n, generator=gen) * 0.1
        bn.running_var.data = torch.rand(n, generator=gen) + 0.5
    return model


def _dyadic(tensor, step=DYADIC_STEP):
    return torch.round(tensor / step) * step


def make_dyadic_(model, seed=0):
    """Round every parameter to a dyadic grid (see the module docstring)."""
    gen = torch.Generator().manual_seed(seed)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    convs[0].weight.data = _dyadic(convs[0].weight.data * 4)
    for conv in convs[1:]:
        alpha = conv.weight.data.abs().flatten(1).mean(1)
        power = torch.exp2(torch.round(torch.log2(alpha)))[:, None, None, None]
        conv.weight.data = torch.sign(conv.weight.data) * power
    for bn in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):
        n = bn.num_features
        bn.eps = 0.0
        bn.running_var.data = torch.full((n,), BN_VAR)
        bn.running_mean.data = _dyadic(torch.randn(n, generator=gen)) + DYADIC_STEP / 2
        bn.weight.data = torch.sign(bn.weight.data) * 2.0
        bn.bias.data = _dyadic(torch.randn(n, generator=gen))
    for linear in (m for m in model.modules() if isinstance(m, nn.Linear)):
        linear.weight.data = _dyadic(linear.weight.data * 8)
        linear.bias.data = _dyadic(linear.bias.data)
    return model


SMALL_INPUT_SIZE = 16  # the input side of small_resnet18: a few seconds to compile


def small_resnet18(seed=0, width=16):
    """A narrow CIFAR ResNet-18 with sub-bit convs and random batch norms, in eval mode."""
    torch.manual_seed(seed)
    model = resnet18_cifar(width=width)
    quantize_(model, seed=seed)
    randomize_bn_(model, seed=seed)
    return model.eval()
