"""A small CIFAR-style CNN for grasp success that trains in minutes on a CPU (seed 004's
"model trained with CIFAR 10", made deeper so it sees a 96 px frame rather than 32 px).

    stem conv 3x3 stride 2 -> [conv3x3-BN-ReLU x2, max-pool 2] per width -> global average
    pool -> dropout -> linear 1 (the logit of "held")

Sizes are set by ``SmallCNNConfig.widths``; the default has ~0.3 M parameters (1.2 MB float32).
"""
from __future__ import annotations

from torch import nn

MEAN, STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
FROZEN_WHEN_PRETRAINED = ("stem",)
HEAD_PREFIXES = ("fc.",)


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class SmallCNN(nn.Module):
    def __init__(self, widths: tuple[int, ...] = (24, 48, 96, 128), dropout: float = 0.2):
        super().__init__()
        self.stem = _conv(3, widths[0], stride=2)
        blocks, cin = [], widths[0]
        for w in widths:
            blocks.append(nn.Sequential(_conv(cin, w), _conv(w, w), nn.MaxPool2d(2)))
            cin = w
        self.features = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(cin, 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        return self.fc(self.dropout(self.pool(self.features(self.stem(x))).flatten(1)))
