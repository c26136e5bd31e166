"""filtered_lrelu: StyleGAN3's alias-free nonlinearity on [B, C, H, W] tensors.

Per channel, in this order (Karras et al., "Alias-Free Generative Adversarial Networks", 2021):
  1. add the bias `b`;
  2. upsample by `up` (zero insertion), pad by `padding` (negative values crop), convolve with the
     upsampling FIR filter `fu` times up^2 (the gain that keeps the mean);
  3. multiply by `gain`, leaky ReLU with `slope`, clamp to [-clamp, clamp];
  4. convolve with the downsampling FIR filter `fd`, keep every `down`-th pixel.
A filter is None (identity), 1-D ([taps], separable: applied along x, then along y) or 2-D
([height, width], e.g. config R's radially symmetric filter). The convolutions are true
convolutions; `flip_filter=True` makes them correlations. Padding is (left, right, top, bottom),
or one number / (x, y) for symmetric padding, and refers to the upsampled image.

`filtered_lrelu_reference` is the definition of correctness, built on the upfirdn2d and bias_act
references; it zero-inserts and runs depthwise convolutions, which PyTorch's CPU backend runs at a
fraction of a GFLOP/s. `filtered_lrelu` computes the same with matrix products instead (tested
against the reference): each 1-D resampling pass is a banded matrix along one axis, applied block
by block (`fir_axis`); a 2-D filter is split into a few separable terms by its SVD (config R's
radially symmetric filter has rank 6). On a CUDA tensor, once the project's extension is built
(in the background at start-up, like bias_act and upfirdn2d), `impl='cuda'` runs the four steps
with the compiled upfirdn2d and bias_act kernels (three kernel launches, the intermediate image in
GPU memory: NVIDIA's fused single-pass kernel is not reproduced). That path is unverified: no GPU
was available to build and compare it (`FILTERED_LRELU_CUDA_STATUS`).
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F

from .bias_act import bias_act, bias_act_reference
from .upfirdn2d import upfirdn2d, upfirdn2d_reference

FILTERED_LRELU_CUDA_STATUS = "upfirdn2d and bias_act kernels in sequence (unverified)"
IMPLEMENTATIONS = ("ref", "cuda")
Padding = Union[int, Sequence[int]]


def parse_padding(padding: Padding) -> tuple[int, int, int, int]:
    """One number, (x, y) or (left, right, top, bottom) -> (left, right, top, bottom)."""
    if isinstance(padding, int):
        padding = (padding, padding)
    padding = tuple(int(p) for p in padding)
    if len(padding) == 2:
        return (padding[0], padding[0], padding[1], padding[1])
    if len(padding) != 4:
        raise ValueError(f"filtered_lrelu: padding must have 1, 2 or 4 values, got {padding}")
    return padding  # type: ignore[return-value]


def filter_size(f: Optional[torch.Tensor]) -> tuple[int, int]:
    """(width, height) of a filter; a 1-D filter has the same taps along both axes."""
    if f is None:
        return 1, 1
    if f.dim() not in (1, 2):
        raise ValueError(f"filtered_lrelu: a filter must be 1-D or 2-D, got shape {list(f.shape)}")
    return f.shape[-1], f.shape[0]


def output_size(in_size: int, up: int, down: int, pad_before: int, pad_after: int, up_taps: int,
                down_taps: int) -> int:
    """Output pixels along one axis: the pixels whose filter footprints lie inside the padded input."""
    return (in_size * up + pad_before + pad_after - (up_taps - 1) - (down_taps - 1) + (down - 1)) // down


def fir_resample(x: torch.Tensor, f: Optional[torch.Tensor], up: int = 1, down: int = 1,
                 padding: Padding = 0, gain: float = 1.0, flip_filter: bool = False) -> torch.Tensor:
    """upfirdn2d with a None, 1-D (separable) or 2-D filter, on the upfirdn2d reference."""
    left, right, top, bottom = parse_padding(padding)
    if f is None:
        f = torch.ones(1, 1, dtype=torch.float32, device=x.device)
    if flip_filter:  # the reference convolves; a pre-flipped filter makes that a correlation
        f = f.flip(list(range(f.dim())))
    if f.dim() == 2:
        return upfirdn2d_reference(x, f, up=up, down=down, padding=(left, right, top, bottom), gain=gain)
    # Separable: zero-insert and filter along x, then filter along y and subsample (one gain).
    x = upfirdn2d_reference(x, f[None, :], up=up, padding=(left, right, 0, 0), gain=gain)
    return upfirdn2d_reference(x, f[:, None], down=down, padding=(0, 0, top, bottom))


def filtered_lrelu_reference(x: torch.Tensor, fu: Optional[torch.Tensor] = None, fd: Optional[torch.Tensor] = None,
                             b: Optional[torch.Tensor] = None, up: int = 1, down: int = 1, padding: Padding = 0,
                             gain: float = math.sqrt(2.0), slope: float = 0.2, clamp: Optional[float] = None,
                             flip_filter: bool = False) -> torch.Tensor:
    """The four steps of the module docstring with plain PyTorch ops; differentiable."""
    _check(x, fu, fd, b, up, down, padding, gain, slope, clamp)
    left, right, top, bottom = parse_padding(padding)
    x = bias_act_reference(x, b)
    x = fir_resample(x, fu, up=up, padding=(left, right, top, bottom), gain=up**2, flip_filter=flip_filter)
    x = bias_act_reference(x, act="lrelu", alpha=slope, gain=gain, clamp=clamp, inplace=True)
    return fir_resample(x, fd, down=down, flip_filter=flip_filter)


def filtered_lrelu(x: torch.Tensor, fu: Optional[torch.Tensor] = None, fd: Optional[torch.Tensor] = None,
                   b: Optional[torch.Tensor] = None, up: int = 1, down: int = 1, padding: Padding = 0,
                   gain: float = math.sqrt(2.0), slope: float = 0.2, clamp: Optional[float] = None,
                   flip_filter: bool = False, impl: str = "cuda") -> torch.Tensor:
    """filtered_lrelu_reference's result. impl='ref' runs the reference; impl='cuda' runs the compiled
    kernels on a GPU tensor once the extension is built, else the matrix-product path."""
    if impl not in IMPLEMENTATIONS:
        raise ValueError(f"filtered_lrelu: impl must be one of {IMPLEMENTATIONS}, got {impl!r}")
    if impl == "ref":
        return filtered_lrelu_reference(x, fu, fd, b, up, down, padding, gain, slope, clamp, flip_filter)
    _check(x, fu, fd, b, up, down, padding, gain, slope, clamp)
    left, right, top, bottom = parse_padding(padding)
    if _cuda_kernels_ready(x):
        return filtered_lrelu_by_kernels(x, fu, fd, b, up, down, (left, right, top, bottom), gain, slope, clamp,
                                         flip_filter)
    if b is not None:
        x = x + b.to(x.dtype).reshape(1, -1, 1, 1)
    x = fir_resample_by_matmul(x, fu, up, 1, (left, right, top, bottom), up**2, flip_filter)
    x = bias_act_reference(x, act="lrelu", alpha=slope, gain=gain, clamp=clamp, inplace=True)
    return fir_resample_by_matmul(x, fd, 1, down, (0, 0, 0, 0), 1.0, flip_filter)


def _cuda_kernels_ready(x: torch.Tensor) -> bool:
    from .build import cuda_extension

    return x.is_cuda and x.dtype in (torch.float32, torch.float16) and cuda_extension() is not None


def filtered_lrelu_by_kernels(x: torch.Tensor, fu: Optional[torch.Tensor], fd: Optional[torch.Tensor],
                              b: Optional[torch.Tensor], up: int, down: int, padding: tuple[int, int, int, int],
                              gain: float, slope: float, clamp: Optional[float], flip_filter: bool) -> torch.Tensor:
    """The four steps through the dispatching upfirdn2d and bias_act (their compiled kernels on a GPU,
    their references elsewhere: which is how this composition is tested without a GPU)."""
    x = bias_act(x, b)
    x = upfirdn2d(x, _as_2d_filter(fu, flip_filter, x), up=up, padding=padding, gain=up**2)
    x = bias_act(x, act="lrelu", alpha=slope, gain=gain, clamp=clamp)
    return upfirdn2d(x, _as_2d_filter(fd, flip_filter, x), down=down)


def _as_2d_filter(f: Optional[torch.Tensor], flip_filter: bool, like: torch.Tensor) -> torch.Tensor:
    """None -> [[1]]; a 1-D (separable) filter -> its outer product; flipped for a correlation."""
    if f is None:
        return torch.ones(1, 1, dtype=torch.float32, device=like.device)
    f = f.to(device=like.device, dtype=torch.float32)
    f = torch.outer(f, f) if f.dim() == 1 else f
    return f.flip([0, 1]) if flip_filter else f


SVD_RELATIVE_CUTOFF = 1e-9  # singular values below this fraction of the largest are float noise


def fir_resample_by_matmul(x: torch.Tensor, f: Optional[torch.Tensor], up: int, down: int,
                           padding: tuple[int, int, int, int], gain: float, flip_filter: bool) -> torch.Tensor:
    """fir_resample's result: separable passes along x then y; a 2-D filter as a sum of separable terms."""
    left, right, top, bottom = padding
    if f is None:
        f = torch.ones(1, dtype=torch.float32, device=x.device)
    f = f.to(device=x.device, dtype=torch.float64)
    if flip_filter:
        f = f.flip(list(range(f.dim())))
    if f.dim() == 1:
        terms = [(f * gain, f)]
    else:
        u, sigma, vh = torch.linalg.svd(f)
        keep = sigma > sigma[0] * SVD_RELATIVE_CUTOFF
        terms = [(vh[i] * sigma[i] * gain, u[:, i]) for i in torch.nonzero(keep).flatten().tolist()]
    result = None
    for along_x, along_y in terms:
        y = fir_axis(x, along_x, up, down, left, right)
        y = fir_axis(y.transpose(-1, -2), along_y, up, down, top, bottom).transpose(-1, -2)
        result = y if result is None else result + y
    return result


def fir_axis(x: torch.Tensor, f: torch.Tensor, up: int, down: int, pad_before: int, pad_after: int,
             block: int = 32) -> torch.Tensor:
    """upfirdn along the last axis (zero-insert `up`, pad, convolve with f, keep every `down`-th) as
    a banded matrix product: `block` outputs at a time from a window of inputs, one small matrix
    for every block (the band is shift-invariant), so the work runs in matrix-multiply kernels."""
    taps, width = f.shape[0], x.shape[-1]
    out = (width * up + pad_before + pad_after - taps) // down + 1
    block = block // up * up if block >= up else up  # outputs per block: block * down / up inputs per step
    step = block * down // up
    # Output j reads input n where 0 <= n * up + pad_before - j * down < taps (the flipped filter's index).
    first = -(-(-pad_before) // up)  # ceil(-pad_before / up): the first input of block 0
    window = ((block - 1) * down - pad_before + taps - 1) // up - first + 1
    n = torch.arange(window, device=x.device)[:, None] + first
    index = n * up + pad_before - torch.arange(block, device=x.device)[None, :] * down
    valid = (index >= 0) & (index < taps)
    matrix = torch.where(valid, f.flip(0)[index.clamp(0, taps - 1)], torch.zeros((), dtype=f.dtype, device=x.device))
    blocks = -(-out // block)
    last = first + (blocks - 1) * step + window  # one past the last input read
    x = F.pad(x, [-first, last - width])  # negative values crop
    windows = x.unfold(-1, window, step)  # [..., blocks, window], overlapping views
    # One 2-D product (a batched one over the strided view would loop over its matrices one by one).
    y = windows.reshape(-1, window) @ matrix.to(x.dtype)
    return y.reshape(*windows.shape[:-2], blocks * block)[..., :out]


def _check(x: torch.Tensor, fu: Optional[torch.Tensor], fd: Optional[torch.Tensor], b: Optional[torch.Tensor],
           up: int, down: int, padding: Padding, gain: float, slope: float, clamp: Optional[float]) -> None:
    if x.dim() != 4:
        raise ValueError(f"filtered_lrelu: x must be [batch, channels, height, width], got {list(x.shape)}")
    if b is not None and (b.dim() != 1 or b.shape[0] != x.shape[1]):
        raise ValueError(f"filtered_lrelu: bias of shape {list(b.shape)} does not match {x.shape[1]} channels")
    if int(up) != up or int(down) != down or up < 1 or down < 1:
        raise ValueError(f"filtered_lrelu: up and down must be integers >= 1, got {up}, {down}")
    if gain <= 0 or slope < 0 or (clamp is not None and clamp < 0):
        raise ValueError(f"filtered_lrelu: need gain > 0, slope >= 0, clamp >= 0; got {gain}, {slope}, {clamp}")
    left, right, top, bottom = parse_padding(padding)
    (fu_w, fu_h), (fd_w, fd_h) = filter_size(fu), filter_size(fd)
    if min(output_size(x.shape[3], up, down, left, right, fu_w, fd_w),
           output_size(x.shape[2], up, down, top, bottom, fu_h, fd_h)) < 1:
        raise ValueError(f"filtered_lrelu: input {list(x.shape)} with padding {padding} leaves no output pixels")
