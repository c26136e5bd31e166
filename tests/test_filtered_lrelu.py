"""filtered_lrelu: the reference against a straightforward definition (loops over output pixels),
separable against 2-D filters, correlation against convolution, and the impl switch."""
from __future__ import annotations

import importlib

import pytest
import torch
from test_ops import naive_upfirdn2d

from stylegan_core.ops.filtered_lrelu import (
    FILTERED_LRELU_CUDA_STATUS,
    filtered_lrelu,
    filtered_lrelu_by_kernels,
    filtered_lrelu_reference,
    parse_padding,
)


def naive_filtered_lrelu(x, fu, fd, b, up, down, padding, gain, slope, clamp):
    """The op's definition, step by step, in float64 with explicit loops."""
    x = x.double() + b.double().reshape(1, -1, 1, 1)
    x = naive_upfirdn2d(x, fu, up, 1, padding, up * up)
    x = torch.where(x >= 0, x, x * slope) * gain
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return naive_upfirdn2d(x, fd, 1, down, (0, 0, 0, 0), 1.0)


def random_filter(taps, seed, separable):
    g = torch.Generator().manual_seed(seed)
    f = torch.rand(taps, generator=g) + 0.1
    return f if separable else torch.outer(f, torch.rand(taps, generator=g) + 0.1)


CASES = [  # (up, down, padding, up taps, down taps, clamp)
    (1, 1, (1, 1, 1, 1), 1, 1, None),
    (2, 2, (5, 4, 5, 4), 6, 6, None),
    (2, 1, (3, 2, 4, 1), 4, 3, 0.7),
    (1, 2, (2, 3, 2, 3), 3, 4, None),
    (4, 2, (9, 8, 7, 10), 8, 4, 1.5),
    (2, 2, (-1, 2, 0, -2), 4, 4, None),
]


@pytest.mark.parametrize("up,down,padding,up_taps,down_taps,clamp", CASES)
def test_reference_matches_the_definition_with_2d_filters(up, down, padding, up_taps, down_taps, clamp):
    x = torch.randn(2, 3, 7, 6, generator=torch.Generator().manual_seed(1))
    b = torch.randn(3, generator=torch.Generator().manual_seed(2))
    fu = random_filter(up_taps, 3, separable=False)
    fd = random_filter(down_taps, 4, separable=False)
    got = filtered_lrelu_reference(x, fu, fd, b, up, down, padding, gain=1.3, slope=0.2, clamp=clamp)
    expected = naive_filtered_lrelu(x, fu, fd, b, up, down, padding, 1.3, 0.2, clamp)
    assert got.shape == expected.shape
    torch.testing.assert_close(got.double(), expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("up,down,padding,up_taps,down_taps,clamp", CASES)
def test_separable_filters_equal_their_outer_product(up, down, padding, up_taps, down_taps, clamp):
    x = torch.randn(1, 2, 6, 8, generator=torch.Generator().manual_seed(5))
    fu, fd = random_filter(up_taps, 6, separable=True), random_filter(down_taps, 7, separable=True)
    got = filtered_lrelu_reference(x, fu, fd, None, up, down, padding, clamp=clamp)
    expected = filtered_lrelu_reference(x, torch.outer(fu, fu), torch.outer(fd, fd), None, up, down, padding,
                                        clamp=clamp)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_none_filters_are_identity_filters():
    x = torch.randn(1, 2, 5, 5, generator=torch.Generator().manual_seed(8))
    one = torch.ones(1, 1)
    got = filtered_lrelu_reference(x, None, None, None, 2, 1, (0, 0, 0, 0), gain=1.0, slope=0.5)
    torch.testing.assert_close(got, filtered_lrelu_reference(x, one, one, None, 2, 1, 0, gain=1.0, slope=0.5))
    # With up 2 and no filter, every other pixel is zero and the rest is 4 * lrelu(x) (the up^2 gain).
    expected = torch.where(x >= 0, x, 0.5 * x) * 4
    torch.testing.assert_close(got[:, :, ::2, ::2], expected)
    assert got[:, :, 1::2].abs().max() == 0


def test_flip_filter_correlates():
    x = torch.randn(1, 1, 6, 6, generator=torch.Generator().manual_seed(9))
    fu, fd = random_filter(3, 10, separable=False), random_filter(2, 11, separable=False)
    got = filtered_lrelu_reference(x, fu, fd, None, 2, 2, (2, 2, 2, 2), flip_filter=True)
    expected = filtered_lrelu_reference(x, fu.flip([0, 1]), fd.flip([0, 1]), None, 2, 2, (2, 2, 2, 2))
    torch.testing.assert_close(got, expected)
    assert not torch.allclose(got, filtered_lrelu_reference(x, fu, fd, None, 2, 2, (2, 2, 2, 2)))


def test_impl_switch_and_argument_checks():
    x = torch.randn(1, 2, 4, 4)
    f = torch.tensor([0.25, 0.5, 0.25])
    torch.testing.assert_close(filtered_lrelu(x, f, f, impl="cuda", padding=2), filtered_lrelu(x, f, f, impl="ref", padding=2))
    assert "unverified" in FILTERED_LRELU_CUDA_STATUS
    with pytest.raises(ValueError, match="impl"):
        filtered_lrelu(x, impl="triton")
    with pytest.raises(ValueError, match="bias"):
        filtered_lrelu(x, b=torch.zeros(3))
    with pytest.raises(ValueError, match="no output pixels"):
        filtered_lrelu(x, f, f, padding=-3)
    assert parse_padding(3) == (3, 3, 3, 3) and parse_padding((1, 2)) == (1, 1, 2, 2)


@pytest.mark.parametrize("up,down,padding,up_taps,down_taps,clamp", CASES)
@pytest.mark.parametrize("separable, flip", [(True, False), (False, True)])
def test_the_kernel_composition_matches_the_reference(monkeypatch, up, down, padding, up_taps, down_taps, clamp,
                                                     separable, flip):
    """The GPU path's composition of upfirdn2d and bias_act (here on their CPU references: the
    kernels themselves are compared with the references in test_ops on a GPU), chosen by impl='cuda'."""
    module = importlib.import_module("stylegan_core.ops.filtered_lrelu")  # the package exports a function of that name
    x = torch.randn(2, 3, 9, 11, generator=torch.Generator().manual_seed(21))
    b = torch.randn(3, generator=torch.Generator().manual_seed(22))
    fu, fd = random_filter(up_taps, 23, separable), random_filter(down_taps, 24, separable)
    expected = filtered_lrelu_reference(x, fu, fd, b, up, down, padding, gain=1.3, clamp=clamp, flip_filter=flip)
    calls = []
    monkeypatch.setattr(module, "_cuda_kernels_ready", lambda tensor: True)
    monkeypatch.setattr(module, "filtered_lrelu_by_kernels",
                        lambda *args: calls.append(args) or filtered_lrelu_by_kernels(*args))
    got = filtered_lrelu(x, fu, fd, b, up, down, padding, gain=1.3, clamp=clamp, flip_filter=flip, impl="cuda")
    assert len(calls) == 1
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_gradient_flows_to_input_and_bias():
    x = torch.randn(1, 2, 5, 5, requires_grad=True)
    b = torch.randn(2, requires_grad=True)
    f = torch.tensor([0.25, 0.5, 0.25])
    filtered_lrelu(x, f, f, b, up=2, down=2, padding=2, clamp=1.0).square().sum().backward()
    assert x.grad.abs().sum() > 0 and b.grad.abs().sum() > 0


@pytest.mark.parametrize("up,down,padding,up_taps,down_taps,clamp", CASES)
@pytest.mark.parametrize("separable", [True, False])
def test_matrix_product_path_matches_the_reference(up, down, padding, up_taps, down_taps, clamp, separable):
    x = torch.randn(2, 3, 9, 11, generator=torch.Generator().manual_seed(12))
    b = torch.randn(3, generator=torch.Generator().manual_seed(13))
    fu, fd = random_filter(up_taps, 14, separable), random_filter(down_taps, 15, separable)
    expected = filtered_lrelu_reference(x, fu, fd, b, up, down, padding, gain=1.3, clamp=clamp)
    got = filtered_lrelu(x, fu, fd, b, up, down, padding, gain=1.3, clamp=clamp, impl="cuda")
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_matrix_product_path_with_stylegan3_sized_filters():
    """The shapes of a StyleGAN3 layer: up 2 (12 taps), down 2 (a radially symmetric 12x12 filter)."""
    from stylegan_core.models.stylegan3 import jinc_lowpass, kaiser_lowpass

    x = torch.randn(1, 4, 20, 20, generator=torch.Generator().manual_seed(16))
    fu, fd = kaiser_lowpass(12, 4.0, 4.0, 32), jinc_lowpass(12, 5.0, 6.0, 32)
    expected = filtered_lrelu_reference(x, fu, fd, None, 2, 2, (9, 8, 9, 8), clamp=0.5)
    torch.testing.assert_close(filtered_lrelu(x, fu, fd, None, 2, 2, (9, 8, 9, 8), clamp=0.5), expected,
                               atol=1e-6, rtol=1e-5)
