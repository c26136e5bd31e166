"""The Edit and Sketch tabs' Studio operations and the StyleGAN3 transform, on tiny checkpoints."""
import threading

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from conftest import tiny_model
from stylegan_core.editing.directions import Direction, DirectionError
from stylegan_core.errors import UserError
from stylegan_core.library import CodeLibrary
from stylegan_core.loading import zoo
from stylegan_core.loading.export import save_generator
from stylegan_core.models.stylegan3 import TransformEditor
from stylegan_core.studio import Studio
from stylegan_core.studio_edit import ImageTransform, parse_values
from ui.tabs.sketch import canvas_drawing


def studio_of(arch: str, tmp_path) -> Studio:
    checkpoint = save_generator(tiny_model(arch), tmp_path / f"{arch}.safetensors")
    zoo.clear_loaded_models()
    return Studio(default_model=zoo.CUSTOM_CHECKPOINT, device="cpu", checkpoint=str(checkpoint),
                  output_dir=str(tmp_path / "out"))


@pytest.fixture
def sg3(tmp_path):
    yield studio_of("stylegan3", tmp_path)
    zoo.clear_loaded_models()


@pytest.fixture
def sg2(tmp_path):
    yield studio_of("stylegan2", tmp_path)
    zoo.clear_loaded_models()


def pixels(image) -> np.ndarray:
    return np.asarray(image, dtype=np.float32)


def changed(image, reference) -> bool:
    """More than a fifth of the reference's own spread changed (tiny random models are low-contrast)."""
    return np.abs(pixels(image) - pixels(reference)).mean() > pixels(reference).std() / 5


MODEL = zoo.CUSTOM_CHECKPOINT


# -- the StyleGAN3 transform -------------------------------------------------------------------
def test_rotation_zero_is_the_plain_render_and_a_rotation_changes_the_image(sg3):
    ws = sg3.seed_code(MODEL, 1)
    plain = sg3.render(MODEL, ws)
    assert np.array_equal(pixels(sg3.render(MODEL, ws, transform=ImageTransform())), pixels(plain))
    generator = sg3.generator(MODEL)
    with torch.no_grad():  # the identity through the editor, too: the same numbers as no editor
        assert torch.allclose(generator.synthesis(ws, TransformEditor(0.0, (0.0, 0.0))), generator.synthesis(ws),
                              atol=1e-6)
    assert changed(sg3.render(MODEL, ws, transform=ImageTransform(rotate=30)), plain)
    assert changed(sg3.render(MODEL, ws, transform=ImageTransform(tx=0.25)), plain)


def test_the_transform_is_per_call_and_matches_the_models_buffer(sg3):
    generator = sg3.generator(MODEL)
    ws = sg3.seed_code(MODEL, 2)
    with torch.no_grad():
        per_call = generator.synthesis(ws, TransformEditor(20.0, (0.1, -0.05)))
        assert torch.equal(generator.input.transform, torch.eye(3))  # the shared model is untouched
        generator.set_transform(20.0, (0.1, -0.05))
        try:
            buffered = generator.synthesis(ws)
        finally:
            generator.set_transform(0.0, (0.0, 0.0))
    assert torch.allclose(per_call, buffered, atol=1e-5)


def test_generate_passes_the_transform_and_other_models_refuse_it(sg3, sg2):
    library = CodeLibrary()
    plain = sg3.generate(library, MODEL, "3", 0.7).pictures[0].image
    turned = sg3.generate(CodeLibrary(), MODEL, "3", 0.7, ImageTransform(rotate=45)).pictures[0].image
    assert changed(turned, plain)
    assert sg3.architecture(MODEL) == "stylegan3" and sg2.architecture(MODEL) == "stylegan2"
    with pytest.raises(UserError, match="StyleGAN3"):
        sg2.generate(CodeLibrary(), MODEL, "3", 0.7, ImageTransform(rotate=10))
    with pytest.raises(UserError, match="rotation"):
        sg3.generate(CodeLibrary(), MODEL, "3", 0.7, ImageTransform(rotate=1000))


# -- Edit --------------------------------------------------------------------------------------
def test_edit_with_instant_directions(sg2):
    sliders = sg2.edit_sliders(MODEL)
    assert not sliders.named and sliders.unnamed and "instant" in sliders.note
    library = CodeLibrary()
    name = sliders.unnamed[0].name
    plain = sg2.edit_attributes(library, MODEL, "seed 1", "").picture.image
    edited = sg2.edit_attributes(library, MODEL, "seed 1", {name: 3.0})
    assert changed(edited.picture.image, plain) and not edited.added
    stored = sg2.edit_attributes(library, MODEL, "seed 1", f"{name}=3", add=True)
    assert stored.added == ["seed 1 edited"]
    directions = sg2.directions(MODEL)
    expected = directions.vectors[name] * 3.0 * directions.directions[name].sigma
    moved = library.get("seed 1 edited").ws - sg2.seed_code(MODEL, 1, 0.7)
    rows = list(directions.directions[name].rows)
    assert torch.allclose(moved[0, rows], torch.from_numpy(expected).expand(len(rows), -1), atol=1e-5)


def test_edit_of_stylegan3_with_a_rotation(sg3):
    name = sg3.edit_sliders(MODEL).unnamed[0].name
    straight = sg3.edit_attributes(CodeLibrary(), MODEL, "seed 1", {name: 1.0}).picture.image
    turned = sg3.edit_attributes(CodeLibrary(), MODEL, "seed 1", {name: 1.0},
                                 transform=ImageTransform(rotate=90)).picture.image
    assert changed(turned, straight)


def test_adding_an_edit_with_style_channel_sliders_says_the_code_holds_the_w_part(sg2):
    directions = sg2.directions(MODEL)
    directions.add(Direction("x_s", "stylespace", "one style channel", (1,), 1.0, layer=1, channel=0))
    library = CodeLibrary()
    result = sg2.edit_attributes(library, MODEL, "seed 1", "x_s=2", add=True)
    assert "W part only" in result.info and "x_s" in result.info
    assert torch.equal(library.get(result.added[0]).ws, sg2.seed_code(MODEL, 1, 0.7))  # S shifts are not in W


@pytest.mark.parametrize("values, message", [
    ("nose_length=2", "unknown direction"),
    ("sefa_coarse_0=9", "sefa_coarse_0"),
    ("age 2", "NAME=VALUE"),
    ("sefa_coarse_0=abc", "number"),
])
def test_bad_slider_values_get_clear_messages(sg2, values, message):
    with pytest.raises(UserError, match=message):
        sg2.edit_attributes(CodeLibrary(), MODEL, "seed 1", values)


def test_parse_values():
    assert parse_values("age=2, smile=-1.5; yaw=0") == {"age": 2.0, "smile": -1.5}
    assert parse_values({"age": 1}) == {"age": 1.0} and parse_values("") == {}
    with pytest.raises(DirectionError):
        parse_values("=3")


# -- Sketch ------------------------------------------------------------------------------------
def face_drawing(size: int = 256) -> Image.Image:
    image = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(image)
    draw.ellipse((48, 24, 208, 232), outline="black", width=4)
    for x in (96, 160):
        draw.ellipse((x - 14, 100, x + 14, 116), outline="black", width=3)
    draw.arc((92, 150, 164, 196), 20, 160, fill="black", width=3)
    return image


def test_sketch_stream_previews_then_candidates_in_the_library(sg2):
    library = CodeLibrary()
    library.add(sg2.seed_code(MODEL, 9), MODEL, "seed", "sketch 1")  # taken: numbering skips it
    updates = list(sg2.sketch_stream(library, MODEL, face_drawing(), candidates=2, steps=10, reference="seed 4"))
    assert any(u.preview is not None for u in updates[:-1]) and not any(u.done for u in updates[:-1])
    final = updates[-1]
    assert final.done and len(final.pictures) == 2 and final.added == ["sketch 2", "sketch 3"]
    assert "Edit tab" in final.info


def test_stopping_a_sketch_keeps_the_best_so_far(sg2):
    cancel = threading.Event()
    updates = []
    for update in sg2.sketch_stream(CodeLibrary(), MODEL, face_drawing(), candidates=3, steps=20, cancel=cancel):
        updates.append(update)
        if update.step >= 5:
            cancel.set()  # what the Stop button does
    final = updates[-1]
    assert final.done and len(final.pictures) == 1 and "(stopped)" in final.info


def test_sketch_refuses_an_empty_canvas_and_a_photo(sg2):
    with pytest.raises(UserError, match="empty"):
        next(sg2.sketch_stream(CodeLibrary(), MODEL, None))
    with pytest.raises(UserError, match="empty"):
        next(sg2.sketch_stream(CodeLibrary(), MODEL, Image.new("RGB", (256, 256), "white")))
    noise = (np.random.default_rng(0).random((256, 256, 3)) * 255).astype(np.uint8)
    with pytest.raises(UserError, match="photo"):
        next(sg2.sketch_stream(CodeLibrary(), MODEL, noise))


def test_canvas_strokes_become_black_lines_on_white():
    assert canvas_drawing({"composite": np.zeros((8, 8, 4), np.uint8)}) is None  # nothing drawn
    strokes = np.zeros((8, 8, 4), np.uint8)
    strokes[2:4, :, 3] = 255  # a black stroke on the transparent canvas
    drawing = np.asarray(canvas_drawing({"composite": strokes, "layers": [], "background": None}))
    assert (drawing[2:4] == 0).all() and (drawing[5:] == 255).all()


# -- Expression: the simple path ---------------------------------------------------------------
def test_the_simple_expression_path_moves_along_the_direction_and_keeps_the_result(sg2):
    library = CodeLibrary()
    with pytest.raises(DirectionError, match="no 'smile' direction.*advanced"):  # instant directions only
        sg2.expression_edit(library, MODEL, "seed 1", "smile", 2.0)
    assert sg2.expression_choices(MODEL) == []
    with pytest.raises(DirectionError, match="no expression direction"):  # the tab's menu is empty then
        sg2.expression_edit(library, MODEL, "seed 1", None, 2.0)
    directions = sg2.directions(MODEL)
    directions.add(Direction("smile", "interfacegan", "Smile", (0, 1), 0.5), np.ones(directions.w_dim))
    assert sg2.expression_choices(MODEL) == [("Smile", "smile")]
    result = sg2.expression_edit(library, MODEL, "seed 1", "smile", 2.0)
    ws = sg2.seed_code(MODEL, 1, 0.7)
    expected = ws.clone()
    expected[:, [0, 1]] += 2.0 * 0.5 * torch.ones(directions.w_dim) / directions.w_dim ** 0.5
    assert result.added == ["seed 1 smile"] and torch.allclose(library.get("seed 1 smile").ws, expected)
    assert changed(result.picture.image, sg2.render(MODEL, ws)) and "smile=2" in result.info
    assert torch.equal(library.get(sg2.expression_edit(library, MODEL, "seed 1", "smile", 0).added[0]).ws, ws)
    for bad, message in [(("frown", 1.0), "unknown expression"), (("smile", 9.0), "strength")]:
        with pytest.raises(UserError, match=message):
            sg2.expression_edit(library, MODEL, "seed 1", *bad)


def test_the_advanced_expression_path_asks_for_both_codes_of_one_person(sg2):
    with pytest.raises(UserError, match="same person with and without"):
        sg2.expression_transfer(CodeLibrary(), MODEL, "seed 1", "", "seed 3")
