"""SOAT feature blending, masks and panoramas on both architectures (tiny models; real weights marked)."""
import numpy as np
import pytest
import torch

from conftest import TINY_MODELS, faces_found, tiny_model
from stylegan_core.editing import edits, feature_blend as fb
from stylegan_core.models.stylegan2 import StyleGAN2, tiny_stylegan2


@pytest.fixture(scope="module", params=sorted(TINY_MODELS))
def generator(request):
    return tiny_model(request.param, seed=2)


@pytest.fixture(scope="module")
def codes(generator):
    return edits.random_codes(generator, [1, 2, 3, 4, 5], psi=0.8)


def render(generator, ws):
    with torch.no_grad():
        return generator.synthesis(ws)


def steps_along(image, axis):
    """Mean |difference| between neighbouring columns (axis -1) or rows (axis -2) of the visible
    image (clamped to [-1, 1]): one value per gap."""
    other = (0, 1, 2) if axis == -1 else (0, 1, 3)
    return image.clamp(-1, 1).diff(dim=axis).abs().mean(dim=other)


# -- blend ----------------------------------------------------------------------------------
@pytest.mark.parametrize("mask, branch", [
    (0.0, 0), (np.float32(1.0), 1), (np.zeros((37, 53)), 0), (torch.ones(5, 300), 1), (np.ones((1, 64, 64), bool), 1),
])
def test_alpha_zero_or_one_reproduces_a_or_b_exactly(generator, codes, mask, branch):
    a, b = codes[0:1], codes[1:2]
    blended = fb.feature_blend(generator, a, b, mask)
    assert torch.equal(blended, render(generator, codes[branch:branch + 1]))


def test_blending_a_code_with_itself_changes_nothing(generator, codes):
    a = codes[2:3]
    blended = fb.feature_blend(generator, a, a.clone(), fb.horizontal_ramp)
    assert torch.equal(blended, render(generator, a))


def test_a_ramp_blend_goes_from_a_on_one_side_to_b_on_the_other(generator, codes):
    a, b = codes[0:1], codes[1:2]
    image_a, image_b = render(generator, a), render(generator, b)
    for mask, axis in ((fb.horizontal_ramp, -1), (fb.vertical_ramp, -2)):
        blended = fb.feature_blend(generator, a, b, mask)
        edge = generator.resolution // 8
        for start, near, far in ((0, image_a, image_b), (generator.resolution - edge, image_b, image_a)):
            part = blended.narrow(axis, start, edge)
            assert (part - near.narrow(axis, start, edge)).abs().mean() < (part - far.narrow(axis, start, edge)).abs().mean()


def test_blending_only_the_last_layer_swaps_its_rows(generator, codes):
    """With alpha = 1 on the last layer only, the image is A's with that layer's rows from B."""
    a, b = codes[0:1], codes[1:2]
    last = len(generator.layers) - 1
    rows = list(generator.layers[last].rows)
    assert all(rows.count(r) == 1 for r in rows) and not any(
        set(rows) & set(layer.rows) for layer in list(generator.layers)[:last])
    expected = a.clone()
    expected[:, rows] = b[:, rows]
    blended = fb.feature_blend(generator, a, b, 1.0, layers=[last])
    torch.testing.assert_close(blended, render(generator, expected), rtol=0, atol=1e-5)
    assert not torch.allclose(blended, render(generator, a), atol=1e-3)


def test_pose_alignment_copies_the_coarse_rows_into_b(generator, codes):
    a, b = codes[0:1], codes[1:2]
    aligned = fb.align_pose(generator, b, a)
    rows = fb.pose_rows(generator)
    assert torch.equal(aligned[:, rows], a[:, rows])
    others = [r for r in range(generator.num_ws) if r not in rows]
    assert torch.equal(aligned[:, others], b[:, others])
    blended = fb.feature_blend(generator, a, b, 1.0, pose_from_a=True)
    torch.testing.assert_close(blended, render(generator, aligned), rtol=0, atol=1e-5)


def test_pose_rows_of_an_18_row_stylegan2_are_soats_first_four():
    generator = StyleGAN2(resolution=1024, z_dim=4, w_dim=4, channel_base=1024, channel_max=4, mapping_layers=1)
    assert fb.pose_rows(generator) == [0, 1, 2, 3]


def test_layers_between_selects_by_resolution(generator):
    chosen = fb.layers_between(generator, 8, 16)
    assert chosen and {generator.layers[i].resolution for i in chosen} <= {8, 16}
    assert fb.layers_between(generator) == list(range(len(generator.layers)))


# -- masks ----------------------------------------------------------------------------------
def test_resized_masks_keep_exact_zeros_and_ones():
    mask = torch.zeros(40, 40)
    mask[:, 20:] = 1.0
    for size in ((4, 4), (8, 16), (128, 128), (1024, 512)):
        resized = fb.resize_mask(mask, *size)
        assert resized.shape == size
        left, right = resized[:, : size[1] // 4], resized[:, -(size[1] // 4):]
        assert torch.all(left == 0) and torch.all(right == 1)
        assert resized.min() >= 0 and resized.max() <= 1
    assert torch.all(fb.resize_mask(torch.full((3, 7), 0.3), 9, 9) == 0.3)


def test_ramp_masks_follow_soats_profile():
    ramp = fb.horizontal_ramp(2, 64)[0]
    assert torch.all(ramp[:16] == 0) and torch.all(ramp[48:] == 1)
    assert torch.all(ramp[16:48].diff() > 0)
    torch.testing.assert_close(fb.vertical_ramp(64, 3)[:, 1], ramp)


def test_bad_masks_raise_clear_errors(generator, codes):
    a, b = codes[0:1], codes[1:2]
    cases = [
        (None, "missing"), (np.zeros((0, 5)), "empty"), (np.zeros((8, 8, 3)), "single-channel"),
        (np.full((8, 8), 255.0), r"\[0, 1\]"), (np.full((4, 4), np.nan), "NaN"), (1.5, "alpha"),
        (np.zeros((fb.MAX_MASK_SIDE + 1, 2)), "at most"), ("left", "array"),
    ]
    for mask, words in cases:
        with pytest.raises(ValueError, match=words):
            fb.feature_blend(generator, a, b, mask)


def test_bad_blend_input_raises_clear_errors(generator, codes):
    a, b = codes[0:1], codes[1:2]
    with pytest.raises(ValueError, match="missing"):
        fb.feature_blend(generator, a, None, 0.5)
    with pytest.raises(ValueError, match="another model"):
        fb.feature_blend(generator, a, torch.zeros(1, generator.num_ws, generator.w_dim + 1), 0.5)
    with pytest.raises(ValueError, match="no layers"):
        fb.feature_blend(generator, a, b, 0.5, layers=[])
    with pytest.raises(ValueError, match="layer index"):
        fb.feature_blend(generator, a, b, 0.5, layers=[len(generator.layers)])


# -- panorama -------------------------------------------------------------------------------
@pytest.mark.parametrize("count", [2, 3, 5])
def test_panorama_length_is_2w_plus_n_minus_2_w(generator, codes, count):
    size = generator.resolution
    horizontal = fb.render_panorama(generator, codes[:count], "horizontal")
    assert horizontal.shape == (1, 3, size, 2 * size + (count - 2) * size)
    if count == 3:
        vertical = fb.render_panorama(generator, codes[:count], "vertical")
        assert vertical.shape == (1, 3, 2 * size + (count - 2) * size, size)


def test_a_two_code_panorama_is_one_wide_blend(generator, codes):
    pair = next(fb.panorama_pairs(generator, codes[:2]))
    assert torch.equal(fb.render_panorama(generator, codes[:2]), pair)


def test_stitch_weights_add_up_to_one_everywhere():
    for fade in (0, 3):
        canvas = fb.stitch_pairs([torch.ones(1, 3, 8, 32)] * 4, count=5, size=16, fade=fade)
        torch.testing.assert_close(canvas, torch.ones(1, 3, 8, 80))


@pytest.mark.parametrize("direction, axis", [("horizontal", -1), ("vertical", -2)])
def test_panorama_has_no_seams(direction, axis):
    """At each stitch and each tile junction of the constant and noise, the step between
    neighbouring pixel columns (rows) is no larger than typical steps elsewhere.

    The tiny StyleGAN2 makes images with structure, so a plain concatenation of its images
    shows seams by this measure (checked first): a span placed at the wrong offset or with the
    wrong phase fails it. (Tiny models barely show the hard-cut seam that the crossfade removes;
    the real-weights test below checks that.)"""
    generator = tiny_stylegan2(seed=1, resolution=64)
    size = generator.resolution
    codes = edits.random_codes(generator, [10, 11, 12, 13], psi=0.8)
    concatenated = torch.cat(list(render(generator, codes).unsqueeze(1)), dim=axis)
    steps = steps_along(concatenated, axis)
    joins = [k * size - 1 for k in range(1, 4)]
    assert steps[joins].mean() > steps.quantile(0.95)
    panorama = fb.render_panorama(generator, codes, direction)
    steps = steps_along(panorama, axis)
    stitches = [k * size + size // 2 - 1 for k in range(1, 3)]
    assert steps[stitches].mean() <= steps.quantile(0.95)
    assert steps[joins].mean() <= steps.quantile(0.95)


def test_smoothed_codes(generator):
    seeds = list(range(12))
    raw = edits.random_codes(generator, seeds)
    torch.testing.assert_close(fb.smoothed_random_codes(generator, seeds, sigma=0.0, psi=1.0), raw)
    smooth = fb.smoothed_random_codes(generator, seeds, sigma=2.0, psi=1.0)
    assert smooth.shape == raw.shape
    assert smooth.diff(dim=0).norm() < 0.5 * raw.diff(dim=0).norm()
    constant = raw[:1].repeat(6, 1, 1)
    torch.testing.assert_close(fb.gaussian_smooth(constant, 1.5), constant)


def test_bad_panorama_input_raises_clear_errors(generator, codes):
    cases = [
        (lambda: fb.render_panorama(generator, codes[:1]), "panorama codes"),
        (lambda: fb.render_panorama(generator, codes[:1].repeat(fb.MAX_PANORAMA_CODES + 1, 1, 1)), "panorama codes"),
        (lambda: fb.render_panorama(generator, codes[:, :-1]), "another model"),
        (lambda: fb.render_panorama(generator, None), "missing"),
        (lambda: fb.render_panorama(generator, codes, "diagonal"), "direction"),
        (lambda: fb.render_panorama(generator, codes, crossfade=0.9), "crossfade"),
        (lambda: fb.smoothed_random_codes(generator, [1, 2], sigma=-1), "sigma"),
    ]
    for call, words in cases:
        with pytest.raises(ValueError, match=words):
            call()


# -- real weights -----------------------------------------------------------------------------
@pytest.mark.real
def test_real_morph_and_blend_outputs_are_faces(real_generator):
    codes = edits.random_codes(real_generator, [11, 22], psi=0.7)
    middle = edits.morph_codes(codes[0:1], codes[1:2], 3)[1:2]
    assert faces_found(render(real_generator, middle)) == 1
    blended = fb.feature_blend(real_generator, codes[0:1], codes[1:2], fb.horizontal_ramp)
    assert faces_found(blended) == 1


@pytest.mark.real
def test_real_blend_with_alpha_zero_or_one_is_a_or_b_bit_for_bit(real_generator):
    # The 1024 px layers take code paths the tiny models do not (strided inverse Haar above 32 channels).
    codes = edits.random_codes(real_generator, [11, 22], psi=0.7)
    for alpha, index in ((0.0, 0), (1.0, 1)):
        blended = fb.feature_blend(real_generator, codes[0:1], codes[1:2], alpha)
        assert torch.equal(blended, render(real_generator, codes[index:index + 1]))


@pytest.mark.real
def test_real_panorama_stitch_is_seamless(real_generator):
    """A hard cut between two spans leaves a visible step (the control); the crossfade removes it."""
    size = real_generator.resolution
    codes = edits.random_codes(real_generator, [11, 22, 33], psi=0.7)
    pairs = list(fb.panorama_pairs(real_generator, codes))
    stitch = size + size // 2 - 1
    hard = steps_along(fb.stitch_pairs(pairs, 3, size, fade=0), -1)
    assert hard[stitch] > hard.quantile(0.95)
    soft = steps_along(fb.stitch_pairs(pairs, 3, size, fade=round(size / 32)), -1)
    assert soft[stitch] <= soft.quantile(0.95)
    assert soft[[size - 1, 2 * size - 1]].max() <= soft.quantile(0.95)  # constant and noise tile junctions


def test_a_painted_mask_is_feathered_into_a_ramp(generator, codes):
    """The seam of a painted mask is no longer a hard step: the feathered mask ramps over several
    pixels, stays exactly 0 and 1 away from the edge, and the blend's columns change gradually."""
    side = generator.resolution
    painted = np.zeros((2 * side, 2 * side), np.float32)  # larger than the model: shrunk first
    painted[:, side:] = 1.0
    feathered = fb.feather_mask(painted, 0.05, side)
    assert feathered.shape == (side, side)
    row = feathered[side // 2]
    assert row[0] == 0 and row[-1] == 1 and bool((row[1:] >= row[:-1]).all())
    assert int(((row > 0) & (row < 1)).sum()) >= 4  # a ramp, not a step
    a, b = codes[0:1], codes[1:2]
    hard = fb.feature_blend(generator, a, b, painted)
    soft = fb.feature_blend(generator, a, b, feathered)
    step = lambda image: (image[..., 1:] - image[..., :-1]).abs().mean(dim=(0, 1, 2)).max()  # noqa: E731
    assert step(soft) < step(hard)
    assert torch.equal(fb.feather_mask(np.full((8, 8), 0.5, np.float32), 0.05, side), torch.full((8, 8), 0.5))
