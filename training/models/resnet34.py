"""ResNet-34 (He et al. 2016) for grasp success, seed 004's backbone.

Parameter names are torchvision's ``resnet34`` names (conv1, bn1, layer1..layer4 of BasicBlocks
with conv1/bn1/conv2/bn2/downsample.0/downsample.1, fc), so a local copy of torchvision's
ImageNet weights (``resnet34-*.pth``, a plain state_dict) loads into it without torchvision
installed. ``fc`` is replaced by a 1-output layer (the logit of "held"); seed 004 used 2 outputs
with a softmax, which is the same classifier with one redundant degree of freedom.

Seed 004 froze conv1, bn1 and layer1 (``FROZEN_WHEN_PRETRAINED``); the frozen batch-norm layers
also keep their ImageNet running statistics (``train()`` leaves them in eval mode).
"""
from __future__ import annotations

from torch import nn

FROZEN_WHEN_PRETRAINED = ("conv1", "bn1", "layer1")
HEAD_PREFIXES = ("fc.",)          # keys of a weights file that belong to the replaced head
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)   # ImageNet, as torchvision's weights expect


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False),
                                            nn.BatchNorm2d(planes))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet34(nn.Module):
    """uint8-free core: float [N, 3, S, S] (ImageNet-normalised) -> logit [N, 1]."""

    def __init__(self, dropout: float = 0.0):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        inplanes, layers = 64, []
        for planes, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
            layer = [BasicBlock(inplanes, planes, stride)]
            layer += [BasicBlock(planes, planes) for _ in range(blocks - 1)]
            layers.append(nn.Sequential(*layer))
            inplanes = planes
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(512, 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for m in self.modules():   # zero-init the last BN of each residual branch (from scratch)
            if isinstance(m, BasicBlock):
                nn.init.zeros_(m.bn2.weight)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.dropout(self.avgpool(x).flatten(1)))
