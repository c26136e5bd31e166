"""NVlabs network pickles (stylegan2-ada-pytorch, stylegan3): find the generator, recognise its
architecture by structure and hand it to that architecture's converter.

A converter registers itself with `register_nvlabs_converter(name, matches, convert)`: `matches`
looks at the generator's `PersistentRecord` (its class and module names, sub-networks, init kwargs)
and `convert` builds the model. The pickle's own module source is never used for either.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

from .common import LoadedCheckpoint
from .safe_pickle import CheckpointError, PersistentRecord

FORMAT_NVLABS_PICKLE = "nvlabs-pickle"


@dataclass(frozen=True)
class NVlabsConverter:
    name: str  # the architecture it builds, e.g. 'stylegan2'
    matches: Callable[[PersistentRecord], bool]  # is this generator record of my architecture?
    convert: Callable[[PersistentRecord], LoadedCheckpoint]


_CONVERTERS: dict[str, NVlabsConverter] = {}
# Modules (relative to stylegan_core) whose import registers a converter; a new one adds its module here.
CONVERTER_MODULES = ("loading.stylegan2_formats", "loading.stylegan3_nvlabs")


def register_nvlabs_converter(name: str, matches: Callable[[PersistentRecord], bool],
                              convert: Callable[[PersistentRecord], LoadedCheckpoint]) -> None:
    """Make NVlabs pickles whose generator record `matches` load through `convert`."""
    _CONVERTERS[name] = NVlabsConverter(name, matches, convert)


def nvlabs_converters() -> list[NVlabsConverter]:
    for module in CONVERTER_MODULES:
        importlib.import_module(f"{__package__.rsplit('.', 1)[0]}.{module}")
    return list(_CONVERTERS.values())


def generator_record(content: Any) -> PersistentRecord:
    """The generator network of a pickle's content: G_ema (the smoothed weights used for images),
    else G, else the content itself when the pickle holds one network."""
    if isinstance(content, PersistentRecord):
        return content
    if isinstance(content, dict):
        for key in ("G_ema", "G"):
            if isinstance(content.get(key), PersistentRecord):
                return content[key]
    raise CheckpointError("a pickle without a generator network (expected a dict with 'G_ema')")


def describe_structure(record: PersistentRecord) -> str:
    children = record.children
    synthesis = children.get("synthesis")
    parts = sorted(synthesis.children)[:6] if isinstance(synthesis, PersistentRecord) else []
    return (f"class {record.class_name} from {record.module or 'an unnamed module'}, sub-networks "
            f"{sorted(map(str, children))[:6]}, synthesis layers {parts}")


def from_nvlabs_content(content: Any) -> LoadedCheckpoint:
    """Build the generator of an unpickled NVlabs file with the converter that recognises it."""
    record = generator_record(content)
    converters = nvlabs_converters()
    for converter in converters:
        if converter.matches(record):
            return converter.convert(record)
    raise CheckpointError(f"no converter recognises this NVlabs generator ({describe_structure(record)}); "
                          f"supported: {', '.join(c.name for c in converters)}")
