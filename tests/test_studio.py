"""The app's operations (Studio) on tiny random models: fast, and the same code paths the tabs use."""
import io
import os
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from stylegan_core import codes
from stylegan_core.editing import edits
from stylegan_core.loading import zoo
from stylegan_core.loading.export import save_generator
from stylegan_core.library import CodeLibrary
from stylegan_core.models.mobile_stylegan import tiny_mobile_stylegan
from stylegan_core.models.stylegan2 import tiny_stylegan2
from stylegan_core.codes import parse_seeds
from stylegan_core.errors import UserError
from stylegan_core.studio import BlendMask, Studio, StudioError
from ui.tabs.blend import painted_mask
from ui.tabs.invert import WHOLE_IMAGE, face_index, face_labels

MODEL = zoo.CUSTOM_CHECKPOINT


@pytest.fixture(scope="module", params=["mobile", "stylegan2"])
def studio(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(request.param)
    generator = tiny_mobile_stylegan(0) if request.param == "mobile" else tiny_stylegan2(0)
    path = save_generator(generator, folder / "tiny.safetensors")
    zoo.clear_loaded_models()
    yield Studio(default_model=MODEL, device="cpu", checkpoint=str(path), output_dir=str(folder / "out"))
    zoo.clear_loaded_models()


@pytest.fixture
def library():
    return CodeLibrary()


def test_parse_seeds():
    assert parse_seeds("1, 2, 5-7") == [1, 2, 5, 6, 7]
    assert parse_seeds(3) == [3]
    for bad in ["", "a", "5-1", "1-100", str(2**32)]:
        with pytest.raises(UserError):
            parse_seeds(bad)


def test_generate_adds_codes_and_files(studio, library):
    result = studio.generate(library, MODEL, "1, 2", 0.7)
    assert [picture.caption for picture in result.pictures] == ["seed 1", "seed 2"]
    assert library.names() == ["seed 1", "seed 2"] and result.added == ["seed 1", "seed 2"]
    assert result.files == [picture.path for picture in result.pictures]  # each image written once
    assert all(np.array_equal(np.asarray(Image.open(p.path)), np.asarray(p.image)) for p in result.pictures)


def test_seed_reference_and_library_reference_give_the_same_code(studio, library):
    studio.generate(library, MODEL, "7", 0.7)
    assert torch.equal(studio.resolve_code("seed 7", CodeLibrary(), MODEL, 0.7),
                       studio.resolve_code("seed 7", library, MODEL))


def test_code_of_another_model_is_refused_and_library_kept(studio, library):
    library.add(torch.zeros(1, 3, 5), "some-other-model", "uploaded", "alien")
    with pytest.raises(StudioError, match="belongs to model 'some-other-model'"):
        studio.style_transfer(library, MODEL, "alien", "seed 1", 16)
    assert library.names() == ["alien"]


def test_style_transfer_with_the_same_code_reproduces_it(studio, library):
    same = studio.style_transfer(library, MODEL, "seed 3", "seed 3", 16).picture.image
    assert np.array_equal(np.asarray(same), np.asarray(studio.render(MODEL, studio.seed_code(MODEL, 3, 0.7))))


def test_expression_transfer_rows_are_checked(studio, library):
    with pytest.raises(StudioError, match="rows must satisfy"):
        studio.expression_transfer(library, MODEL, "seed 1", "seed 2", "seed 3", 1.0, 5, 2)


def test_every_edit_returns_an_image_and_downloads(studio, library):
    results = [
        studio.style_transfer(library, MODEL, "seed 1", "seed 2", 8),
        studio.style_mixing(library, MODEL, "1, 2", "3", "coarse", 0.7),
        studio.blend(library, MODEL, "seed 1", "seed 2", BlendMask("horizontal"), True, [4, 8, 16, 32, 64]),
        studio.panorama(library, MODEL, ["seed 1", "seed 2", "seed 3"], "horizontal", 1.0),
    ]
    for result in results:
        assert isinstance(result.picture.image, Image.Image) and result.files[0] == result.picture.path
        assert np.asarray(result.picture.image).std() > 0
    morph = studio.morph(library, MODEL, "seed 1", "seed 2", 3)
    assert len(morph.pictures) == 3 and morph.files[0].endswith(".gif")


def test_morph_plays_as_a_small_gif_and_a_full_size_mp4(studio, library, monkeypatch):
    from stylegan_core import codes
    from stylegan_core.editing import video_io

    monkeypatch.setattr(codes, "MORPH_GIF_SIDE", 16)  # the tiny models render 32 px
    morph = studio.morph(library, MODEL, "seed 1", "seed 2", 4)
    gif, mp4 = morph.files[:2]
    assert morph.animation == gif and mp4.endswith(".mp4")
    with Image.open(gif) as animation:
        assert animation.size == (16, 16) and animation.n_frames == 4 + 2  # there and back
    clip = video_io.probe(mp4)
    assert clip["frames"] == 4 + 2 and clip["width"] == morph.pictures[0].image.width
    assert clip["fps"] == codes.MORPH_FPS


def test_panorama_needs_two_codes(studio, library):
    with pytest.raises(StudioError, match="between 2 and"):
        studio.panorama(library, MODEL, ["seed 1"], "horizontal", 1.0)


def test_panorama_reads_codes_as_every_tab_does(studio, library):
    """Text or a list; a seed range means its seeds; a library name its code (then the codes
    themselves are smoothed, not their seeds)."""
    listed = studio.panorama(library, MODEL, ["seed 1", "seed 2", "seed 3"], "horizontal", 0.0)
    ranged = studio.panorama(library, MODEL, "1-3", "horizontal", 0.0)
    assert np.array_equal(np.asarray(listed.picture.image), np.asarray(ranged.picture.image))
    studio.generate(library, MODEL, "2", 0.7)
    named = studio.panorama(library, MODEL, "seed 1, " + library.names()[-1] + ", seed 3", "horizontal", 0.0)
    assert np.abs(np.asarray(named.picture.image, float) - np.asarray(listed.picture.image, float)).max() < 2


def test_spherical_morph_needs_seeds(studio, library):
    studio.generate(library, MODEL, "1", 0.7)
    with pytest.raises(StudioError, match="between two seeds"):
        studio.morph(library, MODEL, "seed 1", "missing", 3, spherical=True)
    assert len(studio.morph(library, MODEL, "seed 4", "seed 5", 3, spherical=True).pictures) == 3


def test_painted_mask_from_editor_layers():
    layer = np.zeros((20, 30, 4), np.uint8)
    layer[:, 15:, 3] = 255
    mask = painted_mask({"background": None, "layers": [layer], "composite": None})
    assert mask.shape == (20, 30) and mask[:, 15:].min() == 1 and mask[:, :15].max() == 0
    assert painted_mask(None) is None and painted_mask({"layers": []}) is None


def test_bad_edit_inputs_raise_user_errors(studio, library):
    bad_calls = [
        lambda: studio.expression_transfer(library, MODEL, "seed 1", "seed 2", "seed 3", 99.0),
        lambda: studio.expression_transfer(library, MODEL, "seed 1", "seed 2", "seed 3", 1.0, float("nan")),
        lambda: studio.morph(library, MODEL, "seed 1", "seed 2", 1000),
        lambda: studio.morph(library, MODEL, "seed 1", "seed 2", float("inf")),
        lambda: studio.blend(library, MODEL, "seed 1", "seed 2", BlendMask("painted"), False, [4]),
        lambda: studio.blend(library, MODEL, "seed 1", "seed 2", BlendMask("painted", painted=np.zeros((4, 4))), False),
        lambda: studio.blend(library, MODEL, "seed 1", "", BlendMask("constant"), False, [4]),
        lambda: studio.blend(library, MODEL, "seed 1", "seed 2", BlendMask("constant"), False, []),
        lambda: studio.blend(library, MODEL, "seed 1", "seed 2", BlendMask("constant", alpha=2.0), False),
        lambda: studio.style_transfer(library, MODEL, "seed 1", "seed 2", 10**5000),
        lambda: studio.generate(library, MODEL, "9" * 5000),
        lambda: studio.style_mixing(library, MODEL, "1-9", "1"),
        lambda: studio.invert_stream(library, MODEL, None, 0, 6000).__next__(),
        lambda: studio.invert_stream(library, MODEL, None, 0, 10, "z").__next__(),
    ]
    for call in bad_calls:
        with pytest.raises(UserError) as caught:
            call()
        assert "Exceeds the limit" not in str(caught.value) and len(str(caught.value)) < 300


def test_export_and_import_round_trip(studio, library):
    studio.generate(library, MODEL, "1, 2", 0.7)
    path = studio.export_library(library)
    other = CodeLibrary()
    result = studio.import_codes(other, MODEL, path)
    assert other.names() == library.names() and result.picture is not None and result.added == library.names()
    with pytest.raises(UserError):
        studio.import_codes(other, MODEL, io.BytesIO(b"not npz"))
    assert other.names() == library.names()


def test_style_mixing_grid_has_sources_along_the_top_and_destinations_down_the_left(studio, library):
    """Pins the orientation the tab's labels describe: columns = sources, rows = destinations."""
    grid = np.asarray(studio.style_mixing(library, MODEL, "1, 2", "3", "coarse", 0.7).picture.image)
    size = studio.generator(MODEL).resolution
    strip = edits.label_strip(size)
    assert grid.shape[:2] == (strip + 2 * size, strip + 3 * size)  # (1 + destinations) x (1 + sources) cells
    for column, seed in enumerate((1, 2), start=1):
        cell = grid[strip:strip + size, strip + column * size:strip + (column + 1) * size]
        assert np.array_equal(cell, np.asarray(studio.render(MODEL, studio.seed_code(MODEL, seed, 0.7))))
    left = grid[strip + size:, strip:strip + size]
    assert np.array_equal(left, np.asarray(studio.render(MODEL, studio.seed_code(MODEL, 3, 0.7))))


def test_style_mixing_takes_library_codes_and_names_them(studio, library, monkeypatch):
    studio.generate(library, MODEL, "8", 0.7)
    library.rename("seed 8", "eight")
    written = []
    monkeypatch.setattr(edits, "label_image", lambda text, width, height: written.append(text) or
                        np.full((height, width, 3), 0, np.uint8))
    grid = np.asarray(studio.style_mixing(library, MODEL, "eight, seed 2", "3-4", "coarse", 0.7).picture.image)
    assert written == ["eight", "seed 2", "seed 3", "seed 4"]  # columns, then rows
    size, strip = studio.generator(MODEL).resolution, edits.label_strip(studio.generator(MODEL).resolution)
    column = grid[strip:strip + size, strip + size:strip + 2 * size]
    assert np.array_equal(column, np.asarray(studio.render(MODEL, library.get("eight").ws)))
    assert (grid[:strip, strip + size:] == 0).all() and (grid[strip + size:, :strip] == 0).all()  # the strips
    with pytest.raises(UserError, match="no code named 'nobody'"):
        studio.style_mixing(library, MODEL, "nobody", "3")
    with pytest.raises(UserError, match="between 1 and"):
        studio.style_mixing(library, MODEL, " , ", "3")


def test_face_menu_labels_round_trip():
    labels = face_labels(2)
    assert labels == ["face 1 (largest)", "face 2", WHOLE_IMAGE]
    assert [face_index(label) for label in labels] == [0, 1, None]
    assert face_index("largest face") == 0 and face_index("face 3") == 2


def test_resolutions_follow_the_model(studio):
    generator = studio.generator(MODEL)
    assert studio.resolutions(MODEL) == sorted({layer.resolution for layer in generator.layers})
    assert studio.resolutions("ffhq-mobile")[-1] == 1024  # a zoo model is not loaded for its choices


def test_a_loaded_model_is_served_while_another_model_loads(studio, monkeypatch):
    studio.load(MODEL)
    started, release = threading.Event(), threading.Event()

    def slow_load(name, device="cpu", checkpoint=None):
        started.set()
        release.wait(10)
        raise zoo.ModelError("gave up")

    monkeypatch.setattr(zoo, "load_model", slow_load)
    loader = threading.Thread(target=lambda: pytest.raises(zoo.ModelError, studio.load, "ffhq-mobile"))
    loader.start()
    assert started.wait(10) and studio.is_loading("ffhq-mobile")
    begun = time.perf_counter()
    assert studio.load(MODEL) is studio.load(MODEL)
    assert time.perf_counter() - begun < 1.0
    release.set()
    loader.join(10)
    assert not studio.is_loading("ffhq-mobile")


def test_old_outputs_expire(studio, tmp_path):
    path = Path(studio.picture(Image.new("RGB", (4, 4)), "old").path)
    old = time.time() - studio.retention_s - 10
    os.utime(path.parent, (old, old))
    studio._last_expiry = 0.0
    assert studio.expire_outputs() >= 1 and not path.exists()


def test_edits_of_a_code_with_a_photo_are_pasted_into_that_photo(studio, library):
    from stylegan_core.inversion.paste_back import PhotoLink

    photo = Image.fromarray(np.full((120, 160, 3), 200, np.uint8))
    quad = np.array([[40.0, 10.0], [40.0, 110.0], [140.0, 110.0], [140.0, 10.0]])
    library.add(studio.seed_code(MODEL, 4), MODEL, "inverted", "me", photo=PhotoLink(photo, quad, source="me.png"))
    result = studio.style_transfer(library, MODEL, "me", "seed 2", 8)
    assert result.pasted is not None and result.pasted.path in result.files
    pasted = np.asarray(result.pasted.image, np.float32)
    assert pasted.shape == (120, 160, 3)
    assert np.abs(pasted[60, 90] - 200).max() > 1  # the face went in
    assert np.abs(pasted[:, :20] - 200).max() <= 1  # the photo outside the face is kept
    assert library.get(result.added[0]).photo is library.get("me").photo  # the edit keeps the link
    assert studio.style_transfer(library, MODEL, "seed 1", "seed 2", 8).pasted is None  # seeds have no photo
    slider_edit = studio.edit_attributes(library, MODEL, "me", "")  # the Edit tab's result too
    assert slider_edit.pasted is not None and slider_edit.pasted.image.size == (160, 120)
    kept = studio.edit_attributes(library, MODEL, "me", "", add=True)
    assert kept.pasted is not None and library.get(kept.added[0]).photo is library.get("me").photo


def test_a_new_library_holds_the_example_codes_with_their_photos(studio):
    first, second = studio.new_library(), studio.new_library()
    assert "astronaut" in first and first.get("astronaut").photo is not None
    assert first.get("astronaut").source == "example"
    first.delete("astronaut")
    assert "astronaut" in second  # each visitor has their own copy
    assert studio.example_or("astronaut", "seed 1") == "seed 1"  # the examples are of another model
    assert studio.example_result(first, MODEL, "astronaut.jpg", 0) is None


def test_an_example_name_is_found_even_after_it_was_deleted(studio, library):
    library.add(studio.seed_code(MODEL, 1), MODEL, "seed", "mine")
    with pytest.raises(StudioError, match="belongs to model"):  # restored from the examples, of another model
        studio.resolve_code("astronaut", library, MODEL)
    assert "astronaut" in library and "mine" in library


def test_a_blend_added_to_the_library_gets_a_code_fitted_to_it(studio, library, monkeypatch):
    """The wiring: the fit starts at A and B mixed by the mask's mean and its code joins the library
    (the fit's quality on real faces is measured in benchmarks; random tiny models say nothing)."""
    from stylegan_core.inversion import projector

    calls = []

    def fake_project(generator, target, options, start_ws):
        calls.append((np.asarray(target), options.steps, start_ws.clone()))
        return SimpleNamespace(ws=start_ws.cpu() + 1, image=target, steps_run=options.steps)

    monkeypatch.setattr(projector, "project", fake_project)
    plain = studio.blend(library, MODEL, "seed 1", "seed 2", BlendMask("constant", 0.25), False)
    assert plain.added == [] and library.names() == [] and not calls  # a blend alone has no code
    result = studio.blend(library, MODEL, "seed 1", "seed 2", BlendMask("constant", 0.25), False, add=True)
    target, steps, start = calls[0]
    assert np.array_equal(target, np.asarray(result.picture.image)) and steps == codes.BLEND_FIT_STEPS
    a, b = studio.seed_code(MODEL, 1, 0.7), studio.seed_code(MODEL, 2, 0.7)
    torch.testing.assert_close(start, torch.lerp(a, b, 0.25))
    assert result.added == ["blend seed 1 and seed 2"] and f"fitted to the blend in {steps} steps" in result.info
    assert torch.equal(library.get(result.added[0]).ws, start + 1) and any(p.endswith(".npz") for p in result.files)
