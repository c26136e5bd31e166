"""SOAT spatial operations: canvas extension and layout variations (tiny models; real weights marked)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import TINY_MODELS, faces_found, tiny_codes, tiny_model
from stylegan_core.editing import spatial


@pytest.fixture(scope="module", params=sorted(a for a in TINY_MODELS if a != "stylegan3"))
def generator(request):
    return tiny_model(request.param, seed=3)


@pytest.fixture(scope="module")
def code(generator):
    return tiny_codes(generator, seed=5, psi=0.8)


def render(generator, ws):
    with torch.no_grad():
        return generator.synthesis(ws)


def steps_along(image, axis):
    """Mean |difference| between neighbouring columns (axis -1) or rows (axis -2), per gap."""
    other = (0, 1, 2) if axis == -1 else (0, 1, 3)
    return image.clamp(-1, 1).diff(dim=axis).abs().mean(dim=other)


# -- padding ------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode, torch_mode", [("reflect", "reflect"), ("replicate", "replicate"), ("circular", "circular")])
def test_small_pads_match_torchs_padding_modes(mode, torch_mode):
    features = torch.randn(1, 5, 4, 6)
    pad = spatial.Pad(left=2, right=1, top=3, bottom=1, mode=mode)
    torch.testing.assert_close(pad.apply(features), F.pad(features, (2, 1, 3, 1), mode=torch_mode), rtol=0, atol=0)


def test_reflect_padding_of_any_amount_keeps_mirroring():
    row = torch.arange(3.0).view(1, 1, 1, 3)
    padded = spatial.Pad(left=5, right=5, mode="reflect").apply(row)[0, 0, 0].tolist()
    assert padded == [1, 0, 1, 2, 1, 0, 1, 2, 1, 0, 1, 2, 1]


@pytest.mark.parametrize("mode", spatial.PAD_MODES)
def test_extend_canvas_grows_by_whole_cells_and_stays_finite(generator, code, mode):
    for resolution in spatial.edit_resolutions(generator):
        scale = generator.resolution // resolution
        image = spatial.extend_canvas(generator, code, resolution, mode, left=0.5, right=0.25, top=0.0, bottom=1.0)
        left, right, bottom = (round(f * resolution) for f in (0.5, 0.25, 1.0))
        size = generator.resolution
        assert image.shape == (1, 3, size + bottom * scale, size + (left + right) * scale)
        assert torch.isfinite(image).all()


def test_no_extension_is_the_plain_render_bit_for_bit(generator, code):
    for resolution in spatial.edit_resolutions(generator):
        assert torch.equal(spatial.extend_canvas(generator, code, resolution, "reflect"), render(generator, code))


def test_the_extension_renders_new_content_and_keeps_the_far_side(generator, code):
    """Padding on the right leaves the far left of the original canvas nearly as it was, and the
    new strip is not a blank: the later layers render content into it. (Padding on the left or top
    shifts the canvas against the generator's tiled noise maps, which changes fine texture.)"""
    resolution = spatial.edit_resolutions(generator)[1]
    pad = spatial.extension_pad(generator, resolution, "replicate", right=0.5)
    image = spatial.render_spatial(generator, code, pad, resolution)
    top, left, height, width = spatial.extension_box(generator, pad, resolution)
    assert (top, left) == (0, 0)
    original = render(generator, code)
    quarter = generator.resolution // 4
    far_left = image[..., :height, :quarter]
    assert (far_left - original[..., :quarter]).abs().mean() < 0.25 * (original - original.mean()).abs().mean()
    assert image[..., left + width:].std() > 0.05


# -- stretch and duplicate ------------------------------------------------------------------------
def test_stretch_changes_the_canvas_size(generator, code):
    resolution = spatial.edit_resolutions(generator)[1]
    scale = generator.resolution // resolution
    image = spatial.render_spatial(generator, code, spatial.Stretch(resolution, 2 * resolution - 1), resolution)
    assert image.shape == (1, 3, generator.resolution, (2 * resolution - 1) * scale)
    assert torch.isfinite(image).all()


def test_a_duplicated_patch_renders_like_its_source(generator, code):
    """Copying the left half of the features over the right half makes the two halves of the
    image similar (up to noise and the borders), unlike the original image's halves."""
    resolution = spatial.edit_resolutions(generator)[-1]
    half = resolution // 2
    edit = spatial.DuplicatePatch(0, 0, resolution, half, 0, half)
    image = spatial.render_spatial(generator, code, edit, resolution)
    original = render(generator, code)
    size = generator.resolution // 2
    inner = slice(size // 4, size - size // 4)  # away from the patch borders the convs mix across
    copied = (image[..., inner] - image[..., size:][..., inner]).abs().mean()
    plain = (original[..., inner] - original[..., size:][..., inner]).abs().mean()
    assert copied < 0.5 * plain


def test_layout_variations_are_reproducible_and_different(generator, code):
    resolution = spatial.edit_resolutions(generator)[1]
    first = spatial.layout_variations(generator, code, resolution, count=4, seed=7)
    again = spatial.layout_variations(generator, code, resolution, count=4, seed=7)
    assert len(first) == 4 and all(torch.equal(a, b) for a, b in zip(first, again))
    assert all(torch.isfinite(image).all() for image in first)
    assert spatial.random_layout_edits(generator, resolution, 4, seed=7) != spatial.random_layout_edits(
        generator, resolution, 4, seed=8)
    original = render(generator, code)
    assert any(image.shape != original.shape or not torch.allclose(image, original) for image in first)


def test_bad_spatial_input_raises_clear_errors(generator, code):
    cases = [
        (lambda: spatial.extend_canvas(generator, code, 3), "features of"),
        (lambda: spatial.extend_canvas(generator, code, generator.resolution), "features of"),
        (lambda: spatial.extend_canvas(generator, code, 8, "mirror", left=0.5), "padding mode"),
        (lambda: spatial.extend_canvas(generator, code, 8, left=-0.5), "left extension"),
        (lambda: spatial.extend_canvas(generator, code, 8, right=spatial.MAX_EXTENSION + 1), "right extension"),
        (lambda: spatial.render_spatial(generator, code, spatial.DuplicatePatch(0, 0, 2, 2, 7, 7), 4), "outside"),
        (lambda: spatial.layout_variations(generator, code, 8, count=0), "number of variations"),
        (lambda: spatial.extend_canvas(generator, None, 8), "missing"),
    ]
    for call, words in cases:
        with pytest.raises(ValueError, match=words):
            call()


# -- real weights ---------------------------------------------------------------------------------
@pytest.mark.real
def test_real_uncrop_has_no_seam_and_one_face(real_generator):
    """Replicate padding of the 8 px features by half the width on each side: the pixel step
    across each boundary between original and new canvas is no larger than typical steps, and
    dlib finds exactly one face. Control: the same padding of the image's pixels by circular
    wrap-around leaves a step at the boundary."""
    from stylegan_core.editing import edits

    ws = edits.random_codes(real_generator, [11], psi=0.7)
    pad = spatial.extension_pad(real_generator, 8, "replicate", left=0.5, right=0.5)
    image = spatial.render_spatial(real_generator, ws, pad, 8)
    _, left, _, width = spatial.extension_box(real_generator, pad, 8)
    boundaries = [left - 1, left + width - 1]
    steps = steps_along(image, -1)
    assert steps[boundaries].max() <= steps.quantile(0.95)
    assert faces_found(image) == 1
    plain = render(real_generator, ws)
    wrapped = steps_along(F.pad(plain, (left, left, 0, 0), mode="circular"), -1)
    assert wrapped[boundaries].max() > wrapped.quantile(0.95)


# -- command line ----------------------------------------------------------------------------------
def test_cli_extend_and_variations(tmp_path, monkeypatch):
    from PIL import Image

    from stylegan_core import cli
    from stylegan_core.loading import export, zoo
    from stylegan_core.images import tensor_to_pil

    zoo.clear_loaded_models()
    generator = tiny_model("stylegan2", seed=2)
    path = export.save_generator(generator, tmp_path / "tiny.safetensors")
    out = tmp_path / "wide.png"
    assert cli.main(["extend", "5", "--checkpoint", str(path), "--resolution", "8", "--left", "0.5",
                     "--right", "0.5", "--out", str(out)]) == 0
    with torch.no_grad():
        ws = generator.mapping(generator.seed_to_z(5), psi=0.7)
    expected = tensor_to_pil(spatial.extend_canvas(generator, ws, 8, "replicate", left=0.5, right=0.5))
    assert np.array_equal(np.asarray(Image.open(out)), np.asarray(expected))
    assert cli.main(["extend", "5", "--checkpoint", str(path), "--variations", "3", "--out", str(tmp_path / "v.png")]) == 0
    assert sorted(p.name for p in tmp_path.glob("v-*.png")) == ["v-0.png", "v-1.png", "v-2.png"]
    assert cli.main(["extend", "5", "--checkpoint", str(path), "--resolution", "3", "--out", str(out)]) == 1
    zoo.clear_loaded_models()


def test_models_whose_features_do_not_line_up_with_the_image_are_refused():
    from stylegan_core.editing import region_transfer

    generator = tiny_model("stylegan3")
    ws = tiny_codes(generator, 1)
    with pytest.raises(spatial.SpatialEditError, match="line up"):
        spatial.extend_canvas(generator, ws, resolution=8, left=0.25)
    with pytest.raises(region_transfer.RegionError, match="line up"):
        region_transfer.transfer_region(generator, ws, ws, "mouth", landmarks=None)
