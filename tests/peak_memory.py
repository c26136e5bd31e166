"""Peak memory of a call, measured in-process: tensor storages (torch) and numpy arrays.

`PeakTensorBytes` sees every tensor an aten operation returns and keeps a weak reference to its
storage, so it knows the bytes of all storages alive after each operation; the most is the peak.
Scratch buffers inside one operation are not seen (they are small next to its outputs). numpy
reports its array allocations to tracemalloc. The two are measured in separate runs (together
they are slow); the sum of both peaks bounds the call's peak.
"""
from __future__ import annotations

import tracemalloc

import torch
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


class PeakTensorBytes(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, tuple[StorageWeakRef, int]] = {}
        self.peak = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for value in tree_flatten(out)[0]:
            if isinstance(value, torch.Tensor):
                storage = value.untyped_storage()
                ref = StorageWeakRef(storage)
                self.live.setdefault(ref.cdata, (ref, storage.nbytes()))
        self.live = {key: item for key, item in self.live.items() if not item[0].expired()}
        self.peak = max(self.peak, sum(size for _, size in self.live.values()))
        return out


def peak_tensor_bytes(fn) -> int:
    """The most bytes of tensor storages alive at once while fn() runs."""
    with PeakTensorBytes() as tensors:
        fn()
    return tensors.peak


def peak_traced_bytes(fn) -> int:
    """The most bytes tracemalloc saw allocated at once while fn() runs: numpy arrays and Python
    objects (tensors are not traced)."""
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
