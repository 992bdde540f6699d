"""The CropShield CNN, faithful to the CropShield training code (see /work/shared/MODEL.md).

Four blocks, each
    Conv3x3(pad 1, no bias) -> BatchNorm -> ReLU -> Conv3x3(pad 1, no bias) -> BatchNorm -> ReLU
    -> MaxPool 2x2 -> Dropout2d
with 64, 128, 256, 512 channels (times ``width``) and Dropout2d rates 0.25, 0.30, 0.35, 0.5, then
AdaptiveAvgPool(1) -> flatten -> Dropout(0.5) -> Linear(C4, num_classes).

Submodule names follow the checkpoints' state_dict keys: ``block1``..``block4`` (nn.Sequential indexed
0 conv, 1 bn, 2 relu, 3 conv, 4 bn, 5 relu, 6 maxpool, 7 dropout2d), ``global_avg_pool`` and
``classifier`` (0 Dropout, 1 Linear). With width 1.0 and 22 classes: 4,698,582 parameters.
"""

from typing import List

import torch
from torch import nn

BASE_CHANNELS = (64, 128, 256, 512)
DROPOUT2D_RATES = (0.25, 0.30, 0.35, 0.5)
CLASSIFIER_DROPOUT = 0.5
FULL_WIDTH_PARAMETERS = 4_698_582


def block_channels(width: float = 1.0) -> List[int]:
    """Output channels of block1..block4 for a width multiplier (rounded to int, at least 1)."""
    if not width > 0:
        raise ValueError(f"width must be > 0, got {width}")
    return [max(1, int(round(c * width))) for c in BASE_CHANNELS]


def _block(in_ch: int, out_ch: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1, bias=False),  # 0
        nn.BatchNorm2d(out_ch),  # 1
        nn.ReLU(inplace=True),  # 2
        nn.Conv2d(out_ch, out_ch, kernel_size=3, padding=1, bias=False),  # 3
        nn.BatchNorm2d(out_ch),  # 4
        nn.ReLU(inplace=True),  # 5
        nn.MaxPool2d(2, 2),  # 6
        nn.Dropout2d(dropout),  # 7
    )


class CropShieldCNN(nn.Module):
    """CropShield CNN. ``width`` scales the channel counts (1.0 = the published model)."""

    def __init__(self, num_classes: int = 22, width: float = 1.0):
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        c1, c2, c3, c4 = block_channels(width)
        self.num_classes = num_classes
        self.width = width
        self.block1 = _block(3, c1, DROPOUT2D_RATES[0])
        self.block2 = _block(c1, c2, DROPOUT2D_RATES[1])
        self.block3 = _block(c2, c3, DROPOUT2D_RATES[2])
        self.block4 = _block(c3, c4, DROPOUT2D_RATES[3])
        self.global_avg_pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(CLASSIFIER_DROPOUT), nn.Linear(c4, num_classes))
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Input N x 3 x H x W -> block4 output (the Grad-CAM target layer)."""
        x = self.block1(x)
        x = self.block2(x)
        x = self.block3(x)
        return self.block4(x)

    def head(self, a: torch.Tensor) -> torch.Tensor:
        """block4 output -> logits."""
        a = self.global_avg_pool(a)
        a = torch.flatten(a, 1)
        return self.classifier(a)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def width_from_state_dict(state_dict) -> float:
    """Width multiplier of a CropShield CNN state_dict, from block1's first conv (64 * width outputs).

    Exact for widths whose channel counts round consistently; the caller loads with strict=True, which
    catches any inconsistency.
    """
    key = "block1.0.weight"
    if key not in state_dict:
        raise KeyError(f"not a CropShield CNN state_dict: missing '{key}'")
    c1 = int(state_dict[key].shape[0])
    c4_key = "block4.0.weight"
    if c4_key in state_dict:
        c4 = int(state_dict[c4_key].shape[0])
        # c4 = round(512 * w) is the most precise estimate; check it reproduces all channel counts.
        for w in (c4 / 512.0, c1 / 64.0):
            chans = block_channels(w)
            ok = all(
                f"block{i + 1}.0.weight" not in state_dict
                or int(state_dict[f"block{i + 1}.0.weight"].shape[0]) == chans[i]
                for i in range(4)
            )
            if ok:
                return w
    return c1 / 64.0
