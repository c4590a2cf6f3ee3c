"""The three 2D segmentation networks of the study, from one code path with switches.

- U-Net (Ronneberger et al., MICCAI 2015): conv-BN-ReLU ×2 blocks, max-pool down, transposed-conv
  up, skip concatenation.
- Attention U-Net (Oktay et al., MIDL 2018): each skip is scaled by an additive attention gate,
  α = σ(ψ(ReLU(W_x·x + W_g·g))), g being the decoder feature at the skip's resolution.
- Attention Res-U-Net: the attention U-Net with residual blocks, conv-BN-ReLU-conv-BN plus a 1×1
  (conv-BN) shortcut, then ReLU (He et al., CVPR 2016).
Widths double with depth from `base`; no pretrained weights are ever downloaded.
"""

from __future__ import annotations

import torch
from torch import nn

# (attention gates, residual blocks) of each of the study's networks (names: core.labels.MODELS)
ARCHITECTURES = {"unet": (False, False), "attention_unet": (True, False),
                 "attention_res_unet": (True, True)}


class ConvBlock(nn.Module):
    """Two 3×3 conv-BN-ReLU layers, or their residual form with a 1×1 shortcut."""

    def __init__(self, c_in: int, c_out: int, residual: bool = False) -> None:
        super().__init__()
        self.residual = residual
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
        )
        if residual:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return self.act(y + self.shortcut(x) if self.residual else y)


class AttentionGate(nn.Module):
    """Additive attention gate (Oktay et al. 2018) on a skip x, gated by decoder features g."""

    def __init__(self, c_skip: int, c_gate: int, c_inter: int) -> None:
        super().__init__()
        self.w_x = nn.Conv2d(c_skip, c_inter, 1, bias=False)
        self.w_g = nn.Conv2d(c_gate, c_inter, 1, bias=True)
        self.psi = nn.Conv2d(c_inter, 1, 1, bias=True)

    def coefficients(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.psi(torch.relu(self.w_x(x) + self.w_g(g))))

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return x * self.coefficients(x, g)


class UNet(nn.Module):
    """2D U-Net family: `attention` gates the skips, `residual` uses residual blocks."""

    def __init__(self, in_channels: int = 1, classes: int = 3, base: int = 32, depth: int = 4,
                 attention: bool = False, residual: bool = False) -> None:
        super().__init__()
        widths = [base * 2**i for i in range(depth + 1)]
        self.down = nn.ModuleList()
        c = in_channels
        for w in widths:
            self.down.append(ConvBlock(c, w, residual))
            c = w
        self.pool = nn.MaxPool2d(2)
        self.up, self.gates, self.dec = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        for w_skip, w_deep in zip(reversed(widths[:-1]), reversed(widths[1:]), strict=True):
            self.up.append(nn.ConvTranspose2d(w_deep, w_skip, 2, stride=2))
            self.gates.append(AttentionGate(w_skip, w_skip, max(w_skip // 2, 1)) if attention
                              else nn.Identity())
            self.dec.append(ConvBlock(2 * w_skip, w_skip, residual))
        self.head = nn.Conv2d(widths[0], classes, 1)
        self.attention = attention
        self.multiple = 2**depth  # input sizes must be multiples of this

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else self.pool(x))
            skips.append(x)
        x = skips.pop()
        for up, gate, dec in zip(self.up, self.gates, self.dec, strict=True):
            g = up(x)
            skip = skips.pop()
            skip = gate(skip, g) if self.attention else skip
            x = dec(torch.cat([skip, g], dim=1))
        return self.head(x)


def build_model(name: str, in_channels: int = 1, classes: int = 3, base: int = 32,
                depth: int = 4) -> UNet:
    """`unet`, `attention_unet` or `attention_res_unet` with the given widths and depth."""
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(ARCHITECTURES)}")
    attention, residual = ARCHITECTURES[name]
    return UNet(in_channels, classes, base, depth, attention, residual)
