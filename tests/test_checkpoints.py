"""Checkpoint loaders: NVlabs pickles (restricted unpickler), rosinality .pt, the safetensors export.

The NVlabs pickle is made the way NVlabs makes it: real network objects whose __reduce__ goes
through `torch_utils.persistence._reconstruct_persistent_obj(meta)` (a fake module that exists only
while pickling), tensors pickled by torch itself. Those objects also implement the official
forward pass in plain PyTorch, written from the published architecture, so every loader is
checked against an independent computation, not against its own model.
"""
from __future__ import annotations

import codecs
import collections
import io
import json
import math
import os
import pickle
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import EasyDict, _reconstruct_persistent_obj
from stylegan_core.cli import main as cli_main
from stylegan_core.loading.export import save_generator
from stylegan_core.loading.files import describe_checkpoint, detect_format, read_checkpoint
from stylegan_core.loading.safe_pickle import (TORCH_LEGACY_MAGIC, CheckpointError, UnsafeCheckpointError,
                                               read_pickle_file, unpickle)
from stylegan_core.loading.stylegan2_formats import infer_channel_formula
from stylegan_core.models.stylegan2 import StyleGAN2


def load_checkpoint(path):
    return read_checkpoint(path).generator

MODULE_SOURCE = "# the source NVlabs would embed; a safe loader never runs it\n"


# -- a fake NVlabs world, present only while pickling ------------------------------------------------
class Persistent(nn.Module):
    """Pickles like an NVlabs persistent class: reconstruct(meta) with the object's __dict__ as state."""

    module_src = MODULE_SOURCE

    def __reduce__(self):
        meta = dict(type="class", version=6, module_src=self.module_src, class_name=type(self).__name__,
                    state=dict(self.__dict__))
        return (_reconstruct_persistent_obj, (meta,))


# -- plain-PyTorch StyleGAN2 (official behaviour) in the NVlabs layout ---------------------------------
def fir_resample(x, up, padding, gain):
    """Zero-insert `up`, pad (left, right, top, bottom), convolve with outer([1,3,3,1])/64 * gain."""
    taps = torch.tensor([1.0, 3.0, 3.0, 1.0])
    kernel = torch.outer(taps, taps) / 64 * gain
    b, c, h, w = x.shape
    if up > 1:
        inserted = x.new_zeros(b, c, h * up, w * up)
        inserted[:, :, ::up, ::up] = x
        x = inserted
    x = F.pad(x, padding)
    return F.conv2d(x, kernel.flip([0, 1]).expand(c, 1, 4, 4), groups=c)


def lrelu(x):
    return F.leaky_relu(x, 0.2) * math.sqrt(2)


class FullyConnectedLayer(Persistent):
    def __init__(self, in_features, out_features, activation="linear", lr_multiplier=1.0, bias_init=0.0):
        super().__init__()
        self._init_kwargs = EasyDict(activation=activation, lr_multiplier=lr_multiplier, bias_init=bias_init)
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(bias_init + 0.3 * torch.randn(out_features))
        self.weight_gain = np.float64(lr_multiplier / np.sqrt(in_features))  # numpy scalars, as NVlabs
        self.bias_gain = lr_multiplier
        self.activation = activation

    def forward(self, x):
        x = x @ (self.weight * float(self.weight_gain)).t() + self.bias * self.bias_gain
        return lrelu(x) if self.activation == "lrelu" else x


class MappingNetwork(Persistent):
    def __init__(self, z_dim, w_dim, num_layers):
        super().__init__()
        self._init_kwargs = EasyDict(z_dim=z_dim, c_dim=0, w_dim=w_dim, num_layers=num_layers)
        for index in range(num_layers):
            setattr(self, f"fc{index}", FullyConnectedLayer(z_dim if index == 0 else w_dim, w_dim, "lrelu", 0.01))
        self.register_buffer("w_avg", torch.randn(w_dim))
        self.num_layers = num_layers

    def forward(self, z):
        x = z * (z.square().mean(1, keepdim=True) + 1e-8).rsqrt()
        for index in range(self.num_layers):
            x = getattr(self, f"fc{index}")(x)
        return x


class SynthesisLayer(Persistent):
    def __init__(self, in_channels, out_channels, w_dim, resolution, up=1, conv_clamp=None):
        super().__init__()
        self._init_kwargs = EasyDict(w_dim=w_dim, resolution=resolution, up=up, conv_clamp=conv_clamp,
                                     resample_filter=[1, 3, 3, 1], activation="lrelu", use_noise=True)
        self.up, self.conv_clamp = up, conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 3, 3))
        self.register_buffer("noise_const", torch.randn(resolution, resolution))
        self.noise_strength = nn.Parameter(0.5 * torch.randn([]))
        self.bias = nn.Parameter(0.3 * torch.randn(out_channels))
        taps = torch.tensor([1.0, 3.0, 3.0, 1.0])
        self.register_buffer("resample_filter", torch.outer(taps, taps) / 64)

    def forward(self, x, w):
        styles = self.affine(w)
        outputs = []
        for sample in range(x.shape[0]):  # one per-sample modulated/demodulated weight at a time
            weight = self.weight * styles[sample].reshape(1, -1, 1, 1)
            weight = weight * (weight.square().sum(dim=[1, 2, 3], keepdim=True) + 1e-8).rsqrt()
            xs = x[sample : sample + 1]
            if self.up == 2:
                y = F.conv_transpose2d(xs, weight.transpose(0, 1), stride=2)
                y = fir_resample(y, 1, [1, 1, 1, 1], gain=4)
            else:
                y = F.conv2d(xs, weight, padding=1)
            outputs.append(y)
        x = torch.cat(outputs) + self.noise_const * self.noise_strength
        x = lrelu(x + self.bias.reshape(1, -1, 1, 1))
        return x.clamp(-self.conv_clamp, self.conv_clamp) if self.conv_clamp is not None else x


class ToRGBLayer(Persistent):
    def __init__(self, in_channels, w_dim, conv_clamp=None):
        super().__init__()
        self._init_kwargs = EasyDict(w_dim=w_dim, conv_clamp=conv_clamp)
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(3, in_channels, 1, 1))
        self.bias = nn.Parameter(0.3 * torch.randn(3))
        self.weight_gain = np.float64(1 / np.sqrt(in_channels))

    def forward(self, x, w):
        styles = self.affine(w) * float(self.weight_gain)
        y = torch.einsum("bihw,oi,bi->bohw", x, self.weight[:, :, 0, 0], styles) + self.bias.reshape(1, -1, 1, 1)
        return y.clamp(-self.conv_clamp, self.conv_clamp) if self.conv_clamp is not None else y


class SynthesisBlock(Persistent):
    def __init__(self, in_channels, out_channels, w_dim, resolution, conv_clamp):
        super().__init__()
        self._init_kwargs = EasyDict(w_dim=w_dim, resolution=resolution, architecture="skip", conv_clamp=conv_clamp)
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn(out_channels, resolution, resolution))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, up=2, conv_clamp=conv_clamp)
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution, conv_clamp=conv_clamp)
        self.torgb = ToRGBLayer(out_channels, w_dim, conv_clamp)
        taps = torch.tensor([1.0, 3.0, 3.0, 1.0])
        self.register_buffer("resample_filter", torch.outer(taps, taps) / 64)
        self.num_conv = 1 if in_channels == 0 else 2

    def forward(self, x, img, ws):
        if x is None:
            x = self.const.unsqueeze(0).repeat(ws.shape[0], 1, 1, 1)
            x = self.conv1(x, ws[:, 0])
        else:
            x = self.conv1(self.conv0(x, ws[:, 0]), ws[:, 1])
        y = self.torgb(x, ws[:, self.num_conv])
        img = y if img is None else fir_resample(img, 2, [2, 1, 2, 1], gain=4) + y
        return x, img


class SynthesisNetwork(Persistent):
    def __init__(self, w_dim, resolution, channel_base, channel_max, conv_clamp):
        super().__init__()
        self._init_kwargs = EasyDict(w_dim=w_dim, img_resolution=resolution, img_channels=3)
        self.resolutions = [2**i for i in range(2, int(math.log2(resolution)) + 1)]
        for res in self.resolutions:
            channels = min(channel_base // res, channel_max)
            in_channels = 0 if res == 4 else min(channel_base // (res // 2), channel_max)
            setattr(self, f"b{res}", SynthesisBlock(in_channels, channels, w_dim, res, conv_clamp))

    def forward(self, ws):
        x = img = None
        w_index = 0
        for res in self.resolutions:
            block = getattr(self, f"b{res}")
            x, img = block(x, img, ws[:, w_index : w_index + block.num_conv + 1])
            w_index += block.num_conv
        return img


class Generator(Persistent):
    def __init__(self, resolution=16, z_dim=6, w_dim=5, channel_base=32, channel_max=4, mapping_layers=2,
                 conv_clamp=None):
        super().__init__()
        self._init_kwargs = EasyDict(
            z_dim=z_dim, c_dim=0, w_dim=w_dim, img_resolution=resolution, img_channels=3,
            mapping_kwargs=EasyDict(num_layers=mapping_layers),
            synthesis_kwargs=EasyDict(channel_base=channel_base, channel_max=channel_max, conv_clamp=conv_clamp),
        )
        self.synthesis = SynthesisNetwork(w_dim, resolution, channel_base, channel_max, conv_clamp)
        self.mapping = MappingNetwork(z_dim, w_dim, mapping_layers)
        self.num_ws = 2 * int(math.log2(resolution)) - 2


def make_reference(seed=0, **kwargs) -> Generator:
    torch.manual_seed(seed)
    return Generator(**kwargs).eval().requires_grad_(False)


def write_nvlabs_pickle(path: Path, generator: Generator, protocol: int = pickle.DEFAULT_PROTOCOL) -> Path:
    content = dict(G=generator, D=None, G_ema=generator, augment_pipe=None,
                   training_set_kwargs=EasyDict(resolution=16, use_labels=False, xflip=False))
    path.write_bytes(pickle.dumps(content, protocol=protocol))
    return path


def write_rosinality(path: Path, reference: Generator) -> Path:
    """The rosinality layout, from the naming table of WEIGHTS.md section 6."""
    nv = {name: t.clone() for name, t in reference.state_dict().items()}
    state = {}
    for name, tensor in nv.items():
        if name.startswith("mapping.fc"):
            index, kind = name[len("mapping.fc"):].split(".")
            state[f"style.{int(index) + 1}.{kind}"] = tensor
    state["input.input"] = nv["synthesis.b4.const"].unsqueeze(0)
    resolutions = reference.synthesis.resolutions
    convs = [("b4.conv1", "conv1")]
    rgbs = [("b4.torgb", "to_rgb1")]
    for i, res in enumerate(resolutions[1:]):
        convs += [(f"b{res}.conv0", f"convs.{2 * i}"), (f"b{res}.conv1", f"convs.{2 * i + 1}")]
        rgbs.append((f"b{res}.torgb", f"to_rgbs.{i}"))
    taps = torch.tensor([1.0, 3.0, 3.0, 1.0])
    kernel = torch.outer(taps, taps) / 16  # rosinality folds the upsampling gain into its kernels
    for noise_index, (nv_name, ros) in enumerate(convs):
        src = f"synthesis.{nv_name}."
        state[f"{ros}.conv.weight"] = nv[src + "weight"].unsqueeze(0)
        state[f"{ros}.conv.modulation.weight"] = nv[src + "affine.weight"]
        state[f"{ros}.conv.modulation.bias"] = nv[src + "affine.bias"]
        state[f"{ros}.noise.weight"] = nv[src + "noise_strength"].reshape(1)
        state[f"{ros}.activate.bias"] = nv[src + "bias"]
        state[f"noises.noise_{noise_index}"] = nv[src + "noise_const"][None, None]
        if nv_name.endswith("conv0"):
            state[f"{ros}.conv.blur.kernel"] = kernel
    for nv_name, ros in rgbs:
        src = f"synthesis.{nv_name}."
        state[f"{ros}.conv.weight"] = nv[src + "weight"].unsqueeze(0)
        state[f"{ros}.conv.modulation.weight"] = nv[src + "affine.weight"]
        state[f"{ros}.conv.modulation.bias"] = nv[src + "affine.bias"]
        state[f"{ros}.bias"] = nv[src + "bias"].reshape(1, 3, 1, 1)
        if ros != "to_rgb1":
            state[f"{ros}.upsample.kernel"] = kernel
    torch.save({"g_ema": state, "latent_avg": nv["mapping.w_avg"]}, path)
    return path


def reference_images(reference: Generator, loaded: StyleGAN2, seed=1):
    z = torch.randn(2, loaded.z_dim, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        ws = reference.mapping(z).unsqueeze(1).repeat(1, reference.num_ws, 1)
        expected = reference.synthesis(ws)
        got_ws = loaded.mapping(z)
        got = loaded.synthesis(got_ws)
    return expected, got, ws, got_ws


@pytest.fixture
def reference():
    return make_reference()


@pytest.fixture
def nvlabs_pickle(tmp_path, nvlabs_modules, reference):
    return write_nvlabs_pickle(tmp_path / "network-snapshot.pkl", reference)


# -- loaders give the official images ----------------------------------------------------------------
@pytest.mark.parametrize("protocol", [2, pickle.DEFAULT_PROTOCOL])
def test_nvlabs_pickle_matches_the_plain_pytorch_reference(tmp_path, nvlabs_modules, reference, protocol):
    path = write_nvlabs_pickle(tmp_path / "network-snapshot.pkl", reference, protocol)
    sys.modules.pop("torch_utils.persistence")  # the loader must not need (or import) it
    generator = load_checkpoint(path)
    assert "torch_utils.persistence" not in sys.modules
    assert generator.config["channel_base"] == 32 and generator.config["channel_max"] == 4
    assert generator.num_ws == reference.num_ws == 6
    expected, got, ws, got_ws = reference_images(reference, generator)
    torch.testing.assert_close(got_ws, ws, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(generator.w_avg, reference.mapping.w_avg)


def test_conv_clamp_is_read_from_the_pickle(tmp_path, nvlabs_modules):
    reference = make_reference(seed=3, conv_clamp=0.5)
    generator = load_checkpoint(write_nvlabs_pickle(tmp_path / "clamped.pkl", reference))
    assert generator.config["conv_clamp"] == 0.5
    expected, got, _, _ = reference_images(reference, generator)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_rosinality_and_safetensors_give_the_same_images(tmp_path, nvlabs_pickle, reference):
    from_pickle = load_checkpoint(nvlabs_pickle)
    from_rosinality = load_checkpoint(write_rosinality(tmp_path / "550000.pt", reference))
    exported = save_generator(from_pickle, tmp_path / "converted.safetensors")
    from_safetensors = load_checkpoint(exported)
    ws = from_pickle.mapping(torch.randn(2, from_pickle.z_dim))
    images = [g.synthesis(ws) for g in (from_pickle, from_rosinality, from_safetensors)]
    assert torch.equal(images[0], images[1]) and torch.equal(images[0], images[2])
    for a, b in ((from_pickle, from_rosinality), (from_pickle, from_safetensors)):
        assert a.config == b.config
        for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
            assert torch.equal(x, y), name


def test_rosinality_without_latent_avg_estimates_it(tmp_path, reference):
    path = write_rosinality(tmp_path / "ckpt.pt", reference)
    content = torch.load(path, weights_only=True)
    torch.save({"g_ema": content["g_ema"]}, path)
    description = describe_checkpoint(path)
    assert any("estimated" in note for note in description["notes"])
    generator = load_checkpoint(path)
    with torch.no_grad():
        sample_mean = reference.mapping(torch.randn(20000, generator.z_dim)).mean(0)
    torch.testing.assert_close(generator.w_avg, sample_mean, atol=0.1, rtol=0.1)


def test_format_is_detected_by_content_not_name(tmp_path, nvlabs_pickle, reference):
    disguised = tmp_path / "weights.safetensors"
    disguised.write_bytes(nvlabs_pickle.read_bytes())
    assert detect_format(disguised) == "pickle"
    rosinality = write_rosinality(tmp_path / "model.pkl", reference)
    assert detect_format(rosinality) == "torch-zip"
    legacy = tmp_path / "legacy.pt"
    torch.save(torch.load(rosinality, weights_only=True), legacy, _use_new_zipfile_serialization=False)
    assert detect_format(legacy) == "torch-legacy"
    images = [load_checkpoint(p).synthesis(torch.zeros(1, 6, 5)) for p in (disguised, rosinality, legacy)]
    assert torch.equal(images[0], images[1]) and torch.equal(images[1], images[2])


def test_every_tensor_is_used_and_every_parameter_filled(tmp_path, nvlabs_modules, reference):
    reference.synthesis.b8.conv1.register_buffer("stray", torch.zeros(2))
    with pytest.raises(CheckpointError, match=r"unused tensor 'synthesis\.b8\.conv1\.stray'"):
        load_checkpoint(write_nvlabs_pickle(tmp_path / "extra.pkl", reference))
    del reference.synthesis.b8.conv1._buffers["stray"]
    del reference.synthesis.b16.torgb._parameters["bias"]
    with pytest.raises(CheckpointError, match=r"missing tensor 'synthesis\.b16\.torgb\.bias'"):
        load_checkpoint(write_nvlabs_pickle(tmp_path / "missing.pkl", reference))


def test_rosinality_leftovers_are_reported(tmp_path, reference):
    path = write_rosinality(tmp_path / "ckpt.pt", reference)
    content = torch.load(path, weights_only=True)
    content["g_ema"]["to_rgbs.0.extra"] = torch.zeros(3)
    content["g_ema"]["convs.0.conv.blur.kernel"] = torch.ones(4, 4)
    torch.save(content, path)
    with pytest.raises(CheckpointError, match="unused tensor 'to_rgbs.0.extra'") as error:
        load_checkpoint(path)
    assert "convs.0.conv.blur.kernel: resampling filter differs" in str(error.value)


def test_channel_base_and_max_are_read_from_the_init_kwargs(tmp_path, nvlabs_modules):
    # channels 37, 18, 9: no power-of-two formula fits them (inference would refuse this valid network)
    reference = make_reference(seed=4, channel_base=150, channel_max=64)
    generator = load_checkpoint(write_nvlabs_pickle(tmp_path / "odd_channels.pkl", reference))
    assert generator.config["channel_base"] == 150 and generator.config["channel_max"] == 64
    expected, got, _, _ = reference_images(reference, generator)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    reference._init_kwargs["synthesis_kwargs"]["channel_base"] = 160  # kwargs that contradict the tensors
    with pytest.raises(CheckpointError, match="shape"):
        load_checkpoint(write_nvlabs_pickle(tmp_path / "contradicting.pkl", reference))


@pytest.mark.parametrize("where", ["mapping", "mapping_kwargs", "fc"])
def test_a_mapping_activation_other_than_lrelu_is_refused(tmp_path, nvlabs_modules, reference, where):
    if where == "mapping":
        reference.mapping._init_kwargs["activation"] = "relu"
    elif where == "mapping_kwargs":
        reference._init_kwargs["mapping_kwargs"]["activation"] = "relu"
    else:
        reference.mapping.fc0._init_kwargs["activation"] = "relu"
    with pytest.raises(CheckpointError, match="activation 'relu'.*only 'lrelu'"):
        load_checkpoint(write_nvlabs_pickle(tmp_path / "relu.pkl", reference))


def test_unsupported_networks_are_refused_clearly(tmp_path, nvlabs_modules, reference):
    reference.synthesis.b4._init_kwargs["architecture"] = "resnet"
    with pytest.raises(CheckpointError, match="'resnet' architecture is not supported"):
        load_checkpoint(write_nvlabs_pickle(tmp_path / "resnet.pkl", reference))
    reference.synthesis.b4._init_kwargs["architecture"] = "skip"
    reference._init_kwargs["c_dim"] = 10
    with pytest.raises(CheckpointError, match="class-conditional generators .c_dim=10. need a class label"):
        load_checkpoint(write_nvlabs_pickle(tmp_path / "conditional.pkl", reference))
    reference._init_kwargs["c_dim"] = 0
    reference.synthesis.input = Persistent()
    with pytest.raises(CheckpointError, match=r"no converter recognises.*synthesis layers \['b16', 'b4', 'b8', 'input'\]"):
        load_checkpoint(write_nvlabs_pickle(tmp_path / "sg3.pkl", reference))
    path = tmp_path / "no_generator.pkl"
    path.write_bytes(pickle.dumps({"D": None, "numbers": [1, 2]}))
    with pytest.raises(CheckpointError, match="without a generator"):
        load_checkpoint(path)


def test_infer_channel_formula():
    assert infer_channel_formula({4: 512, 64: 512, 128: 256, 1024: 32}) == (32768, 512)
    assert infer_channel_formula({4: 8, 8: 8}) == (64, 8)
    with pytest.raises(CheckpointError, match="channel formula"):
        infer_channel_formula({4: 8, 8: 3, 16: 2})


# -- hostile and broken files ------------------------------------------------------------------------
class RunsCommand:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def test_pickle_calling_os_system_is_refused_without_side_effect(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"G_ema": RunsCommand(f"touch {marker}")}))
    with pytest.raises(UnsafeCheckpointError, match=r"(posix|os)\.system"):
        load_checkpoint(path)
    assert not marker.exists()


def test_embedded_module_source_is_never_executed(tmp_path, nvlabs_modules, reference):
    marker = tmp_path / "written_by_module_src"
    evil_source = f"open({str(marker)!r}, 'w').write('pwned')\n"
    evil = Persistent()
    evil.module_src = evil_source
    path = tmp_path / "evil_source.pkl"
    path.write_bytes(pickle.dumps({"G_ema": evil}))
    with pytest.raises(CheckpointError, match="no converter recognises"):
        load_checkpoint(path)
    # Even inside a valid generator, the source is only hashed, never run.
    reference.module_src = evil_source
    generator = load_checkpoint(write_nvlabs_pickle(tmp_path / "valid_but_evil_source.pkl", reference))
    assert generator.num_ws == 6
    assert not marker.exists()


def test_other_dangerous_globals_are_refused(tmp_path):
    for payload in (
        b"cbuiltins\neval\n(S'1+1'\ntR.",
        b"cbuiltins\ngetattr\n(cbuiltins\nobject\nS'__subclasses__'\ntR.",
        b"csubprocess\nPopen\n((S'true'\nltR.",
    ):
        path = tmp_path / "evil.pkl"
        path.write_bytes(b"\x80\x02" + payload)
        with pytest.raises(UnsafeCheckpointError, match="never needs"):
            read_pickle_file(path)


def test_torch_file_with_arbitrary_objects_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"g_ema": {"style.1.weight": torch.zeros(2, 2)}, "trap": RunsCommand(f"touch {marker}")}, path)
    with pytest.raises(UnsafeCheckpointError, match="objects other than tensors"):
        load_checkpoint(path)
    assert not marker.exists()


def test_truncated_and_corrupt_files_give_clear_errors(tmp_path, nvlabs_pickle, reference):
    files = {
        "pickle": nvlabs_pickle.read_bytes(),
        "pt": write_rosinality(tmp_path / "r.pt", reference).read_bytes(),
        "safetensors": save_generator(load_checkpoint(nvlabs_pickle), tmp_path / "s.safetensors").read_bytes(),
    }
    for kind, data in files.items():
        truncated = tmp_path / f"truncated_{kind}"
        truncated.write_bytes(data[: len(data) // 2])
        with pytest.raises(CheckpointError, match="truncated|corrupt|not a readable"):
            load_checkpoint(truncated)
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(CheckpointError, match="not a known checkpoint format"):
        load_checkpoint(garbage)
    with pytest.raises(CheckpointError, match="cannot read"):
        load_checkpoint(tmp_path / "does_not_exist.pkl")


# -- inspect ----------------------------------------------------------------------------------------------
def test_inspect_describes_a_checkpoint(nvlabs_pickle, capsys):
    from stylegan_core.cli import main

    assert main(["inspect", str(nvlabs_pickle)]) == 0
    out = capsys.readouterr().out
    for expected in ("stylegan2", "resolution    16", "num_ws        6", "w_dim         5", "nvlabs-pickle"):
        assert expected in out
    description = describe_checkpoint(nvlabs_pickle)
    assert description["parameters"] == sum(p.numel() for p in load_checkpoint(nvlabs_pickle).parameters())


def test_inspect_exits_non_zero_for_unsafe_and_unreadable_files(tmp_path, capsys):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps(RunsCommand(f"touch {marker}")))
    from stylegan_core.cli import main

    assert main(["inspect", str(evil)]) == 1
    assert "refused (unsafe)" in capsys.readouterr().err
    broken = tmp_path / "broken.pkl"
    broken.write_bytes(b"\x80\x04\x95")
    assert cli_main(["inspect", str(broken)]) == 1
    assert "unreadable" in capsys.readouterr().err
    assert not marker.exists()


# -- crafted files: memory safety and allocation bounds (issue: a loader that cannot be crashed) -------
class Reduces:
    """Pickles as `function(*args)`, to craft exactly the calls a hostile file could make."""

    def __init__(self, function, *args):
        self.function, self.args = function, args

    def __reduce__(self):
        return self.function, self.args


def legacy_storage_bytes(declared_numel: int, stored_numel: int) -> bytes:
    """torch's legacy storage stream (what NVlabs pickles embed) declaring `declared_numel` floats."""
    stream = io.BytesIO()
    for value in (TORCH_LEGACY_MAGIC, 1001, {"protocol_version": 1001, "little_endian": True,
                                            "type_sizes": {"short": 2, "int": 4, "long": 4}}):
        pickle.dump(value, stream, protocol=2)

    class StoragePickler(pickle.Pickler):
        def persistent_id(self, obj):
            return ("storage", torch.FloatStorage, "0", "cpu", declared_numel, None) if obj == "the storage" else None

    StoragePickler(stream, protocol=2).dump("the storage")
    pickle.dump(["0"], stream, protocol=2)
    stream.write(struct.pack("<q", stored_numel) + np.arange(stored_numel, dtype="<f4").tobytes())
    return stream.getvalue()


def tensor_pickle(storage: bytes, size=(4,), stride=(1,)) -> bytes:
    storage_object = Reduces(torch.storage._load_from_bytes, storage)
    return pickle.dumps(Reduces(torch._utils._rebuild_tensor_v2, storage_object, 0, size, stride, False,
                                collections.OrderedDict()), protocol=2)


def test_an_honest_storage_stream_reads_back():
    tensor = unpickle(tensor_pickle(legacy_storage_bytes(4, 4)))
    assert torch.equal(tensor, torch.arange(4.0))


@pytest.mark.parametrize("data, error", [
    # numpy.ndarray called directly with an object dtype: its element would be a raw pointer
    (pickle.dumps(Reduces(np.ndarray, (1,), "O", b"A" * 8), protocol=2), "calls numpy.ndarray directly"),
    (pickle.dumps(np.array([None, 1], dtype=object), protocol=2), "not a plain number"),
    (pickle.dumps(np.array([1.0, 2.0]), protocol=2)[:-1] + b")b.", "sets the state"),  # a second BUILD
    (pickle.dumps(torch.zeros(2), protocol=2)[:-1] + b")b.", "sets the state of a Tensor"),
    (b"\x80\x04\x8e" + struct.pack("<Q", 2**40) + b"xyz.", "truncated or corrupt"),  # 1 TB of bytes declared
    (tensor_pickle(legacy_storage_bytes(10**9, 4)), "declares 4,000,000,000 bytes"),
    (tensor_pickle(legacy_storage_bytes(4, 10**6)), "not .exactly. there"),
    (tensor_pickle(legacy_storage_bytes(4, 4), size=(100,)), "outside its storage"),
    (tensor_pickle(legacy_storage_bytes(4, 4), size=(2, 2), stride=(-1, 1)), "malformed"),
])
def test_crafted_pickles_are_refused_before_they_allocate_or_crash(data, error):
    with pytest.raises(CheckpointError, match=error):
        unpickle(data)


def test_a_cyclic_network_is_refused_cleanly(tmp_path):
    meta = (b"X\x04\x00\x00\x00typeX\x05\x00\x00\x00classX\n\x00\x00\x00class_nameX\t\x00\x00\x00Generator"
            b"X\x05\x00\x00\x00state}q\x01(X\x08\x00\x00\x00_modules}q\x02u")
    data = (b"\x80\x02ctorch_utils.persistence\n_reconstruct_persistent_obj\n}q\x00(" + meta + b"u\x85Rq\x03"
            b"h\x02X\t\x00\x00\x00synthesish\x03s0.")  # modules['synthesis'] = the record itself
    record = unpickle(data)
    assert record.children["synthesis"] is record
    with pytest.raises(CheckpointError, match="nested"):
        record.tensors()
    path = tmp_path / "cycle.pkl"
    path.write_bytes(data)
    with pytest.raises(CheckpointError):
        read_checkpoint(path)


def test_a_small_pickle_cannot_build_much_more_than_it_holds():
    text = "x" * 100_000
    calls = [Reduces(codecs.encode, text, "latin1") for _ in range(50)]  # one memoised text, encoded 50 times
    data = pickle.dumps(calls, protocol=2)
    assert len(data) < 150_000
    with pytest.raises(CheckpointError, match="builds more data than the file holds"):
        unpickle(data)


def safetensors_file(path: Path, header: dict, data: bytes = b"") -> Path:
    encoded = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + data)
    return path


def test_crafted_safetensors_are_refused_before_they_allocate(tmp_path):
    huge = {"__metadata__": {"format": "stylegan_core", "arch": "stylegan2", "config": "{}"},
            "w": {"dtype": "F32", "shape": [100000, 100000], "data_offsets": [0, 40_000_000_000]}}
    with pytest.raises(CheckpointError, match="outside the file"):
        read_checkpoint(safetensors_file(tmp_path / "huge.safetensors", huge))
    big_config = json.dumps(dict(resolution=1024, z_dim=512, w_dim=512, channel_base=4096, channel_max=512))
    header = {"__metadata__": {"format": "stylegan_core", "format_version": "1", "arch": "stylegan2",
                               "config": big_config}, "w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}
    with pytest.raises(CheckpointError, match="needs at least"):
        read_checkpoint(safetensors_file(tmp_path / "config.safetensors", header, b"\0" * 4))


def test_a_compressed_torch_zip_is_refused_before_inflating(tmp_path, reference):
    honest = write_rosinality(tmp_path / "honest.pt", reference)
    bomb = tmp_path / "bomb.pt"
    with zipfile.ZipFile(honest) as source, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as target:
        for member in source.infolist():
            target.writestr(member.filename, source.read(member))
        target.writestr("honest/data/zeros", bytes(50_000_000))  # 50 MB that deflate to ~50 KB
    assert bomb.stat().st_size < 1_000_000
    with pytest.raises(CheckpointError, match="compressed or oversized members"):
        read_checkpoint(bomb)
    assert read_checkpoint(honest).source_format == "rosinality-pt"


def test_a_legacy_torch_file_declaring_more_than_it_holds_is_refused(tmp_path, reference):
    honest = tmp_path / "legacy.pt"
    torch.save(torch.load(write_rosinality(tmp_path / "zip.pt", reference)), honest, _use_new_zipfile_serialization=False)
    assert detect_format(honest) == "torch-legacy"
    assert read_checkpoint(honest).source_format == "rosinality-pt"
    crafted = tmp_path / "crafted.pt"
    crafted.write_bytes(legacy_storage_bytes(10**9, 4))
    assert detect_format(crafted) == "torch-legacy"
    with pytest.raises(CheckpointError, match="declares 4,000,000,000 bytes"):
        read_checkpoint(crafted)


# -- fuzzing: mutated tiny pickles only ever give CheckpointError ------------------------------------
FUZZ_SCRIPT = r"""
import os, random, resource, sys, traceback
from pathlib import Path
from stylegan_core.loading.files import read_checkpoint
from stylegan_core.loading.safe_pickle import CheckpointError
import pickle, pickletools

def vm_bytes():
    for line in open("/proc/self/status"):
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024

headroom = 1536 << 20  # the loader may use this much address space; a multi-GB allocation fails
resource.setrlimit(resource.RLIMIT_AS, (vm_bytes() + headroom, resource.RLIM_INFINITY))
opcodes = [op.code.encode("latin1") for op in pickletools.opcodes]
rng = random.Random(int(sys.argv[2]))
work = Path(sys.argv[3])
bases = [Path(p).read_bytes() for p in sys.argv[4:]]
for index in range(int(sys.argv[1])):
    data = bytearray(rng.choice(bases))
    kind = index % 5
    if kind == 0:  # flipped bytes
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif kind == 1:  # opcodes swapped for others
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.choice(opcodes)[0]
    elif kind == 2:  # truncated
        data = data[: rng.randrange(1, len(data))]
    elif kind == 3:  # a chunk repeated (duplicated opcodes, memo indices, lengths)
        start = rng.randrange(len(data)); end = min(len(data), start + rng.randint(1, 64))
        data[start:start] = data[start:end] * rng.randint(1, 4)
    else:  # random bytes overwritten with large numbers (declared lengths)
        position = rng.randrange(len(data))
        data[position:position + 4] = rng.choice([b"\xff\xff\xff\x7f", b"\x00\x00\x00\x40", b"\xff\xff\xff\xff"])
    path = work / f"mutant{index % 4}"
    path.write_bytes(bytes(data))
    try:
        read_checkpoint(path)
    except CheckpointError as error:
        cause = error.__cause__
        if isinstance(cause, MemoryError) or "allocate" in str(cause):
            print(f"mutant {index} (kind {kind}): an allocation was attempted: {cause!r}"); sys.exit(1)
    except BaseException:
        print(f"mutant {index} (kind {kind}) raised something else:"); traceback.print_exc(); sys.exit(1)
print("ok")
"""


def test_fuzzed_pickles_only_ever_give_checkpoint_errors(tmp_path, nvlabs_modules):
    # Runs in a child process with a memory limit: a crash, a hang or a huge allocation fails the
    # test instead of taking pytest down. FUZZ_COUNT / FUZZ_SEED run a longer or another campaign.
    small = make_reference(resolution=8, channel_base=16, channel_max=2, z_dim=3, w_dim=2, mapping_layers=1)
    bases = [write_nvlabs_pickle(tmp_path / f"base{protocol}.pkl", small, protocol) for protocol in (2, 4)]
    bases.append(save_generator(read_checkpoint(bases[0]).generator, tmp_path / "base.safetensors"))
    bases.append(write_rosinality(tmp_path / "base.pt", small))
    bases.append(tmp_path / "base_legacy.pt")
    torch.save(torch.load(bases[-2]), bases[-1], _use_new_zipfile_serialization=False)
    result = subprocess.run([sys.executable, "-c", FUZZ_SCRIPT, os.environ.get("FUZZ_COUNT", "250"), os.environ.get("FUZZ_SEED", "1"), str(tmp_path), *map(str, bases)],
                            capture_output=True, text=True, timeout=300, cwd=Path(__file__).resolve().parents[1],
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stdout[-3000:] + result.stderr[-3000:]
