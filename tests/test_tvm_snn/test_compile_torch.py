"""torch.nn.Module and torch.export inputs, compiled and compared with PyTorch."""

import numpy as np
import pytest
import torch
from torch import nn

import tvm_snn

from common import FLOAT_ATOL, FLOAT_RTOL


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return torch.relu(y + (x if self.down is None else self.down(x)))


class SmallResNet(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 8, 3, 1, 1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2)
        )
        self.layer1 = Block(8, 8, 1)
        self.layer2 = Block(8, 16, 2)
        self.fc = nn.Linear(16, classes)

    def forward(self, x):
        y = self.layer2(self.layer1(self.stem(x)))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(y, 1), 1))


class TwoHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
        return y.mean(dim=(2, 3)), torch.relu(y)


def _randomized(model):
    torch.manual_seed(0)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
            module.weight.data.uniform_(-1.5, 1.5)
    return model.eval()


@pytest.fixture(scope="module")
def resnet():
    return _randomized(SmallResNet())


def test_module_matches_pytorch(resnet):
    x = torch.randn(2, 3, 16, 16)
    cm = tvm_snn.compile(resnet, target="x86", example_inputs=(x,))
    with torch.no_grad():
        expected = resnet(x).numpy()
    np.testing.assert_allclose(cm(x.numpy()), expected, rtol=FLOAT_RTOL, atol=FLOAT_ATOL)


def test_exported_program_matches_pytorch(resnet):
    x = torch.randn(1, 3, 16, 16)
    program = torch.export.export(resnet, (x,))
    cm = tvm_snn.compile(program, target="x86")
    x2 = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        expected = resnet(x2).numpy()
    np.testing.assert_allclose(cm(x2.numpy()), expected, rtol=FLOAT_RTOL, atol=FLOAT_ATOL)


def test_several_outputs_come_back_as_a_tuple():
    model = TwoHeads().eval()
    x = torch.randn(1, 3, 8, 8)
    cm = tvm_snn.compile(model, example_inputs=x)
    got = cm(x.numpy())
    assert isinstance(got, tuple) and len(got) == 2
    with torch.no_grad():
        for ours, theirs in zip(got, model(x), strict=True):
            np.testing.assert_allclose(ours, theirs.numpy(), rtol=FLOAT_RTOL, atol=FLOAT_ATOL)
