"""NVlabs stylegan3 pickles (configs T and R) -> `StyleGAN3`, from the restricted unpickler's records.

The record of `G_ema` (a `PersistentRecord`, see safe_pickle.py: the embedded source is never run)
holds the constructor kwargs of NVlabs' Generator. Every setting the images depend on is read from
them and anything not implemented here is refused by name; the layer schedule computed from them
must then agree with what each layer record says about itself (sizes, sampling rates, cut-offs,
channels, up/down factors, padding) and the FIR filters in the file with the ones designed from the
same formulas, so a network built by other rules is refused instead of rendered wrong. The tensors
are then copied one to one: every tensor of the file used, every tensor of the model filled.
"""
from __future__ import annotations

import math
import re
from typing import Any, Optional

import torch

from ..models.stylegan2 import IMAGE_CHANNELS
from ..models.stylegan3 import AliasFreeLayer, StyleGAN3
from .common import LoadedCheckpoint, build_for_file, fill_from_source
from .nvlabs import FORMAT_NVLABS_PICKLE, register_nvlabs_converter
from .safe_pickle import CheckpointError, PersistentRecord
from .stylegan2_formats import tensor_bytes

# NVlabs kwarg -> StyleGAN3 config key, for the settings passed through unchanged.
SYNTHESIS_KWARGS = {name: name for name in (
    "channel_base", "channel_max", "num_layers", "num_critical", "first_cutoff", "first_stopband",
    "last_stopband_rel", "margin_size", "output_scale", "num_fp16_res", "conv_kernel", "filter_size",
    "lrelu_upsampling", "use_radial_filters", "conv_clamp")}
GENERATOR_KWARGS = {"z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "mapping_kwargs"}
TRAINING_ONLY_KWARGS = {"magnitude_ema_beta"}  # how the input magnitudes were tracked, not how they are used
MAPPING_KWARGS = {"num_layers": "mapping_layers", "lr_multiplier": "mapping_lr_multiplier"}
MAPPING_TRAINING_ONLY = {"w_avg_beta", "num_ws", "z_dim", "c_dim", "w_dim"}
SPEC_FIELDS = ("in_channels", "out_channels", "in_size", "out_size", "in_sampling_rate", "out_sampling_rate",
               "in_cutoff", "out_cutoff", "in_half_width", "out_half_width", "is_torgb", "is_critically_sampled")
FILTER_TOLERANCE = 1e-6
LAYER_NAME = re.compile(r"L\d+_\d+_\d+")


def is_stylegan3_record(record: PersistentRecord) -> bool:
    """An NVlabs StyleGAN3 generator: a Fourier `input` layer, then only layers named L{i}_{size}_{channels}."""
    synthesis = record.children.get("synthesis")
    if not isinstance(synthesis, PersistentRecord) or "input" not in synthesis.children:
        return False
    return all(LAYER_NAME.fullmatch(str(name)) for name in synthesis.children if name != "input")


def stylegan3_from_nvlabs(record: PersistentRecord) -> LoadedCheckpoint:
    """Build the StyleGAN3 of an NVlabs stylegan3 Generator record; CheckpointError says what does not fit."""
    synthesis, mapping = record.children.get("synthesis"), record.children.get("mapping")
    if not isinstance(synthesis, PersistentRecord) or not isinstance(mapping, PersistentRecord):
        raise CheckpointError("StyleGAN3 generator without mapping/synthesis sub-networks")
    tensors = record.tensors()
    generator = build_for_file("stylegan3", _config(record, mapping), tensor_bytes(tensors))
    _check_layers(generator, synthesis)
    fill_from_source(generator, tensors, nvlabs_stylegan3_names(generator), {})
    notes = []
    if generator.config["num_fp16_res"] > 0:
        notes.append(f"NVlabs runs the layers of the {generator.config['num_fp16_res']} highest resolutions in fp16 "
                     "on GPUs; they run in fp32 here")
    return LoadedCheckpoint(generator, FORMAT_NVLABS_PICKLE, notes)


register_nvlabs_converter("stylegan3", is_stylegan3_record, stylegan3_from_nvlabs)


def _config(record: PersistentRecord, mapping: PersistentRecord) -> dict:
    kwargs = record.init_kwargs
    if record.state.get("_init_args"):
        raise CheckpointError("StyleGAN3 generator built with positional arguments; expected keyword arguments only")
    unknown = set(kwargs) - GENERATOR_KWARGS - set(SYNTHESIS_KWARGS) - TRAINING_ONLY_KWARGS
    if unknown:
        raise CheckpointError(f"StyleGAN3 generator with settings this loader does not implement: {sorted(unknown)}")
    if int(kwargs.get("c_dim", 0) or 0) > 0:
        raise CheckpointError("class-conditional StyleGAN3 generators (c_dim > 0) are not supported yet")
    if int(kwargs.get("img_channels", IMAGE_CHANNELS)) != IMAGE_CHANNELS:
        raise CheckpointError(f"only RGB StyleGAN3 generators are supported (img_channels={kwargs['img_channels']})")
    config = {SYNTHESIS_KWARGS[k]: _plain(v) for k, v in kwargs.items() if k in SYNTHESIS_KWARGS}
    config.update(resolution=int(kwargs["img_resolution"]), z_dim=int(kwargs["z_dim"]), w_dim=int(kwargs["w_dim"]))
    config.update(_mapping_config(dict(kwargs.get("mapping_kwargs") or {}), mapping))
    if config.get("conv_kernel", 3) not in (1, 3):
        raise CheckpointError(f"StyleGAN3 with conv_kernel={config['conv_kernel']}: only 3 (T) and 1 (R) are supported")
    return config


def _mapping_config(kwargs: dict, mapping: PersistentRecord) -> dict:
    unknown = set(kwargs) - set(MAPPING_KWARGS) - MAPPING_TRAINING_ONLY
    if unknown:
        raise CheckpointError(f"StyleGAN3 mapping network with unsupported settings: {sorted(unknown)}")
    config = {MAPPING_KWARGS[k]: _plain(v) for k, v in kwargs.items() if k in MAPPING_KWARGS}
    lr_multiplier = config.get("mapping_lr_multiplier", 0.01)
    for name, layer in mapping.children.items():
        options = layer.init_kwargs if isinstance(layer, PersistentRecord) else {}
        if options.get("activation", "linear") != "lrelu":
            raise CheckpointError(f"mapping.{name}: activation {options.get('activation', 'linear')!r} is not "
                                  "supported (StyleGAN3's mapping uses leaky ReLU)")
        if not math.isclose(float(options.get("lr_multiplier", 1.0)), lr_multiplier):
            raise CheckpointError(f"mapping.{name}: lr_multiplier {options.get('lr_multiplier')} differs from "
                                  f"the mapping network's {lr_multiplier}")
    return config


def _plain(value: Any) -> Any:
    """numpy scalars (as NVlabs' kwargs may hold) -> Python numbers, so the config is JSON-serialisable."""
    return value.item() if hasattr(value, "item") else value


def _check_layers(generator: StyleGAN3, synthesis: PersistentRecord) -> None:
    expected = ["input"] + [layer.name for layer in generator.layers[1:]]
    if list(synthesis.children) != expected:
        raise CheckpointError(f"StyleGAN3 synthesis layers {list(synthesis.children)} differ from the schedule "
                              f"of its settings {expected}")
    for layer in generator.layers[1:]:
        record = synthesis.children[layer.name]
        problems = _spec_differences(layer, record) + _filter_differences(layer, record)
        if problems:
            raise CheckpointError(f"StyleGAN3 layer {layer.name} differs from the published design: "
                                  + "; ".join(problems))


def _spec_differences(layer: AliasFreeLayer, record: PersistentRecord) -> list[str]:
    stored = record.init_kwargs
    problems = [f"{name} {stored[name]} != {getattr(layer.spec, name)}" for name in SPEC_FIELDS
                if name in stored and not _same(stored[name], getattr(layer.spec, name))]
    actual = {"up_factor": layer.up, "down_factor": layer.down, "padding": list(layer.padding)}
    problems += [f"{name} {record.state[name]} != {value}" for name, value in actual.items()
                 if name in record.state and not _same(record.state[name], value)]
    return problems


def _same(a: Any, b: Any) -> bool:
    if isinstance(b, list):
        return [int(v) for v in a] == b
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)


def _filter_differences(layer: AliasFreeLayer, record: PersistentRecord) -> list[str]:
    problems = []
    for name in ("up_filter", "down_filter"):
        designed: Optional[torch.Tensor] = getattr(layer, name)
        stored = record.buffers.get(name)
        if (designed is None) != (stored is None):
            problems.append(f"{name} {'absent' if stored is None else 'present'} in the file")
        elif designed is not None and (designed.shape != stored.shape or
                                       not torch.allclose(designed, stored.float(), atol=FILTER_TOLERANCE, rtol=0)):
            problems.append(f"{name} differs from the Kaiser/jinc design of its cut-off and transition band")
    return problems


def nvlabs_stylegan3_names(generator: StyleGAN3) -> dict[str, tuple[str, Any]]:
    """Model tensor name -> (NVlabs tensor name, conversion): the same layout, one to one."""
    def same(tensor: torch.Tensor) -> torch.Tensor:
        return tensor

    names = {"w_avg": ("mapping.w_avg", same)}
    for index in range(len(generator.mapping_mlp.fcs)):
        for kind in ("weight", "bias"):
            names[f"mapping_mlp.fcs.{index}.{kind}"] = (f"mapping.fc{index}.{kind}", same)
    for index, layer in enumerate(generator.layers):
        for local in layer.state_dict():
            names[f"layers.{index}.{local}"] = (f"synthesis.{layer.name}.{local}", same)
    return names
