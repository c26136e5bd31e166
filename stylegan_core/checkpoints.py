"""Load StyleGAN2 checkpoints of the common formats, chosen by content (never by file name), safely.

Formats:
- NVlabs pickles (stylegan2-ada-pytorch, and the StyleGAN2 networks inside stylegan3 pickles). The
  stock loader exec()s the module source embedded in the pickle. Here a restricted unpickler
  allows only tensor/storage/container reconstruction; each persistent network object becomes a
  plain `PersistentRecord` (class name, parameters, buffers, children, init kwargs). The embedded
  source is never executed and nothing outside the allow-list is ever imported.
- rosinality `.pt` files (torch.save; {'g_ema': state_dict, 'latent_avg': ...}) and state dicts
  in the NVlabs naming, read with torch.load(weights_only=True).
- the project's own safetensors export (stylegan_core.export), which is what conversions are
  cached as.
A checkpoint that asks for anything else is refused with `UnsafeCheckpointError` before anything
from it runs; a truncated or corrupt file gives `CheckpointError`.

The name mappings use every tensor of the generator network in the file and fill every tensor of
the model; constant buffers (resampling filters) are checked against the expected values.
"""
from __future__ import annotations

import argparse
import collections
import io
import math
import os
import pickle
import pickletools
import re
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch

from .errors import UserError
from .generator import Generator, estimate_w_avg
from .ops.upfirdn2d import setup_filter
from .stylegan2 import IMAGE_CHANNELS, StyleGAN2, StyledConv, ToRGB

FORMAT_NVLABS_PICKLE = "nvlabs-pickle"
FORMAT_ROSINALITY = "rosinality-pt"
FORMAT_NVLABS_STATE_DICT = "nvlabs-state-dict-pt"
FORMAT_SAFETENSORS = "stylegan_core-safetensors"

TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # first object of a non-zip torch.save file
SAFETENSORS_MAX_HEADER = 100_000_000


class CheckpointError(UserError, ValueError):
    """A checkpoint that cannot be loaded: corrupt, truncated, or of an unsupported kind."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint that asks to run or import something a weight file never needs."""


# -- format detection -------------------------------------------------------------------------------
def detect_format(path: str | os.PathLike) -> str:
    """'safetensors', 'torch-zip', 'torch-legacy' or 'pickle', from the first bytes of the file."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            head = handle.read(64)
    except OSError as error:
        raise CheckpointError(f"{path}: cannot read the file ({error.strerror or error})") from error
    if len(head) < 8:
        raise CheckpointError(f"{path}: file too short to be a checkpoint ({len(head)} bytes)")
    if head.startswith(b"PK\x03\x04"):
        return "torch-zip"
    header_length = struct.unpack("<Q", head[:8])[0]
    if 0 < header_length < SAFETENSORS_MAX_HEADER and head[8:9] == b"{":
        return "safetensors"
    if head[0] == pickle.PROTO[0] and 2 <= head[1] <= pickle.HIGHEST_PROTOCOL:
        return "torch-legacy" if _is_legacy_torch_save(head) else "pickle"
    raise CheckpointError(
        f"{path}: not a known checkpoint format (expected an NVlabs .pkl, a torch .pt or a stylegan_core "
        f".safetensors file; the file starts with {head[:8]!r})"
    )


def _is_legacy_torch_save(head: bytes) -> bool:
    """A non-zip torch.save file is a pickle stream whose first value is torch's magic number."""
    try:
        for opcode, argument, _ in pickletools.genops(head):
            if opcode.name not in ("PROTO", "FRAME"):
                return argument == TORCH_LEGACY_MAGIC
    except ValueError:  # the 64-byte head ends inside an opcode
        pass
    return False


# -- the entry points ---------------------------------------------------------------------------------
@dataclass
class LoadedCheckpoint:
    generator: Generator
    source_format: str
    notes: list[str] = field(default_factory=list)


def read_checkpoint(path: str | os.PathLike) -> LoadedCheckpoint:
    """Detect the format, read safely and build the generator (on CPU, eval mode, frozen)."""
    path = Path(path)
    kind = detect_format(path)
    if kind == "safetensors":
        from .export import ExportError, load_generator_file

        try:
            return LoadedCheckpoint(load_generator_file(path), FORMAT_SAFETENSORS)
        except ExportError as error:
            raise CheckpointError(str(error)) from error
    content = read_nvlabs_pickle(path) if kind == "pickle" else _read_torch_file(path)
    try:
        if kind == "pickle":
            loaded = _from_nvlabs_record(_generator_record(content, path))
        else:
            loaded = _from_state_dict_content(content, path)
    except (KeyError, IndexError, TypeError, AttributeError) as error:  # a structure no known writer makes
        raise CheckpointError(f"{path}: unexpected checkpoint structure ({type(error).__name__}: {error})") from error
    loaded.generator.eval().requires_grad_(False)
    return loaded


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> Generator:
    """The generator of a checkpoint file (NVlabs .pkl, rosinality .pt or stylegan_core .safetensors)."""
    return read_checkpoint(path).generator.to(device)


def describe_checkpoint(path: str | os.PathLike) -> dict:
    """What `inspect` prints: kind, resolution, num_ws, w_dim, z_dim, parameter count, source format."""
    loaded = read_checkpoint(path)
    generator = loaded.generator
    return {
        "path": str(path),
        "kind": generator.arch,
        "resolution": generator.resolution,
        "num_ws": generator.num_ws,
        "w_dim": generator.w_dim,
        "z_dim": generator.z_dim,
        "parameters": sum(p.numel() for p in generator.parameters()),
        "source_format": loaded.source_format,
        "config": generator.config,
        "notes": loaded.notes,
    }


def run_inspect(path: str | os.PathLike) -> int:
    """The `inspect` CLI command: print the description, or the reason the file was refused (exit 1)."""
    try:
        description = describe_checkpoint(path)
    except UnsafeCheckpointError as error:
        print(f"refused (unsafe): {error}", file=sys.stderr)
        return 1
    except CheckpointError as error:
        print(f"unreadable: {error}", file=sys.stderr)
        return 1
    for key in ("path", "kind", "resolution", "num_ws", "w_dim", "z_dim", "parameters", "source_format"):
        value = description[key]
        print(f"{key:14s}{value:,}" if key == "parameters" else f"{key:14s}{value}")
    print(f"{'config':14s}{description['config']}")
    for note in description["notes"]:
        print(f"{'note':14s}{note}")
    return 0


# -- NVlabs pickles: the restricted unpickler ---------------------------------------------------------
@dataclass
class PersistentRecord:
    """A network object of an NVlabs pickle as plain data (its embedded module source is dropped unread)."""

    class_name: str
    state: dict

    def _state_dict(self, key: str) -> dict:
        value = self.state.get(key) or {}
        return value if isinstance(value, dict) else {}

    @property
    def parameters(self) -> dict[str, torch.Tensor]:
        return {k: v for k, v in self._state_dict("_parameters").items() if v is not None}

    @property
    def buffers(self) -> dict[str, torch.Tensor]:
        return {k: v for k, v in self._state_dict("_buffers").items() if v is not None}

    @property
    def children(self) -> dict[str, Any]:
        return {k: v for k, v in self._state_dict("_modules").items() if v is not None}

    @property
    def init_kwargs(self) -> dict:
        return dict(self._state_dict("_init_kwargs"))

    def tensors(self, prefix: str = "") -> dict[str, torch.Tensor]:
        """All parameters and buffers of this object and its children, by dotted name."""
        found = {prefix + k: v for k, v in {**self.parameters, **self.buffers}.items()}
        if not all(isinstance(v, torch.Tensor) for v in found.values()):
            raise CheckpointError(f"network {prefix.rstrip('.') or self.class_name!r} has non-tensor parameters")
        for name, child in self.children.items():
            if not isinstance(child, PersistentRecord):
                raise CheckpointError(f"network {prefix + name!r} is not a plain persistent object")
            found.update(child.tensors(f"{prefix}{name}."))
        return found


class _KwargsDict(dict):
    """Stands in for dnnlib.EasyDict (the kwargs container of NVlabs pickles): a plain dict."""


def _persistent_record(meta: Any) -> PersistentRecord:
    # Replaces torch_utils.persistence._reconstruct_persistent_obj, which would exec(meta['module_src']).
    if not isinstance(meta, dict) or meta.get("type") != "class" or not isinstance(meta.get("state"), dict):
        raise CheckpointError("malformed persistent object in the pickle")
    return PersistentRecord(str(meta.get("class_name")), dict(meta["state"]))


def _storage_from_bytes(data: Any):
    # torch.storage._load_from_bytes would call torch.load without weights_only on these bytes.
    if not isinstance(data, (bytes, bytearray)):
        raise CheckpointError("malformed tensor storage in the pickle")
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise UnsafeCheckpointError(f"a tensor storage in the pickle is not plain tensor data ({error})") from error


def _rebuild_tensor(storage, storage_offset, size, stride, *_ignored_grad_hooks_metadata) -> torch.Tensor:
    # Delegates to torch's own rebuild (the one torch's weights_only loader allows) with checked,
    # plain arguments only: no requires_grad, and never the pickle's hooks or metadata.
    if not isinstance(storage, torch.TypedStorage) or not isinstance(storage_offset, int) \
            or not all(isinstance(v, int) for v in (*size, *stride)):
        raise CheckpointError("malformed tensor in the pickle")
    return torch._utils._rebuild_tensor_v2(storage, storage_offset, tuple(size), tuple(stride), False,
                                           collections.OrderedDict())


def _rebuild_parameter(data, *_ignored_requires_grad_hooks_and_state) -> torch.Tensor:
    if not isinstance(data, torch.Tensor):
        raise CheckpointError("malformed parameter in the pickle")
    return data


_NUMPY_DTYPES = {"b1", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8"}


def _numpy_dtype(name: Any, *_align_copy) -> np.dtype:
    if name not in _NUMPY_DTYPES:
        raise UnsafeCheckpointError(f"the pickle asks for numpy dtype {name!r}; only plain numbers are allowed")
    return np.dtype(name)


def _numpy_scalar(dtype: Any, data: Any = b"") -> Any:
    if not isinstance(dtype, np.dtype) or dtype.kind not in "biuf" or not isinstance(data, bytes):
        raise UnsafeCheckpointError("the pickle asks for a numpy scalar that is not a plain number")
    return np.frombuffer(data, dtype=dtype, count=1)[0]


def _numpy_reconstruct(subtype: Any, *_shape_dtype) -> np.ndarray:
    # numpy arrays pickle as _reconstruct(ndarray, ...) then __setstate__ with a dtype that could
    # only come from _numpy_dtype above, so object arrays are impossible.
    if subtype is not np.ndarray:
        raise UnsafeCheckpointError("the pickle asks for a numpy array subclass")
    return np.empty(0, dtype=np.uint8)


def _latin1_bytes(text: Any, encoding: Any = "latin1") -> bytes:
    # Pickle protocol 2 writes bytes objects as _codecs.encode(text, 'latin1'); nothing else is needed.
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafeCheckpointError("the pickle asks for a text codec other than latin-1")
    return text.encode("latin1")


_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("_codecs", "encode"): _latin1_bytes,
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _persistent_record,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch.storage", "_load_from_bytes"): _storage_from_bytes,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("__builtin__", "set"): set,  # protocol 2 pickles name builtins the Python 2 way
    ("__builtin__", "frozenset"): frozenset,
    ("dnnlib.util", "EasyDict"): _KwargsDict,
    ("dnnlib", "EasyDict"): _KwargsDict,
    ("numpy", "dtype"): _numpy_dtype,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct,
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the allow-listed globals; anything else (os.system, eval, a class to instantiate,
    a module to import) stops the load before it is touched."""

    def find_class(self, module: str, name: str) -> Any:
        allowed = _ALLOWED_GLOBALS.get((module, name))
        if allowed is None:
            raise UnsafeCheckpointError(
                f"the pickle asks for {module}.{name}, which a StyleGAN checkpoint never needs; refusing to load it"
            )
        return allowed

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafeCheckpointError("the pickle uses persistent ids, which an NVlabs network pickle never does")


def read_nvlabs_pickle(path: str | os.PathLike) -> Any:
    """The pickle's content with every network object as a PersistentRecord; never runs its code."""
    try:
        with Path(path).open("rb") as handle:
            return _RestrictedUnpickler(handle).load()
    except CheckpointError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError,
            RuntimeError, struct.error, OverflowError, MemoryError) as error:
        raise CheckpointError(f"{path}: truncated or corrupt pickle ({type(error).__name__}: {error})") from error


def _generator_record(content: Any, path: Path) -> PersistentRecord:
    if isinstance(content, PersistentRecord):
        candidates = [content]
    elif isinstance(content, dict):
        candidates = [content[key] for key in ("G_ema", "G") if isinstance(content.get(key), PersistentRecord)]
    else:
        candidates = []
    if not candidates:
        raise CheckpointError(f"{path}: a pickle without a generator network (expected a dict with 'G_ema')")
    return candidates[0]


def _from_nvlabs_record(record: PersistentRecord) -> LoadedCheckpoint:
    """Dispatch by structure: a synthesis network with a Fourier `input` layer is StyleGAN3."""
    from .stylegan3_convert import is_stylegan3_record, stylegan3_from_nvlabs

    return stylegan3_from_nvlabs(record) if is_stylegan3_record(record) else stylegan2_from_nvlabs(record)


# -- NVlabs naming -> StyleGAN2 --------------------------------------------------------------------
def stylegan2_from_nvlabs(record: PersistentRecord) -> LoadedCheckpoint:
    """Build the StyleGAN2 of an NVlabs Generator record (stylegan2-ada-pytorch layout)."""
    children = record.children
    synthesis, mapping = children.get("synthesis"), children.get("mapping")
    if not isinstance(synthesis, PersistentRecord) or not isinstance(mapping, PersistentRecord):
        raise CheckpointError(f"the {record.class_name} network has no mapping/synthesis sub-networks")
    if "input" in synthesis.children or any(name.startswith("L") for name in synthesis.children):
        raise CheckpointError("this is a StyleGAN3 (alias-free) generator; only StyleGAN2 networks are supported")
    kwargs = record.init_kwargs
    if int(kwargs.get("c_dim", 0) or 0) > 0 or "embed" in mapping.children:
        raise CheckpointError("conditional generators (c_dim > 0, class labels) are not supported")
    if int(kwargs.get("img_channels", IMAGE_CHANNELS)) != IMAGE_CHANNELS:
        raise CheckpointError(f"only RGB generators are supported (img_channels={kwargs.get('img_channels')})")
    _check_synthesis_options(synthesis)
    tensors = record.tensors()
    config = _config_from_nvlabs_tensors(tensors)
    config["mapping_lr_multiplier"] = float(_fc_lr_multiplier(mapping))
    config["conv_clamp"] = _conv_clamp(synthesis)
    generator = StyleGAN2(**config)
    fill_from_source(generator, tensors, nvlabs_names(generator), _nvlabs_constant_filters(tensors))
    return LoadedCheckpoint(generator, FORMAT_NVLABS_PICKLE)


def _check_synthesis_options(synthesis: PersistentRecord) -> None:
    for block_name, block in synthesis.children.items():
        options = block.init_kwargs if isinstance(block, PersistentRecord) else {}
        architecture = options.get("architecture", "skip")
        if architecture != "skip":
            raise CheckpointError(f"{block_name}: the {architecture!r} architecture is not supported (only 'skip')")
        for layer in block.children.values() if isinstance(block, PersistentRecord) else ():
            layer_options = layer.init_kwargs if isinstance(layer, PersistentRecord) else {}
            if layer_options.get("activation", "lrelu") != "lrelu" and layer.class_name == "SynthesisLayer":
                raise CheckpointError(f"{block_name}: activation {layer_options['activation']!r} is not supported")
            if layer_options.get("use_noise", True) is False:
                raise CheckpointError(f"{block_name}: generators without noise inputs are not supported")
            if layer_options.get("kernel_size", 3) != 3 and layer.class_name == "SynthesisLayer":
                raise CheckpointError(f"{block_name}: only 3x3 synthesis convolutions are supported")


def _fc_lr_multiplier(mapping: PersistentRecord) -> float:
    first = mapping.children.get("fc0")
    value = first.init_kwargs.get("lr_multiplier") if isinstance(first, PersistentRecord) else None
    if value is None:
        value = mapping.init_kwargs.get("lr_multiplier", 0.01)
    return float(value)


def _conv_clamp(synthesis: PersistentRecord) -> Optional[float]:
    clamps = {
        layer.init_kwargs.get("conv_clamp")
        for block in synthesis.children.values() if isinstance(block, PersistentRecord)
        for layer in block.children.values() if isinstance(layer, PersistentRecord)
    }
    if len(clamps) > 1:
        raise CheckpointError(f"layers with different conv_clamp values {clamps} are not supported")
    value = next(iter(clamps), None)
    return None if value is None else float(value)


def _config_from_nvlabs_tensors(tensors: dict[str, torch.Tensor]) -> dict:
    resolutions = sorted(int(m.group(1)) for m in map(re.compile(r"synthesis\.b(\d+)\.conv1\.weight$").match, tensors) if m)
    fcs = sorted(int(m.group(1)) for m in map(re.compile(r"mapping\.fc(\d+)\.weight$").match, tensors) if m)
    if not resolutions or not fcs:
        raise CheckpointError("no StyleGAN2 synthesis blocks (synthesis.b4...) or mapping layers (mapping.fc0...)")
    channels = {res: tensors[f"synthesis.b{res}.conv1.weight"].shape[0] for res in resolutions}
    return _config(resolutions[-1], tensors["mapping.fc0.weight"].shape[1],
                   tensors[f"mapping.fc{fcs[-1]}.weight"].shape[0], len(fcs), channels)


def _config(resolution: int, z_dim: int, w_dim: int, mapping_layers: int, channels: dict[int, int]) -> dict:
    channel_base, channel_max = infer_channel_formula(channels)
    return dict(resolution=resolution, z_dim=int(z_dim), w_dim=int(w_dim), channel_base=channel_base,
                channel_max=channel_max, mapping_layers=mapping_layers)


def infer_channel_formula(channels: dict[int, int]) -> tuple[int, int]:
    """(channel_base, channel_max) with channels[res] == min(channel_base // res, channel_max) for all res."""
    channel_max = max(channels.values())
    below_max = [(res, ch) for res, ch in sorted(channels.items()) if ch < channel_max]
    channel_base = below_max[0][0] * below_max[0][1] if below_max else channel_max * max(channels)
    if any(min(channel_base // res, channel_max) != ch for res, ch in channels.items()):
        raise CheckpointError(f"channel counts {channels} do not follow the StyleGAN2 channel formula")
    return channel_base, channel_max


def _nvlabs_constant_filters(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    expected = setup_filter()
    return {name: expected for name in tensors if name.endswith("resample_filter")}


def nvlabs_names(generator: StyleGAN2) -> dict[str, tuple[str, Callable]]:
    """Model tensor name -> (NVlabs tensor name, conversion to the model's shape)."""
    same = _reshape_to(None)
    names = {"w_avg": ("mapping.w_avg", same), "const": ("synthesis.b4.const", same)}
    for index in range(len(generator.mapping_mlp.fcs)):
        for kind in ("weight", "bias"):
            names[f"mapping_mlp.fcs.{index}.{kind}"] = (f"mapping.fc{index}.{kind}", same)
    for index, layer in enumerate(generator.layers):
        for local in layer.state_dict():
            names[f"layers.{index}.{local}"] = (f"synthesis.{layer.name}.{local}", same)
    return names


# -- rosinality naming -> StyleGAN2 ----------------------------------------------------------------
def rosinality_names(generator: StyleGAN2) -> dict[str, tuple[str, Callable]]:
    """Model tensor name -> (rosinality name, conversion): the table of WEIGHTS.md section 6."""
    same = _reshape_to(None)
    names = {"const": ("input.input", _reshape_to(generator.const.shape))}
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
                prefix + "weight": (f"{source}.conv.weight", _reshape_to(layer.weight.shape)),
                prefix + "bias": (f"{source}.activate.bias", same),
                prefix + "noise_strength": (f"{source}.noise.weight", _reshape_to(layer.noise_strength.shape)),
                prefix + "noise_const": (f"noises.noise_{conv_index}", _reshape_to(layer.noise_const.shape)),
            })
            conv_index += 1
        elif isinstance(layer, ToRGB):
            source = "to_rgb1" if layer.name == "b4.torgb" else f"to_rgbs.{rgb_index - 1}"
            names.update({
                prefix + "affine.weight": (f"{source}.conv.modulation.weight", same),
                prefix + "affine.bias": (f"{source}.conv.modulation.bias", same),
                prefix + "weight": (f"{source}.conv.weight", _reshape_to(layer.weight.shape)),
                prefix + "bias": (f"{source}.bias", _reshape_to(layer.bias.shape)),
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
    return _config(2 ** (rgb_count + 2), tensors["style.1.weight"].shape[1],
                   tensors[f"style.{styles[-1]}.weight"].shape[0], len(styles), channels)


# -- the shared fill step --------------------------------------------------------------------------
def _reshape_to(shape: Optional[torch.Size]) -> Callable[[torch.Tensor], torch.Tensor]:
    def convert(tensor: torch.Tensor) -> torch.Tensor:
        if shape is None:
            return tensor
        if tensor.numel() != math.prod(shape):
            return tensor  # fill_from_source reports the shape mismatch with both names
        return tensor.reshape(shape)

    return convert


def fill_from_source(generator: Generator, source: dict[str, torch.Tensor], names: dict[str, tuple[str, Callable]],
                     constants: dict[str, torch.Tensor], derived: frozenset[str] | set[str] = frozenset()) -> None:
    """Copy every model tensor from its source tensor; every source tensor must be used or be a known
    constant with the expected value. `derived` model tensors are computed by the caller afterwards.
    Lists all problems at once."""
    target = generator.state_dict()
    problems = [f"model tensor {name!r} has no source" for name in target if name not in names and name not in derived]
    used = set()
    for name, (source_name, convert) in names.items():
        if source_name not in source:
            problems.append(f"missing tensor {source_name!r} (for {name})")
            continue
        value = convert(source[source_name].detach().float())
        used.add(source_name)
        if value.shape != target[name].shape:
            problems.append(f"{source_name}: shape {list(source[source_name].shape)}, expected {list(target[name].shape)}")
            continue
        target[name].copy_(value)
    for name, expected in constants.items():
        used.add(name)
        if source[name].shape != expected.shape or not torch.allclose(source[name].float(), expected):
            problems.append(f"{name}: resampling filter differs from the StyleGAN2 filter [1, 3, 3, 1]")
    problems += [f"unused tensor {name!r} in the file" for name in sorted(set(source) - used)]
    if problems:
        shown = "; ".join(problems[:8]) + (f"; and {len(problems) - 8} more" if len(problems) > 8 else "")
        raise CheckpointError(f"the checkpoint does not match a {generator.arch} generator: {shown}")


# -- torch.save files ------------------------------------------------------------------------------
def _read_torch_file(path: Path) -> Any:
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):  # rosinality keeps its CLI args
            content = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        if "nsupported" in str(error) or "global" in str(error).lower():
            raise UnsafeCheckpointError(
                f"{path}: the file holds objects other than tensors and plain data, refused ({first_line})"
            ) from error
        raise CheckpointError(f"{path}: corrupt torch file ({first_line})") from error
    except (RuntimeError, EOFError, ValueError, OSError, KeyError, struct.error) as error:
        raise CheckpointError(f"{path}: truncated or corrupt torch file ({type(error).__name__}: {error})") from error
    return content


def _from_state_dict_content(content: Any, path: Path) -> LoadedCheckpoint:
    if not isinstance(content, dict):
        raise CheckpointError(f"{path}: a torch file holding a {type(content).__name__}, not a state dict")
    state = content.get("g_ema", content)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: no generator state dict (expected a 'g_ema' entry of tensors)")
    if "mapping.fc0.weight" in state:
        generator = StyleGAN2(**_config_from_nvlabs_tensors(state))
        fill_from_source(generator, state, nvlabs_names(generator), _nvlabs_constant_filters(state))
        return LoadedCheckpoint(generator, FORMAT_NVLABS_STATE_DICT,
                                ["NVlabs state dict without init kwargs: mapping lr multiplier 0.01, no conv_clamp"])
    latent_avg = content.get("latent_avg") if "g_ema" in content else None
    generator = StyleGAN2(**_rosinality_config(state))
    names = rosinality_names(generator)
    source = dict(state)
    if isinstance(latent_avg, torch.Tensor):
        source["latent_avg"] = latent_avg
        names["w_avg"] = ("latent_avg", _reshape_to(generator.w_avg.shape))
    fill_from_source(generator, source, names, _rosinality_constant_filters(source), derived={"w_avg"})
    if isinstance(latent_avg, torch.Tensor):
        return LoadedCheckpoint(generator, FORMAT_ROSINALITY)
    generator.w_avg.copy_(estimate_w_avg(generator.mapping_mlp, generator.z_dim))
    return LoadedCheckpoint(generator, FORMAT_ROSINALITY,
                            ["no latent_avg in the file: w_avg estimated from 10,000 seeded samples"])
