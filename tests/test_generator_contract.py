"""The contract every architecture implements (stylegan_core/generator.py), checked on the tiny
model of each registered architecture (`tiny` in conftest.py runs every test once per model)."""
import pytest
import torch

from conftest import TINY_MODELS, Widen, tiny_codes, tiny_model
from stylegan_core.editing import feature_blend as fb
from stylegan_core.loading.export import read_generator_file, save_generator
from stylegan_core.models.generator import LayerEditor, SynthesisState, architectures, build_generator


def render(generator, ws=None, editor=None, **kwargs):
    with torch.no_grad():
        return generator.synthesis(ws, editor, **kwargs)


def test_every_registered_architecture_has_a_tiny_model():
    assert set(TINY_MODELS) == set(architectures())


# -- shapes, determinism, configs --------------------------------------------------------------
def test_codes_and_images_have_the_documented_shapes(tiny):
    ws = tiny_codes(tiny, batch=3)
    assert ws.shape == (3, tiny.num_ws, tiny.w_dim)
    assert tiny.w_avg.shape == (tiny.w_dim,) and tiny.mean_ws(2).shape == (2, tiny.num_ws, tiny.w_dim)
    image = render(tiny, ws)
    assert image.shape == (3, 3, tiny.resolution, tiny.resolution)
    assert torch.isfinite(image).all() and image.std() > 0.05
    assert not torch.equal(image[0], image[1])


def test_tiny_model_is_small_and_deterministic_per_seed(tiny):
    again, other = tiny_model(tiny.arch, 0), tiny_model(tiny.arch, 1)
    for key, value in tiny.state_dict().items():
        assert torch.equal(value, again.state_dict()[key]), key
    assert any(not torch.equal(v, other.state_dict()[k]) for k, v in tiny.state_dict().items())
    assert sum(t.numel() for t in tiny.state_dict().values()) < 20_000


def test_batch_items_are_independent(tiny):
    ws = tiny_codes(tiny, batch=3)
    together = render(tiny, ws)
    alone = torch.cat([render(tiny, ws[i:i + 1]) for i in range(3)])
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-5)


def test_config_rebuilds_the_model_and_survives_export(tiny, tmp_path):
    ws = tiny_codes(tiny)
    rebuilt = build_generator(tiny.arch, tiny.config).eval().requires_grad_(False)
    rebuilt.load_state_dict(tiny.state_dict())
    assert torch.equal(render(rebuilt, ws), render(tiny, ws))
    loaded = read_generator_file(save_generator(tiny, tmp_path / "tiny.safetensors"))
    assert type(loaded) is type(tiny) and loaded.config == tiny.config
    assert torch.equal(loaded.w_avg, tiny.w_avg)
    assert torch.equal(render(loaded, ws), render(tiny, ws))


def test_bad_codes_are_rejected(tiny):
    with pytest.raises(ValueError, match="codes of shape"):
        tiny.synthesis(torch.zeros(1, tiny.num_ws + 1, tiny.w_dim))
    with pytest.raises(ValueError, match="z must have shape"):
        tiny.mapping(torch.zeros(1, tiny.z_dim + 1))


# -- rows ----------------------------------------------------------------------------------------
def test_row_description_matches_the_layers(tiny):
    rows = tiny.describe_rows()
    assert [info.row for info in rows] == list(range(tiny.num_ws))
    for info in rows:
        driven = [layer for layer in tiny.layers if info.row in layer.rows]
        assert info.layers == tuple(layer.name for layer in driven)
        assert info.resolution == max((layer.resolution for layer in driven), default=0)
    assert rows[0].used and max(info.resolution for info in rows) == tiny.resolution


def test_unused_rows_change_nothing_and_used_rows_change_the_image(tiny):
    ws = tiny_codes(tiny)
    image = render(tiny, ws)
    for info in tiny.describe_rows():
        changed = ws.clone()
        changed[:, info.row] += 3 * torch.randn_like(changed[:, info.row])
        difference = (render(tiny, changed) - image).abs().max().item()
        if info.used:
            assert difference > 1e-4, f"row {info.row} drives {info.layers} but changes nothing"
        else:
            assert difference == 0.0, f"unused row {info.row} changed the image"


def test_gradient_reaches_every_used_row_and_no_weight(tiny):
    ws = tiny_codes(tiny).requires_grad_(True)
    tiny.synthesis(ws).square().mean().backward()
    norms = ws.grad.norm(dim=(0, 2))
    for info in tiny.describe_rows():
        assert bool(norms[info.row] > 0) == info.used, info
    assert all(p.grad is None for p in tiny.parameters())


# -- editors -------------------------------------------------------------------------------------
class Recorder(LayerEditor):
    """Runs every hook unchanged and records what it saw."""

    def __init__(self):
        self.calls = []

    def styles(self, index, layer, s):
        self.calls.append(("styles", index, layer.name))
        return s

    def layer(self, index, layer, state, s):
        self.calls.append(("layer", index, layer.name))
        return layer(state, s)


def test_identity_editor_is_bit_exact_and_sees_every_layer_in_order(tiny):
    ws = tiny_codes(tiny, batch=2)
    recorder = Recorder()
    assert torch.equal(render(tiny, ws, recorder), render(tiny, ws))
    assert torch.equal(render(tiny, ws, LayerEditor()), render(tiny, ws))
    expected = [(hook, i, layer.name) for i, layer in enumerate(tiny.layers) for hook in ("styles", "layer")]
    assert recorder.calls == expected


@pytest.mark.parametrize("extra", [1.0, 0.5])  # 0.5: noise maps tiled and cropped
def test_layers_work_on_wider_inputs_for_panoramas(tiny, extra):
    columns = round(extra * tiny.input_state(1).x.shape[-1])
    wide = render(tiny, tiny_codes(tiny, batch=2), Widen(columns))
    assert wide.shape == (2, 3, tiny.resolution, round((1 + extra) * tiny.resolution))
    assert torch.isfinite(wide).all()


@pytest.mark.parametrize("alpha, branch", [(0.0, 0), (1.0, 1)])
def test_blend_with_alpha_zero_or_one_is_a_or_b_bit_for_bit(tiny, alpha, branch):
    ws = tiny_codes(tiny, batch=2, psi=0.8)
    blended = fb.feature_blend(tiny, ws[:1], ws[1:], alpha)
    assert torch.equal(blended, render(tiny, ws[branch:branch + 1]))


# -- styles (S space) ----------------------------------------------------------------------------
def test_styles_round_trip_is_bit_exact(tiny):
    ws = tiny_codes(tiny, batch=2)
    styles = tiny.styles(ws)
    assert len(styles) == len(tiny.layers)
    assert torch.equal(render(tiny, styles=styles), render(tiny, ws))


def test_style_description_matches_the_styles(tiny):
    ws = tiny_codes(tiny, batch=2)
    infos = tiny.describe_styles()
    assert [info.index for info in infos] == list(range(len(tiny.layers)))
    for info, layer, s in zip(infos, tiny.layers, tiny.styles(ws)):
        assert (info.layer, info.row, info.resolution) == (layer.name, layer.rows[0], layer.resolution)
        assert s.shape == (2, info.channels) == (2, layer.style_channels)


def test_styles_are_the_effective_affine_of_the_layers_row(tiny):
    ws = tiny_codes(tiny, batch=2)
    for layer, s in zip(tiny.layers, tiny.styles(ws)):
        matrix, bias = layer.affine_matrix(), layer.affine_bias()
        assert matrix.shape == (layer.style_channels, tiny.w_dim) and bias.shape == (layer.style_channels,)
        torch.testing.assert_close(s, ws[:, layer.rows[0]] @ matrix.t() + bias, rtol=1e-5, atol=1e-6)


class ScaleChannel(LayerEditor):
    def __init__(self, index, channel, factor):
        self.index, self.channel, self.factor = index, channel, factor

    def styles(self, index, layer, s):
        if index != self.index:
            return s
        s = s.clone()
        s[:, self.channel] *= self.factor
        return s


def test_a_style_hook_edit_equals_rendering_the_edited_styles(tiny):
    ws = tiny_codes(tiny)
    index = len(tiny.layers) // 2
    edited = render(tiny, ws, ScaleChannel(index, 0, 3.0))
    assert not torch.equal(edited, render(tiny, ws))
    styles = tiny.styles(ws)
    styles[index] = styles[index].clone()
    styles[index][:, 0] *= 3.0
    assert torch.equal(edited, render(tiny, styles=styles))


def test_wrong_styles_are_rejected(tiny):
    ws = tiny_codes(tiny)
    styles = tiny.styles(ws)
    with pytest.raises(ValueError, match="styles of shapes"):
        tiny.synthesis(styles=styles[:-1])
    with pytest.raises(ValueError, match="styles of shapes"):
        tiny.synthesis(styles=styles[:-1] + [torch.zeros(1, styles[-1].shape[1] + 1)])
    with pytest.raises(ValueError, match="styles of shapes"):
        tiny.synthesis(styles=[s.expand(2, -1) if i else s for i, s in enumerate(styles)])
    with pytest.raises(ValueError, match="either ws"):
        tiny.synthesis(ws, styles=styles)
    with pytest.raises(ValueError, match="either ws"):
        tiny.synthesis()


def test_gradient_reaches_the_styles(tiny):
    styles = [s.clone().requires_grad_(True) for s in tiny.styles(tiny_codes(tiny))]
    tiny.synthesis(styles=styles).square().mean().backward()
    assert all(s.grad is not None and s.grad.abs().sum() > 0 for s in styles)


def test_synthesis_state_map_keeps_missing_tensors_missing():
    state = SynthesisState(torch.ones(1, 2, 2, 2)).map(lambda t: t * 2)
    assert state.img is None and torch.equal(state.x, torch.full((1, 2, 2, 2), 2.0))
