"""The per-browser library store: reloads find the library again, visitors stay apart, ids expire."""
import torch

from stylegan_core.library import CodeLibrary
from stylegan_core.sessions import LibraryStore


def a_code(value: float) -> torch.Tensor:
    return torch.full((1, 4, 8), value)


def test_a_reload_finds_the_library_and_visitors_stay_apart():
    store = LibraryStore()
    first_id, first = store.open("")
    first.add(a_code(1), "m", "seed", "mine")
    store.keep(first_id, first)
    again_id, again = store.open(first_id)
    assert again_id == first_id and "mine" in again
    other_id, other = store.open("")
    assert other_id != first_id and "mine" not in other


def test_ids_the_store_did_not_issue_get_a_fresh_library():
    store = LibraryStore()
    issued, library = store.open(None)
    library.add(a_code(1), "m", "seed", "mine")
    for chosen in ["x" * 32, issued[:-1], "../../etc", 42]:
        new_id, fresh = store.open(chosen)
        assert new_id != issued and "mine" not in fresh
    store.keep("not an id", CodeLibrary())
    assert "not an id" not in store._libraries


def test_libraries_expire_and_the_oldest_go_first():
    store = LibraryStore(expiry_s=100, max_visitors=2)
    old_id, _ = store.open("", now=0)
    assert store.open(old_id, now=50)[0] == old_id
    assert store.open(old_id, now=200)[0] != old_id  # unused for over 100 s
    ids = [store.open("", now=300)[0] for _ in range(3)]
    assert len(store) == 2 and store.open(ids[0], now=301)[0] != ids[0]


def test_new_libraries_come_from_the_factory():
    def with_examples():
        library = CodeLibrary()
        library.add(a_code(2), "m", "example", "astronaut")
        return library

    _, library = LibraryStore(with_examples).open("")
    assert library.names() == ["astronaut"]
