"""Unaligned photos with StyleGAN3: the photo frame's transform (synthetic geometry), renders with it
on tiny random StyleGAN3 models, and the Studio operation. Nothing here uses real StyleGAN3 weights."""
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from conftest import tiny_codes, tiny_model
from test_paste_back import synthetic_landmarks, textured_photo
from stylegan_core.errors import UserError
from stylegan_core.images import tensor_to_pil
from stylegan_core.inversion import align
from stylegan_core.inversion.paste_back import PhotoLink
from stylegan_core.inversion.photo_frame import photo_frame, photo_frame_crop, side_by_side
from stylegan_core.library import CodeLibrary
from stylegan_core.loading import zoo
from stylegan_core.loading.export import save_generator
from stylegan_core.models.stylegan3 import TransformEditor, tiny_stylegan3, transform_matrix
from stylegan_core.studio import Studio

MODEL = zoo.CUSTOM_CHECKPOINT
TESTS = Path(__file__).resolve().parent


def square(centre, side, angle_deg):
    """A crop square [4, 2] in align's corner order whose x axis points at `angle_deg` (y down:
    positive turns clockwise on screen)."""
    a = math.radians(angle_deg)
    x_axis = np.array([math.cos(a), math.sin(a)]) * side / 2
    y_axis = np.array([-x_axis[1], x_axis[0]])
    c = np.asarray(centre, float)
    return np.stack([c - x_axis - y_axis, c - x_axis + y_axis, c + x_axis + y_axis, c + x_axis - y_axis])


def face_of(quad, size=(400, 300), landmarks=None):
    return align.AlignedFace(image=Image.new("RGB", (8, 8)), quad=quad, source_size=size, landmarks=landmarks)


def rotated(points, centre, angle_deg):
    a = math.radians(angle_deg)
    matrix = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    return (np.asarray(points) - centre) @ matrix.T + centre


# -- the geometry ----------------------------------------------------------------------------------
@pytest.mark.parametrize("angle", [0.0, 17.0, -40.0, 120.0])
def test_a_tilted_face_away_from_the_border_is_a_pure_rotation(angle):
    frame = photo_frame(face_of(square((200, 150), 100, angle)))
    assert frame.rotate == pytest.approx(-angle)
    assert (frame.tx, frame.ty) == (pytest.approx(0, abs=1e-12), pytest.approx(0, abs=1e-12))
    assert frame.box == pytest.approx((150, 100, 250, 200))


def test_a_face_near_the_border_keeps_the_frame_inside_the_photo_and_shifts_the_face():
    frame = photo_frame(face_of(square((30, 260), 100, 10.0), size=(400, 300)))
    assert frame.box == pytest.approx((0, 200, 100, 300))  # centre (50, 250)
    assert (frame.tx, frame.ty) == (pytest.approx(-0.2), pytest.approx(0.1))
    assert frame.rotate == pytest.approx(-10.0)
    small = photo_frame(face_of(square((40, 30), 100, 0.0), size=(80, 60)))  # the photo is smaller: centred
    assert (small.tx, small.ty, small.box) == (0, 0, pytest.approx((-10, -20, 90, 80)))


@pytest.mark.parametrize("angle, centre", [(25.0, (200, 150)), (-30.0, (60, 240))])
def test_the_transform_carries_every_point_of_the_aligned_crop_to_the_same_photo_point(angle, centre):
    """In the generator's units (image widths from the centre), a point u of the aligned crop lies
    where transform_matrix (the generator's convention) puts it in the frame."""
    face = face_of(square(centre, 120, angle))
    frame = photo_frame(face)
    side = 120
    crop_to_photo = face.crop_to_photo_matrix(side)
    move = transform_matrix(*frame.transform).numpy()
    for u in [(-0.4, -0.3), (0.0, 0.0), (0.35, 0.2), (0.1, -0.45)]:
        photo_point = crop_to_photo @ np.array([(u[0] + 0.5) * side, (u[1] + 0.5) * side, 1.0])
        in_frame = move @ np.array([u[0], u[1], 1.0])
        expected = (photo_point[:2] - np.array(frame.box[:2])) / side - 0.5
        np.testing.assert_allclose(in_frame[:2], expected, atol=1e-9)


def test_the_ffhq_square_of_a_tilted_face_gives_back_its_tilt():
    upright = synthetic_landmarks(centre=(200.0, 150.0))
    centre = align.ffhq_quad(upright).mean(axis=0)
    base = photo_frame(face_of(align.ffhq_quad(upright))).rotate
    for tilt in (15.0, -25.0):  # the face turned clockwise on screen by `tilt`
        frame = photo_frame(face_of(align.ffhq_quad(rotated(upright, centre, tilt))))
        assert frame.rotate == pytest.approx(base - tilt, abs=1e-6)


def test_the_photo_crop_is_the_frame_of_the_photo():
    photo = textured_photo(size=(300, 260))
    frame = photo_frame(face_of(square((150, 130), 100, 30.0), size=photo.size))
    crop = photo_frame_crop(photo, frame, 100)
    expected = photo.crop((100, 80, 200, 180))
    assert np.abs(np.asarray(crop, float) - np.asarray(expected, float)).mean() < 2


def moved(image: torch.Tensor, rotate: float, translate) -> torch.Tensor:
    """`image` [B, C, H, W] with its content at u moved to transform_matrix(rotate, translate) u
    (what the generator's transform does, see the rotation test below), by resampling."""
    inverse = torch.linalg.inv(transform_matrix(rotate, translate)).float()[:2]
    inverse[:, 2] *= 2  # affine_grid's coordinates span [-1, 1], the generator's [-0.5, 0.5]
    grid = F.affine_grid(inverse[None], list(image.shape), align_corners=False)
    return F.grid_sample(image, grid, mode="bicubic", align_corners=False)


@pytest.mark.parametrize("centre, tilt", [((150, 130), 30.0), ((30, 235), -20.0)])
def test_the_aligned_crop_moved_by_the_frames_transform_is_the_photos_frame(centre, tilt):
    """End to end in pixels: what a perfectly equivariant generator would do to the aligned crop
    (move it by the frame's transform) reproduces the photo's crop around the face (the second face
    is near the corner: its frame is moved into the photo, so the face is shifted too)."""
    photo = textured_photo(size=(300, 260))
    quad = square(centre, 100, tilt)
    frame = photo_frame(face_of(quad, size=photo.size))
    aligned = torch.as_tensor(np.asarray(align.warp_quad(photo, quad, 100), np.float32)).permute(2, 0, 1)[None]
    expected = np.asarray(photo_frame_crop(photo, frame, 100), np.float32)
    yy, xx = np.mgrid[0:100, 0:100] + 0.5
    around_face = np.hypot(xx - (0.5 + frame.tx) * 100, yy - (0.5 + frame.ty) * 100) < 25

    def error(rotate, translate):
        result = moved(aligned, rotate, translate)[0].permute(1, 2, 0).numpy()
        return np.abs(result - expected)[around_face].mean()

    assert error(*frame.transform) < 0.2 * error(-frame.rotate, (frame.tx, frame.ty))
    if frame.tx or frame.ty:
        assert error(*frame.transform) < 0.2 * error(frame.rotate, (0.0, 0.0))


@pytest.mark.real
def test_a_real_photo_turned_clockwise_gives_its_turn_back_and_its_frame():
    """dlib's landmarks on a real photo (the astronaut example) turned 25 degrees clockwise: the
    frame's rotation changes by -25 degrees, and the aligned crop moved by it is the photo's frame."""
    from stylegan_core.images import load_image

    photo = load_image(TESTS.parent / "examples" / "astronaut.jpg")
    turned = photo.rotate(-25, Image.Resampling.BICUBIC, expand=True, fillcolor=(40, 40, 40))
    upright, face = photo_frame(align.align_face(photo, 128)), align.align_face(turned, 128)
    frame = photo_frame(face)
    assert frame.rotate == pytest.approx(upright.rotate - 25, abs=2)
    aligned = torch.as_tensor(np.asarray(face.image, np.float32)).permute(2, 0, 1)[None]
    expected = np.asarray(photo_frame_crop(turned, frame, 128), np.float32)
    around_face = centre_disc(128, 0.3).numpy()
    result = moved(aligned, *frame.transform)[0].permute(1, 2, 0).numpy()
    opposite = moved(aligned, -frame.rotate, (frame.tx, frame.ty))[0].permute(1, 2, 0).numpy()
    error = np.abs(result - expected)[around_face].mean()
    assert error < 0.25 * np.abs(opposite - expected)[around_face].mean(), error
    (TESTS / "artifacts").mkdir(exist_ok=True)  # to look at: the aligned crop, moved, the photo's frame
    side_by_side([face.image, Image.fromarray(result.clip(0, 255).astype(np.uint8)),
                  photo_frame_crop(turned, frame, 128)]).save(TESTS / "artifacts" / "photo-frame-geometry.png")


# -- renders on tiny StyleGAN3 models --------------------------------------------------------------
def turned_clockwise(image: torch.Tensor, degrees: float) -> torch.Tensor:
    """`image` turned clockwise on screen about its centre, by resampling (written out here, not
    through the generator's transform_matrix, so the test checks that convention too)."""
    a = math.radians(degrees)
    # grid_sample reads the output pixel x from theta x: the inverse of the clockwise turn (y down).
    theta = torch.tensor([[[math.cos(a), math.sin(a), 0.0], [-math.sin(a), math.cos(a), 0.0]]])
    grid = F.affine_grid(theta, list(image.shape), align_corners=False)
    return F.grid_sample(image, grid, mode="bicubic", align_corners=False)


def centre_disc(resolution: int, radius: float) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(resolution), torch.arange(resolution), indexing="ij")
    return torch.hypot(xx + 0.5 - resolution / 2, yy + 0.5 - resolution / 2) < radius * resolution


def test_rendering_in_the_frame_of_a_tilted_face_rotates_the_output():
    """A face tilted 25 degrees clockwise in the photo: the render in its frame is the plain render
    turned 25 degrees clockwise (config R is rotation-equivariant), away from the borders; the
    other way round is far off."""
    generator = tiny_stylegan3(resolution=64, config="R")
    ws = tiny_codes(generator)
    frame = photo_frame(face_of(square((200, 150), 100, 25.0)))
    with torch.no_grad():
        plain = generator.synthesis(ws)
        framed = generator.synthesis(ws, TransformEditor(*frame.transform))
    disc = centre_disc(64, 0.3)
    error = (framed - turned_clockwise(plain, 25.0))[..., disc].abs().mean()
    wrong_sign = (framed - turned_clockwise(plain, -25.0))[..., disc].abs().mean()
    assert error < 0.1 * wrong_sign, (float(error), float(wrong_sign))


def test_rendering_in_the_frame_of_a_face_near_the_border_shifts_the_output():
    generator = tiny_stylegan3()  # config T, 32 px: one Fourier-grid pixel is 2 image pixels
    rate = generator.input.spec.sampling_rate
    side = 160
    frame = photo_frame(face_of(square((80 - side / rate, 160), side, 0.0), size=(320, 320)))
    assert (frame.tx, frame.ty) == (pytest.approx(-1 / rate), 0)
    ws = tiny_codes(generator)
    with torch.no_grad():
        plain = generator.synthesis(ws)
        framed = generator.synthesis(ws, TransformEditor(*frame.transform))
    pixels, border = generator.resolution // rate, 8
    interior = (framed[..., border:-border, border - pixels:-border - pixels]
                - plain[..., border:-border, border:-border]).abs().max()
    assert interior < 0.05 * (framed - plain).abs().max()


# -- the Studio operation --------------------------------------------------------------------------
def studio_of(arch: str, tmp_path) -> Studio:
    checkpoint = save_generator(tiny_model(arch), tmp_path / f"{arch}.safetensors")
    zoo.clear_loaded_models()
    return Studio(default_model=MODEL, device="cpu", checkpoint=str(checkpoint), output_dir=str(tmp_path / "out"))


def library_with_a_photo(studio: Studio, tilt: float = 20.0) -> CodeLibrary:
    photo = textured_photo(size=(300, 260))
    upright = synthetic_landmarks(centre=(150.0, 120.0))
    landmarks = rotated(upright, np.array([150.0, 120.0]), tilt)
    library = CodeLibrary()
    library.add(studio.seed_code(MODEL, 4), MODEL, "inverted", "me",
                photo=PhotoLink(photo, align.ffhq_quad(landmarks), landmarks, source="me.png"))
    return library


@pytest.fixture
def sg3(tmp_path):
    yield studio_of("stylegan3", tmp_path)
    zoo.clear_loaded_models()


def test_the_studio_renders_an_inverted_code_in_its_photos_frame(sg3):
    library = library_with_a_photo(sg3)
    result = sg3.render_in_photo_frame(library, MODEL, "me")
    resolution = sg3.generator(MODEL).resolution
    assert result.picture.image.size == (3 * resolution + 8, resolution)
    assert result.pasted.image.size == (300, 260) and len(result.files) == 4
    assert "unverified" in result.info
    frame = photo_frame(library.get("me").photo)
    with torch.no_grad():
        expected = sg3.generator(MODEL).synthesis(library.get("me").ws, TransformEditor(*frame.transform))
    middle = np.asarray(result.picture.image, float)[:, resolution + 4:2 * resolution + 4]
    assert np.abs(middle - np.asarray(tensor_to_pil(expected), float)).max() <= 1
    plain = np.asarray(sg3.render(MODEL, library.get("me").ws), float)
    assert np.abs(middle - plain).mean() > 1  # the tilt is in the render


def test_an_edit_in_the_photos_frame_changes_the_render(sg3):
    library = library_with_a_photo(sg3)
    name = sg3.edit_sliders(MODEL).unnamed[0].name
    plain = sg3.render_in_photo_frame(library, MODEL, "me").picture.image
    edited = sg3.render_in_photo_frame(library, MODEL, "me", f"{name}=3")
    assert np.abs(np.asarray(edited.picture.image, float) - np.asarray(plain, float)).mean() > 0.5
    assert f"{name}=3" in edited.info


def test_codes_without_a_photo_and_other_architectures_are_refused(sg3, tmp_path):
    with pytest.raises(UserError, match="not inverted from a photo"):
        sg3.render_in_photo_frame(CodeLibrary(), MODEL, "seed 1")
    sg2 = studio_of("stylegan2", tmp_path / "sg2")
    with pytest.raises(UserError, match="needs a StyleGAN3 model"):
        sg2.render_in_photo_frame(library_with_a_photo(sg2), MODEL, "me")


def test_an_inversion_with_a_stylegan3_model_also_shows_the_photos_frame(sg3, tmp_path, random_vgg):
    photo = tmp_path / "photo.png"
    textured_photo(size=(64, 48)).save(photo)
    final = list(sg3.invert_stream(CodeLibrary(), MODEL, str(photo), None, 10, "w"))[-1]
    assert final.done and final.in_frame is not None and final.in_frame.path in final.files
    assert "photo's frame" in final.info and "unverified" in final.info


# -- the command line ------------------------------------------------------------------------------
@pytest.fixture
def forget_models():
    yield
    zoo.clear_loaded_models()


def test_cli_invert_renders_a_tilted_face_in_the_photos_frame_and_edit_takes_its_transform(
        random_vgg, forget_models, tmp_path, monkeypatch, capsys):
    import json

    from stylegan_core import cli
    from stylegan_core.latents import load_latent

    generator = tiny_stylegan3()
    checkpoint = save_generator(generator, tmp_path / "sg3.safetensors")
    zoo.clear_loaded_models()
    photo = tmp_path / "photo.png"
    textured_photo(size=(300, 260)).save(photo)
    landmarks = rotated(synthetic_landmarks(centre=(150.0, 120.0)), np.array([150.0, 120.0]), 20.0)

    def tilted_face(image, resolution, face_index=0):  # dlib is not needed to test the geometry
        quad = align.ffhq_quad(landmarks)
        return align.AlignedFace(align.warp_quad(image, quad, resolution), quad, image.size, landmarks=landmarks)

    monkeypatch.setattr(align, "align_face", tilted_face)
    out = tmp_path / "out"
    assert cli.main(["invert", str(photo), "--out", str(out), "--steps", "2", "--checkpoint", str(checkpoint)]) == 0
    report = json.loads((out / "metrics.json").read_text())["photo_frame"]
    assert report["rotate"] == pytest.approx(photo_frame(tilted_face(Image.open(photo), 32)).rotate)
    assert abs(report["rotate"] + 20.0) < 5  # the FFHQ square follows the eyes' tilt, nearly
    rendered = np.asarray(Image.open(out / "photo_frame.png"), float)
    assert rendered.shape == (32, 32, 3) and (out / "photo_frame_photo.png").is_file()
    assert "--rotate" in capsys.readouterr().err
    ws = load_latent(out / "latent.npz").ws
    with torch.no_grad():
        expected = generator.synthesis(ws, TransformEditor(report["rotate"], tuple(report["translate"])))
    assert np.abs(rendered - np.asarray(tensor_to_pil(expected), float)).max() <= 1

    translate = f"{report['translate'][0]},{report['translate'][1]}"
    assert cli.main(["edit", "--latent", str(out / "latent.npz"), "--rotate", str(report["rotate"]), "--translate",
                     translate, "--out", str(tmp_path / "edit.png"), "--checkpoint", str(checkpoint)]) == 0
    edited = np.asarray(Image.open(tmp_path / "edit.png"), float)
    assert np.abs(edited - rendered).max() <= 1  # no slider set: the same picture, through `edit`


def test_an_s_space_inversion_is_rendered_in_the_frame_from_its_exact_styles(sg3):
    """The S-space result differs from its nearest W+ code; the frame's render must show the former."""
    library = library_with_a_photo(sg3, tilt=0.0)  # an upright face away from the border: the identity
    generator = sg3.generator(MODEL)
    styles = [s + 0.5 for s in generator.styles(library.get("me").ws)]
    result = sg3.in_photo_frame(MODEL, library.get("me").ws, library.get("me").photo, "s", styles=styles)
    with torch.no_grad():
        exact = tensor_to_pil(generator.synthesis(styles=styles))
    resolution = generator.resolution
    middle = np.asarray(result.picture.image, float)[:, resolution + 4:2 * resolution + 4]
    assert np.abs(middle - np.asarray(exact, float)).max() <= 1
