"""Before/after views: the pictures a result is compared with (its source code unedited, the photo
it was pasted into), their cache, and the UI's choice of what to show (tiny random models)."""
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import app
from stylegan_core import codes
from stylegan_core.inversion.paste_back import PhotoLink
from stylegan_core.library import CodeLibrary
from stylegan_core.loading import zoo
from stylegan_core.loading.export import save_generator
from stylegan_core.models.stylegan2 import tiny_stylegan2
from stylegan_core.studio import BlendMask, Picture, Studio
from stylegan_core.studio_compare import PictureCache
from ui.results import choose_view, shown_value

MODEL = zoo.CUSTOM_CHECKPOINT


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    folder = tmp_path_factory.mktemp("before_after")
    path = save_generator(tiny_stylegan2(0), folder / "tiny.safetensors")
    zoo.clear_loaded_models()
    yield Studio(default_model=MODEL, device="cpu", checkpoint=str(path), output_dir=str(folder / "out"))
    zoo.clear_loaded_models()


def library_with_a_photo(studio, seed: int = 4) -> CodeLibrary:
    """A library whose code 'me' (seed `seed`) was "inverted" from a 160 x 120 photo."""
    library = CodeLibrary()
    pixels = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    quad = np.array([[40.0, 10.0], [40.0, 110.0], [140.0, 110.0], [140.0, 10.0]])
    link = PhotoLink(Image.fromarray(pixels), quad, source="me.png")
    library.add(studio.seed_code(MODEL, seed), MODEL, "inverted", "me", photo=link)
    return library


def pixels(image_or_path) -> np.ndarray:
    image = Image.open(image_or_path) if isinstance(image_or_path, str) else image_or_path
    return np.asarray(image.convert("RGB"))


def count_syntheses(studio, monkeypatch) -> list:
    """Count the generator's forwards (each edit renders through `synthesis`)."""
    generator, calls = studio.generator(MODEL), []
    forward = generator.synthesis
    monkeypatch.setattr(generator, "synthesis", lambda *a, **k: calls.append(1) or forward(*a, **k))
    return calls


def a_slider(studio) -> str:
    return studio.edit_sliders(MODEL).unnamed[0].name


def test_an_edit_carries_its_code_unedited_and_its_photo(studio):
    library = library_with_a_photo(studio)
    result = studio.edit_attributes(library, MODEL, "me", f"{a_slider(studio)}=3")
    unedited = studio.render(MODEL, library.get("me").ws)
    assert np.array_equal(pixels(result.before.image), pixels(unedited))
    assert np.array_equal(pixels(result.before.path), pixels(unedited))  # the file shown is that render
    assert not np.array_equal(pixels(result.picture.image), pixels(unedited))  # and the edit differs from it
    link = library.get("me").photo
    assert np.array_equal(pixels(result.photo.path), pixels(link.photo))
    assert result.photo.image.size == result.pasted.image.size  # the slider's two pictures match
    for picture in (result.before, result.photo):  # under the output folder, so they expire like the rest
        assert Path(studio.output_dir) in Path(picture.path).parents


def test_a_seed_is_resolved_as_the_tabs_resolve_it(studio):
    result = studio.style_transfer(CodeLibrary(), MODEL, "seed 3", "seed 5", 8)
    expected = studio.render(MODEL, studio.seed_code(MODEL, 3, codes.DEFAULT_PSI))
    assert np.array_equal(pixels(result.before.image), pixels(expected))
    assert result.pasted is None and result.photo is None  # a seed has no photo


def test_a_second_edit_of_the_same_code_renders_no_before(studio, monkeypatch):
    library = library_with_a_photo(studio, seed=11)  # a code no other test rendered
    calls = count_syntheses(studio, monkeypatch)
    first = studio.edit_attributes(library, MODEL, "me", f"{a_slider(studio)}=1.5")
    assert len(calls) == 2  # the edit and its before (a fresh code for this test)
    second = studio.edit_attributes(library, MODEL, "me", f"{a_slider(studio)}=-2")
    assert len(calls) == 3  # the edit only
    assert second.before.path == first.before.path and second.photo.path == first.photo.path
    Path(second.before.path).unlink()  # an expired file is made again, not shown missing
    third = studio.edit_attributes(library, MODEL, "me", f"{a_slider(studio)}=1")
    assert len(calls) == 5 and Path(third.before.path).is_file()


def test_no_before_without_a_source_and_no_photo_without_a_link(studio):
    library = CodeLibrary()
    for result in (studio.panorama(library, MODEL, ["seed 1", "seed 2"]),
                   studio.style_mixing(library, MODEL, "1", "2")):
        assert result.before is None and result.photo is None
    blended = studio.blend(library, MODEL, "seed 1", "seed 2", BlendMask("horizontal"))
    assert blended.before is not None and blended.photo is None  # compared with A, which has no photo


def test_the_picture_cache_keeps_the_latest_and_makes_each_once(tmp_path):
    made = []

    def maker(name):
        def make():
            made.append(name)
            path = tmp_path / f"{name}-{len(made)}" / "p.png"
            path.parent.mkdir()
            path.write_bytes(b"png")
            return Picture(None, str(path))
        return make

    cache = PictureCache(2)
    threads = [threading.Thread(target=cache.get, args=("a", maker("a"))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert cache.get("a", maker("a")).path.startswith(str(tmp_path / "a-"))
    runs = len(made)
    cache.get("b", maker("b"))
    cache.get("a", maker("a"))  # a hit: "a" becomes the latest
    cache.get("c", maker("c"))  # evicts "b", the least recently used
    assert len(made) == runs + 2
    cache.get("a", maker("a"))
    assert len(made) == runs + 2
    cache.get("b", maker("b"))
    assert made[-1] == "b"


def test_an_inversion_is_compared_with_its_crop_and_its_photo(studio, tmp_path, random_vgg):
    photo = tmp_path / "face.png"
    y, x = np.mgrid[0:40, 0:56]  # smooth, so the crop's resampling method hardly matters
    Image.fromarray(np.stack([x * 4, y * 6, (x + y) * 2], -1).astype(np.uint8)).save(photo)
    library = CodeLibrary()
    final = list(studio.invert_stream(library, MODEL, str(photo), None, 10, "w"))[-1]
    assert final.done and final.before is final.aligned
    link = library.get("face").photo
    assert np.array_equal(pixels(final.photo.path), pixels(link.photo))
    assert final.photo.image.size == final.pasted.image.size
    # What an example's precomputed inversion shows as its crop: the same square, cut from the link.
    again = studio.aligned_from_link(link, final.aligned.image.width, "face")
    difference = np.abs(pixels(again.image).astype(float) - pixels(final.aligned.image).astype(float))
    assert again.image.size == final.aligned.image.size and difference.mean() < 3


# -- the UI ------------------------------------------------------------------------------------------
def test_the_panel_compares_what_the_in_photo_toggle_shows():
    shown = {"plain": "edit.png", "pasted": "pasted.png", "before": "before.png", "photo": "photo.png"}
    assert choose_view(shown, in_photo=True, compare=False) == ("pasted.png", None)
    assert choose_view(shown, in_photo=False, compare=False) == ("edit.png", None)
    assert choose_view(shown, in_photo=True, compare=True) == (None, ("photo.png", "pasted.png"))
    assert choose_view(shown, in_photo=False, compare=True) == (None, ("before.png", "edit.png"))
    seed_edit = {**shown, "pasted": None, "photo": None}  # no photo: the in-photo toggle changes nothing
    assert choose_view(seed_edit, in_photo=True, compare=True) == (None, ("before.png", "edit.png"))
    grid = {**seed_edit, "before": None}  # nothing to compare with: the picture, even when ticked
    assert choose_view(grid, in_photo=True, compare=True) == ("edit.png", None)
    assert choose_view(None, True, True) == (None, None)


def test_the_edit_tab_wires_the_slider_without_changing_its_api(studio, tmp_path):
    demo = app.build_app(studio)
    blocks = {getattr(b, "elem_id", None): b for b in demo.blocks.values()}
    slider, compare = blocks["edit-result-slider"], blocks["edit-result-compare"]
    assert type(slider).__name__ == "ImageSlider" and slider.type == "filepath" and not slider.visible
    assert compare.value is False and not compare.visible
    edit = next(fn for fn in demo.fns.values() if fn.api_name == "edit_attributes")
    assert slider not in edit.outputs and compare not in edit.outputs  # the API's outputs stay as they were
    assert [type(o).__name__ for o in edit.outputs if type(o).__name__ != "State"] == ["Image", "File", "Markdown"]
    toggles = [fn for fn in demo.fns.values() if (compare._id, "change") in fn.targets]
    assert len(toggles) == 1 and slider in toggles[0].outputs
    before, edited = tmp_path / "before.png", tmp_path / "edit.png"
    for path in (before, edited):
        Image.new("RGB", (40, 30)).save(path)
    value = shown_value(Picture(None, str(edited)), before=Picture(None, str(before)))
    image, slider_update, in_photo, compare_update = toggles[0].fn(value, True, True)
    assert slider_update["visible"] and slider_update["value"] == (str(before), str(edited))
    assert slider_update["max_height"] == 30  # at most the picture's own size, as gr.Image shows it
    assert image["visible"] is False and in_photo["visible"] is False and compare_update["visible"]
    emptied = next(fn for fn in demo.fns.values() if not fn.inputs and slider in fn.outputs)
    assert {"edit-result-slider", "invert-result-slider", "style-result-slider"} <= {
        getattr(o, "elem_id", None) for o in emptied.outputs}  # emptied when the model changes


def test_the_cli_edit_writes_before_and_after_side_by_side(tmp_path):
    from stylegan_core import cli

    path = save_generator(tiny_stylegan2(0), tmp_path / "tiny.safetensors")
    common = ["--seed", "3", "--checkpoint", str(path)]
    try:
        assert cli.main(["generate", *common, "--out", str(tmp_path / "plain.png")]) == 0
        assert cli.main(["edit", *common, "--set", "pca_0=3", "--before-after", "--out", str(tmp_path / "e.png")]) == 0
    finally:
        zoo.clear_loaded_models()
    plain, edited = pixels(str(tmp_path / "plain.png")), pixels(str(tmp_path / "e.png"))
    pair = pixels(str(tmp_path / "e_before_after.png"))
    side = plain.shape[1]
    assert pair.shape[1] > 2 * side
    assert np.array_equal(pair[:, :side], plain) and np.array_equal(pair[:, -side:], edited)
    assert not np.array_equal(plain, edited)
