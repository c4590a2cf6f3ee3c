"""Which accelerator is there, without importing heavy packages that are not installed."""

from __future__ import annotations

import importlib.util
import logging

log = logging.getLogger("stemtomo.device")


def gpu_available() -> bool:
    """True when PyTorch sees a CUDA device, or else ASTRA does (never calls ASTRA's 3D code)."""
    if importlib.util.find_spec("torch") is not None:
        import torch

        if torch.cuda.is_available():
            return True
    if importlib.util.find_spec("astra") is not None:
        import astra

        return bool(astra.use_cuda())
    return False
