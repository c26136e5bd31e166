import io

import pytest
import torch
from PIL import Image

from stylegan_core import library as library_module
from stylegan_core.latents import save_latent
from stylegan_core.library import CodeLibrary, LibraryError


def make_library(n=3):
    lib = CodeLibrary()
    for i in range(n):
        lib.add(torch.full((1, 4, 8), float(i)), "tiny", "seed", f"seed {i}", Image.new("RGB", (512, 512)))
    return lib


def test_names_are_unique_and_thumbnails_small():
    lib = CodeLibrary()
    a = lib.add(torch.zeros(1, 4, 8), "tiny", "seed", "face", Image.new("RGB", (1024, 1024)))
    b = lib.add(torch.zeros(1, 4, 8), "tiny", "seed", "face")
    assert (a.name, b.name) == ("face", "face-2")
    assert max(a.thumbnail.size) <= library_module.THUMBNAIL_SIZE


def test_stored_code_is_a_copy():
    lib, ws = CodeLibrary(), torch.zeros(1, 4, 8)
    entry = lib.add(ws, "tiny", "seed", "x")
    ws += 1
    assert entry.ws.sum() == 0


def test_delete_and_rename():
    lib = make_library()
    lib.delete("seed 1")
    lib.rename("seed 2", "smile")
    assert lib.names() == ["seed 0", "smile"]
    with pytest.raises(LibraryError, match="no code named"):
        lib.delete("seed 1")
    with pytest.raises(LibraryError, match="exists"):
        lib.rename("seed 0", "smile")


def test_full_library_refuses_and_keeps_what_it_has(monkeypatch):
    monkeypatch.setattr(library_module, "MAX_ENTRIES", 3)
    lib = make_library(3)
    with pytest.raises(LibraryError, match="full"):
        lib.add(torch.zeros(1, 4, 8), "tiny", "seed")
    assert len(lib) == 3


def test_export_import_round_trip():
    lib = make_library()
    other = CodeLibrary()
    added = other.import_file(io.BytesIO(lib.export_bytes()))
    assert [e.name for e in added] == lib.names()
    for a, b in zip(lib.entries(), other.entries()):
        assert torch.equal(a.ws, b.ws) and a.model_name == b.model_name


def test_import_single_latent_file_splits_batches():
    buffer = io.BytesIO()
    save_latent(buffer, torch.randn(2, 4, 8), "tiny", name="pair")
    buffer.seek(0)
    lib = CodeLibrary()
    added = lib.import_file(buffer)
    assert [e.name for e in added] == ["pair", "pair-2"]


def test_bad_import_adds_nothing():
    lib = make_library(2)
    with pytest.raises(LibraryError):
        lib.import_file(io.BytesIO(b"garbage"))
    assert len(lib) == 2


def test_sessions_do_not_share_entries():
    a, b = CodeLibrary(), CodeLibrary()
    a.add(torch.zeros(1, 4, 8), "tiny", "seed", "mine")
    assert b.names() == []


def test_empty_export_is_refused():
    with pytest.raises(LibraryError, match="empty"):
        CodeLibrary().export_bytes()


def test_merge_adds_only_what_is_new():
    kept, meanwhile = CodeLibrary(), CodeLibrary()
    kept.add(torch.zeros(1, 4, 8), "m", "seed", "a")
    meanwhile.add(torch.zeros(1, 4, 8), "m", "seed", "a")
    meanwhile.add(torch.ones(1, 4, 8), "m", "edit", "b")
    assert [e.name for e in kept.merge(meanwhile)] == ["b"] and kept.names() == ["a", "b"]
    assert kept.merge(kept) == []


def test_undo_delete_restores_the_code_at_its_place():
    lib = make_library(3)
    deleted = lib.delete("seed 1")
    assert lib.last_deleted() == "seed 1" and lib.names() == ["seed 0", "seed 2"]
    restored = lib.undo_delete()
    assert restored is deleted and lib.names() == ["seed 0", "seed 1", "seed 2"]
    assert lib.last_deleted() is None
    with pytest.raises(LibraryError, match="nothing to undo"):
        lib.undo_delete()


def test_undo_delete_renames_when_the_name_was_taken_meanwhile():
    lib = make_library(2)
    lib.delete("seed 0")
    lib.add(torch.ones(1, 4, 8) * 9, "tiny", "edit", "seed 0")
    assert lib.undo_delete().name == "seed 0-2"
    assert sorted(lib.names()) == ["seed 0", "seed 0-2", "seed 1"]


@pytest.mark.parametrize("name", ["seed 7", "Seed 7", "seed:7", " seed #7 "])
def test_rename_refuses_names_that_mean_a_seed(name):
    lib = make_library(1)
    lib.add(torch.ones(1, 4, 8), "tiny", "edit", "smile")
    with pytest.raises(LibraryError, match="random face of that seed"):
        lib.rename("smile", name)
    assert "smile" in lib
    assert lib.rename("smile", "seed 7 smiling").name == "seed 7 smiling"  # only a whole seed reference is refused


def test_a_bare_number_suggests_the_seed():
    lib = make_library(1)
    with pytest.raises(LibraryError, match="no code named '7' — did you mean 'seed 7'"):
        lib.get("7")
    with pytest.raises(LibraryError, match=r"no code named 'nobody' in your library \(codes: 'seed 0'\)"):
        lib.get("nobody")


def test_importing_the_same_file_twice_adds_nothing_new():
    exported = make_library(3).export_bytes()
    lib = CodeLibrary()
    first = lib.import_file(io.BytesIO(exported))
    second = lib.import_file(io.BytesIO(exported))
    assert len(lib) == 3 and [e.name for e in second] == [e.name for e in first]
