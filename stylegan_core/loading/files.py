"""Read a checkpoint file of any supported format, chosen by content (never by file name), safely.

- NVlabs pickles: read with the restricted unpickler (safe_pickle.py), then built by the converter
  of the architecture the generator's structure shows (nvlabs.py);
- rosinality `.pt` files (torch.save of {'g_ema': state_dict, 'latent_avg': ...}) and state dicts
  in the NVlabs naming, read with torch.load(weights_only=True);
- the project's own safetensors export (export.py), which is what conversions are cached as.
A file that asks for anything else is refused with `UnsafeCheckpointError` before anything from it
runs; a truncated or corrupt file gives `CheckpointError`. Users load models with
`zoo.load_model`, which reads files through `read_checkpoint` and caches conversions.
"""
from __future__ import annotations

import argparse
import io
import os
import pickle
import pickletools
import struct
import zipfile
from pathlib import Path
from typing import Any

import torch

from .common import LoadedCheckpoint
from .nvlabs import from_nvlabs_content
from .safe_pickle import (TORCH_LEGACY_MAGIC, CheckpointError, UnsafeCheckpointError, check_legacy_torch_sizes,
                          read_pickle_file)
from .stylegan2_formats import stylegan2_from_nvlabs_state_dict, stylegan2_from_rosinality

FORMAT_SAFETENSORS = "stylegan_core-safetensors"
SAFETENSORS_MAX_HEADER = 100_000_000


def detect_format(path: str | os.PathLike) -> str:
    """'safetensors', 'torch-zip', 'torch-legacy' or 'pickle', from the first bytes of the file."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            head = handle.read(64)
    except OSError as error:
        raise CheckpointError(f"{path.name}: cannot read the file ({error.strerror or error})") from error
    if len(head) < 8:
        raise CheckpointError(f"{path.name}: file too short to be a checkpoint ({len(head)} bytes)")
    if head.startswith(b"PK\x03\x04"):
        return "torch-zip"
    header_length = struct.unpack("<Q", head[:8])[0]
    if 0 < header_length < SAFETENSORS_MAX_HEADER and head[8:9] == b"{":
        return "safetensors"
    if head[0] == pickle.PROTO[0] and 2 <= head[1] <= pickle.HIGHEST_PROTOCOL:
        return "torch-legacy" if _is_legacy_torch_save(head) else "pickle"
    raise CheckpointError(
        f"{path.name}: not a known checkpoint format (expected an NVlabs .pkl, a torch .pt or a stylegan_core "
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


def read_checkpoint(path: str | os.PathLike) -> LoadedCheckpoint:
    """Detect the format, read safely and build the generator (on CPU, eval mode, frozen)."""
    path = Path(path)
    kind = detect_format(path)
    if kind == "safetensors":
        from .export import ExportError, read_generator_file

        try:
            return LoadedCheckpoint(read_generator_file(path), FORMAT_SAFETENSORS)
        except ExportError as error:
            raise CheckpointError(str(error)) from error
    content = read_pickle_file(path) if kind == "pickle" else _read_torch_file(path, kind)
    try:
        loaded = from_nvlabs_content(content) if kind == "pickle" else _from_state_dict_content(content)
    except CheckpointError as error:
        raise type(error)(f"{path.name}: {error}") from error
    except RecursionError:  # a bug, not a bad file: the records' depth is bounded
        raise
    except (KeyError, IndexError, TypeError, AttributeError, ValueError, RuntimeError) as error:
        # a structure no known writer makes
        raise CheckpointError(f"{path.name}: unexpected checkpoint structure ({type(error).__name__}: "
                              f"{str(error)[:200]})") from error
    loaded.generator.eval().requires_grad_(False)
    return loaded


def describe_checkpoint(path: str | os.PathLike) -> dict:
    """What a checkpoint holds: kind, resolution, num_ws, w_dim, z_dim, parameter count, source format."""
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


# -- torch.save files ------------------------------------------------------------------------------
def _check_zip_members(path: Path) -> None:
    """torch writes its zip archives uncompressed; a compressed member could inflate to far more
    than the file holds (a zip bomb), so only stored members whose sizes fit the file are read."""
    size = path.stat().st_size
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError, EOFError) as error:
        raise CheckpointError(f"{path.name}: corrupt torch zip file ({str(error)[:200]})") from error
    if any(m.compress_type != zipfile.ZIP_STORED or m.file_size > size for m in members) \
            or sum(m.file_size for m in members) > size:
        raise CheckpointError(f"{path.name}: a torch file with compressed or oversized members (torch never "
                              "writes those): a corrupt or crafted file")


def _checked_torch_source(path: Path, kind: str) -> Path | io.BytesIO:
    """What torch.load may read: a zip file whose members fit, or the bytes of a legacy file whose
    declared sizes fit (from memory: a file object would allocate any length a read asks for)."""
    if kind == "torch-zip":
        _check_zip_members(path)
        return path
    try:
        data = path.read_bytes()
        check_legacy_torch_sizes(data)
    except OSError as error:
        raise CheckpointError(f"{path.name}: cannot read the file ({error.strerror or error})") from error
    except CheckpointError as error:
        raise type(error)(f"{path.name}: {error}") from error
    return io.BytesIO(data)


def _read_torch_file(path: Path, kind: str) -> Any:
    source = _checked_torch_source(path, kind)
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):  # rosinality keeps its CLI args
            content = torch.load(source, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        first_line = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
        if "nsupported" in str(error) or "global" in str(error).lower():
            raise UnsafeCheckpointError(
                f"{path.name}: the file holds objects other than tensors and plain data, refused ({first_line})"
            ) from error
        raise CheckpointError(f"{path.name}: corrupt torch file ({first_line})") from error
    except (RuntimeError, EOFError, ValueError, OSError, KeyError, IndexError, TypeError, AttributeError,
            struct.error, OverflowError, AssertionError) as error:  # what torch raises for corrupt files
        raise CheckpointError(f"{path.name}: truncated or corrupt torch file ({type(error).__name__}: "
                              f"{str(error)[:200]})") from error
    return content


def _from_state_dict_content(content: Any) -> LoadedCheckpoint:
    if not isinstance(content, dict):
        raise CheckpointError(f"a torch file holding a {type(content).__name__}, not a state dict")
    state = content.get("g_ema", content)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError("no generator state dict (expected a 'g_ema' entry of tensors)")
    if "mapping.fc0.weight" in state:
        return stylegan2_from_nvlabs_state_dict(state)
    return stylegan2_from_rosinality(state, content.get("latent_avg") if "g_ema" in content else None)
