"""The custom ops: references against straightforward definitions, fast CPU paths against the
references, the CUDA gradient formula (checked here on CPU), and the never-fatal build manager."""
from __future__ import annotations

import itertools
import math

import pytest
import torch

from stylegan_core.ops import build
from stylegan_core.ops.bias_act import bias_act, bias_act_reference
from stylegan_core.ops.filtered_lrelu import filtered_lrelu, filtered_lrelu_reference
from stylegan_core.ops.upfirdn2d import (
    _gradient_padding,
    filter_after_transposed_conv,
    setup_filter,
    upfirdn2d,
    upfirdn2d_reference,
    upsample2d,
)


def naive_upfirdn2d(x, f, up, down, padding, gain):
    """Loops over output pixels: y[o] = gain * sum_t u[o*down + t - pad] * f[K-1-t], u zero-inserted.
    In float64 (test_filtered_lrelu chains it); only outputs whose footprint lies in the padded signal."""
    left, right, top, bottom = padding
    batch, channels, height, width = x.shape
    fh, fw = f.shape
    out_h = (height * up + top + bottom - fh) // down + 1
    out_w = (width * up + left + right - fw) // down + 1
    y = torch.zeros(batch, channels, out_h, out_w, dtype=torch.float64)
    for oy, ox, ty, tx in itertools.product(range(out_h), range(out_w), range(fh), range(fw)):
        uy, ux = oy * down + ty - top, ox * down + tx - left
        if 0 <= uy < height * up and 0 <= ux < width * up and uy % up == 0 and ux % up == 0:
            y[:, :, oy, ox] += x[:, :, uy // up, ux // up].double() * f[fh - 1 - ty, fw - 1 - tx].double()
    return y * gain


CASES = [  # (up, down, padding, filter taps)
    (1, 1, (0, 0, 0, 0), (1, 2)),
    (2, 1, (2, 1, 2, 1), (1, 3, 3, 1)),
    (1, 2, (1, 1, 1, 1), (1, 3, 3, 1)),
    (2, 1, (1, 1, 1, 1), (1, 3, 3, 1)),
    (3, 2, (2, -1, 0, 3), (1, 2, 3)),
]


@pytest.mark.parametrize("up,down,padding,taps", CASES)
def test_upfirdn2d_reference_matches_the_definition(up, down, padding, taps):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 5, 4)
    f = torch.rand(len(taps), len(taps)) + torch.outer(torch.tensor(taps, dtype=torch.float32), torch.ones(len(taps)))
    expected = naive_upfirdn2d(x, f, up, down, padding, gain=1.5).float()
    torch.testing.assert_close(upfirdn2d_reference(x, f, up, down, padding, gain=1.5), expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(upfirdn2d(x, f, up, down, padding, gain=1.5), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("up,down,padding,taps", CASES)
def test_gradient_formula_of_the_cuda_path(up, down, padding, taps):
    # The CUDA backward computes the input gradient as another upfirdn2d; check that formula on CPU.
    torch.manual_seed(1)
    x = torch.randn(1, 2, 6, 5, requires_grad=True)
    f = torch.rand(len(taps), len(taps))
    y = upfirdn2d_reference(x, f, up, down, padding, gain=2.0)
    grad_y = torch.randn_like(y)
    (expected,) = torch.autograd.grad(y, x, grad_y)
    grad_padding = _gradient_padding(x.shape, f.shape, y.shape, up, down, padding)
    got = upfirdn2d_reference(grad_y, f.flip([0, 1]), up=down, down=up, padding=grad_padding, gain=2.0)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_setup_filter_is_the_normalised_outer_product():
    f = setup_filter()
    expected = torch.tensor([1.0, 3.0, 3.0, 1.0])
    torch.testing.assert_close(f, torch.outer(expected, expected) / 64)
    with pytest.raises(ValueError):
        setup_filter([])


@pytest.mark.parametrize("shape", [(1, 3, 4, 4), (2, 5, 3, 7)])
def test_fast_cpu_upsample_is_the_reference(shape):
    torch.manual_seed(2)
    x = torch.randn(*shape, requires_grad=True)
    f = setup_filter()
    fast = upsample2d(x, f)
    reference = upfirdn2d_reference(x, f, up=2, padding=(2, 1, 2, 1), gain=4.0)
    torch.testing.assert_close(fast, reference, rtol=1e-5, atol=1e-5)
    grad = torch.randn_like(fast)
    torch.testing.assert_close(torch.autograd.grad(fast, x, grad)[0], torch.autograd.grad(reference, x, grad)[0])
    # A constant image stays constant away from the border (gain 4 preserves the mean).
    flat = upsample2d(torch.ones(1, 1, 6, 6), f)
    torch.testing.assert_close(flat[..., 2:-2, 2:-2], torch.ones(1, 1, 8, 8))


def test_filter_after_transposed_conv_shape_and_values():
    x = torch.randn(1, 2, 9, 7)
    f = setup_filter()
    bias = torch.tensor([0.5, -2.0])
    y = filter_after_transposed_conv(x, f, bias)
    assert y.shape == (1, 2, 8, 6)
    expected = naive_upfirdn2d(x, f, 1, 1, (1, 1, 1, 1), 4.0).float() + bias.view(1, 2, 1, 1)
    torch.testing.assert_close(y, expected, rtol=1e-5, atol=1e-5)


def test_bias_act_reference_matches_the_definition():
    torch.manual_seed(3)
    x, bias = torch.randn(2, 4, 3, 3), torch.randn(4)
    pre = x + bias.view(1, 4, 1, 1)
    lrelu = torch.where(pre > 0, pre, 0.2 * pre) * math.sqrt(2)
    torch.testing.assert_close(bias_act_reference(x, bias, "lrelu"), lrelu)
    torch.testing.assert_close(bias_act_reference(x, bias, "lrelu", clamp=0.5), lrelu.clamp(-0.5, 0.5))
    torch.testing.assert_close(bias_act_reference(x, bias, "linear", gain=3.0), pre * 3)
    torch.testing.assert_close(bias_act_reference(x.transpose(1, 3), bias, "linear", dim=3), pre.transpose(1, 3))
    torch.testing.assert_close(bias_act(x, bias, "lrelu", clamp=0.5), lrelu.clamp(-0.5, 0.5))
    copy = x.clone()
    assert bias_act(copy, None, "lrelu", gain=1.0, inplace=True) is copy  # the caller's temporary is reused
    torch.testing.assert_close(copy, torch.where(x > 0, x, 0.2 * x))
    with pytest.raises(ValueError, match="unknown activation"):
        bias_act_reference(x, bias, "swish")
    with pytest.raises(ValueError, match="does not match"):
        bias_act_reference(x, torch.zeros(3))


# -- the build manager ---------------------------------------------------------------------------------
@pytest.fixture
def fresh_build_state(monkeypatch):
    monkeypatch.setattr(build, "_state", {"status": "reference", "reason": "build not started", "module": None})
    return build._state


def test_without_a_gpu_the_reference_serves(fresh_build_state, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert build.cuda_ops_status() == "CUDA ops: reference (build not started)"
    assert build.start_cuda_ops_build() == "CUDA ops: reference (no CUDA device)"
    assert build.cuda_extension() is None


def test_a_failed_build_is_recorded_once_and_never_retried(fresh_build_state, monkeypatch, tmp_path):
    import torch.utils.cpp_extension

    calls = []

    def failing_load(**kwargs):
        calls.append(kwargs["name"])
        raise RuntimeError("nvcc: command not found\nmore details")

    monkeypatch.setattr(build, "_unavailable_reason", lambda: None)
    monkeypatch.setattr(build, "_gpu_archs", lambda: "8.0")
    monkeypatch.setattr(torch.utils.cpp_extension, "load", failing_load)
    monkeypatch.setenv(build.CACHE_ENV, str(tmp_path))
    status = build.start_cuda_ops_build(background=False)
    assert status.startswith("CUDA ops: reference (build failed: RuntimeError: nvcc: command not found")
    assert (tmp_path / build.build_key() / "build_error.log").exists()
    assert build.start_cuda_ops_build(background=False) == status
    assert len(calls) == 1 and build.cuda_extension() is None
    x = torch.randn(1, 2, 3, 3)  # and the ops keep working
    torch.testing.assert_close(bias_act(x, torch.zeros(2)), x)


def test_build_key_depends_on_the_sources(monkeypatch, tmp_path):
    key = build.build_key()
    assert key == build.build_key() and len(key) == 16
    for name in build.SOURCES:
        (tmp_path / name).write_bytes((build.SOURCE_DIR / name).read_bytes())
    (tmp_path / build.SOURCES[-1]).write_bytes(b"// changed\n" + (tmp_path / build.SOURCES[-1]).read_bytes())
    monkeypatch.setattr(build, "SOURCE_DIR", tmp_path)
    assert build.build_key() != key


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_ops_match_the_reference_on_a_gpu():
    status = build.start_cuda_ops_build(background=False)
    assert status.startswith("CUDA ops: built; filtered_lrelu: upfirdn2d and bias_act kernels"), status
    torch.manual_seed(4)
    x = torch.randn(2, 3, 8, 8, device="cuda", requires_grad=True)
    bias = torch.randn(3, device="cuda", requires_grad=True)
    f = setup_filter().cuda()
    for fast, reference in (
        (lambda: bias_act(x, bias, "lrelu", clamp=1.0), lambda: bias_act_reference(x, bias, "lrelu", clamp=1.0)),
        (lambda: upfirdn2d(x, f, 2, 1, (2, 1, 2, 1), 4.0), lambda: upfirdn2d_reference(x, f, 2, 1, (2, 1, 2, 1), 4.0)),
        (lambda: upfirdn2d(x, f, 1, 2, (1, 1, 1, 1)), lambda: upfirdn2d_reference(x, f, 1, 2, (1, 1, 1, 1))),
        (lambda: filtered_lrelu(x, f, f, bias, 2, 2, 2, clamp=1.0),  # StyleGAN3's op on the two kernels
         lambda: filtered_lrelu_reference(x, f, f, bias, 2, 2, 2, clamp=1.0)),
    ):
        y_fast, y_ref = fast(), reference()
        torch.testing.assert_close(y_fast, y_ref)
        grad = torch.randn_like(y_ref)
        torch.testing.assert_close(torch.autograd.grad(y_fast, x, grad), torch.autograd.grad(y_ref, x, grad))
