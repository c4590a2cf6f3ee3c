"""Which accelerator is there, without importing heavy packages that are not installed."""

from __future__ import annotations

import importlib.util
import logging

log = logging.getLogger("stemtomo.device")


def gpu_available() -> bool:
    """True when both PyTorch and ASTRA see a CUDA device (the astra-gpu backend needs both).
    Only astra.use_cuda() is asked: ASTRA's 3D functions must never run without a GPU."""
    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("astra") is None:
        return False
    import torch

    if not torch.cuda.is_available():
        return False
    import astra

    return bool(astra.use_cuda())
