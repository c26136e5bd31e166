"""The per-browser library store: reloads find the library again, visitors stay apart, ids expire."""
import torch

from stylegan_core.library import CodeLibrary
from stylegan_core.sessions import MAX_SHOWN_CHARS, VisitorStore


def a_code(value: float) -> torch.Tensor:
    return torch.full((1, 4, 8), value)


def test_a_reload_finds_the_library_and_visitors_stay_apart():
    store = VisitorStore()
    first_id, first = store.open("")
    first.library.add(a_code(1), "m", "seed", "mine")
    store.keep_library(first_id, first.library)
    again_id, again = store.open(first_id)
    assert again_id == first_id and "mine" in again.library
    other_id, other = store.open("")
    assert other_id != first_id and "mine" not in other.library


def test_ids_the_store_did_not_issue_get_a_fresh_library():
    store = VisitorStore()
    issued, visit = store.open(None)
    visit.library.add(a_code(1), "m", "seed", "mine")
    for chosen in ["x" * 32, issued[:-1], "../../etc", 42]:
        new_id, fresh = store.open(chosen)
        assert new_id != issued and "mine" not in fresh.library
    store.keep_library("not an id", CodeLibrary())
    store.keep_shown("not an id", "m", {0: "/a.png"})
    assert "not an id" not in store._visits


def test_libraries_expire_and_the_oldest_go_first():
    store = VisitorStore(expiry_s=100, max_visitors=2)
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

    _, visit = VisitorStore(with_examples).open("")
    assert visit.library.names() == ["astronaut"] and visit.shown == {} and visit.model is None


def test_result_panels_are_kept_per_visitor_and_model():
    store = VisitorStore()
    mine, _ = store.open("")
    theirs, _ = store.open("")
    store.keep_shown(mine, "m1", {0: "/tmp/a.png", 1: "made from seed 1"})
    store.keep_shown(mine, "m1", {1: "made from seed 2"})  # a later event of the same panel
    assert store.open(mine)[1].shown == {0: "/tmp/a.png", 1: "made from seed 2"}
    assert store.open(theirs)[1].shown == {}
    store.keep_shown(mine, "m1", {}, {0: "seed 2", 1: 3.5})  # the inputs that made them
    store.keep_shown(mine, "m2", {2: None}, {1: 0.0})  # the visitor picked another model: the old panels go
    visit = store.open(mine)[1]
    assert visit.shown == {2: None} and visit.model == "m2"
    assert visit.inputs == {1: 0.0}  # those of the old model (e.g. its sliders) go too


def test_oversized_panels_and_unknown_ids_are_not_kept():
    store = VisitorStore()
    mine, _ = store.open("")
    store.keep_shown(mine, "m", {0: "x" * (MAX_SHOWN_CHARS + 1)})
    assert store.open(mine)[1].shown == {}
    store.keep_shown("y" * 32, "m", {0: "/tmp/a.png"})  # well-formed, never issued
    assert "y" * 32 not in store._visits


def test_a_library_kept_after_its_visit_expired_is_kept_again():
    store = VisitorStore(expiry_s=10)
    mine, visit = store.open("", now=0)
    store.open("", now=100)  # expires the first
    visit.library.add(a_code(1), "m", "seed", "mine")
    store.keep_library(mine, visit.library, now=101)
    assert "mine" in store.open(mine, now=102)[1].library
