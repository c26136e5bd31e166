"""StyleGAN2's own layout and formulas (the common contract: test_generator_contract.py)."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from conftest import Widen, tiny_codes
from stylegan_core.models.generator import SynthesisState, build_generator
from stylegan_core.models.stylegan2 import (
    EqualizedLinear,
    StyleGAN2,
    StyledConv,
    ToRGB,
    demodulation_coefficients,
    modulated_conv2d,
    tiny_stylegan2,
)
from stylegan_core.ops.upfirdn2d import setup_filter, upfirdn2d_reference


@pytest.fixture(scope="module")
def tiny():
    return tiny_stylegan2(seed=0)


codes = tiny_codes


def test_w_plus_rows_follow_the_official_layout():
    generator = StyleGAN2(resolution=1024, z_dim=4, w_dim=4, channel_base=2048, channel_max=4, mapping_layers=1)
    assert generator.num_ws == 18
    rows = {layer.name: layer.rows for layer in generator.layers}
    assert rows["b4.conv1"] == (0,) and rows["b4.torgb"] == (1,)
    assert rows["b8.conv0"] == (1,) and rows["b8.conv1"] == (2,) and rows["b8.torgb"] == (3,)
    assert rows["b1024.conv0"] == (15,) and rows["b1024.conv1"] == (16,) and rows["b1024.torgb"] == (17,)
    assert [info.used for info in generator.describe_rows()] == [True] * 18
    channels = {layer.name: layer.weight.shape[0] for layer in generator.layers if isinstance(layer, StyledConv)}
    assert channels["b256.conv1"] == 4 and channels["b512.conv1"] == 4 and channels["b1024.conv1"] == 2


def test_equalized_linear_applies_the_runtime_gains():
    torch.manual_seed(0)
    layer = EqualizedLinear(6, 3, lr_multiplier=0.01, activation="lrelu")
    layer.bias.data.normal_()
    x = torch.randn(2, 6)
    pre = x @ (layer.weight * 0.01 / math.sqrt(6)).t() + layer.bias * 0.01
    torch.testing.assert_close(layer(x), F.leaky_relu(pre, 0.2) * math.sqrt(2))
    affine = EqualizedLinear(6, 3, bias_init=1.0)
    assert torch.equal(affine.bias, torch.ones(3))
    torch.testing.assert_close(affine(x), x @ (affine.weight / math.sqrt(6)).t() + 1)


def test_mapping_normalises_z_then_applies_the_mlp(tiny):
    z = torch.randn(3, tiny.z_dim) * 7  # the second-moment normalisation removes the scale
    x = z * (z.square().mean(1, keepdim=True) + 1e-8).rsqrt()
    for fc in tiny.mapping_mlp.fcs:
        x = F.leaky_relu(x @ (fc.weight * 0.01 / math.sqrt(fc.weight.shape[1])).t() + fc.bias * 0.01, 0.2) * math.sqrt(2)
    torch.testing.assert_close(tiny.mapping_network(z), x)
    torch.testing.assert_close(tiny.mapping(z), x.unsqueeze(1).repeat(1, tiny.num_ws, 1))


def per_sample_reference(x, weight, styles, demodulate, upsample, bias, noise):
    """The textbook formula: one modulated (and demodulated, eps 1e-8) weight per sample."""
    outputs = []
    for sample in range(x.shape[0]):
        w = weight * styles[sample].view(1, -1, 1, 1)
        if demodulate:
            w = w / torch.sqrt(w.square().sum(dim=[1, 2, 3], keepdim=True) + 1e-8)
        xs = x[sample : sample + 1]
        if upsample:
            y = F.conv_transpose2d(xs, w.transpose(0, 1), stride=2)
            y = upfirdn2d_reference(y, setup_filter(), padding=(1, 1, 1, 1), gain=4.0)
        else:
            y = F.conv2d(xs, w, padding=w.shape[-1] // 2)
        outputs.append(y)
    return torch.cat(outputs) + bias.view(1, -1, 1, 1) + noise


@pytest.mark.parametrize("weight_scale", [1.0, 1e-5])
@pytest.mark.parametrize("upsample", [False, True])
@pytest.mark.parametrize("batch,size,styles_need_grad", [(1, 5, False), (1, 5, True), (1, 12, True), (2, 5, False)])
def test_modulated_conv_matches_the_per_sample_weight_formula(weight_scale, upsample, batch, size, styles_need_grad):
    # Covers both evaluation strategies (modulated weight; scaled activations), values and gradients.
    # With a tiny weight the demodulation epsilon (1e-8) dominates, so a different epsilon fails.
    torch.manual_seed(1)
    x, weight = torch.randn(batch, 3, size, size), torch.randn(4, 3, 3, 3) * weight_scale
    styles = torch.randn(batch, 3).requires_grad_(styles_need_grad)
    out_size = 2 * size if upsample else size
    bias, noise = torch.randn(4), torch.randn(1, 1, out_size, out_size)
    demodulation = demodulation_coefficients(weight.square().sum(dim=[2, 3]), styles)
    got = modulated_conv2d(x, weight, styles, demodulation, bias, noise, upsample, setup_filter())
    expected = per_sample_reference(x, weight, styles, True, upsample, bias, noise)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    if styles_need_grad:
        grad = torch.randn_like(got)
        torch.testing.assert_close(torch.autograd.grad(got, styles, grad)[0],
                                   torch.autograd.grad(expected, styles, grad)[0], rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("kernel", [1, 3])
@pytest.mark.parametrize("batch", [1, 2])
def test_modulated_conv_without_demodulation(kernel, batch):
    torch.manual_seed(3)
    x, weight, styles, bias = torch.randn(batch, 5, 6, 6), torch.randn(3, 5, kernel, kernel), torch.randn(batch, 5), torch.randn(3)
    got = modulated_conv2d(x.contiguous(memory_format=torch.channels_last), weight, styles, bias=bias)
    torch.testing.assert_close(got, per_sample_reference(x, weight, styles, False, False, bias, 0.0), rtol=1e-5, atol=1e-5)


def test_noise_modes(tiny):
    ws = codes(tiny)
    try:
        tiny.noise_mode = "const"
        const = tiny.synthesis(ws)
        assert torch.equal(const, tiny.synthesis(ws))
        tiny.noise_mode = "random"
        first, second = tiny.synthesis(ws), tiny.synthesis(ws)
        assert not torch.equal(first, second)
        tiny.noise_mode = "none"
        without = tiny.synthesis(ws)
        with torch.no_grad():
            strengths = [layer.noise_strength.clone() for layer in tiny.layers if isinstance(layer, StyledConv)]
            for layer in tiny.layers:
                if isinstance(layer, StyledConv):
                    layer.noise_strength.zero_()
            tiny.noise_mode = "const"
            assert torch.equal(tiny.synthesis(ws), without)
            for layer, strength in zip([l for l in tiny.layers if isinstance(l, StyledConv)], strengths):
                layer.noise_strength.copy_(strength)
        assert not torch.equal(const, without)
        with pytest.raises(ValueError, match="noise_mode"):
            tiny.noise_mode = "loud"
    finally:
        tiny.noise_mode = "const"


def test_styled_conv_adds_noise_after_demodulation_then_bias_act(tiny):
    layer = next(l for l in tiny.layers if l.name == "b8.conv0")
    torch.manual_seed(2)
    x, ws = torch.randn(1, layer.weight.shape[1], 4, 4), codes(tiny)
    styles = layer.affine(ws[:, layer.rows[0]])
    pre = per_sample_reference(x, layer.weight, styles, True, True, layer.bias, layer.noise_const * layer.noise_strength)
    torch.testing.assert_close(layer(SynthesisState(x), layer.styles(ws)).x, F.leaky_relu(pre, 0.2) * math.sqrt(2))


def test_torgb_adds_to_the_upsampled_skip_image(tiny):
    layer = next(l for l in tiny.layers if l.name == "b16.torgb")
    assert isinstance(layer, ToRGB)
    x, img, ws = torch.randn(1, layer.weight.shape[1], 16, 16), torch.randn(1, 3, 8, 8), codes(tiny)
    alone = layer(SynthesisState(x), layer.styles(ws)).img
    styles = layer.affine(ws[:, layer.rows[0]]) / math.sqrt(layer.weight.shape[1])
    expected = torch.einsum("bihw,oi,bi->bohw", x, layer.weight[:, :, 0, 0], styles) + layer.bias.view(1, 3, 1, 1)
    torch.testing.assert_close(alone, expected)
    summed = layer(SynthesisState(x, img), layer.styles(ws)).img
    assert summed.shape == (1, 3, 16, 16)
    assert not torch.allclose(summed, alone)


@pytest.mark.parametrize("mode", ["random", "none"])  # "const": the generator-contract suite
def test_every_noise_mode_works_on_wider_inputs_for_panoramas(mode):
    generator = tiny_stylegan2(seed=0)
    generator.noise_mode = mode
    wide = generator.synthesis(codes(generator), Widen(2))
    assert wide.shape == (1, 3, 32, 48) and torch.isfinite(wide).all()


def test_rendering_in_inference_mode_then_optimising_works():
    generator = tiny_stylegan2(seed=2)
    ws = codes(generator)
    with torch.inference_mode():
        rendered = generator.synthesis(ws)
    codes_to_fit = ws.clone().requires_grad_(True)
    image = generator.synthesis(codes_to_fit)
    image.square().mean().backward()
    assert codes_to_fit.grad is not None
    torch.testing.assert_close(image.detach(), rendered, rtol=1e-5, atol=1e-5)
    with torch.no_grad():  # a weight changed in place is noticed (the cached demodulation energy is refreshed)
        generator.layers[0].weight[:, 0] *= 3
    rebuilt = build_generator("stylegan2", generator.config).requires_grad_(False)
    rebuilt.load_state_dict(generator.state_dict())
    torch.testing.assert_close(generator.synthesis(ws), rebuilt.synthesis(ws))
    assert not torch.allclose(generator.synthesis(ws), rendered)


def test_bad_configs_are_rejected():
    with pytest.raises(ValueError, match="power of two"):
        StyleGAN2(resolution=48)
    with pytest.raises(ValueError, match="no channels"):
        StyleGAN2(resolution=1024, channel_base=512)


