"""StyleGAN3: the layer schedule and filter design, the user transform, and loading NVlabs pickles.

The pickles are built here in NVlabs' structure (persistent objects named through a fake
`torch_utils.persistence`, with `_parameters`, `_buffers`, `_modules`, `_init_kwargs` and the plain
attributes NVlabs' layers keep), from a tiny model's modules with hand-written NVlabs names. The
one-off comparison with NVIDIA's own code is recorded in benchmarks/results/stylegan3.md.
"""
from __future__ import annotations

import collections
import math
import pickle
import sys
from dataclasses import asdict

import pytest
import torch

from conftest import EasyDict, _reconstruct_persistent_obj
from conftest import Widen, tiny_codes
from stylegan_core.loading.files import read_checkpoint
from stylegan_core.loading.safe_pickle import CheckpointError
from stylegan_core.models.stylegan3 import (
    StyleGAN3,
    TransformError,
    jinc_lowpass,
    kaiser_lowpass,
    layer_specs,
    tiny_stylegan3,
    transform_matrix,
)


def render(generator, ws):
    with torch.no_grad():
        return generator.synthesis(ws)


# -- schedule and filters ------------------------------------------------------------------------
# Layer names of the published 1024 px generators (NVlabs: f"L{index}_{out_size}_{out_channels}").
PUBLISHED_T_1024 = ["L0_36_512", "L1_36_512", "L2_52_512", "L3_52_512", "L4_84_512", "L5_148_512", "L6_148_512",
                    "L7_276_323", "L8_276_203", "L9_532_128", "L10_1044_81", "L11_1044_51", "L12_1044_32",
                    "L13_1024_32", "L14_1024_3"]


def test_schedule_of_the_published_1024_generators():
    input_t, specs_t = layer_specs(1024, 32768, 512)
    assert [spec.name for spec in specs_t] == PUBLISHED_T_1024
    assert (input_t.channels, input_t.size, input_t.sampling_rate, input_t.bandwidth) == (512, 36, 16, 2.0)
    _, specs_r = layer_specs(1024, 65536, 1024)  # config R doubles channel_base and channel_max
    assert [spec.out_channels for spec in specs_r][-4:] == [102, 64, 64, 3]
    assert specs_t[-1].is_torgb and specs_t[-3].is_critically_sampled and not specs_t[-4].is_critically_sampled


def test_filters_match_scipys_designs():
    signal = pytest.importorskip("scipy.signal")
    special = pytest.importorskip("scipy.special")
    expected = signal.firwin(numtaps=24, cutoff=5.3, width=7.1, fs=64)
    torch.testing.assert_close(kaiser_lowpass(24, 5.3, 7.1, 64), torch.as_tensor(expected, dtype=torch.float32))
    x = (torch.arange(12, dtype=torch.float64) - 5.5) / 32
    r = torch.hypot(x[None, :], x[:, None]).numpy()
    f = special.j1(2 * 4.0 * math.pi * r) / (math.pi * r)
    beta = signal.kaiser_beta(signal.kaiser_atten(12, 6.0 / 16))
    window = torch.kaiser_window(12, periodic=False, beta=beta, dtype=torch.float64).numpy()
    f = f * window[None, :] * window[:, None]
    torch.testing.assert_close(jinc_lowpass(12, 4.0, 6.0, 32), torch.as_tensor(f / f.sum(), dtype=torch.float32))


def test_config_r_uses_1x1_convs_and_radial_filters_before_the_critical_layers():
    generator = tiny_stylegan3(config="R")
    layers = generator.layers[1:]
    assert all(layer.weight.shape[-1] == 1 for layer in layers)
    for layer in layers[:-1]:
        assert layer.down_filter.dim() == (1 if layer.spec.is_critically_sampled else 2), layer.name
        assert layer.up_filter.dim() == 1
    assert tiny_stylegan3().layers[1].weight.shape[-1] == 3


def test_noise_mode_is_accepted_and_changes_nothing():
    generator = tiny_stylegan3()
    ws = tiny_codes(generator)
    image = render(generator, ws)
    generator.noise_mode = "random"
    assert torch.equal(render(generator, ws), image)
    with pytest.raises(ValueError, match="noise_mode"):
        generator.noise_mode = "loud"


def test_a_wider_canvas_extends_the_fourier_grid_to_the_right():
    """Panoramas widen the input canvas: the image grows by the same width, and its left part is the
    unwidened image except near the old right border (where the original saw its zero margin)."""
    generator = tiny_stylegan3()
    ws = tiny_codes(generator)
    image = render(generator, ws)
    rate = generator.input.spec.sampling_rate
    with torch.no_grad():
        wide = generator.synthesis(ws, Widen(rate))
    assert wide.shape[-1] == 2 * generator.resolution
    keep = generator.resolution * 5 // 8
    torch.testing.assert_close(wide[..., :keep], image[..., :keep], atol=1e-4, rtol=0)
    assert (wide[..., generator.resolution:] - image).abs().max() > 1e-2  # new content, not a copy


# -- the user transform --------------------------------------------------------------------------
def test_zero_rotation_and_translation_are_the_identity():
    generator = tiny_stylegan3()
    ws = tiny_codes(generator, batch=2)
    image = render(generator, ws)
    generator.set_transform(0.0, (0.0, 0.0))
    assert torch.equal(generator.input.transform, torch.eye(3))
    assert torch.equal(render(generator, ws), image)
    generator.set_transform(30.0, (0.1, 0.0))
    assert (render(generator, ws) - image).abs().max() > 1e-2


def test_whole_pixel_translation_shifts_the_fourier_grid_and_the_image():
    generator = tiny_stylegan3()
    ws = tiny_codes(generator)
    s = generator.styles(ws)[0]
    rate = generator.input.spec.sampling_rate
    features = generator.input(generator.input_state(1), s).x
    image = render(generator, ws)
    for k in (1, 2):
        generator.set_transform(0.0, (k / rate, 0.0))  # k pixels of the Fourier grid to the right
        shifted = generator.input(generator.input_state(1), s).x
        torch.testing.assert_close(shifted[..., k:], features[..., :-k], atol=1e-5, rtol=0)
        moved = render(generator, ws)
        pixels, border = k * generator.resolution // rate, 8  # equivariance holds away from the borders
        interior = (moved[..., border:-border, border + pixels:-border]
                    - image[..., border:-border, border:-border - pixels]).abs().max()
        assert interior < 0.05 * (moved - image).abs().max(), (k, float(interior))
        generator.set_transform(0.0, (0.0, k / rate))  # and downwards
        shifted = generator.input(generator.input_state(1), s).x
        torch.testing.assert_close(shifted[..., k:, :], features[..., :-k, :], atol=1e-5, rtol=0)


def test_transform_follows_nvlabs_gen_images_convention():
    generator = tiny_stylegan3()
    generator.set_transform(30.0, (0.25, -0.5))
    expected = torch.linalg.inv(transform_matrix(30.0, (0.25, -0.5)))
    torch.testing.assert_close(generator.input.transform, expected.float())
    c, s = math.cos(math.radians(30)), math.sin(math.radians(30))
    assert torch.allclose(transform_matrix(30.0, (0.25, -0.5)),
                          torch.tensor([[c, s, 0.25], [-s, c, -0.5], [0, 0, 1]], dtype=torch.float64))
    with pytest.raises(TransformError, match="finite"):
        generator.set_transform(float("nan"))


# -- NVlabs pickles ---------------------------------------------------------------------------------
class Net:
    """An NVlabs persistent network object as pickle sees it: reconstruct(meta), meta['state'] = its __dict__."""

    def __init__(self, parameters=None, buffers=None, modules=None, init_kwargs=None, **attributes):
        self.state = dict(_parameters=collections.OrderedDict(parameters or {}),
                          _buffers=collections.OrderedDict(buffers or {}),
                          _modules=collections.OrderedDict(modules or {}), _init_args=(),
                          _init_kwargs=EasyDict(init_kwargs or {}), training=False, **attributes)

    def __reduce__(self):
        meta = dict(type="class", version=6, module_src="# never run\n", class_name=type(self).__name__,
                    state=self.state)
        return (_reconstruct_persistent_obj, (meta,))


def fc(layer, **init_kwargs) -> Net:
    return Net({"weight": layer.weight.clone(), "bias": layer.bias.clone()}, init_kwargs=init_kwargs)


def nvlabs_generator(generator: StyleGAN3) -> Net:
    """NVlabs' G_ema layout: Generator(mapping: fc{i} + w_avg, synthesis: input + L{i}_{size}_{channels})."""
    config = generator.config
    mapping = Net(buffers={"w_avg": generator.w_avg.clone()}, modules={
        f"fc{i}": fc(layer, activation="lrelu", lr_multiplier=config["mapping_lr_multiplier"])
        for i, layer in enumerate(generator.mapping_mlp.fcs)})
    first = generator.input
    layers = {"input": Net({"weight": first.weight.clone()},
                           {"transform": torch.eye(3), "freqs": first.freqs.clone(), "phases": first.phases.clone()},
                           {"affine": fc(first.affine, weight_init=0, bias_init=[1, 0, 0, 0])},
                           dict(w_dim=generator.w_dim, channels=first.spec.channels, size=first.spec.size,
                                sampling_rate=float(first.spec.sampling_rate), bandwidth=first.spec.bandwidth))}
    for layer in generator.layers[1:]:
        filters = {name: f.clone() for name, f in (("up_filter", layer.up_filter), ("down_filter", layer.down_filter))
                   if f is not None}
        spec = {k: v for k, v in asdict(layer.spec).items() if k != "index"}
        layers[layer.name] = Net(
            {"weight": layer.weight.clone(), "bias": layer.bias.clone()},
            {"magnitude_ema": layer.magnitude_ema.clone(), **filters}, {"affine": fc(layer.affine, bias_init=1)},
            dict(spec, w_dim=generator.w_dim, conv_kernel=config["conv_kernel"], conv_clamp=config["conv_clamp"],
                 use_radial_filters=config["use_radial_filters"]),
            up_factor=layer.up, down_factor=layer.down, padding=list(layer.padding))
    synthesis_kwargs = {k: config[k] for k in ("channel_base", "channel_max", "num_layers", "num_critical",
                                               "margin_size", "conv_kernel", "use_radial_filters", "conv_clamp")}
    kwargs = dict(z_dim=generator.z_dim, c_dim=0, w_dim=generator.w_dim, img_resolution=generator.resolution,
                  img_channels=3, mapping_kwargs=EasyDict(num_layers=len(generator.mapping_mlp.fcs)),
                  magnitude_ema_beta=0.999, **synthesis_kwargs)
    return Net(modules={"synthesis": Net(modules=layers), "mapping": mapping}, init_kwargs=kwargs)


def write_pickle(path, network: Net):
    content = dict(G=network, D=None, G_ema=network, augment_pipe=None, training_set_kwargs=EasyDict(resolution=32))
    path.write_bytes(pickle.dumps(content))
    return path


@pytest.mark.parametrize("config", ["T", "R"])
def test_nvlabs_pickle_loads_to_the_same_generator(tmp_path, nvlabs_modules, config):
    original = tiny_stylegan3(seed=3, config=config)
    path = write_pickle(tmp_path / "g.pkl", nvlabs_generator(original))
    for name in ("torch_utils.persistence", "dnnlib.util"):
        sys.modules.pop(name)  # the loader must not need (or import) them
    loaded = read_checkpoint(path)
    assert isinstance(loaded.generator, StyleGAN3) and loaded.generator.config == original.config
    assert loaded.source_format == "nvlabs-pickle"
    for name, value in original.state_dict().items():
        assert torch.equal(loaded.generator.state_dict()[name], value), name
    ws = tiny_codes(original, batch=2, psi=0.7)
    assert torch.equal(render(loaded.generator, ws), render(original, ws))


def test_every_tensor_is_used_and_every_parameter_filled(tmp_path, nvlabs_modules):
    network = nvlabs_generator(tiny_stylegan3())
    layer = network.state["_modules"]["synthesis"].state["_modules"]["L1_20_8"]
    layer.state["_buffers"]["stray"] = torch.zeros(2)
    with pytest.raises(CheckpointError, match=r"unused tensor 'synthesis\.L1_20_8\.stray'"):
        read_checkpoint(write_pickle(tmp_path / "extra.pkl", network))
    del layer.state["_buffers"]["stray"]
    del layer.state["_parameters"]["bias"]
    with pytest.raises(CheckpointError, match=r"missing tensor 'synthesis\.L1_20_8\.bias'"):
        read_checkpoint(write_pickle(tmp_path / "missing.pkl", network))


def _edited(edit) -> Net:
    network = nvlabs_generator(tiny_stylegan3())
    edit(network)
    return network


@pytest.mark.parametrize("edit, message", [
    (lambda n: n.state["_init_kwargs"].update(c_dim=10), "class-conditional"),
    (lambda n: n.state["_init_kwargs"].update(img_channels=1), "only RGB"),
    (lambda n: n.state["_init_kwargs"].update(fancy_option=1), r"does not implement: \['fancy_option'\]"),
    (lambda n: n.state["_init_kwargs"].update(filter_size=4), "differs from the Kaiser/jinc design"),
    (lambda n: n.state["_init_kwargs"].update(margin_size=3), "differ from the schedule"),
    (lambda n: n.state["_modules"]["mapping"].state["_modules"]["fc0"].state["_init_kwargs"].update(
        activation="relu"), "activation 'relu' is not supported"),
    (lambda n: n.state["_modules"]["synthesis"].state["_modules"]["L2_36_8"].state.update(padding=[1, 2, 3, 4]),
     "L2_36_8 differs from the published design: padding"),
])
def test_settings_that_are_not_implemented_are_refused(tmp_path, nvlabs_modules, edit, message):
    with pytest.raises(CheckpointError, match=message):
        read_checkpoint(write_pickle(tmp_path / "g.pkl", _edited(edit)))


# -- CLI ---------------------------------------------------------------------------------------------
def test_generate_rotates_and_translates_stylegan3_models(tmp_path):
    from PIL import Image

    from stylegan_core import cli
    from stylegan_core.loading.export import save_generator
    from stylegan_core.models.stylegan2 import tiny_stylegan2

    checkpoint = save_generator(tiny_stylegan3(), tmp_path / "sg3.safetensors")
    common = ["generate", "--seed", "3", "--checkpoint", str(checkpoint)]
    assert cli.main([*common, "--out", str(tmp_path / "plain.png")]) == 0
    assert cli.main([*common, "--rotate", "0", "--translate", "0,0", "--out", str(tmp_path / "zero.png")]) == 0
    assert cli.main([*common, "--rotate", "20", "--translate", "0.1,-0.05", "--out", str(tmp_path / "moved.png")]) == 0
    plain, zero, moved = (torch.tensor(list(Image.open(tmp_path / f"{n}.png").getdata()))
                          for n in ("plain", "zero", "moved"))
    assert torch.equal(plain, zero) and not torch.equal(plain, moved)
    assert cli.main([*common, "--translate", "0.1", "--out", str(tmp_path / "bad.png")]) == 1
    sg2 = save_generator(tiny_stylegan2(), tmp_path / "sg2.safetensors")
    assert cli.main(["generate", "--seed", "3", "--checkpoint", str(sg2), "--rotate", "10",
                     "--out", str(tmp_path / "sg2.png")]) == 1
