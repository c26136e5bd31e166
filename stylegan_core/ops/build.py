"""Build manager of the CUDA extension (bias_act, upfirdn2d): once, in the background, never fatal.
StyleGAN3's filtered_lrelu runs on these two kernels in sequence (no fused kernel of its own).

`start_cuda_ops_build()` (called by the app at startup) compiles `cuda/*.cu, *.cpp` with
torch.utils.cpp_extension (ninja) in a daemon thread when a CUDA device is present. The build
folder is keyed by the sources, the torch/CUDA versions and the GPU architectures, so an upgrade
builds a fresh module instead of loading a stale one ("undefined symbol"), and a second start
loads the cached build in seconds. Until the build succeeds, and forever if it fails, the ops use
their PyTorch reference; a failure is recorded once and never retried per call.

Unverified: no GPU was available while this was written; the CPU fallback is what the tests cover.
"""
from __future__ import annotations

import hashlib
import os
import threading
import traceback
from pathlib import Path
from types import ModuleType
from typing import Optional

import torch

SOURCE_DIR = Path(__file__).with_name("cuda")
SOURCES = ("ops.cpp", "bias_act.cu", "upfirdn2d.cu")
CACHE_ENV = "STYLEGAN_CUDA_OPS_DIR"

_lock = threading.Lock()
_state: dict = {"status": "reference", "reason": "build not started", "module": None}


def cuda_extension() -> Optional[ModuleType]:
    """The built extension, or None while it is building, failed or was never started (cheap: no I/O)."""
    return _state["module"]


def cuda_ops_status() -> str:
    """One line for the app's status bar: 'CUDA ops: built | building | reference (reason)'."""
    with _lock:
        return _status_line()


def _status_line() -> str:  # call with _lock held
    status, reason = _state["status"], _state["reason"]
    if status == "reference":
        return f"CUDA ops: reference ({reason})"
    from .filtered_lrelu import FILTERED_LRELU_CUDA_STATUS

    return f"CUDA ops: {status}; filtered_lrelu: {FILTERED_LRELU_CUDA_STATUS}"


def build_key() -> str:
    """Hash of what the compiled module depends on: the sources, torch, CUDA and the GPU architectures."""
    digest = hashlib.sha256()
    for name in SOURCES:
        digest.update(name.encode())
        digest.update((SOURCE_DIR / name).read_bytes())
    digest.update(f"torch={torch.__version__} cuda={torch.version.cuda} archs={_gpu_archs()}".encode())
    return digest.hexdigest()[:16]


def cache_dir() -> Path:
    """$STYLEGAN_CUDA_OPS_DIR, else weights/cuda_ops next to the other caches."""
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured)
    from ..loading.weights import weights_dir

    return weights_dir() / "cuda_ops"


def start_cuda_ops_build(background: bool = True) -> str:
    """Start the one build of this process (later calls do nothing); returns the status line."""
    with _lock:
        if _state["status"] != "reference" or _state["reason"] != "build not started":
            return _status_line()
        reason = _unavailable_reason()
        if reason is not None:
            _state["reason"] = reason
            return _status_line()
        _state["status"], _state["reason"] = "building", ""
        thread = threading.Thread(target=_build, name="stylegan-cuda-ops-build", daemon=True)
    thread.start()
    if not background:
        thread.join()
    return cuda_ops_status()


def _unavailable_reason() -> Optional[str]:
    if os.environ.get("STYLEGAN_DISABLE_CUDA_OPS"):
        return "disabled by STYLEGAN_DISABLE_CUDA_OPS"
    if not torch.cuda.is_available():
        return "no CUDA device"
    if torch.version.cuda is None:
        return "torch was built without CUDA"
    return None


def _gpu_archs() -> str:
    if not torch.cuda.is_available():
        return "none"
    capabilities = {torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())}
    return ";".join(f"{major}.{minor}" for major, minor in sorted(capabilities))


def _build() -> None:
    build_dir: Optional[Path] = None
    try:
        from torch.utils.cpp_extension import load

        key = build_key()
        build_dir = cache_dir() / key
        build_dir.mkdir(parents=True, exist_ok=True)
        # Compile for the GPUs present only: faster, and the key already names them.
        os.environ.setdefault("TORCH_CUDA_ARCH_LIST", _gpu_archs())
        module = load(
            name=f"stylegan_core_cuda_ops_{key}",
            sources=[str(SOURCE_DIR / name) for name in SOURCES],
            build_directory=str(build_dir),
            extra_cflags=["-O3"],
            extra_cuda_cflags=["-O3"],
            verbose=False,
        )
        _check_against_reference(module)
    except Exception as error:  # a failed build must never take the app down
        _record_failure(error, build_dir)
        return
    with _lock:
        _state["module"], _state["status"], _state["reason"] = module, "built", ""


def _record_failure(error: Exception, build_dir: Optional[Path]) -> None:
    first_line = (str(error).strip().splitlines() or [""])[0][:200]
    reason = f"build failed: {type(error).__name__}: {first_line}"
    if build_dir is not None:
        log = build_dir / "build_error.log"
        try:
            log.write_text(traceback.format_exc())
            reason += f"; log: {log}"
        except OSError:
            pass
    with _lock:
        _state["status"], _state["reason"] = "reference", reason


def _check_against_reference(module: ModuleType) -> None:
    """A miscompiled kernel must not silently change images: compare once with the reference."""
    from .bias_act import ACTIVATIONS, bias_act_reference
    from .upfirdn2d import setup_filter, upfirdn2d_reference

    generator = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randn(2, 5, 7, 9, device="cuda", generator=generator)
    bias = torch.randn(5, device="cuda", generator=generator)
    empty = x.new_empty([0])
    got = module.bias_act(x, bias, empty, ACTIVATIONS.index("lrelu"), 0.2, 2**0.5, 0.5, 1, False)
    expected = bias_act_reference(x, bias, "lrelu", 0.2, 2**0.5, 0.5, 1)
    f = setup_filter().cuda()
    got_up = module.upfirdn2d(x, f, 2, 1, 2, 1, 2, 1, 4.0)
    expected_up = upfirdn2d_reference(x, f, up=2, padding=(2, 1, 2, 1), gain=4.0)
    for name, a, b in (("bias_act", got, expected), ("upfirdn2d", got_up, expected_up)):
        if a.shape != b.shape or not torch.allclose(a, b, atol=1e-5, rtol=1e-5):
            raise RuntimeError(f"{name} kernel disagrees with the reference implementation")
