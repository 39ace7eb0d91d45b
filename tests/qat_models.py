"""Quantizer-in-forward test models, written the way QAT code outside this project writes them.

Independent of ``tvm_snn.train``: every sub-bit conv keeps latent float weights
and computes its binary weight in ``forward()``:

1. the latent weight is cut into units (a 3x3 kernel, or 8 input channels of a
   1x1 kernel) and each unit takes the nearest of the layer's ``2**tau`` sign
   patterns (the squared distance from ``torch.linalg.vector_norm`` and a
   matmul, ``argmin``, then a gather ``subset[idx]``, or ``one_hot(idx) @ subset``);
2. the patterns are scaled by the per-output-channel mean absolute weight;
3. the straight-through estimator: ``w_b.detach() - w_c.detach() + w_c`` with
   ``w_c = clamp(w, -1, 1)``.

Binary activations use the same STE: ``sign(x).detach() - g(x).detach() + g(x)``
with ``g`` a clamp, or Bi-Real's piecewise polynomial. The architectures are
the ImageNet ResNet-18/34 (7x7/2 stem and max pooling, float stem and
classifier), a Bi-Real ResNet-18, and ResNet-50 bottlenecks.
"""

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

UNIT_3X3 = 9
UNIT_1X1 = 8
CLAMP_BOUND = 1.0
STEM_CHANNELS = 64
STEM_KERNEL = 7
STEM_STRIDE = 2
POOL_KERNEL = 3
POOL_STRIDE = 2
BOTTLENECK_EXPANSION = 4
IMAGENET_CLASSES = 1000
RESNET18_BLOCKS = (2, 2, 2, 2)
RESNET34_BLOCKS = (3, 4, 6, 3)
LATENT_SCALE = 0.1  # latent weights well inside the clamp bound
BN_GAMMA_RANGE = (0.5, 1.5)
BN_NEGATIVE_EVERY = 3  # some negative gammas, as trained batch norms have
BN_SHIFT_SCALE = 0.1
ACT_BIAS_SCALE = 0.1
PRELU_INIT = 0.25

# Activation spellings: "float" (none), STE residues of the three binarizers,
# and Bi-Real's approximation.
ACTIVATIONS = ("float", "sign", "where", "compare", "bireal")


def _all_patterns(unit):
    codes = np.arange(1 << unit)
    return (1 - 2 * ((codes[:, None] >> np.arange(unit)) & 1)).astype(np.float32)


def pattern_subset(unit, tau, seed):
    """``2**tau`` of the ``2**unit`` sign patterns, chosen at random."""
    rng = np.random.default_rng(seed)
    return torch.from_numpy(_all_patterns(unit)[rng.choice(1 << unit, 1 << tau, replace=False)])


class QConv2d(nn.Module):
    """A sub-bit conv whose weight is quantized in ``forward()``.

    Parameters
    ----------
    cin, cout, kernel, stride : int
        As in ``nn.Conv2d`` (padding ``kernel // 2``, no bias).
    tau : int
        Bits per unit: the layer's subset has ``2**tau`` patterns (a buffer).
    seed : int
        Seeds the latent weight and the subset.
    gather : str
        ``"index"`` (``subset[idx]``) or ``"one_hot"`` (``one_hot(idx) @ subset``).
    """

    def __init__(self, cin, cout, kernel, stride, tau, seed, gather="index"):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.weight = nn.Parameter(torch.randn(cout, cin, kernel, kernel, generator=gen) * LATENT_SCALE)
        self.unit = UNIT_3X3 if kernel == 3 else UNIT_1X1
        self.register_buffer("subset", pattern_subset(self.unit, tau, seed))
        self.stride = stride
        self.padding = kernel // 2
        self.gather = gather

    def binary_weight(self):
        """``alpha[o] * P[idx]``: the nearest pattern per unit, the mean-abs scale."""
        w = self.weight
        cout = w.shape[0]
        units = w.reshape(cout, -1, self.unit) if self.unit == UNIT_1X1 else w.reshape(cout, -1, UNIT_3X3)
        # |u - p|^2 = |u|^2 - 2 u.p + |p|^2, without an [O, units, 2**tau, unit] difference.
        norms = torch.linalg.vector_norm(units, dim=-1, keepdim=True) ** 2
        distance = norms - 2 * units @ self.subset.T + torch.linalg.vector_norm(self.subset, dim=-1) ** 2
        idx = distance.argmin(dim=-1)
        if self.gather == "one_hot":
            chosen = F.one_hot(idx, self.subset.shape[0]).to(w.dtype) @ self.subset
        else:
            chosen = self.subset[idx]
        alpha = w.abs().mean(dim=(1, 2, 3), keepdim=True)
        return chosen.reshape(w.shape) * alpha

    def forward(self, x):
        clamped = torch.clamp(self.weight, -CLAMP_BOUND, CLAMP_BOUND)
        w = self.binary_weight().detach() - clamped.detach() + clamped
        return F.conv2d(x, w, stride=self.stride, padding=self.padding)


def _bireal_approx(x):
    """Bi-Real's piecewise quadratic approximation of sign (its backward)."""
    below = (x < -CLAMP_BOUND).to(x.dtype)
    negative = (x < 0).to(x.dtype)
    above = (x < CLAMP_BOUND).to(x.dtype)
    out = -1 * below + (x * x + 2 * x) * (1 - below)
    out = out * negative + (-x * x + 2 * x) * (1 - negative)
    return out * above + 1 * (1 - above)


class BinaryAct(nn.Module):
    """A binary activation in one of the :data:`ACTIVATIONS` spellings, with an STE residue.

    ``bias=True`` adds a learnable per-channel bias before the binarizer (Bi-Real, ReActNet).
    """

    def __init__(self, kind, channels=None, bias=False, seed=0):
        super().__init__()
        self.kind = kind
        self.bias = None
        if bias:
            gen = torch.Generator().manual_seed(seed)
            self.bias = nn.Parameter(torch.randn(1, channels, 1, 1, generator=gen) * ACT_BIAS_SCALE)

    def forward(self, x):
        if self.bias is not None:
            x = x + self.bias
        if self.kind == "bireal":
            approx = _bireal_approx(x)
            return torch.sign(x).detach() - approx.detach() + approx
        if self.kind == "where":
            hard = torch.where(x >= 0, 1.0, -1.0)
        elif self.kind == "compare":
            hard = 2 * (x >= 0).to(x.dtype) - 1
        else:
            hard = torch.sign(x)
        soft = torch.clamp(x, -CLAMP_BOUND, CLAMP_BOUND)
        return hard.detach() - soft.detach() + soft


def activation(kind, channels=None, bias=False, seed=0):
    """The activation module of a spelling: ``nn.Identity`` for ``"float"``."""
    return nn.Identity() if kind == "float" else BinaryAct(kind, channels, bias, seed)


class Seeds:
    """Hands out one seed per conv, so every layer has its own subset."""

    def __init__(self, first=0):
        self.next = first

    def __call__(self):
        self.next += 1
        return self.next


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride, act, tau, seeds):
        super().__init__()
        self.act1 = activation(act)
        self.conv1 = QConv2d(cin, cout, 3, stride, tau, seeds())
        self.bn1 = nn.BatchNorm2d(cout)
        self.act2 = activation(act)
        self.conv2 = QConv2d(cout, cout, 3, 1, tau, seeds())
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(activation(act), QConv2d(cin, cout, 1, stride, tau, seeds()), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(self.act1(x))))
        y = self.bn2(self.conv2(self.act2(y)))
        return torch.relu(y + self.shortcut(x))


def _stem():
    return [
        nn.Conv2d(3, STEM_CHANNELS, STEM_KERNEL, STEM_STRIDE, STEM_KERNEL // 2, bias=False),
        nn.BatchNorm2d(STEM_CHANNELS),
        nn.ReLU(),
        nn.MaxPool2d(POOL_KERNEL, POOL_STRIDE, POOL_KERNEL // 2),
    ]


def _head(channels, classes):
    return [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, classes)]


def resnet_imagenet(blocks=RESNET18_BLOCKS, act="float", tau=5, classes=IMAGENET_CLASSES, stages=4):
    """ImageNet ResNet-18/34: 7x7/2 stem, max pooling, basic blocks with sub-bit 3x3 and 1x1 convs."""
    seeds = Seeds()
    layers = _stem()
    cin = STEM_CHANNELS
    for stage, count in enumerate(blocks[:stages]):
        cout = STEM_CHANNELS * 2**stage
        for block in range(count):
            layers.append(BasicBlock(cin, cout, 2 if stage > 0 and block == 0 else 1, act, tau, seeds))
            cin = cout
    return randomize_bn_(nn.Sequential(*layers, *_head(cin, classes)))


class BiRealUnit(nn.Module):
    """One Bi-Real unit: ``prelu(bn(conv(sign(x + b)))) + shortcut(x)``.

    A downsampling unit's shortcut is AvgPool 2x2 then a float 1x1 conv and batch norm.
    """

    def __init__(self, cin, cout, stride, act, tau, seeds):
        super().__init__()
        self.act = activation(act, cin, bias=True, seed=seeds())
        self.conv = QConv2d(cin, cout, 3, stride, tau, seeds())
        self.bn = nn.BatchNorm2d(cout)
        self.prelu = nn.PReLU(cout, init=PRELU_INIT)
        self.shortcut = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.AvgPool2d(stride), nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x):
        return self.prelu(self.bn(self.conv(self.act(x)))) + self.shortcut(x)


def bireal_resnet18(act="bireal", tau=5, classes=IMAGENET_CLASSES, stages=4):
    """Bi-Real ResNet-18: 16 binary 3x3 units (two per basic block), float downsampling shortcuts."""
    seeds = Seeds()
    layers = _stem()
    cin = STEM_CHANNELS
    for stage, count in enumerate(RESNET18_BLOCKS[:stages]):
        cout = STEM_CHANNELS * 2**stage
        for unit in range(2 * count):
            layers.append(BiRealUnit(cin, cout, 2 if stage > 0 and unit == 0 else 1, act, tau, seeds))
            cin = cout
    return randomize_bn_(nn.Sequential(*layers, *_head(cin, classes)))


class Bottleneck(nn.Module):
    """ResNet-50's bottleneck: sub-bit 1x1, 3x3 (strided) and 1x1, a sub-bit 1x1 downsample."""

    def __init__(self, cin, width, stride, act, tau, seeds, gather):
        super().__init__()
        cout = width * BOTTLENECK_EXPANSION
        self.acts = nn.ModuleList(activation(act) for _ in range(3))
        self.convs = nn.ModuleList(
            [
                QConv2d(cin, width, 1, 1, tau, seeds(), gather),
                QConv2d(width, width, 3, stride, tau, seeds(), gather),
                QConv2d(width, cout, 1, 1, tau, seeds(), gather),
            ]
        )
        self.bns = nn.ModuleList(nn.BatchNorm2d(c) for c in (width, width, cout))
        self.shortcut = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(activation(act), QConv2d(cin, cout, 1, stride, tau, seeds(), gather), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = x
        for index, (act, conv, bn) in enumerate(zip(self.acts, self.convs, self.bns, strict=True)):
            y = bn(conv(act(y)))
            if index < len(self.convs) - 1:
                y = torch.relu(y)
        return torch.relu(y + self.shortcut(x))


def resnet50_blocks(widths=(64, 128), act="float", tau=5, classes=IMAGENET_CLASSES, gather="one_hot"):
    """A ResNet-50 cut short: the stem, then one bottleneck per width (the later ones strided)."""
    seeds = Seeds()
    layers = _stem()
    cin = STEM_CHANNELS
    for index, width in enumerate(widths):
        layers.append(Bottleneck(cin, width, 1 if index == 0 else 2, act, tau, seeds, gather))
        cin = width * BOTTLENECK_EXPANSION
    return randomize_bn_(nn.Sequential(*layers, *_head(cin, classes)))


def randomize_bn_(model, seed=0):
    """Batch norms with non-trivial statistics and some negative gammas."""
    gen = torch.Generator().manual_seed(seed)
    for bn in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):
        n = bn.num_features
        low, high = BN_GAMMA_RANGE
        bn.weight.data = torch.rand(n, generator=gen) * (high - low) + low
        bn.weight.data[::BN_NEGATIVE_EVERY] *= -1
        bn.bias.data = torch.randn(n, generator=gen) * BN_SHIFT_SCALE
        bn.running_mean.data = torch.randn(n, generator=gen) * BN_SHIFT_SCALE
        bn.running_var.data = torch.rand(n, generator=gen) * (high - low) + low
    return model.eval()


def freeze_(model):
    """Replace every :class:`QConv2d` by an ``nn.Conv2d`` holding its binary weight (in place)."""
    for name, child in model.named_children():
        if isinstance(child, QConv2d):
            with torch.no_grad():
                weight = child.binary_weight()
            conv = nn.Conv2d(weight.shape[1], weight.shape[0], weight.shape[2], child.stride, child.padding, bias=False)
            conv.weight.data = weight
            setattr(model, name, conv)
        else:
            freeze_(child)
    return model


DYADIC_STEP = 1 / 8
DYADIC_OFFSET = DYADIC_STEP / 2  # keeps batch-norm means and activation biases off the grid
BN_VAR = 4.0  # sqrt(4 + 0) = 2: batch norm scales by exactly +-1
BN_GAMMA = 2.0
STEM_SCALE = 4
LINEAR_SCALE = 8
ALPHA_EXPONENTS = (-3, -2, -1)  # alpha in {1/8, 1/4, 1/2}: inside the clamp bound


def _dyadic(tensor, step=DYADIC_STEP):
    return torch.round(tensor / step) * step


def make_dyadic_(model, seed=0):
    """Make every float of the model a dyadic rational, so integer inputs compute exactly.

    Each :class:`QConv2d`'s latent weight becomes ``2**k[o] * P[idx]`` with ``P``
    its own subset: the quantizer finds ``idx`` again (distance 0 up to the
    scale), its mean-abs scale is ``2**k[o]`` exactly and the STE adds and
    subtracts equal values. Batch norms scale by +-1, every other weight and
    bias lies on a 1/8 grid. Then ONNX Runtime, PyTorch and TVM agree bit for
    bit whatever their summation order, even through ``sign``.
    """
    gen = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, QConv2d):
            cout = module.weight.shape[0]
            units = module.weight.numel() // (cout * module.unit)
            idx = torch.randint(module.subset.shape[0], (cout, units), generator=gen)
            exponents = torch.tensor(ALPHA_EXPONENTS, dtype=torch.float32)
            alpha = torch.exp2(exponents[torch.randint(len(ALPHA_EXPONENTS), (cout,), generator=gen)])
            weight = module.subset[idx] * alpha[:, None, None]
            module.weight.data = weight.reshape(module.weight.shape)
        elif isinstance(module, nn.Conv2d):
            module.weight.data = _dyadic(module.weight.data * STEM_SCALE)
        elif isinstance(module, nn.BatchNorm2d):
            n = module.num_features
            module.eps = 0.0
            module.running_var.data = torch.full((n,), BN_VAR)
            module.running_mean.data = _dyadic(torch.randn(n, generator=gen)) + DYADIC_OFFSET
            module.weight.data = torch.sign(module.weight.data) * BN_GAMMA
            module.bias.data = _dyadic(torch.randn(n, generator=gen))
        elif isinstance(module, nn.Linear):
            module.weight.data = _dyadic(module.weight.data * LINEAR_SCALE)
            module.bias.data = _dyadic(module.bias.data)
        elif isinstance(module, BinaryAct) and module.bias is not None:
            module.bias.data = _dyadic(module.bias.data) + DYADIC_OFFSET
    return model
