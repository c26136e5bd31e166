"""The model zoo: a model name resolves to an architecture, its weight files and a ready generator.

`load_model(name)` fetches the files through `stylegan_core.weights`, converts them (OpenVINO IR,
rosinality .pt, NVlabs pickle) once, and caches the result as a stylegan_core safetensors export
under weights/converted/, keyed by the source files and the converter's source code, so a second
start only reads one file. A process-level cache hands every caller the same loaded model.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import re
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Union

import torch

from .errors import UserError
from . import export
from .generator import Generator
from .weights import cache_path, resolve

log = logging.getLogger(__name__)

CHECKPOINT_ENV = "STYLEGAN_CHECKPOINT"
CUSTOM_CHECKPOINT = "custom checkpoint"  # the name of a model loaded from a checkpoint file

FFHQ_LICENCE = ("Weights derive from NVIDIA's StyleGAN2 trained on FFHQ: NVIDIA Source Code License-NC "
                "(research, non-commercial use only); FFHQ images are CC BY-NC-SA 4.0 by NVIDIA.")
AFHQ_LICENCE = ("NVIDIA StyleGAN2-ADA weights: NVIDIA Source Code License-NC (non-commercial); "
                "AFHQ data CC BY-NC 4.0 (Clova AI).")


class ModelError(UserError, ValueError):
    """An unknown model name or a model file that cannot be loaded."""


@dataclass(frozen=True)
class ModelEntry:
    name: str
    arch: str
    description: str
    resolution: int
    licence: str
    file_ids: tuple[str, ...]
    verified: bool  # loaded and checked on this project's machines; False: Hub files nobody pinned yet
    converter: str  # a key of CONVERTERS


MODELS: dict[str, ModelEntry] = {
    entry.name: entry
    for entry in [
        ModelEntry(
            "ffhq-mobile", "mobile_stylegan",
            "MobileStyleGAN, FFHQ faces, 1024 px (runs offline; weights from PyPI random-face)",
            1024,
            "MobileStyleGAN by Belousov (code Apache-2.0), distilled from NVIDIA's FFHQ StyleGAN2. " + FFHQ_LICENCE,
            tuple(f"mobilestylegan-ffhq/{n}" for n in
                  ("MappingNetwork.xml", "MappingNetwork.bin", "SynthesisNetwork.xml", "SynthesisNetwork.bin")),
            verified=True, converter="openvino_ir",
        ),
        ModelEntry(
            "stylegan2-ffhq", "stylegan2",
            "StyleGAN2 config-f, FFHQ faces, 1024 px (rosinality format, from the Hugging Face Hub)",
            1024, FFHQ_LICENCE, ("stylegan2-ffhq/stylegan2-ffhq-config-f.pt",),
            verified=False, converter="checkpoint",
        ),
        ModelEntry(
            "stylegan2-ada-ffhq", "stylegan2",
            "StyleGAN2-ADA, FFHQ faces, 1024 px (NVlabs pickle, from the Hugging Face Hub)",
            1024, FFHQ_LICENCE, ("stylegan2-ada/ffhq.pkl",),
            verified=False, converter="checkpoint",
        ),
        *[
            ModelEntry(
                f"stylegan2-afhq{kind}", "stylegan2",
                f"StyleGAN2-ADA, AFHQ {label}, 512 px (NVlabs pickle, from the Hugging Face Hub)",
                512, AFHQ_LICENCE, (f"stylegan2-ada/afhq{kind}.pkl",),
                verified=False, converter="checkpoint",
            )
            for kind, label in (("cat", "cats"), ("dog", "dogs"), ("wild", "wild animals"))
        ],
    ]
}
DEFAULT_MODEL = "ffhq-mobile"


@dataclass
class LoadedModel:
    generator: Generator
    name: str
    entry: ModelEntry
    sources: tuple[str, ...]  # where each file came from, human-readable

    @property
    def source_description(self) -> str:
        return "; ".join(dict.fromkeys(self.sources))  # the four IR files share one source


# -- converters ------------------------------------------------------------------------------------
def _convert_openvino_ir(paths: list[Path]) -> Generator:
    from .mobile_stylegan import MobileStyleGAN

    return MobileStyleGAN.from_openvino_ir(*paths)


def _convert_checkpoint(paths: list[Path]) -> Generator:
    from .checkpoints import load_checkpoint

    return load_checkpoint(paths[0])


# converter -> (function of the resolved files, the modules whose code defines its output)
CONVERTERS: dict[str, tuple[Callable[[list[Path]], Generator], tuple[str, ...]]] = {
    "openvino_ir": (_convert_openvino_ir, ("mobile_stylegan", "openvino_ir")),
    "checkpoint": (_convert_checkpoint, ("stylegan2", "checkpoints")),
}


def _converter_fingerprint(modules: tuple[str, ...]) -> str:
    """A hash of the converter's source: editing the converter invalidates old conversions by itself."""
    digest = hashlib.sha256(export.FORMAT_VERSION.encode())
    for module in modules:
        spec = importlib.util.find_spec(f"{__package__}.{module}")
        digest.update(Path(spec.origin).read_bytes() if spec and spec.origin else b"missing")
    return digest.hexdigest()


def _file_fingerprint(path: Path, sha256: Optional[str]) -> str:
    if sha256:
        return sha256
    stat = path.resolve().stat()
    return f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"


def _conversion_key(converter: str, files: list[tuple[Path, Optional[str]]]) -> str:
    parts = [_converter_fingerprint(CONVERTERS[converter][1])] + [_file_fingerprint(p, s) for p, s in files]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:20]


def _cached_conversion(stem: str, converter: str, files: list[tuple[Path, Optional[str]]],
                       device: Union[str, torch.device], replace_older: bool) -> Generator:
    """Load the cached export of these files, or convert them and write the export for next time."""
    target = cache_path(f"{stem}-{_conversion_key(converter, files)}.safetensors")
    if target.is_file():
        try:
            return export.load_generator_file(target, device)
        except export.ExportError as error:
            warnings.warn(f"converting again: the cached conversion is unreadable ({error})")
    log.info("converting %s (%s) to %s; later starts read this cache", stem, converter, target.name)
    generator = CONVERTERS[converter][0]([path for path, _ in files])
    try:
        export.save_generator(generator, target, extra={"sources": [str(p) for p, _ in files]})
        if replace_older:  # one conversion per model: drop those of older files or converters
            for old in target.parent.glob(f"{stem}-*.safetensors"):
                if old != target:
                    old.unlink(missing_ok=True)
    except OSError as error:
        warnings.warn(f"could not cache the converted model at {target}: {error}")
    return generator.eval().requires_grad_(False).to(device)


# -- loading ---------------------------------------------------------------------------------------
def model_names() -> list[str]:
    """Known model names, the default first."""
    return [DEFAULT_MODEL] + [name for name in MODELS if name != DEFAULT_MODEL]


def get_entry(name: str) -> ModelEntry:
    if name not in MODELS:
        raise ModelError(f"unknown model {name!r}; known models: {', '.join(model_names())} "
                         f"(or give the path of a checkpoint file)")
    return MODELS[name]


def _load_entry(entry: ModelEntry, device: Union[str, torch.device]) -> LoadedModel:
    resolved = [resolve(file_id) for file_id in entry.file_ids]
    files = [(r.path, r.file.sha256) for r in resolved]
    generator = _cached_conversion(entry.name, entry.converter, files, device, replace_older=True)
    if generator.arch != entry.arch:
        raise ModelError(f"{entry.name}: the files hold a {generator.arch} model, expected {entry.arch}")
    return LoadedModel(generator, entry.name, entry, tuple(r.source for r in resolved))


def load_checkpoint_file(path: Union[str, os.PathLike], device: Union[str, torch.device] = "cpu") -> LoadedModel:
    """Any supported checkpoint file: a stylegan_core .safetensors export, a rosinality .pt, an NVlabs .pkl."""
    from .checkpoints import detect_format

    path = Path(path).expanduser()
    if not path.is_file():
        raise ModelError(f"no checkpoint file at {path}")
    if detect_format(path) == "safetensors":  # already the project's format: nothing to convert or cache
        generator = export.load_generator_file(path, device)
    else:
        stem = "checkpoint-" + re.sub(r"[^A-Za-z0-9_.-]+", "_", path.stem)
        generator = _cached_conversion(stem, "checkpoint", [(path, None)], device, replace_older=False)
    entry = ModelEntry(
        CUSTOM_CHECKPOINT, generator.arch, f"{generator.arch} checkpoint {path.name}", generator.resolution,
        "as set by the checkpoint's authors", (), verified=False, converter="checkpoint",
    )
    return LoadedModel(generator, CUSTOM_CHECKPOINT, entry, (f"checkpoint file {path}",))


_loaded: dict[tuple[str, ...], LoadedModel] = {}
_load_lock = threading.Lock()


def _requested_checkpoint(name_or_path: Optional[str], checkpoint) -> Optional[Path]:
    """The checkpoint file a load_model request means, or None for a zoo model."""
    if checkpoint is not None:
        if name_or_path not in (None, CUSTOM_CHECKPOINT):
            raise ModelError(f"give either a model name ({name_or_path!r}) or a checkpoint file, not both")
        path = Path(checkpoint)
    elif name_or_path in (None, CUSTOM_CHECKPOINT):
        if not os.environ.get(CHECKPOINT_ENV):
            if name_or_path == CUSTOM_CHECKPOINT:
                raise ModelError(f"no checkpoint file given (pass one, or set ${CHECKPOINT_ENV})")
            return None
        path = Path(os.environ[CHECKPOINT_ENV])
    elif name_or_path not in MODELS and Path(name_or_path).is_file():
        path = Path(name_or_path)
    else:
        return None
    path = path.expanduser()
    if not path.is_file():
        raise ModelError(f"no checkpoint file at {path}")
    return path


def load_model(name_or_path: Optional[str] = None, device: Union[str, torch.device] = "cpu",
               checkpoint: Optional[Union[str, os.PathLike]] = None) -> LoadedModel:
    """A zoo model by name, or a checkpoint file; loaded once per process and device.

    A checkpoint file is loaded when given as `checkpoint`, as the name itself (an existing path),
    or through $STYLEGAN_CHECKPOINT when no name (or the name CUSTOM_CHECKPOINT) is given.
    Otherwise the named zoo model, DEFAULT_MODEL when no name is given.
    """
    checkpoint_path = _requested_checkpoint(name_or_path, checkpoint)
    device_name = str(torch.device(device))
    if checkpoint_path is None:
        entry = get_entry(name_or_path or DEFAULT_MODEL)
        key = ("zoo", entry.name, device_name)
    else:
        key = ("checkpoint", _file_fingerprint(checkpoint_path, None), device_name)
    if key in _loaded:  # no waiting on the lock while another model is being converted
        return _loaded[key]
    with _load_lock:
        if key not in _loaded:
            _loaded[key] = (_load_entry(entry, device) if checkpoint_path is None
                            else load_checkpoint_file(checkpoint_path, device))
        return _loaded[key]


def clear_loaded_models() -> None:
    """Forget the process-level cache (tests; or after replacing weight files)."""
    with _load_lock:
        _loaded.clear()
