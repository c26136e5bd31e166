"""The app's operations (Studio) on tiny random models: fast, and the same code paths the tabs use."""
import io

import numpy as np
import pytest
import torch
from PIL import Image

from stylegan_core import zoo
from stylegan_core.export import save_generator
from stylegan_core.library import CodeLibrary
from stylegan_core.mobile_stylegan import tiny_mobile_stylegan
from stylegan_core.stylegan2 import tiny_stylegan2
from stylegan_core.studio import Studio, StudioError, USER_ERRORS, painted_mask, parse_seeds

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
        with pytest.raises(StudioError):
            parse_seeds(bad)


def test_generate_adds_codes_and_files(studio, library):
    result = studio.generate(library, MODEL, "1, 2", 0.7)
    assert [caption for _, caption in result["images"]] == ["seed 1", "seed 2"]
    assert library.names() == ["seed 1", "seed 2"]
    assert all(Image.open(path).size == result["images"][0][0].size for path in result["files"])


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
    same = studio.style_transfer(library, MODEL, "seed 3", "seed 3", 16)["image"]
    assert np.array_equal(np.asarray(same), np.asarray(studio.render(MODEL, studio.seed_code(MODEL, 3, 0.7))))


def test_expression_transfer_rows_are_checked(studio, library):
    with pytest.raises(StudioError, match="rows must satisfy"):
        studio.expression_transfer(library, MODEL, "seed 1", "seed 2", "seed 3", 1.0, 5, 2)


def test_every_edit_returns_an_image_and_downloads(studio, library):
    results = [
        studio.style_transfer(library, MODEL, "seed 1", "seed 2", 8),
        studio.style_mixing(library, MODEL, "1, 2", "3", "coarse", 0.7),
        studio.blend(library, MODEL, "seed 1", "seed 2", "horizontal", 0.5, True, [4, 8, 16, 32, 64]),
        studio.panorama(library, MODEL, "seed 1, seed 2, seed 3", "horizontal", 1.0),
    ]
    for result in results:
        assert isinstance(result["image"], Image.Image) and result["files"]
        assert np.asarray(result["image"]).std() > 0
    morph = studio.morph(library, MODEL, "seed 1", "seed 2", 3)
    assert len(morph["images"]) == 3 and morph["files"][0].endswith(".gif")


def test_panorama_needs_two_codes(studio, library):
    with pytest.raises(StudioError, match="between 2 and"):
        studio.panorama(library, MODEL, "seed 1", "horizontal", 1.0)


def test_spherical_morph_needs_seeds(studio, library):
    studio.generate(library, MODEL, "1", 0.7)
    with pytest.raises(StudioError, match="between two seeds"):
        studio.morph(library, MODEL, "seed 1", "missing", 3, spherical=True)
    assert len(studio.morph(library, MODEL, "seed 4", "seed 5", 3, spherical=True)["images"]) == 3


def test_painted_mask_from_editor_layers():
    layer = np.zeros((20, 30, 4), np.uint8)
    layer[:, 15:, 3] = 255
    mask = painted_mask({"background": None, "layers": [layer], "composite": None})
    assert mask.shape == (20, 30) and mask[:, 15:].min() == 1 and mask[:, :15].max() == 0
    with pytest.raises(StudioError, match="empty"):
        painted_mask({"layers": [np.zeros((4, 4, 4), np.uint8)]})
    with pytest.raises(StudioError):
        painted_mask(None)


def test_bad_edit_inputs_raise_user_errors(studio, library):
    bad_calls = [
        lambda: studio.expression_transfer(library, MODEL, "seed 1", "seed 2", "seed 3", 99.0),
        lambda: studio.morph(library, MODEL, "seed 1", "seed 2", 1000),
        lambda: studio.blend(library, MODEL, "seed 1", "seed 2", "painted", 0.5, False, [4], None),
        lambda: studio.blend(library, MODEL, "seed 1", "", "constant", 0.5, False, [4]),
        lambda: studio.blend(library, MODEL, "seed 1", "seed 2", "constant", 0.5, False, []),
    ]
    for call in bad_calls:
        with pytest.raises(USER_ERRORS):
            call()


def test_export_and_import_round_trip(studio, library):
    studio.generate(library, MODEL, "1, 2", 0.7)
    path = studio.export_library(library)
    other = CodeLibrary()
    result = studio.import_codes(other, MODEL, path)
    assert other.names() == library.names() and result["image"] is not None
    with pytest.raises(USER_ERRORS):
        studio.import_codes(other, MODEL, io.BytesIO(b"not npz"))
    assert other.names() == library.names()
