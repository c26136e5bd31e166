"""Import shims for the pinned dependency set.

torchvision 0.28.0 on PyPI is a CUDA build; next to the CPU build of torch its compiled `_C`
cannot load and `import torchvision` (and so `import lpips`) fails with "operator
torchvision::nms does not exist". Declaring the two operator schemas its Python code registers
fakes for makes the pure-Python parts importable. Image decoding stays broken: we use PIL.
"""
from __future__ import annotations

import importlib

_patched = False


def import_torchvision():
    """Import torchvision, declaring the missing operator schemas if its native library cannot load."""
    global _patched
    try:
        return importlib.import_module("torchvision")
    except RuntimeError as error:
        if "torchvision::nms" not in str(error) or _patched:
            raise
    import sys

    import torch

    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]
    library = torch.library.Library("torchvision", "DEF")  # noqa: F841 - kept alive below
    library.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    library.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    globals()["_library"] = library
    _patched = True
    return importlib.import_module("torchvision")
