"""The shipped example photos: each has a recorded licence and a precomputed code with its photo link,
and a new library can be seeded with them (no model, no network needed)."""
import numpy as np
from PIL import Image

from stylegan_core import examples
from stylegan_core.images import load_image
from stylegan_core.library import CodeLibrary


def test_every_example_photo_is_there_with_its_licence_recorded():
    readme = (examples.EXAMPLES_DIR / "README.md").read_text()
    assert len(examples.example_photos()) == len(examples.EXAMPLE_PHOTOS) >= 3
    for example in examples.EXAMPLE_PHOTOS:
        row = next(line for line in readme.splitlines() if f"`{example.path.name}`" in line and "|" in line)
        assert "public domain" in row or "CC0" in row
    shipped = [example for example in examples.EXAMPLE_PHOTOS if example.code_path.is_file()]
    assert examples.EXAMPLE_PHOTOS[0] in shipped  # the first example works on the first click
    assert all(example.code_path.stat().st_size < 300_000 for example in shipped)  # small enough to ship


def test_a_new_library_is_seeded_with_the_example_codes_once():
    library = CodeLibrary()
    rendered = []
    added = examples.example_codes(library, "ffhq-mobile", render=lambda ws, model: rendered.append(model)
                                   or Image.new("RGB", (8, 8)))
    shipped = [example for example in examples.EXAMPLE_PHOTOS if example.code_path.is_file()]
    assert [entry.name for entry in added] == [example.code_name for example in shipped] != []
    assert rendered == ["ffhq-mobile"] * len(added)
    for entry, example in zip(added, shipped):
        assert entry.source == "example" and "precomputed" in entry.info["note"]
        assert entry.ws.shape[0] == 1 and entry.ws.dim() == 3 and entry.model_name == "ffhq-mobile"
        photo = load_image(example.path)
        assert entry.photo.photo.size == photo.size and entry.photo.face_index == example.face_index
        assert entry.photo.landmarks.shape == (68, 2)
        assert np.abs(np.asarray(entry.photo.photo, float) - np.asarray(photo, float)).mean() < 4
        assert entry.photo.paste(Image.new("RGB", (64, 64))).size == photo.size
    assert examples.example_codes(library, "ffhq-mobile") == []  # already there
    assert examples.example_codes(CodeLibrary(), "another-model") == []


def test_every_shipped_code_comes_with_its_measured_quality(tmp_path, monkeypatch):
    """Shown with the example's inversion on the Invert tab: the numbers of the run that made it."""
    for example in [e for e in examples.EXAMPLE_PHOTOS if e.code_path.is_file()]:
        scores = example.metrics()
        assert isinstance(scores["id_distance"], float) and scores["same_person"] == (scores["id_distance"] < 0.6)
        assert "seconds" not in scores and "model" not in scores
    monkeypatch.setattr(examples, "METRICS_PATH", tmp_path / "missing.json")
    assert examples.EXAMPLE_PHOTOS[0].metrics() is None
