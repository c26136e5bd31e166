"""Code edits (morph, style transfer, expression transfer, style mixing) on both architectures."""
import numpy as np
import pytest
import torch
from PIL import Image

from stylegan_core.editing import edits
from stylegan_core.models.mobile_stylegan import MobileStyleGAN, tiny_mobile_stylegan
from stylegan_core.models.stylegan2 import StyleGAN2, tiny_stylegan2


@pytest.fixture(scope="module", params=["mobile_stylegan", "stylegan2"])
def generator(request):
    if request.param == "mobile_stylegan":
        return tiny_mobile_stylegan(seed=1)
    return tiny_stylegan2(seed=1, resolution=64)


@pytest.fixture(scope="module")
def codes(generator):
    return edits.random_codes(generator, [3, 4, 5, 6], psi=0.8)


def render_one(generator, ws):
    with torch.no_grad():
        return generator.synthesis(ws)


# -- seeds ----------------------------------------------------------------------------------
def test_random_codes_are_the_mapped_seeds_and_psi_zero_gives_the_mean(generator):
    ws = edits.random_codes(generator, [7, 8], psi=1.0)
    assert ws.shape == (2, generator.num_ws, generator.w_dim)
    with torch.no_grad():
        expected = generator.mapping(generator.seed_to_z(8))
    torch.testing.assert_close(ws[1:], expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(edits.random_codes(generator, [7], psi=0.0), generator.mean_ws(1))


# -- morph ----------------------------------------------------------------------------------
def test_morph_codes_start_and_end_at_the_inputs_exactly(codes):
    w1, w2 = codes[0:1], codes[1:2]
    path = edits.morph_codes(w1, w2, 7)
    assert path.shape == (7,) + w1.shape[1:]
    assert torch.equal(path[0], w1[0]) and torch.equal(path[-1], w2[0])
    torch.testing.assert_close(path[3], (w1[0] + w2[0]) / 2)


def test_morph_frames_reproduce_the_end_images(generator, codes):
    frames = edits.morph_frames(generator, codes[0:1], codes[1:2], 5, batch_size=2)
    assert len(frames) == 5 and frames[0].shape == (3, generator.resolution, generator.resolution)
    # Batched and single renders may differ in the last bits (the backend picks kernels by batch size).
    torch.testing.assert_close(frames[0], render_one(generator, codes[0:1])[0], rtol=0, atol=1e-5)
    torch.testing.assert_close(frames[-1], render_one(generator, codes[1:2])[0], rtol=0, atol=1e-5)
    assert not torch.allclose(frames[2], frames[0], atol=1e-2)


def test_slerp_is_exact_at_the_ends_and_stays_on_the_sphere():
    z1, z2 = torch.randn(1, 64), torch.randn(1, 64)
    z2 = z2 / z2.norm() * z1.norm()
    path = edits.slerp(z1, z2, torch.linspace(0, 1, 9))
    assert torch.equal(path[0], z1[0]) and torch.equal(path[-1], z2[0])
    torch.testing.assert_close(path.norm(dim=1), z1.norm().expand(9))
    linear_midpoint_norm = ((z1 + z2) / 2).norm()
    assert path[4].norm() > linear_midpoint_norm  # the chord cuts inside the sphere; slerp does not
    parallel = edits.slerp(z1, 2 * z1, 0.5)  # no unique great circle: falls back to the chord
    torch.testing.assert_close(parallel, 1.5 * z1)


def test_morph_seed_codes_start_and_end_at_the_seeds(generator):
    path = edits.morph_seed_codes(generator, 10, 11, 4, psi=0.7)
    ends = edits.random_codes(generator, [10, 11], psi=0.7)
    assert path.shape == (4, generator.num_ws, generator.w_dim)
    torch.testing.assert_close(path[[0, -1]], ends, rtol=0, atol=1e-6)


def test_frames_to_gif_writes_every_frame(tmp_path, generator, codes):
    frames = edits.morph_frames(generator, codes[0:1], codes[1:2], 4)
    path = edits.frames_to_gif(frames, tmp_path / "morph.gif", fps=20, boomerang=True)
    with Image.open(path) as gif:
        assert gif.n_frames == 4 + 2  # there and back, without repeating the end frames
        assert gif.size == (generator.resolution, generator.resolution)
        assert gif.info["duration"] == 50
        gif.seek(3)
        last = np.asarray(gif.convert("RGB"), dtype=np.float32)
    expected = (frames[3].clamp(-1, 1).permute(1, 2, 0).numpy() + 1) * 127.5
    assert np.abs(last - expected).mean() < 8  # GIF keeps a 256-colour palette per frame


# -- style transfer ---------------------------------------------------------------------------
def test_crossover_takes_content_rows_up_to_the_split(generator, codes):
    content, style = codes[0:1], codes[1:2]
    mixed = edits.crossover_codes(generator, content, style, split_resolution=16)
    for info in generator.describe_rows():
        source = style if info.used and info.resolution > 16 else content
        assert torch.equal(mixed[0, info.row], source[0, info.row])


def test_crossover_with_all_rows_from_one_code_reproduces_it(generator, codes):
    content, style = codes[0:1], codes[1:2]
    assert torch.equal(edits.crossover_codes(generator, content, style, generator.resolution), content)
    all_style = edits.crossover_codes(generator, content, style, split_resolution=0)
    assert torch.equal(render_one(generator, all_style), render_one(generator, style))


@pytest.mark.parametrize("model, content_rows", [
    # Image2StyleGAN: the first 9 of 18 rows (4-64 px) of a 1024 px StyleGAN2.
    (lambda: StyleGAN2(resolution=1024, z_dim=4, w_dim=4, channel_base=1024, channel_max=4, mapping_layers=1),
     list(range(9))),
    # MobileStyleGAN 1024 (23 rows): conv1 and the blocks at 8-64 px; rows 3, 6, 9 drive nothing.
    (lambda: MobileStyleGAN(channels=[4] * 8, style_dim=4, n_mapping=1), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 15, 18, 22]),
])
def test_a_64_px_split_is_image2stylegans(model, content_rows):
    generator = model()
    content = torch.zeros(1, generator.num_ws, generator.w_dim)
    mixed = edits.crossover_codes(generator, content, torch.ones_like(content), 64)
    from_content = [row for row in range(generator.num_ws) if mixed[0, row, 0] == 0]
    assert from_content == content_rows


# -- expression transfer ----------------------------------------------------------------------
def test_expression_transfer_adds_the_scaled_difference(generator, codes):
    w1, w2, w3 = codes[0:1], codes[1:2], codes[2:3]
    assert torch.equal(edits.expression_transfer_codes(generator, w1, w2, w3, strength=0.0), w1)
    torch.testing.assert_close(edits.expression_transfer_codes(generator, w1, w2, w3, 1.5), w1 + 1.5 * (w2 - w3))
    rows = [1, 2]
    edited = edits.expression_transfer_codes(generator, w1, w2, w3, 1.0, rows=rows)
    others = [r for r in range(generator.num_ws) if r not in rows]
    assert torch.equal(edited[:, others], w1[:, others])
    torch.testing.assert_close(edited[:, rows], (w1 + w2 - w3)[:, rows])


# -- style mixing ---------------------------------------------------------------------------
def test_mixing_levels_split_the_used_rows_by_resolution(generator):
    levels = {level: edits.mixing_rows(generator, level) for level in ("coarse", "middle", "fine")}
    resolution = {info.row: info.resolution for info in generator.describe_rows()}
    assert {resolution[r] for r in levels["coarse"]} <= {4, 8}
    assert {resolution[r] for r in levels["middle"]} <= {16, 32}
    assert min(resolution[r] for r in levels["fine"]) >= 64
    used = sorted(info.row for info in generator.describe_rows() if info.used)
    assert sorted(sum(levels.values(), [])) == used


def as_pixels(image):
    return np.asarray(edits.tensor_to_pil(image))


def test_style_mixing_grid_layout_and_pieces(generator):
    grid = edits.style_mixing_grid(generator, [1, 2, 3], [4, 5], level="middle", psi=0.7)
    size = generator.resolution
    assert grid.cell == size and grid.image.dtype == np.uint8
    assert grid.image.shape == (3 * size, 4 * size, 3)
    assert (grid.cell_image(0, 0) == 255).all()
    sources = edits.random_codes(generator, [1, 2, 3], 0.7)
    destinations = edits.random_codes(generator, [4, 5], 0.7)
    assert np.array_equal(grid.cell_image(0, 1), as_pixels(render_one(generator, sources[0:1])))
    assert np.array_equal(grid.cell_image(2, 0), as_pixels(render_one(generator, destinations[1:2])))
    expected = destinations[1:2].clone()
    expected[:, grid.rows] = sources[2:3, grid.rows]
    assert np.array_equal(grid.cell_image(2, 3), as_pixels(render_one(generator, expected)))
    assert not np.array_equal(grid.cell_image(2, 3), grid.cell_image(2, 0))


def test_mixing_a_code_with_itself_gives_the_code(generator):
    grid = edits.style_mixing_grid(generator, [9], [9], level="coarse")
    assert np.array_equal(grid.cell_image(1, 1), grid.cell_image(0, 1))


def test_a_big_grid_is_downscaled_to_fit_the_side_limit(generator, monkeypatch):
    monkeypatch.setattr(edits, "MAX_GRID_SIDE", 100)
    grid = edits.style_mixing_grid(generator, [1, 2, 3], [4], level="coarse")
    assert grid.cell == 25 and grid.image.shape == (2 * 25, 4 * 25, 3)
    full = as_pixels(render_one(generator, edits.random_codes(generator, [2], 0.7)))
    shrunk = np.asarray(Image.fromarray(full).resize((25, 25), Image.Resampling.LANCZOS))
    assert np.array_equal(grid.cell_image(0, 2), shrunk)


def test_a_labelled_grid_names_its_columns_and_rows_within_the_side_limit(generator, monkeypatch):
    monkeypatch.setattr(edits, "MAX_GRID_SIDE", 100)
    codes = edits.random_codes(generator, [1, 2, 3], 0.7)
    grid = edits.mixing_grid(generator, codes, codes[:1], "coarse", ["one", "two", "three"], ["four"])
    assert max(grid.image.shape[:2]) <= 100 and grid.strip == edits.label_strip(grid.cell) > 0
    assert grid.image.shape[:2] == (grid.strip + 2 * grid.cell, grid.strip + 4 * grid.cell)
    above, left = grid.image[:grid.strip, grid.strip + grid.cell:], grid.image[grid.strip + grid.cell:, :grid.strip]
    assert above.min() < 128 and left.min() < 128  # text in both strips
    assert (grid.image[:grid.strip + grid.cell, :grid.strip + grid.cell] == 255).all()  # the corner stays white
    assert np.array_equal(grid.cell_image(0, 1), as_pixels(render_one(generator, codes[0:1]))[:grid.cell, :grid.cell]
                          if grid.cell == generator.resolution else grid.cell_image(0, 1))
    with pytest.raises(ValueError, match="one label per source"):
        edits.mixing_grid(generator, codes, codes[:1], "coarse", ["one"], ["four"])


# -- bad input ------------------------------------------------------------------------------
def test_bad_input_raises_clear_errors(generator, codes):
    w1, w2, w3 = codes[0:1], codes[1:2], codes[2:3]
    foreign = torch.zeros(1, generator.num_ws + 1, generator.w_dim)
    cases = [
        (lambda: edits.morph_frames(generator, None, w2, 3), "missing"),
        (lambda: edits.morph_frames(generator, w1, foreign, 3), "another model"),
        (lambda: edits.morph_codes(w1, foreign, 3), "one model"),
        (lambda: edits.morph_codes(w1, w2, 1), "number of frames"),
        (lambda: edits.morph_codes(w1, w2, 10_000), "number of frames"),
        (lambda: edits.morph_codes(w1, w2, 2.5), "whole number"),
        (lambda: edits.crossover_codes(generator, w1, foreign), "another model"),
        (lambda: edits.crossover_codes(generator, w1, w2, -8), "split resolution"),
        (lambda: edits.crossover_codes(generator, codes, w2), "one code"),
        (lambda: edits.expression_transfer_codes(generator, w1, w2, None), "missing"),
        (lambda: edits.expression_transfer_codes(generator, w1, w2, w3, strength=50), "strength"),
        (lambda: edits.expression_transfer_codes(generator, w1, w2, w3, strength=float("nan")), "strength"),
        (lambda: edits.expression_transfer_codes(generator, w1, w2, w3, rows=[]), "empty"),
        (lambda: edits.expression_transfer_codes(generator, w1, w2, w3, rows=[generator.num_ws]), "rows"),
        (lambda: edits.expression_transfer_codes(generator, w1 * float("inf"), w2, w3), "infinite"),
        (lambda: edits.style_mixing_grid(generator, [1], [2], level="medium"), "coarse"),
        (lambda: edits.style_mixing_grid(generator, [], [2]), "seeds"),
        (lambda: edits.style_mixing_grid(generator, [1], list(range(edits.MAX_MIXING_SEEDS + 1))), "seeds"),
        (lambda: edits.style_mixing_grid(generator, [1], [2], psi=5), "psi"),
        (lambda: edits.random_codes(generator, [-1]), "seed"),
        (lambda: edits.frames_to_gif([], "x.gif"), "no frames"),
    ]
    for call, words in cases:
        with pytest.raises(ValueError, match=words):
            call()


def test_a_model_without_fine_layers_says_so():
    generator = tiny_stylegan2(seed=0, resolution=32)
    with pytest.raises(ValueError, match="no fine layers"):
        edits.mixing_rows(generator, "fine")


def test_frames_to_gif_rejects_bad_rates(tmp_path, generator, codes):
    frames = edits.morph_frames(generator, codes[0:1], codes[1:2], 2)
    for fps in (0, 120):
        with pytest.raises(ValueError, match="fps"):
            edits.frames_to_gif(frames, tmp_path / "x.gif", fps=fps)
