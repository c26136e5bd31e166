"""Sketch to face: the differentiable renderer, reading users' drawings, the loss, and the
optimisation on tiny random generators; one short real-weight run."""
import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from stylegan_core.editing import sketch
from stylegan_core.models.mobile_stylegan import tiny_mobile_stylegan
from stylegan_core.editing.sketch import (Sketch, SketchError, SketchLoss, SketchOptions, line_strength, load_sketch,
                                  row_mask, sketch_of, sketch_to_face)
from stylegan_core.models.stylegan2 import tiny_stylegan2

TINY_GENERATORS = {"mobile_stylegan": lambda: tiny_mobile_stylegan(0), "stylegan2": lambda: tiny_stylegan2(0, 32)}


def face_drawing(size=512, offset=(0, 0), width=6) -> Image.Image:
    """A face as a person draws it: head outline, eyes, nose, mouth; black on white."""
    image = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(image)
    s, (dx, dy) = size / 512, offset

    def box(x0, y0, x1, y1):
        return [x0 * s + dx, y0 * s + dy, x1 * s + dx, y1 * s + dy]

    draw.ellipse(box(136, 96, 376, 416), outline="black", width=width)
    draw.ellipse(box(190, 210, 230, 235), outline="black", width=width)
    draw.ellipse(box(282, 210, 322, 235), outline="black", width=width)
    draw.line(box(256, 240, 246, 300), fill="black", width=width)
    draw.arc(box(210, 300, 302, 350), 20, 160, fill="black", width=width)
    return image


def step_edge(size=64) -> torch.Tensor:
    """An image [1, 3, size, size]: black left half, white right half."""
    image = -torch.ones(1, 3, size, size)
    image[..., size // 2:] = 1
    return image


# -- renderer -----------------------------------------------------------------------------------
def test_sketch_of_draws_a_dark_line_at_an_edge_and_white_elsewhere():
    drawing = sketch_of(step_edge(), resolution=64)
    assert drawing.shape == (1, 1, 64, 64)
    assert 0 <= drawing.min() and drawing.max() <= 1
    assert drawing[0, 0, :, 31:33].max() < 0.1  # the edge is a black line
    assert drawing[0, 0, :, :20].min() > 0.99 and drawing[0, 0, :, 44:].min() > 0.99  # flat areas are paper
    assert torch.allclose(sketch_of(-step_edge(), 64), drawing, atol=1e-6)  # the inverse draws the same line


def test_flat_images_of_any_colour_are_blank_paper():
    for colour in (-1.0, 0.3, 1.0):
        flat = torch.full((1, 3, 32, 32), colour)
        flat[:, 0] = -colour
        assert sketch_of(flat, 32).min() > 0.999


def test_the_renderer_is_differentiable():
    image = (0.5 * torch.randn(2, 3, 64, 64)).requires_grad_(True)
    line_strength(image, 32).sum().backward()
    assert image.grad is not None and image.grad.abs().sum() > 0 and torch.isfinite(image.grad).all()


# -- reading drawings ---------------------------------------------------------------------------
def test_a_drawn_face_becomes_a_square_drawing_in_the_drawing_convention():
    loaded = load_sketch(face_drawing())
    assert isinstance(loaded, Sketch) and loaded.warnings == []
    assert loaded.drawing.shape == (1, 1, sketch.LOSS_RESOLUTION, sketch.LOSS_RESOLUTION)
    assert loaded.drawing.max() == 1 and loaded.drawing.min() == 0  # paper white, lines black
    assert (loaded.drawing < 0.5).float().mean() < 0.1
    assert loaded.image.size == (sketch.LOSS_RESOLUTION,) * 2


def ink_box(drawing: torch.Tensor) -> tuple[float, float, float, float]:
    rows, columns = np.nonzero(drawing[0, 0].numpy() < 0.5)
    return rows.min(), rows.max(), columns.min(), columns.max()


def test_a_non_square_upload_is_padded_with_paper_not_cropped_or_stretched():
    wide = Image.new("RGB", (900, 512), "white")
    wide.paste(face_drawing(), (194, 0))
    top, bottom, left, right = ink_box(load_sketch(wide).drawing)
    assert (bottom - top) / (right - left) == pytest.approx(320 / 240, rel=0.05)  # the head's proportions
    assert (top + bottom) / 2 == pytest.approx(128, abs=4) and (left + right) / 2 == pytest.approx(128, abs=4)


def test_pencil_on_grey_paper_is_stretched_to_black_on_white():
    grey = Image.eval(face_drawing(), lambda v: 90 + v * 110 // 255)  # lines 90, paper 200
    assert torch.allclose(load_sketch(grey).drawing, load_sketch(face_drawing()).drawing, atol=0.02)


@pytest.mark.parametrize("make, message", [
    (lambda: Image.new("RGB", (512, 512), "white"), "empty"),
    (lambda: Image.new("RGB", (512, 512), (240, 240, 240)), "empty"),
    (lambda: Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8)), "photo"),
    (lambda: Image.linear_gradient("L").convert("RGB"), "photo"),
    (lambda: Image.new("RGB", (512, 512), (200, 40, 40)), "empty"),
    (lambda: _small_scribble(), "covers only"),
    (lambda: _filled(), "dark"),
])
def test_bad_drawings_get_a_clear_message(make, message):
    with pytest.raises(SketchError, match=message):
        load_sketch(make())


def _small_scribble() -> Image.Image:
    image = Image.new("RGB", (512, 512), "white")
    image.paste(face_drawing(110, width=12), (200, 200))
    return image


def _filled() -> Image.Image:
    image = face_drawing()
    ImageDraw.Draw(image).rectangle([0, 0, 511, 300], fill="black")
    return image


def test_a_colour_photo_is_refused():
    ramp = np.linspace(0, 255, 512)
    photo = np.stack([np.full((512, 512), 230.0), np.tile(ramp, (512, 1)), np.tile(ramp, (512, 1)).T], axis=2)
    with pytest.raises(SketchError, match="photo"):
        load_sketch(Image.fromarray(photo.astype(np.uint8)))


def test_an_off_centre_drawing_is_used_with_a_warning():
    canvas = Image.new("RGB", (512, 512), "white")
    canvas.paste(face_drawing(300), (212, 212))
    assert "centre" in load_sketch(canvas).warnings[0]


# -- loss ---------------------------------------------------------------------------------------
def test_loss_is_zero_for_the_same_lines_and_small_for_lines_a_few_pixels_off():
    target = load_sketch(face_drawing()).drawing
    loss = SketchLoss(target)
    as_image = target.repeat(1, 3, 1, 1) * 2 - 1  # the drawing itself as an image
    same = float(loss(as_image))
    shifted = [float(loss(torch.roll(as_image, shift, dims=-1))) for shift in (2, 4, 8, 16)]
    other = float(loss(torch.flip(as_image, dims=[-2])))  # upside down: another drawing
    blank = float(loss(torch.ones(1, 3, 256, 256)))
    assert same < 0.1
    assert shifted == sorted(shifted) and shifted[0] < 0.5 * other
    assert blank == pytest.approx(1.0)


def test_loss_ignores_colour_of_flat_areas():
    """Nothing pulls colours from the paper: recolouring a flat region changes nothing."""
    loss = SketchLoss(load_sketch(face_drawing()).drawing)
    image = torch.zeros(1, 3, 256, 256)
    image[..., 100:160, 100:160] = 0.8
    recoloured = image.clone()
    recoloured[:, 0] -= 0.3
    recoloured[:, 2] += 0.3
    assert float(loss(image)) == pytest.approx(float(loss(recoloured)), abs=0.02)


# -- optimisation on tiny models ---------------------------------------------------------------
def tiny_options(**changes):
    """Tiny models render 32-64 px: 16 px is the 'shape' boundary, 8 px the 'coarse' one."""
    return SketchOptions(**{"steps": 15, "shape_resolution": 16, "coarse_resolution": 8,
                            "plateau_patience": None, "preview_every": 5, **changes})


def target_drawing(generator, seed=5):
    with torch.no_grad():
        image = generator.synthesis(generator.mapping(generator.seed_to_z(seed)))
    return sketch_of(image, generator.resolution)


@pytest.mark.parametrize("arch", sorted(TINY_GENERATORS))
def test_candidates_get_closer_to_the_sketch(arch):
    generator = TINY_GENERATORS[arch]()
    losses = []
    candidates = sketch_to_face(generator, target_drawing(generator), candidates=2, options=tiny_options(),
                                progress=lambda step, total, preview, loss: losses.append((step, total, loss)))
    assert len(candidates) == 2 and candidates[0].loss <= candidates[1].loss
    assert {c.start for c in candidates} == {"mean face", "seed 0"}
    assert [step for step, _, _ in losses] == list(range(1, 31)) and losses[0][1] == 30
    for candidate, first_loss in zip(sorted(candidates, key=lambda c: c.start != "mean face"), (losses[0], losses[15])):
        assert candidate.loss < 0.9 * first_loss[2]
        assert candidate.ws.shape == (1, generator.num_ws, generator.w_dim)
        assert candidate.image.size == (generator.resolution,) * 2
        assert candidate.sketch_image.size == (generator.resolution,) * 2 and candidate.sketch_image.mode == "L"


def test_only_shape_rows_change_and_the_reference_fine_rows_are_kept_bit_for_bit():
    generator = tiny_mobile_stylegan(0)
    reference = generator.mapping(generator.seed_to_z(11)) + 0.1 * torch.randn(1, generator.num_ws, generator.w_dim)
    fine = ~row_mask(generator, 16)[0, :, 0]
    assert 0 < int(fine.sum()) < generator.num_ws
    candidates = sketch_to_face(generator, target_drawing(generator), candidates=3, reference_ws=reference,
                                options=tiny_options(steps=5))
    assert {c.start for c in candidates} == {"reference", "mean face", "seed 0"}
    for candidate in candidates:
        assert torch.equal(candidate.ws[:, fine], reference[:, fine])
        assert not torch.equal(candidate.ws[:, ~fine], reference[:, ~fine])
    mean_start = sketch_to_face(generator, target_drawing(generator), candidates=1, options=tiny_options(steps=5))[0]
    assert torch.equal(mean_start.ws[:, fine], generator.mean_ws(1)[:, fine])


def test_stop_ends_the_current_candidate_with_its_best_code_and_skips_the_rest():
    generator = tiny_mobile_stylegan(0)
    calls = []
    candidates = sketch_to_face(generator, target_drawing(generator), candidates=3, options=tiny_options(),
                                progress=lambda *args: calls.append(args), should_stop=lambda: len(calls) >= 4)
    assert len(candidates) == 1 and candidates[0].stopped == "cancelled" and candidates[0].steps_run == 4
    stopped_at_once = sketch_to_face(generator, target_drawing(generator), candidates=2, options=tiny_options(),
                                     should_stop=lambda: True)
    assert len(stopped_at_once) == 1 and stopped_at_once[0].steps_run == 0
    assert torch.equal(stopped_at_once[0].ws, generator.mean_ws(1))


def test_a_plateau_stops_a_candidate_early():
    generator = tiny_mobile_stylegan(0)
    candidate = sketch_to_face(generator, target_drawing(generator), candidates=1,
                               options=tiny_options(steps=200, plateau_patience=3, plateau_tolerance=0.5))[0]
    assert candidate.stopped == "plateau" and candidate.steps_run < 200


def test_previews_come_every_few_steps_and_at_the_end():
    generator = tiny_mobile_stylegan(0)
    previews = []
    sketch_to_face(generator, target_drawing(generator), candidates=1, options=tiny_options(steps=12),
                   progress=lambda step, total, preview, loss: previews.append(preview is not None))
    assert [i + 1 for i, shown in enumerate(previews) if shown] == [5, 10, 12]


def test_bad_arguments_are_refused():
    generator = tiny_mobile_stylegan(0)
    with pytest.raises(ValueError, match="candidates"):
        sketch_to_face(generator, target_drawing(generator), candidates=0)
    with pytest.raises(ValueError, match="reference"):
        sketch_to_face(generator, target_drawing(generator), reference_ws=torch.zeros(1, 3, 5))
    with pytest.raises(ValueError, match="steps"):
        SketchOptions(steps=0)


@pytest.mark.real
def test_real_model_follows_a_drawn_face():
    from stylegan_core.loading import zoo

    generator = zoo.load_model().generator
    drawn = load_sketch(face_drawing())
    losses = []
    candidate = sketch_to_face(generator, drawn, candidates=1, steps=8,
                               progress=lambda step, total, preview, loss: losses.append(loss))[0]
    assert candidate.image.size == (generator.resolution,) * 2
    assert candidate.loss < losses[0]


# -- command line -------------------------------------------------------------------------------
def test_cli_writes_candidates_with_codes_and_sketches(tiny_checkpoint, tmp_path, capsys):
    from stylegan_core import cli
    from stylegan_core.latents import load_latent, save_latent

    generator, checkpoint = tiny_checkpoint
    face_drawing().save(tmp_path / "face.png")
    out = tmp_path / "out"
    arguments = ["sketch", str(tmp_path / "face.png"), "--out", str(out), "--steps", "3", "--checkpoint", str(checkpoint)]
    assert cli.main(arguments + ["--candidates", "2"]) == 0
    for number in (1, 2):
        assert Image.open(out / f"candidate-{number}.png").size == (generator.resolution,) * 2
        assert Image.open(out / f"candidate-{number}-sketch.png").mode == "L"
        assert load_latent(out / f"candidate-{number}.npz").ws.shape == (1, generator.num_ws, generator.w_dim)
    assert len(capsys.readouterr().out.strip().splitlines()) == 2

    latent = load_latent(out / "candidate-1.npz")
    save_latent(tmp_path / "reference.npz", latent.ws, latent.model_name)
    assert cli.main(arguments + ["--candidates", "1", "--reference", str(tmp_path / "reference.npz")]) == 0
    assert "reference" in capsys.readouterr().out


def test_cli_errors_are_messages(tiny_checkpoint, tmp_path, capsys):
    from stylegan_core import cli
    from stylegan_core.latents import save_latent

    _, checkpoint = tiny_checkpoint
    Image.new("RGB", (300, 300), "white").save(tmp_path / "empty.png")
    face_drawing().save(tmp_path / "face.png")
    save_latent(tmp_path / "other.npz", torch.zeros(1, 3, 5), "another-model")
    base = ["--out", str(tmp_path / "out"), "--steps", "2", "--checkpoint", str(checkpoint)]
    assert cli.main(["sketch", str(tmp_path / "empty.png")] + base) == 1
    assert "empty" in capsys.readouterr().err
    assert cli.main(["sketch", str(tmp_path / "face.png"), "--reference", str(tmp_path / "other.npz")] + base) == 1
    assert "shape" in capsys.readouterr().err
    assert cli.main(["sketch", str(tmp_path / "face.png"), "--candidates", "99"] + base) == 1
    assert "candidates" in capsys.readouterr().err
