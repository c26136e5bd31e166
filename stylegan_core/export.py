"""The project's own checkpoint format: safetensors with the architecture and config in the metadata.

It is what every conversion (OpenVINO IR, NVlabs pickle, rosinality .pt) is cached as, so a second
start skips the conversion. Loading it never runs code: tensors plus a JSON config.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .errors import UserError
from .generator import Generator, build_generator

FORMAT_NAME = "stylegan_core"
FORMAT_VERSION = "1"


class ExportError(UserError, ValueError):
    """A safetensors file that is not a readable stylegan_core export."""


def save_generator(generator: Generator, path: str | os.PathLike, extra: dict | None = None) -> Path:
    """Write `generator` (tensors + arch + config) atomically, so a crash never leaves half a cache file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "arch": generator.arch,
        "config": json.dumps(generator.config),
        "extra": json.dumps(extra or {}),
    }
    tensors = {name: t.detach().to("cpu").contiguous() for name, t in generator.state_dict().items()}
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    save_file(tensors, str(tmp), metadata=metadata)
    os.replace(tmp, path)
    return path


def read_metadata(path: str | os.PathLike) -> dict:
    """The export's metadata (arch, config, extra) without loading the tensors."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except (SafetensorError, OSError, ValueError) as error:
        raise ExportError(f"{path}: not a readable safetensors file ({error})") from error
    if metadata.get("format") != FORMAT_NAME:
        raise ExportError(f"{path}: safetensors file without stylegan_core metadata (arch/config)")
    return {
        "arch": metadata["arch"],
        "config": json.loads(metadata["config"]),
        "extra": json.loads(metadata.get("extra", "{}")),
    }


def load_generator_file(path: str | os.PathLike, device: str | torch.device = "cpu") -> Generator:
    """Rebuild a generator from an export; every tensor must match the model exactly."""
    metadata = read_metadata(path)
    generator = build_generator(metadata["arch"], metadata["config"])
    try:
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError) as error:
        raise ExportError(f"{path}: corrupt safetensors file ({error})") from error
    try:
        generator.load_state_dict(tensors, strict=True)
    except RuntimeError as error:
        raise ExportError(f"{path}: tensors do not match the {metadata['arch']} config: {error}") from error
    return generator.eval().requires_grad_(False).to(device)
