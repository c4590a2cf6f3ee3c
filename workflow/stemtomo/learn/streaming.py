"""Host ↔ device copies that overlap the computation on a GPU; plain views and copies on the CPU.

Segmentation walks a volume in blocks of slices. `Uploader.send` stages a block in one of two
pinned host buffers and copies it to the GPU on a side stream, so the next block travels while the
current one is computed. `Downloader.fetch` queues one block's results into pinned memory and
writes the previous block's into their NumPy destinations, so the host waits for the GPU at most
once per block and always with the next block already queued behind it.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import torch

Sent = tuple[torch.Tensor, "torch.cuda.Event | None"]


def to_device(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """A small host array (indices, random draws) on `device` without waiting for the GPU. A
    blocking copy from pageable memory synchronises the stream, so the host could never queue
    work ahead; a pinned, non-blocking copy does not (PyTorch keeps the pinned block until the
    copy is done). On the CPU: a view."""
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    if device.type != "cuda":
        return tensor
    return tensor.pin_memory().to(device, non_blocking=True)


class Uploader:
    """Double-buffered host → device copies of NumPy blocks."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.cuda = device.type == "cuda"
        self.stream = torch.cuda.Stream(device) if self.cuda else None
        self._pinned: list[torch.Tensor | None] = [None, None]
        self._copied: list[torch.cuda.Event | None] = [None, None]
        self._turn = 0

    def send(self, block: np.ndarray) -> Sent:
        """Start copying `block` to the device; `receive` hands it out. On the CPU: a view."""
        host = torch.from_numpy(np.ascontiguousarray(block))
        if not self.cuda:
            return host, None
        i, self._turn = self._turn, 1 - self._turn
        if self._copied[i] is not None:
            self._copied[i].synchronize()  # this buffer's previous copy has left it
        buf = self._pinned[i]
        if buf is None or buf.dtype != host.dtype or buf.numel() < host.numel():
            buf = self._pinned[i] = torch.empty(host.numel(), dtype=host.dtype, pin_memory=True)
        staged = buf[: host.numel()].view(host.shape)
        staged.copy_(host)
        with torch.cuda.stream(self.stream):
            on_device = staged.to(self.device, non_blocking=True)
            self._copied[i] = self.stream.record_event()
        return on_device, self._copied[i]

    def receive(self, sent: Sent) -> torch.Tensor:
        """The sent block, usable on the current stream (which waits for its copy, not the host)."""
        tensor, event = sent
        if event is not None:
            stream = torch.cuda.current_stream(self.device)
            stream.wait_event(event)
            tensor.record_stream(stream)  # keep its memory until this stream is done with it
        return tensor


class Downloader:
    """Device → host copies of each block's results, completed one block later."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self._pending: deque = deque()

    def fetch(self, pairs: list[tuple[torch.Tensor, np.ndarray]]) -> None:
        """Copy each tensor into its NumPy destination (same shape): at once on the CPU; on a GPU
        queued now and written by the next `fetch` or by `drain`."""
        if not self.cuda:
            for tensor, into in pairs:
                into[...] = tensor.numpy()
            return
        staged = []
        for tensor, into in pairs:
            host = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)
            host.copy_(tensor, non_blocking=True)
            staged.append((host, into))
        self._pending.append((torch.cuda.current_stream(tensor.device).record_event(), staged))
        while len(self._pending) > 1:
            self._complete()

    def drain(self) -> None:
        """Write every queued result."""
        while self._pending:
            self._complete()

    def _complete(self) -> None:
        event, staged = self._pending.popleft()
        event.synchronize()
        for host, into in staged:
            into[...] = host.numpy()
