"""StyleGAN2 from its published formats: NVlabs pickles (stylegan2-ada-pytorch, and the StyleGAN2
networks of stylegan3), NVlabs-named state dicts, and rosinality .pt files (WEIGHTS.md section 6).

Every architecture setting the model depends on is read from the pickle's init kwargs (with
NVlabs' defaults where absent), and a setting this implementation does not have is refused with
the reason, rather than loaded into wrong images. The name mappings use every tensor of the
generator and fill every tensor of the model; resampling filters are checked against [1, 3, 3, 1].
"""
from __future__ import annotations

import re
from typing import Any, Callable, Optional

import torch

from ..models.generator import estimate_w_avg
from ..ops.upfirdn2d import setup_filter
from ..models.stylegan2 import IMAGE_CHANNELS, StyleGAN2, StyledConv, ToRGB
from .common import LoadedCheckpoint, build_for_file, fill_from_source, reshape_to
from .nvlabs import FORMAT_NVLABS_PICKLE, register_nvlabs_converter
from .safe_pickle import CheckpointError, PersistentRecord

FORMAT_ROSINALITY = "rosinality-pt"
FORMAT_NVLABS_STATE_DICT = "nvlabs-state-dict-pt"
# NVlabs' defaults for settings a pickle's init kwargs may leave out (stylegan2-ada-pytorch networks.py)
NVLABS_DEFAULTS = dict(channel_base=32768, channel_max=512, num_layers=8, lr_multiplier=0.01, activation="lrelu",
                       architecture="skip", c_dim=0, img_channels=IMAGE_CHANNELS, layer_features=None,
                       conv_clamp=None)


def tensor_bytes(tensors: dict[str, torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in tensors.values())


# -- NVlabs pickles ----------------------------------------------------------------------------------
def is_stylegan2_record(record: PersistentRecord) -> bool:
    """A StyleGAN2 generator has synthesis blocks b4, b8, ... (StyleGAN3's has an `input` layer and L0_...)."""
    synthesis = record.children.get("synthesis")
    return isinstance(synthesis, PersistentRecord) and "b4" in synthesis.children and "input" not in synthesis.children


def _setting(name: str, *sources: dict) -> Any:
    """The first of `sources` (init kwargs, most specific first) that sets `name`, else NVlabs' default."""
    for source in sources:
        if isinstance(source, dict) and name in source:
            return source[name]
    return NVLABS_DEFAULTS[name]


def _number(value: Any, name: str, kind: type = int) -> Any:
    try:
        number = kind(value)
    except (TypeError, ValueError, OverflowError) as error:
        raise CheckpointError(f"the pickle's {name} is not a number ({str(value)[:50]!r})") from error
    if kind is int and number != value:
        raise CheckpointError(f"the pickle's {name} is not a whole number ({str(value)[:50]!r})")
    return number


def _nvlabs_settings(record: PersistentRecord) -> dict:
    """Every setting the conversion depends on, from the init kwargs of the generator and its parts."""
    mapping, synthesis = record.child("mapping"), record.child("synthesis")
    top = record.init_kwargs
    mapping_sources = (mapping.init_kwargs, top.get("mapping_kwargs"), top)
    synthesis_sources = (synthesis.init_kwargs, top.get("synthesis_kwargs"), top)
    fc0 = mapping.children.get("fc0")
    fc0_kwargs = fc0.init_kwargs if isinstance(fc0, PersistentRecord) else {}
    return dict(
        c_dim=_number(_setting("c_dim", top, mapping.init_kwargs), "c_dim"),
        img_channels=_number(_setting("img_channels", top, synthesis.init_kwargs), "img_channels"),
        activation=str(_setting("activation", *mapping_sources))[:50],
        fc_activation=str(_setting("activation", fc0_kwargs, *mapping_sources))[:50],
        layer_features=_setting("layer_features", *mapping_sources),
        mapping_layers=_number(_setting("num_layers", *mapping_sources), "mapping num_layers"),
        mapping_lr_multiplier=_number(_setting("lr_multiplier", fc0_kwargs, *mapping_sources), "lr_multiplier", float),
        channel_base=_number(_setting("channel_base", *synthesis_sources), "channel_base"),
        channel_max=_number(_setting("channel_max", *synthesis_sources), "channel_max"),
    )


def _refuse_unsupported(settings: dict, w_dim: int) -> None:
    if settings["c_dim"] > 0:
        raise CheckpointError(f"class-conditional generators (c_dim={settings['c_dim']}) need a class label input, "
                              "which this project does not have yet; use an unconditional generator")
    if settings["img_channels"] != IMAGE_CHANNELS:
        raise CheckpointError(f"only RGB generators are supported (img_channels={settings['img_channels']})")
    for key in ("activation", "fc_activation"):
        if settings[key] != "lrelu":
            raise CheckpointError(f"the mapping network uses the activation {settings[key]!r}; only 'lrelu' "
                                  "(StyleGAN2's) is implemented, so its images would be wrong")
    if settings["layer_features"] not in (None, w_dim):
        raise CheckpointError(f"mapping layers of width {settings['layer_features']} (not w_dim={w_dim}) are not supported")


def _check_synthesis_options(synthesis: PersistentRecord) -> None:
    for block_name, block in synthesis.children.items():
        if not isinstance(block, PersistentRecord):
            raise CheckpointError(f"synthesis block {str(block_name)[:50]!r} is not a network")
        architecture = _setting("architecture", block.init_kwargs)
        if architecture != "skip":
            raise CheckpointError(f"{block_name}: the {str(architecture)[:50]!r} architecture is not supported (only 'skip')")
        for layer in block.children.values():
            options = layer.init_kwargs if isinstance(layer, PersistentRecord) else {}
            is_conv = isinstance(layer, PersistentRecord) and layer.class_name == "SynthesisLayer"
            if is_conv and options.get("activation", "lrelu") != "lrelu":
                raise CheckpointError(f"{block_name}: activation {str(options['activation'])[:50]!r} is not supported")
            if options.get("use_noise", True) is False:
                raise CheckpointError(f"{block_name}: generators without noise inputs are not supported")
            if is_conv and options.get("kernel_size", 3) != 3:
                raise CheckpointError(f"{block_name}: only 3x3 synthesis convolutions are supported")


def _conv_clamp(synthesis: PersistentRecord) -> Optional[float]:
    clamps = {
        layer.init_kwargs.get("conv_clamp")
        for block in synthesis.children.values() if isinstance(block, PersistentRecord)
        for layer in block.children.values() if isinstance(layer, PersistentRecord)
    }
    if len(clamps) > 1:
        raise CheckpointError(f"layers with different conv_clamp values {sorted(map(str, clamps))[:4]} are not supported")
    value = next(iter(clamps), None)
    return None if value is None else _number(value, "conv_clamp", float)


def stylegan2_from_nvlabs(record: PersistentRecord) -> LoadedCheckpoint:
    """Build the StyleGAN2 of an NVlabs Generator record (stylegan2-ada-pytorch layout)."""
    settings = _nvlabs_settings(record)
    synthesis = record.child("synthesis")
    tensors = record.tensors()
    shapes, _channels = _shapes_from_nvlabs_tensors(tensors)
    _refuse_unsupported(settings, shapes["w_dim"])
    _check_synthesis_options(synthesis)
    # The channel formula comes from the init kwargs (a channel_base such as 1500 is valid); the
    # fill step then checks every tensor's shape against it.
    config = dict(shapes, channel_base=settings["channel_base"], channel_max=settings["channel_max"],
                  mapping_lr_multiplier=settings["mapping_lr_multiplier"], conv_clamp=_conv_clamp(synthesis))
    if settings["mapping_layers"] != config["mapping_layers"]:
        raise CheckpointError(f"the mapping network declares {settings['mapping_layers']} layers but holds "
                              f"{config['mapping_layers']}")
    generator = build_for_file("stylegan2", config, tensor_bytes(tensors))
    fill_from_source(generator, tensors, nvlabs_names(generator), _nvlabs_constant_filters(tensors))
    return LoadedCheckpoint(generator, FORMAT_NVLABS_PICKLE)


register_nvlabs_converter("stylegan2", is_stylegan2_record, stylegan2_from_nvlabs)


# -- NVlabs naming (pickles and state dicts) ---------------------------------------------------------
def _shapes_from_nvlabs_tensors(tensors: dict[str, torch.Tensor]) -> tuple[dict, dict[int, int]]:
    """(resolution, z_dim, w_dim, mapping_layers) and the channels per resolution, from the tensors."""
    resolutions = sorted(int(m.group(1)) for m in map(re.compile(r"synthesis\.b(\d+)\.conv1\.weight$").match, tensors) if m)
    fcs = sorted(int(m.group(1)) for m in map(re.compile(r"mapping\.fc(\d+)\.weight$").match, tensors) if m)
    if not resolutions or not fcs or tensors["mapping.fc0.weight"].dim() != 2:
        raise CheckpointError("no StyleGAN2 synthesis blocks (synthesis.b4...) or mapping layers (mapping.fc0...)")
    channels = {res: tensors[f"synthesis.b{res}.conv1.weight"].shape[0] for res in resolutions}
    shapes = dict(resolution=resolutions[-1], z_dim=int(tensors["mapping.fc0.weight"].shape[1]),
                  w_dim=int(tensors[f"mapping.fc{fcs[-1]}.weight"].shape[0]), mapping_layers=len(fcs))
    return shapes, channels


def _config_from_nvlabs_tensors(tensors: dict[str, torch.Tensor]) -> dict:
    """The config of a file without init kwargs: the channel formula inferred from the channels."""
    shapes, channels = _shapes_from_nvlabs_tensors(tensors)
    channel_base, channel_max = infer_channel_formula(channels)
    return dict(shapes, channel_base=channel_base, channel_max=channel_max)


def infer_channel_formula(channels: dict[int, int]) -> tuple[int, int]:
    """(channel_base, channel_max) with channels[res] == min(channel_base // res, channel_max) for all
    res: for files without init kwargs (state dicts), whose channel_base is then a multiple of the
    lowest resolution below channel_max."""
    channel_max = max(channels.values())
    below_max = [(res, ch) for res, ch in sorted(channels.items()) if ch < channel_max]
    channel_base = below_max[0][0] * below_max[0][1] if below_max else channel_max * max(channels)
    if any(min(channel_base // res, channel_max) != ch for res, ch in channels.items()):
        raise CheckpointError(f"channel counts {dict(list(channels.items())[:12])} do not follow the StyleGAN2 "
                              "channel formula")
    return channel_base, channel_max


def _nvlabs_constant_filters(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    expected = setup_filter()
    return {name: expected for name in tensors if name.endswith("resample_filter")}


def nvlabs_names(generator: StyleGAN2) -> dict[str, tuple[str, Callable]]:
    """Model tensor name -> (NVlabs tensor name, conversion to the model's shape)."""
    same = reshape_to(None)
    names = {"w_avg": ("mapping.w_avg", same), "const": ("synthesis.b4.const", same)}
    for index in range(len(generator.mapping_mlp.fcs)):
        for kind in ("weight", "bias"):
            names[f"mapping_mlp.fcs.{index}.{kind}"] = (f"mapping.fc{index}.{kind}", same)
    for index, layer in enumerate(generator.layers):
        for local in layer.state_dict():
            names[f"layers.{index}.{local}"] = (f"synthesis.{layer.name}.{local}", same)
    return names


def stylegan2_from_nvlabs_state_dict(state: dict[str, torch.Tensor]) -> LoadedCheckpoint:
    generator = build_for_file("stylegan2", _config_from_nvlabs_tensors(state), tensor_bytes(state))
    fill_from_source(generator, state, nvlabs_names(generator), _nvlabs_constant_filters(state))
    return LoadedCheckpoint(generator, FORMAT_NVLABS_STATE_DICT,
                            ["NVlabs state dict without init kwargs: mapping lr multiplier 0.01, no conv_clamp"])


# -- rosinality naming ---------------------------------------------------------------------------------
def rosinality_names(generator: StyleGAN2) -> dict[str, tuple[str, Callable]]:
    """Model tensor name -> (rosinality name, conversion): the table of WEIGHTS.md section 6."""
    same = reshape_to(None)
    names = {"const": ("input.input", reshape_to(generator.const.shape))}
    for index, fc in enumerate(generator.mapping_mlp.fcs):
        for kind in ("weight", "bias"):
            names[f"mapping_mlp.fcs.{index}.{kind}"] = (f"style.{index + 1}.{kind}", same)
    conv_index = rgb_index = 0
    for index, layer in enumerate(generator.layers):
        prefix = f"layers.{index}."
        if isinstance(layer, StyledConv):
            source = "conv1" if layer.name == "b4.conv1" else f"convs.{conv_index - 1}"
            names.update({
                prefix + "affine.weight": (f"{source}.conv.modulation.weight", same),
                prefix + "affine.bias": (f"{source}.conv.modulation.bias", same),
                prefix + "weight": (f"{source}.conv.weight", reshape_to(layer.weight.shape)),
                prefix + "bias": (f"{source}.activate.bias", same),
                prefix + "noise_strength": (f"{source}.noise.weight", reshape_to(layer.noise_strength.shape)),
                prefix + "noise_const": (f"noises.noise_{conv_index}", reshape_to(layer.noise_const.shape)),
            })
            conv_index += 1
        elif isinstance(layer, ToRGB):
            source = "to_rgb1" if layer.name == "b4.torgb" else f"to_rgbs.{rgb_index - 1}"
            names.update({
                prefix + "affine.weight": (f"{source}.conv.modulation.weight", same),
                prefix + "affine.bias": (f"{source}.conv.modulation.bias", same),
                prefix + "weight": (f"{source}.conv.weight", reshape_to(layer.weight.shape)),
                prefix + "bias": (f"{source}.bias", reshape_to(layer.bias.shape)),
            })
            rgb_index += 1
    return names


def _rosinality_constant_filters(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # rosinality stores its resampling kernels with the upsampling gain (4) folded in.
    expected = setup_filter() * 4
    return {name: expected for name in tensors if name.endswith("blur.kernel") or name.endswith("upsample.kernel")}


def _rosinality_config(tensors: dict[str, torch.Tensor]) -> dict:
    styles = sorted(int(m.group(1)) for m in map(re.compile(r"style\.(\d+)\.weight$").match, tensors) if m)
    rgb_count = len({m.group(1) for m in map(re.compile(r"to_rgbs\.(\d+)\.").match, tensors) if m})
    if not styles or "input.input" not in tensors or "conv1.conv.weight" not in tensors:
        raise CheckpointError("not a rosinality StyleGAN2 state dict (no style.*, input.input, conv1.*)")
    channels = {4: tensors["conv1.conv.weight"].shape[1]}
    for i in range(rgb_count):
        channels[2 ** (i + 3)] = tensors[f"convs.{2 * i + 1}.conv.weight"].shape[1]
    channel_base, channel_max = infer_channel_formula(channels)
    return dict(resolution=2 ** (rgb_count + 2), z_dim=int(tensors["style.1.weight"].shape[1]),
                w_dim=int(tensors[f"style.{styles[-1]}.weight"].shape[0]), mapping_layers=len(styles),
                channel_base=channel_base, channel_max=channel_max)


def stylegan2_from_rosinality(state: dict[str, torch.Tensor], latent_avg: Any) -> LoadedCheckpoint:
    source = dict(state)
    if isinstance(latent_avg, torch.Tensor):
        source["latent_avg"] = latent_avg
    generator = build_for_file("stylegan2", _rosinality_config(state), tensor_bytes(source))
    names = rosinality_names(generator)
    if isinstance(latent_avg, torch.Tensor):
        names["w_avg"] = ("latent_avg", reshape_to(generator.w_avg.shape))
    fill_from_source(generator, source, names, _rosinality_constant_filters(source), derived={"w_avg"})
    if isinstance(latent_avg, torch.Tensor):
        return LoadedCheckpoint(generator, FORMAT_ROSINALITY)
    generator.w_avg.copy_(estimate_w_avg(generator.mapping_mlp, generator.z_dim))
    return LoadedCheckpoint(generator, FORMAT_ROSINALITY,
                            ["no latent_avg in the file: w_avg estimated from 10,000 seeded samples"])
