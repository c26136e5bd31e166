"""upfirdn2d: upsample (zero insertion), pad, FIR filter, downsample, on [B, C, H, W] tensors.

StyleGAN2 resamples with the separable filter [1, 3, 3, 1]. `upfirdn2d_reference` is the
definition of correctness. Two faster paths compute the same thing:
- on CPU, `upsample2d` with that filter is bilinear interpolation (align_corners=False) of the
  zero-padded input, a single cheap native op with a cheap backward (tested against the reference);
- on a CUDA tensor, once the extension is built, a direct kernel (unverified: no GPU was available).
Padding is (left, right, top, bottom), as in torch.nn.functional.pad; negative values crop.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

STYLEGAN_TAPS = (1.0, 3.0, 3.0, 1.0)


def setup_filter(taps: Sequence[float] = STYLEGAN_TAPS, device: torch.device | str = "cpu") -> torch.Tensor:
    """The 2-D filter outer(taps, taps), normalised to sum 1 (so resampling keeps the mean)."""
    f = torch.as_tensor(taps, dtype=torch.float32, device=device)
    if f.dim() != 1 or f.numel() == 0:
        raise ValueError(f"filter taps must be a non-empty 1-D sequence, got shape {list(f.shape)}")
    f2 = torch.outer(f, f)
    return f2 / f2.sum()


def _check(x: torch.Tensor, f: torch.Tensor, up: int, down: int, padding: Sequence[int]) -> None:
    if x.dim() != 4:
        raise ValueError(f"upfirdn2d: x must be [batch, channels, height, width], got {list(x.shape)}")
    if f.dim() != 2:
        raise ValueError(f"upfirdn2d: filter must be 2-D, got {list(f.shape)}")
    if up < 1 or down < 1 or len(padding) != 4:
        raise ValueError(f"upfirdn2d: need up, down >= 1 and 4 paddings, got {up}, {down}, {padding}")


def upfirdn2d_reference(
    x: torch.Tensor,
    f: torch.Tensor,
    up: int = 1,
    down: int = 1,
    padding: Sequence[int] = (0, 0, 0, 0),
    gain: float = 1.0,
) -> torch.Tensor:
    """Zero-insert `up`, pad, convolve with f * gain (a true convolution), keep every `down`-th pixel."""
    _check(x, f, up, down, padding)
    batch, channels, height, width = x.shape
    if up > 1:
        x = x.reshape(batch, channels, height, 1, width, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape(batch, channels, height * up, width * up)
    # conv2d correlates; flipping makes it a convolution (the filters used here are symmetric anyway).
    weight = (f * gain).flip([0, 1]).to(x.dtype)
    weight = weight[None, None].repeat(channels, 1, 1, 1)
    left, right, top, bottom = padding
    if left == right >= 0 and top == bottom >= 0:  # let the convolution pad: no padded copy
        x = F.conv2d(x, weight, padding=(top, left), groups=channels)
    else:
        x = F.conv2d(F.pad(x, list(padding)), weight, groups=channels)
    return x[:, :, ::down, ::down] if down > 1 else x


def upfirdn2d(
    x: torch.Tensor,
    f: torch.Tensor,
    up: int = 1,
    down: int = 1,
    padding: Sequence[int] = (0, 0, 0, 0),
    gain: float = 1.0,
) -> torch.Tensor:
    """upfirdn2d_reference's result; the CUDA kernel when built and x is on a GPU."""
    from .build import cuda_extension

    extension = cuda_extension() if x.is_cuda else None
    if extension is None or x.dtype not in (torch.float32, torch.float16):
        return upfirdn2d_reference(x, f, up, down, padding, gain)
    _check(x, f, up, down, padding)
    return _Upfirdn2dCuda.apply(x, f, up, down, tuple(padding), gain)


def upsample2d(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """2x upsampling with filter f (gain 4 keeps the mean): [B, C, H, W] -> [B, C, 2H, 2W]."""
    if not x.is_cuda and _is_stylegan_filter(f):
        return _bilinear_upsample2d(x)
    return upfirdn2d(x, f, up=2, padding=_upsample_padding(f.shape[-1]), gain=4.0)


def filter_after_transposed_conv(x: torch.Tensor, f: torch.Tensor, bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The FIR step of StyleGAN2's upsampling 3x3 conv, plus an optional per-channel bias:
    [B, C, 2H+1, 2W+1] -> [B, C, 2H, 2W]."""
    if not x.is_cuda:  # the depthwise convolution adds the bias for free
        channels = x.shape[1]
        weight = (f * 4.0).flip([0, 1]).to(x.dtype)[None, None].repeat(channels, 1, 1, 1)
        return F.conv2d(x, weight, bias, padding=1, groups=channels)
    x = upfirdn2d(x, f, padding=(1, 1, 1, 1), gain=4.0)
    return x if bias is None else x + bias.reshape(1, -1, 1, 1)


def _upsample_padding(taps: int) -> tuple[int, int, int, int]:
    # Centres the filter on the zero-inserted signal so output pixel 2i+0.5 sits at input pixel i.
    before, after = (taps + 1) // 2, (taps - 2) // 2
    return (before, after, before, after)


def _is_stylegan_filter(f: torch.Tensor) -> bool:
    expected = setup_filter(STYLEGAN_TAPS)
    return f.shape == expected.shape and torch.allclose(f.detach().float().cpu(), expected)


def _bilinear_upsample2d(x: torch.Tensor) -> torch.Tensor:
    # With gain 4, the taps [1,3,3,1]/8 * 2 = [.25,.75,.75,.25] put output 2i at 0.75 x[i] + 0.25 x[i-1]
    # and 2i+1 at 0.75 x[i] + 0.25 x[i+1]: bilinear interpolation, with zeros (not edge copies) outside.
    padded = F.pad(x, [1, 1, 1, 1])
    up = F.interpolate(padded, scale_factor=2, mode="bilinear", align_corners=False)
    return up[:, :, 2:-2, 2:-2]


class _Upfirdn2dCuda(torch.autograd.Function):
    """Direct CUDA kernel (unverified on a GPU). The gradient of upfirdn2d is upfirdn2d with the
    flipped filter, up and down swapped and the padding mirrored, so backward reuses the kernel."""

    @staticmethod
    def forward(ctx, x, f, up, down, padding, gain):
        from .build import cuda_extension

        ctx.save_for_backward(f)
        ctx.params = (x.shape, up, down, padding, gain)
        f = f.to(device=x.device, dtype=x.dtype).contiguous()
        return cuda_extension().upfirdn2d(x.contiguous(), f, up, down, *padding, gain)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_y):
        (f,) = ctx.saved_tensors
        x_shape, up, down, padding, gain = ctx.params
        grad_padding = _gradient_padding(x_shape, f.shape, grad_y.shape, up, down, padding)
        grad_x = upfirdn2d(grad_y, f.flip([0, 1]), up=down, down=up, padding=grad_padding, gain=gain)
        return grad_x, None, None, None, None, None


def _gradient_padding(x_shape, f_shape, y_shape, up, down, padding) -> tuple[int, int, int, int]:
    left, right, top, bottom = padding
    fh, fw = f_shape
    height, width = x_shape[2], x_shape[3]
    out_h, out_w = y_shape[2], y_shape[3]
    grad_left = fw - left - 1
    grad_top = fh - top - 1
    grad_right = width * up - out_w * down + left - up + 1
    grad_bottom = height * up - out_h * down + top - up + 1
    return (grad_left, grad_right, grad_top, grad_bottom)
