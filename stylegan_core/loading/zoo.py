"""The model zoo: a model name resolves to an architecture, its weight files and a ready generator.

`load_model` is the one public way to load a model (a zoo name, a checkpoint file or a Hub file).
`load_model(name)` fetches the files through `stylegan_core.weights`, converts them (OpenVINO IR,
rosinality .pt, NVlabs pickle) once, and caches the result as a stylegan_core safetensors export
under weights/converted/ (a writable fallback folder when that cannot be written, or memory),
keyed by the source files and the converter's source code, so a second start only reads one file.
A cached file is checked by its content hash and by rendering one image; a damaged one is
converted again. A process-level cache hands every caller the same loaded model.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Union

import torch

from ..errors import UserError
from . import export
from ..models.generator import ARCHITECTURE_MODULES, Generator
from .weights import (HubLocation, WeightFile, WeightsUnavailable, cache_path, cached_copies, known_file,
                      local_source, reachable_download_sources, resolve, resolve_file)

log = logging.getLogger(__name__)

CHECKPOINT_ENV = "STYLEGAN_CHECKPOINT"
CUSTOM_CHECKPOINT = "custom checkpoint"  # the name of a model loaded from a checkpoint file
HUB_PREFIX = "hf://"

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
    from .mobile_stylegan_ir import mobile_stylegan_from_ir

    return mobile_stylegan_from_ir(*paths)


def _convert_checkpoint(paths: list[Path]) -> Generator:
    from .files import read_checkpoint

    return read_checkpoint(paths[0]).generator


# converter -> (function of the resolved files, the modules and packages whose code defines its output)
CONVERTERS: dict[str, tuple[Callable[[list[Path]], Generator], tuple[str, ...]]] = {
    "openvino_ir": (_convert_openvino_ir, ("models.mobile_stylegan", "loading")),
    "checkpoint": (_convert_checkpoint, ("loading", *(f"models.{m}" for m in ARCHITECTURE_MODULES))),
}


def _source_files(module: str) -> list[Path]:
    spec = importlib.util.find_spec(f"stylegan_core.{module}")
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(f"stylegan_core.{module}: a converter's fingerprint names a module that is gone")
    if spec.submodule_search_locations:  # a package: all its modules
        return sorted(p for folder in spec.submodule_search_locations for p in Path(folder).rglob("*.py"))
    return [Path(spec.origin)]


def _converter_fingerprint(modules: tuple[str, ...]) -> str:
    """A hash of the converter's source: editing the converter invalidates old conversions by itself."""
    digest = hashlib.sha256(export.FORMAT_VERSION.encode())
    for module in modules:
        for path in _source_files(module) or [None]:
            digest.update(path.read_bytes() if path else b"missing")
    return digest.hexdigest()


def _file_fingerprint(path: Path, sha256: Optional[str]) -> str:
    if sha256:
        return sha256
    stat = path.resolve().stat()
    return f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"


def _conversion_key(converter: str, files: list[tuple[Path, Optional[str]]]) -> str:
    parts = [_converter_fingerprint(CONVERTERS[converter][1])] + [_file_fingerprint(p, s) for p, s in files]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:20]


def check_not_constant(image: torch.Tensor) -> None:
    """ModelError if a rendered image [B, 3, H, W] is all one colour or not finite: damaged
    weights render such images, and they must not be shown as a result."""
    flat = image.detach().flatten(2)
    if not torch.isfinite(flat).all() or bool((flat.amax(2) == flat.amin(2)).all(1).any()):
        raise ModelError("the model rendered a constant (or non-finite) image: its weights are damaged; "
                         "delete the converted cache or the checkpoint and load it again")


def _checked(generator: Generator) -> Generator:
    with torch.no_grad():
        check_not_constant(generator.synthesis(generator.mean_ws(1)))
    return generator


def _read_cached(target: Path, device: Union[str, torch.device]) -> Optional[Generator]:
    """The cached conversion if it is intact (content hash, a non-constant image), else None."""
    try:
        return _checked(export.read_generator_file(target, device, require_hash=True))
    except (export.ExportError, ModelError) as error:
        log.warning("converting again: the cached conversion %s is damaged (%s)", target.name, error)
        try:
            target.unlink(missing_ok=True)
        except OSError:  # a read-only cache folder: the new conversion goes to a writable one
            pass
        return None


def _cached_conversion(stem: str, converter: str, files: list[tuple[Path, Optional[str]]],
                       device: Union[str, torch.device], replace_older: bool) -> Generator:
    """Load the cached export of these files, or convert them and write the export for next time
    (when no cache folder can be written, the model runs from memory)."""
    name = f"{stem}-{_conversion_key(converter, files)}.safetensors"
    for cached in cached_copies(name):
        generator = _read_cached(cached, device)
        if generator is not None:
            return generator
    target = cache_path(name)
    log.info("converting %s (%s) to %s; later starts read this cache", stem, converter, target.name)
    generator = _checked(CONVERTERS[converter][0]([path for path, _ in files]).eval().requires_grad_(False))
    try:
        export.save_generator(generator, target, extra={"sources": [p.name for p, _ in files]})
        if replace_older:  # one conversion per model: drop those of older files or converters
            for old in target.parent.glob(f"{stem}-*.safetensors"):
                if old != target:
                    old.unlink(missing_ok=True)
    except OSError as error:
        log.warning("running %s from memory: could not cache the conversion (%s)", stem, error)
    return generator.to(device)


# -- loading ---------------------------------------------------------------------------------------
def model_names() -> list[str]:
    """Known model names, the default first."""
    return [DEFAULT_MODEL] + [name for name in MODELS if name != DEFAULT_MODEL]


def get_entry(name: str) -> ModelEntry:
    if name not in MODELS:
        raise ModelError(f"unknown model {name!r}; known models: {', '.join(model_names())} "
                         f"(or give the path of a checkpoint file)")
    return MODELS[name]


@dataclass(frozen=True)
class Availability:
    """Whether a zoo model can load here, known without loading it (see `availability`)."""

    local: bool  # every weight file is on this machine: it loads offline
    downloadable: Optional[bool]  # the missing files' sources answer; None: not asked (or nothing missing)

    @property
    def note(self) -> str:
        """A few plain words for a menu: '' when it loads from this machine."""
        if self.local:
            return ""
        if self.downloadable is None:
            return "not downloaded yet"
        return "downloads on first use" if self.downloadable else "not available offline"


def availability(name: str, probe_network: bool = False) -> Availability:
    """Can the zoo model `name` load here? From the files on this machine only (sizes, no hashing:
    cheap enough for a menu at start-up); `probe_network` also asks whether the sources of the
    missing files answer (one probe per host and process, under a second and a half)."""
    entry = get_entry(name)
    missing = [known_file(file_id) for file_id in entry.file_ids if local_source(known_file(file_id)) is None]
    if not missing:
        return Availability(True, None)
    reachable = all(reachable_download_sources(file) for file in missing) if probe_network else None
    return Availability(False, reachable)


def _load_entry(entry: ModelEntry, device: Union[str, torch.device]) -> LoadedModel:
    try:
        resolved = [resolve(file_id) for file_id in entry.file_ids]
    except WeightsUnavailable as error:  # the full text says what was tried; the summary names the model
        error.summary = (f"the model {entry.name!r} cannot load: its weights are not on this server and "
                         + ("cannot be downloaded offline" if "offline" in error.summary else "could not be downloaded"))
        raise
    files = [(r.path, r.file.sha256) for r in resolved]
    generator = _cached_conversion(entry.name, entry.converter, files, device, replace_older=True)
    if generator.arch != entry.arch:
        raise ModelError(f"{entry.name}: the files hold a {generator.arch} model, expected {entry.arch}")
    return LoadedModel(generator, entry.name, entry, tuple(r.source for r in resolved))


def _load_checkpoint_file(path: Path, device: Union[str, torch.device], name: str = CUSTOM_CHECKPOINT,
                          source: Optional[str] = None) -> LoadedModel:
    """Any supported checkpoint file: a stylegan_core .safetensors export, a rosinality .pt, an NVlabs .pkl."""
    from .files import detect_format

    if detect_format(path) == "safetensors":  # already the project's format: nothing to convert or cache
        try:
            generator = _checked(export.read_generator_file(path, device))
        except export.ExportError as error:
            raise ModelError(str(error)) from error
    else:
        stem = "checkpoint-" + re.sub(r"[^A-Za-z0-9_.-]+", "_", path.stem)
        generator = _cached_conversion(stem, "checkpoint", [(path, None)], device, replace_older=False)
    entry = ModelEntry(
        name, generator.arch, f"{generator.arch} checkpoint {path.name}", generator.resolution,
        "as set by the checkpoint's authors", (), verified=False, converter="checkpoint",
    )
    return LoadedModel(generator, name, entry, (source or f"checkpoint file {path.name}",))


def hub_file(hub_id: str) -> WeightFile:
    """The weight file a Hub id names: hf://owner/repo/path/in/repo.pkl, optionally @revision."""
    spec, _, revision = hub_id[len(HUB_PREFIX):].partition("@")
    parts = spec.split("/")
    if len(parts) < 3 or not all(parts):
        raise ModelError(f"{hub_id!r}: a Hub id looks like {HUB_PREFIX}owner/repo/path/to/file.pkl[@revision]")
    repo, filename = "/".join(parts[:2]), "/".join(parts[2:])
    return WeightFile(f"hub/{repo}/{filename}", hub=HubLocation(repo, filename, revision or None))


def _load_hub_file(hub_id: str, device: Union[str, torch.device]) -> LoadedModel:
    resolved = resolve_file(hub_file(hub_id))
    return _load_checkpoint_file(resolved.path, device, hub_id, resolved.source)


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
    """The one way to load a model: a zoo name, a checkpoint file, or a Hugging Face Hub file
    (hf://owner/repo/path/file.pkl[@revision]); loaded once per process and device.

    A checkpoint file is loaded when given as `checkpoint`, as the name itself (an existing path),
    or through $STYLEGAN_CHECKPOINT when no name (or the name CUSTOM_CHECKPOINT) is given.
    Otherwise the named zoo model, DEFAULT_MODEL when no name is given. Conversions are cached
    (see the module docstring); a model whose images come out constant is refused.
    """
    device_name = str(torch.device(device))
    if checkpoint is None and name_or_path and name_or_path.startswith(HUB_PREFIX):
        key, load = ("hub", name_or_path, device_name), lambda: _load_hub_file(name_or_path, device)
    elif (checkpoint_path := _requested_checkpoint(name_or_path, checkpoint)) is not None:
        key = ("checkpoint", _file_fingerprint(checkpoint_path, None), device_name)
        load = lambda: _load_checkpoint_file(checkpoint_path, device)  # noqa: E731
    else:
        entry = get_entry(name_or_path or DEFAULT_MODEL)
        key, load = ("zoo", entry.name, device_name), lambda: _load_entry(entry, device)
    if key in _loaded:  # no waiting on the lock while another model is being converted
        return _loaded[key]
    with _load_lock:
        if key not in _loaded:
            _loaded[key] = load()
        return _loaded[key]


def clear_loaded_models() -> None:
    """Forget the process-level cache (tests; or after replacing weight files)."""
    with _load_lock:
        _loaded.clear()
