"""Reference float models to prepare: a plain ResNet-18.

``resnet18(stem="imagenet")`` is the torchvision layout (7x7 stride-2 stem and
max-pool); ``stem="cifar"`` uses a 3x3 stride-1 stem and no max-pool. Either
way the 16 convs inside the residual blocks are 3x3 and the downsample
shortcuts are 1x1 convs.
"""

from torch import nn

from tvm_snn.train.validate import check_choice, check_int

STEMS = ("imagenet", "cifar")
STAGE_WIDTHS = (64, 128, 256, 512)
BLOCKS_PER_STAGE = (2, 2, 2, 2)
IMAGENET_STEM_KERNEL = 7
IMAGENET_STEM_STRIDE = 2
POOL_KERNEL = 3
POOL_STRIDE = 2
DOWNSAMPLE_STRIDE = 2


def _conv3x3(in_channels, out_channels, stride=1):
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN pairs with an identity or 1x1-conv shortcut."""

    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        self.conv1 = _conv3x3(in_channels, out_channels, stride)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = _conv3x3(out_channels, out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x):
        """Residual block forward."""
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + shortcut)


class ResNet(nn.Module):
    """A basic-block ResNet with four stages."""

    def __init__(self, blocks=BLOCKS_PER_STAGE, num_classes=1000, stem="imagenet", in_channels=3):
        super().__init__()
        check_choice("stem", stem, STEMS, "resnet")
        check_int("num_classes", num_classes, minimum=1, where="resnet")
        width = STAGE_WIDTHS[0]
        if stem == "imagenet":
            self.conv1 = nn.Conv2d(
                in_channels,
                width,
                IMAGENET_STEM_KERNEL,
                stride=IMAGENET_STEM_STRIDE,
                padding=IMAGENET_STEM_KERNEL // 2,
                bias=False,
            )
            pool = nn.MaxPool2d(POOL_KERNEL, stride=POOL_STRIDE, padding=POOL_KERNEL // 2)
        else:
            self.conv1 = _conv3x3(in_channels, width)
            pool = nn.Identity()
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = pool
        stages = []
        for index, (out_width, count) in enumerate(zip(STAGE_WIDTHS, blocks, strict=True)):
            stride = 1 if index == 0 else DOWNSAMPLE_STRIDE
            layers = [BasicBlock(width, out_width, stride)]
            layers += [BasicBlock(out_width, out_width) for _ in range(count - 1)]
            stages.append(nn.Sequential(*layers))
            width = out_width
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x):
        """Classify a batch of images."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))


def resnet18(num_classes=1000, stem="imagenet"):
    """Return a float ResNet-18.

    Parameters
    ----------
    num_classes : int
        Width of the classifier.
    stem : {"imagenet", "cifar"}
        The input stem.

    Returns
    -------
    ResNet
    """
    return ResNet(BLOCKS_PER_STAGE, num_classes=num_classes, stem=stem)
