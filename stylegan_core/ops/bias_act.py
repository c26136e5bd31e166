"""bias_act: add a per-channel bias, apply an activation, scale by a gain, clamp.

This is the elementwise tail of every StyleGAN2 layer. `bias_act_reference` is the definition of
correctness; on a CUDA tensor, once the extension is built (see `build.py`), the same computation
runs as one fused kernel (unverified: no GPU was available when it was written).
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

ACTIVATIONS = ("linear", "lrelu")
DEFAULT_GAINS = {"linear": 1.0, "lrelu": math.sqrt(2.0)}


def _check(x: torch.Tensor, bias: Optional[torch.Tensor], act: str, dim: int) -> None:
    if act not in ACTIVATIONS:
        raise ValueError(f"bias_act: unknown activation {act!r}; known: {ACTIVATIONS}")
    if bias is not None and (bias.dim() != 1 or bias.shape[0] != x.shape[dim]):
        raise ValueError(f"bias_act: bias of shape {list(bias.shape)} does not match dim {dim} of {list(x.shape)}")


def bias_act_reference(
    x: torch.Tensor,
    bias: Optional[torch.Tensor] = None,
    act: str = "linear",
    alpha: float = 0.2,
    gain: Optional[float] = None,
    clamp: Optional[float] = None,
    dim: int = 1,
    inplace: bool = False,
) -> torch.Tensor:
    """act(x + bias) * gain, clamped to [-clamp, clamp]; plain PyTorch, differentiable.

    inplace=True lets it overwrite x (a temporary of the caller): at high resolution a fresh
    output tensor costs as much as the arithmetic.
    """
    _check(x, bias, act, dim)
    if bias is not None:
        shape = [1] * x.dim()
        shape[dim] = -1
        x = x.add_(bias.reshape(shape)) if inplace else x + bias.reshape(shape)
        inplace = True  # from here on x is our own temporary
    if act == "lrelu":
        x = F.leaky_relu(x, alpha, inplace=inplace)
    gain = DEFAULT_GAINS[act] if gain is None else gain
    if gain != 1:
        x = x * gain
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return x


def bias_act(
    x: torch.Tensor,
    bias: Optional[torch.Tensor] = None,
    act: str = "linear",
    alpha: float = 0.2,
    gain: Optional[float] = None,
    clamp: Optional[float] = None,
    dim: int = 1,
    inplace: bool = False,
) -> torch.Tensor:
    """act(x + bias) * gain, clamped; the fused CUDA kernel when built, else the reference
    (which overwrites x when `inplace`, see bias_act_reference)."""
    from .build import cuda_extension

    extension = cuda_extension() if x.is_cuda else None
    if extension is None or x.dtype not in (torch.float32, torch.float16):
        return bias_act_reference(x, bias, act, alpha, gain, clamp, dim, inplace)
    _check(x, bias, act, dim)
    gain = DEFAULT_GAINS[act] if gain is None else gain
    return _BiasActCuda.apply(x, bias, act, alpha, gain, -1.0 if clamp is None else float(clamp), dim)


class _BiasActCuda(torch.autograd.Function):
    """Forward and input/bias gradients with the fused kernel (unverified on a GPU).

    The gradient needs only the output: lrelu's slope is read from the sign of y, and a clamped
    output (|y| == clamp) passes no gradient, as in the reference.
    """

    @staticmethod
    def forward(ctx, x, bias, act, alpha, gain, clamp, dim):
        from .build import cuda_extension

        extension = cuda_extension()
        x = x.contiguous()
        empty = x.new_empty([0])
        b = empty if bias is None else bias.to(x.dtype).contiguous()
        y = extension.bias_act(x, b, empty, ACTIVATIONS.index(act), alpha, gain, clamp, dim, False)
        ctx.save_for_backward(y)
        ctx.params = (act, alpha, gain, clamp, dim, bias is not None)
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_y):
        from .build import cuda_extension

        (y,) = ctx.saved_tensors
        act, alpha, gain, clamp, dim, has_bias = ctx.params
        grad_x = cuda_extension().bias_act(
            grad_y.contiguous(), y.new_empty([0]), y, ACTIVATIONS.index(act), alpha, gain, clamp, dim, True
        )
        grad_b = None
        if has_bias and ctx.needs_input_grad[1]:
            grad_b = grad_x.sum([d for d in range(grad_x.dim()) if d != dim])
        return grad_x, grad_b, None, None, None, None, None
