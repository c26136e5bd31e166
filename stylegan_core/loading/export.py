"""The project's own checkpoint format: safetensors with the architecture and config in the metadata.

It is what every conversion (OpenVINO IR, NVlabs pickle, rosinality .pt) is cached as, so a second
start skips the conversion. Reading it never runs code: tensors plus a JSON config. The header is
checked before anything is allocated (declared sizes inside the file, tensors exactly those of the
config's model), and a sha256 of the tensor data, stored in the metadata, is verified on reading,
so a damaged file is noticed instead of rendering wrong images.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import struct
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..errors import UserError
from ..models.generator import Generator

FORMAT_NAME = "stylegan_core"
FORMAT_VERSION = "1"
MAX_HEADER_BYTES = 100_000_000
_ITEM_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


class ExportError(UserError, ValueError):
    """A safetensors file that is not a readable stylegan_core export."""


def content_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over every tensor's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().to("cpu").contiguous()
        digest.update(f"{name}|{tensor.dtype}|{list(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def save_generator(generator: Generator, path: str | os.PathLike, extra: dict | None = None) -> Path:
    """Write `generator` (tensors + arch + config + content hash) atomically, so a crash never leaves
    half a cache file. Raises OSError when the file cannot be written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {name: t.detach().to("cpu").contiguous() for name, t in generator.state_dict().items()}
    metadata = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "arch": generator.arch,
        "config": json.dumps(generator.config),
        "extra": json.dumps(extra or {}),
        "content_sha256": content_sha256(tensors),
    }
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    try:
        save_file(tensors, str(tmp), metadata=metadata)
    except SafetensorError as error:  # the library's own error for an unwritable file
        tmp.unlink(missing_ok=True)
        raise OSError(f"cannot write {path.name}: {error}") from error
    os.replace(tmp, path)
    return path


def _read_header(path: Path) -> tuple[dict, dict[str, list[int]]]:
    """(metadata, tensor name -> shape) from the header, after checking every declared size
    against the file: nothing is allocated for data the file does not hold."""
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            head = handle.read(8)
            length = struct.unpack("<Q", head)[0] if len(head) == 8 else -1
            if not 0 < length <= min(MAX_HEADER_BYTES, size - 8):
                raise ExportError(f"{path.name}: not a readable safetensors file (header length {length:,})")
            header = json.loads(handle.read(length))
    except ExportError:
        raise
    except (OSError, ValueError) as error:
        raise ExportError(f"{path.name}: not a readable safetensors file ({str(error)[:200]})") from error
    if not isinstance(header, dict):
        raise ExportError(f"{path.name}: not a readable safetensors file (header is not a table)")
    data_bytes, shapes = size - 8 - length, {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        shapes[name] = _checked_entry(path, name, entry, data_bytes)
    metadata = header.get("__metadata__") or {}
    return (metadata if isinstance(metadata, dict) else {}), shapes


def _checked_entry(path: Path, name: str, entry, data_bytes: int) -> list[int]:
    try:
        shape, (begin, end) = entry["shape"], entry["data_offsets"]
        valid = (entry["dtype"] in _ITEM_BYTES and all(type(d) is int and d >= 0 for d in shape)
                 and type(begin) is int and type(end) is int and 0 <= begin <= end <= data_bytes
                 and end - begin == math.prod(shape) * _ITEM_BYTES[entry["dtype"]])
    except (KeyError, TypeError, ValueError):
        valid = False
    if not valid:
        raise ExportError(f"{path.name}: tensor {str(name)[:100]!r} declares a size or place outside the file")
    return list(shape)


def read_metadata(path: str | os.PathLike) -> dict:
    """The export's metadata (arch, config, extra, content_sha256) without loading the tensors."""
    return _parse_metadata(Path(path), _read_header(Path(path))[0])


def _parse_metadata(path: Path, metadata: dict) -> dict:
    if metadata.get("format") != FORMAT_NAME:
        raise ExportError(f"{path.name}: safetensors file without stylegan_core metadata (arch/config)")
    try:
        return {
            "arch": metadata["arch"],
            "config": json.loads(metadata["config"]),
            "extra": json.loads(metadata.get("extra", "{}")),
            "content_sha256": metadata.get("content_sha256"),
        }
    except (KeyError, ValueError) as error:
        raise ExportError(f"{path.name}: unreadable stylegan_core metadata ({str(error)[:200]})") from error


def read_generator_file(path: str | os.PathLike, device: str | torch.device = "cpu",
                        require_hash: bool = False) -> Generator:
    """Rebuild a generator from an export; every tensor must match the model exactly, and the
    content hash (required with `require_hash`, as for cached conversions) must match the data.
    Users load files with `zoo.load_model`."""
    from .common import build_for_file
    from .safe_pickle import CheckpointError

    path = Path(path)
    metadata, shapes = _read_header(path)
    info = _parse_metadata(path, metadata)
    try:
        generator = build_for_file(info["arch"], info["config"], path.stat().st_size, bytes_per_value=1)
    except CheckpointError as error:
        raise ExportError(f"{path.name}: {error}") from error
    expected = {name: list(t.shape) for name, t in generator.state_dict().items()}
    if shapes != expected:
        wrong = sorted(set(shapes) ^ set(expected)) or [n for n in expected if shapes[n] != expected[n]]
        raise ExportError(f"{path.name}: tensors do not match the {info['arch']} config (e.g. {wrong[:3]})")
    try:
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError) as error:
        raise ExportError(f"{path.name}: corrupt safetensors file ({str(error)[:200]})") from error
    _verify_content(path, tensors, info["content_sha256"], require_hash)
    generator.load_state_dict(tensors, strict=True)
    return generator.eval().requires_grad_(False).to(device)


def _verify_content(path: Path, tensors: dict[str, torch.Tensor], stored: str | None, required: bool) -> None:
    if stored is None and not required:
        return
    if stored is None or content_sha256(tensors) != stored:
        raise ExportError(f"{path.name}: the tensor data does not match its stored content hash (a damaged file)")
