"""What every converter shares: the result type, building a model only when the file can fill it,
and the fill step that copies every source tensor into the model."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch

from ..models.generator import Generator, build_generator
from .safe_pickle import CheckpointError


@dataclass
class LoadedCheckpoint:
    generator: Generator
    source_format: str
    notes: list[str] = field(default_factory=list)


def _config_values(config: dict):
    for value in config.values():
        if isinstance(value, (list, tuple)):
            yield len(value)
            yield from (v for v in value if isinstance(v, (int, float)) and not isinstance(v, bool))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            yield value


def build_for_file(arch: str, config: dict, tensor_bytes: int, bytes_per_value: int = 2) -> Generator:
    """Build the `arch` model of `config` only if a file with `tensor_bytes` bytes of tensor data
    can fill it: the model is first built on the 'meta' device (no memory), so a crafted config
    cannot make us allocate gigabytes. `bytes_per_value`: the smallest dtype the file may use."""
    if not isinstance(config, dict) or any(not math.isfinite(v) or abs(v) > max(tensor_bytes, 4096)
                                           for v in _config_values(config)):
        raise CheckpointError(f"implausible {arch} config for a file of {tensor_bytes:,} bytes")
    try:
        with torch.device("meta"):
            meta = build_generator(arch, config)
    except (TypeError, ValueError, RuntimeError, OverflowError) as error:
        raise CheckpointError(f"invalid {arch} config ({type(error).__name__}: {str(error)[:200]})") from error
    needed = sum(t.numel() for t in meta.state_dict().values()) * bytes_per_value
    if needed > tensor_bytes:
        raise CheckpointError(f"the {arch} config needs at least {needed:,} bytes of weights, but the file holds "
                              f"{tensor_bytes:,}: a corrupt or crafted file")
    return build_generator(arch, config)


def reshape_to(shape: Optional[torch.Size]) -> Callable[[torch.Tensor], torch.Tensor]:
    def convert(tensor: torch.Tensor) -> torch.Tensor:
        if shape is None or tensor.numel() != math.prod(shape):
            return tensor  # fill_from_source reports a shape mismatch with both names
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
            problems.append(f"{name}: resampling filter differs from the expected filter")
    problems += [f"unused tensor {name[:200]!r} in the file" for name in sorted(set(source) - used)]
    if problems:
        shown = "; ".join(problems[:8]) + (f"; and {len(problems) - 8} more" if len(problems) > 8 else "")
        raise CheckpointError(f"the checkpoint does not match a {generator.arch} generator: {shown}")
