"""Edit directions: SeFa/GANSpace on tiny models, the linear fit and conditional projection on
synthetic data, slider units, storing, applying and bad input. The supervised pipeline with real
judges runs in tools/compute_directions.py and benchmarks/bench_directions.py (too slow here)."""
import numpy as np
import pytest
import torch

from stylegan_core.editing import directions as D
from stylegan_core.errors import UserError
from stylegan_core.models.mobile_stylegan import tiny_mobile_stylegan
from stylegan_core.models.stylegan2 import tiny_stylegan2


@pytest.fixture(scope="module", params=["mobile", "stylegan2"])
def generator(request):
    if request.param == "mobile":
        return tiny_mobile_stylegan(seed=1)
    return tiny_stylegan2(seed=1, resolution=32)


@pytest.fixture(scope="module")
def instant(generator):
    return D.unsupervised_directions(generator, "tiny", w_samples=D.sample_w(generator, 2000))


def test_sefa_vectors_are_the_top_eigenvectors_of_the_normalised_affines(generator):
    rows = D.rows_in_range(generator, 0, 1 << 20)
    vectors = D.sefa_vectors(generator, rows, 3)
    stacked = torch.cat([D.affine_matrix(l).detach().double() / D.affine_matrix(l).detach().double().norm(dim=1, keepdim=True)
                         for l in generator.layers]).numpy()
    gram = stacked.T @ stacked
    energies = [v @ gram @ v for v in vectors]
    assert np.allclose(vectors @ vectors.T, np.eye(3), atol=1e-8)
    assert energies == sorted(energies, reverse=True)
    # no unit vector has more energy than the first eigenvector
    random = np.random.default_rng(0).normal(size=(100, gram.shape[0]))
    random /= np.linalg.norm(random, axis=1, keepdims=True)
    assert np.max(np.einsum("ij,jk,ik->i", random, gram, random)) <= energies[0] + 1e-9


def test_instant_directions_cover_each_layer_range_and_pca(generator, instant):
    assert instant.names("sefa") and len(instant.names("ganspace")) == 6
    for name in instant.names():
        assert np.isclose(np.linalg.norm(instant.vectors[name]), 1.0, atol=1e-5)
        assert instant.directions[name].sigma > 0 and instant.directions[name].rows
    coarse = instant.directions["sefa_coarse_0"].rows
    finer = [n for n in ("sefa_middle_0", "sefa_fine_0") if n in instant.directions]
    assert finer and all(max(coarse) < min(instant.directions[n].rows) for n in finer)


def test_ganspace_first_component_has_the_largest_spread(generator, instant):
    sigmas = [instant.directions[f"pca_{k}"].sigma for k in range(6)]
    assert sigmas == sorted(sigmas, reverse=True)


def test_slider_unit_is_one_standard_deviation_of_generated_w(generator, instant):
    w = D.sample_w(generator, 4000, seed=5)
    direction = instant.directions["pca_0"]
    ws = torch.from_numpy(w).float()[:, None].repeat(1, generator.num_ws, 1)
    moved = D.apply_directions(instant, ws, {"pca_0": 1.0})
    shift = ((moved - ws)[:, direction.rows[0]].double().numpy() @ instant.vectors["pca_0"])
    assert np.allclose(shift, direction.sigma, rtol=1e-4)
    assert np.isclose(np.std(w @ instant.vectors["pca_0"]), direction.sigma, rtol=0.1)  # held-out samples


def test_apply_moves_only_the_directions_rows_and_zero_changes_nothing(generator, instant):
    ws = generator.mapping(torch.randn(2, generator.z_dim), psi=0.7)
    assert torch.equal(D.apply_directions(instant, ws, {}), ws)
    assert torch.equal(D.apply_directions(instant, ws, {"sefa_coarse_0": 0.0}), ws)
    moved = D.apply_directions(instant, ws, {"sefa_coarse_0": 3.0})
    rows = set(instant.directions["sefa_coarse_0"].rows)
    changed = {r for r in range(generator.num_ws) if not torch.equal(moved[:, r], ws[:, r])}
    assert changed == rows
    back = D.apply_directions(instant, moved, {"sefa_coarse_0": -3.0})
    assert torch.allclose(back, ws, atol=1e-5)


def test_ridge_normal_recovers_a_planted_direction():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(400, 64))
    truth = rng.normal(size=64)
    truth /= np.linalg.norm(truth)
    y = w @ truth * 3 + rng.normal(scale=0.5, size=400)
    normal, correlation = D.ridge_normal(w, y)
    assert normal @ truth > 0.95 and correlation > 0.9
    assert np.isclose(np.linalg.norm(normal), 1.0)


def test_conditional_direction_is_orthogonal_to_the_conditions():
    rng = np.random.default_rng(1)
    n, c1, c2 = (v / np.linalg.norm(v) for v in rng.normal(size=(3, 32)))
    result = D.conditional(n, [c1, c2])
    assert abs(result @ c1) < 1e-9 and abs(result @ c2) < 1e-9
    assert np.isclose(np.linalg.norm(result), 1.0) and result @ n > 0
    assert np.allclose(D.conditional(n, []), n)
    assert abs(D.conditional(n, [c1, 2 * c1]) @ c1) < 1e-9  # a repeated condition is harmless


def test_store_and_load_round_trip(tmp_path, instant):
    instant.directions["pca_0"].effect = {"age": 1.5}
    D.save_directions(instant, tmp_path / "tiny")
    loaded = D.load_directions_from(tmp_path / "tiny")
    assert loaded.names() == instant.names()
    for name in instant.names():
        assert loaded.directions[name] == instant.directions[name]
        assert np.allclose(loaded.vectors[name], instant.vectors[name])


def test_load_prefers_computed_then_falls_back_to_instant(tmp_path, monkeypatch, generator, instant):
    monkeypatch.setenv("STYLEGAN_WEIGHTS_DIR", str(tmp_path))
    assert D.direction_status("tiny-model") == "instant only"
    assert D.load_directions("tiny-model", generator).names() == instant.names()
    with pytest.raises(D.DirectionError, match="--compute"):
        D.load_directions("tiny-model")
    D.save_directions(instant, D.computed_dir("tiny-model"))
    assert D.direction_status("tiny-model") == "ready"
    assert D.load_directions("tiny-model").names() == instant.names()


def test_bad_input_raises_user_errors(generator, instant):
    ws = generator.mapping(torch.randn(1, generator.z_dim))
    with pytest.raises(UserError, match="unknown direction 'nope'"):
        D.apply_directions(instant, ws, {"nope": 1.0})
    with pytest.raises(UserError, match="from -5 to 5"):
        D.apply_directions(instant, ws, {"pca_0": 7.5})
    with pytest.raises(UserError, match="another model"):
        D.apply_directions(instant, ws[:, :-1], {"pca_0": 1.0})


def test_missing_named_direction_while_computing_says_so(monkeypatch, instant):
    monkeypatch.setitem(D._COMPUTING, "tiny", "judged 40/400 sampled faces")
    with pytest.raises(UserError, match="still being computed.*40/400.*instant ones work now"):
        D.check_names_ready(instant, ["age"])
    D.check_names_ready(instant, ["pca_0"])


# -- CLI -------------------------------------------------------------------------------------------
def test_cli_edit_without_settings_reproduces_generate_and_edits_round_trip(tiny_checkpoint, tmp_path):
    from PIL import Image

    from stylegan_core import cli
    from stylegan_core.latents import load_latent

    generator, path = tiny_checkpoint
    common = ["--checkpoint", str(path)]
    assert cli.main(["generate", "--seed", "3", *common, "--out", str(tmp_path / "gen.png")]) == 0
    assert cli.main(["edit", "--seed", "3", *common, "--out", str(tmp_path / "same.png")]) == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "gen.png")), np.asarray(Image.open(tmp_path / "same.png")))
    assert cli.main(["edit", "--seed", "3", "--set", "pca_0=2", "--set", "sefa_coarse_0=-1", *common,
                     "--out", str(tmp_path / "edited.png")]) == 0
    assert not np.array_equal(np.asarray(Image.open(tmp_path / "gen.png")), np.asarray(Image.open(tmp_path / "edited.png")))
    assert cli.main(["edit", "--latent", str(tmp_path / "edited.npz"), "--set", "pca_0=-2", "--set", "sefa_coarse_0=1",
                     *common, "--out", str(tmp_path / "back.png")]) == 0
    assert torch.allclose(load_latent(tmp_path / "back.npz").ws, load_latent(tmp_path / "same.npz").ws, atol=1e-5)


def test_cli_directions_lists_instant_ones_for_a_new_model(tiny_checkpoint, capsys):
    from stylegan_core import cli

    _, path = tiny_checkpoint
    assert cli.main(["directions", "--checkpoint", str(path)]) == 0
    out = capsys.readouterr().out
    assert "instant only" in out and "pca_0" in out and "sefa_coarse_0" in out


@pytest.mark.parametrize("settings, message", [
    (["--set", "nope=1"], "unknown direction 'nope'"),
    (["--set", "pca_0=9"], "from -5 to 5"),
    (["--set", "pca_0"], "NAME=VALUE"),
])
def test_cli_edit_bad_input_is_a_message(tiny_checkpoint, tmp_path, capsys, settings, message):
    from stylegan_core import cli

    _, path = tiny_checkpoint
    assert cli.main(["edit", "--seed", "1", *settings, "--checkpoint", str(path), "--out", str(tmp_path / "x.png")]) == 1
    assert message in capsys.readouterr().err


def test_cli_edit_refuses_a_code_of_another_model(tiny_checkpoint, tmp_path, capsys):
    from stylegan_core import cli
    from stylegan_core.latents import save_latent

    generator, path = tiny_checkpoint
    save_latent(tmp_path / "other.npz", generator.mean_ws(), "ffhq-mobile")
    assert cli.main(["edit", "--latent", str(tmp_path / "other.npz"), "--checkpoint", str(path),
                     "--out", str(tmp_path / "x.png")]) == 1
    assert "a code of model 'ffhq-mobile'" in capsys.readouterr().err


# -- the supervised pipeline with a stand-in judge --------------------------------------------------
def brightness_judge(image):
    """A stand-in for the real judges on tiny models (no faces there): every judge reads a colour
    statistic, so each has a direction in W to be found."""
    from stylegan_core.judges import JUDGE_NAMES

    pixels = np.asarray(image, np.float64) / 255.0
    stats = [pixels[..., 0].mean(), pixels[..., 1].mean(), pixels[..., 2].mean(), pixels.std()]
    return {name: stats[k % 4] * (k + 1) for k, name in enumerate(JUDGE_NAMES)} | {"faces": 1.0}


def test_supervised_directions_move_their_judge(tmp_path, monkeypatch):
    from stylegan_core import judges

    monkeypatch.setattr(judges, "judge_or_none", brightness_judge)
    generator = tiny_mobile_stylegan(seed=3)
    found = D.compute_directions(generator, "tiny", samples=60, probe_faces=2, cache=tmp_path / "s.npz",
                                 progress=lambda line: None)
    assert {"age", "gender", "smile", "yaw", "age_c", "smile_c"} <= set(found.directions)
    assert (tmp_path / "s.npz").exists() and found.info["faces_judged"] == 60
    for name in ("age", "gender", "smile", "yaw"):
        direction = found.directions[name]
        judge = next(j for j, (n, _) in D.NAMED_ATTRIBUTES.items() if n == name)
        assert direction.effect[judge] > 0, (name, direction.effect)  # the slider's + moves its judge up
        assert direction.rows and set(direction.rows) <= set(D.rows_in_range(generator, 0, 1 << 20))
    assert abs(found.vectors["age_c"] @ found.vectors["gender"]) < 1e-5
    for name in ("age_s", "smile_s"):
        assert found.directions[name].in_style_space and found.directions[name].sigma > 0
    assert all(found.directions[n].description for n in found.names("sefa"))


def test_style_channel_edit_shifts_exactly_one_channel(generator):
    ws = generator.mapping(torch.randn(1, generator.z_dim), psi=0.7)
    info = generator.describe_styles()[1]
    found = D.DirectionSet("tiny", generator.num_ws, generator.w_dim, {}, {})
    found.add(D.Direction("one_s", "stylespace", "one channel", (info.row,), 0.5, layer=1, channel=2, sign=-1.0))
    styles = generator.styles(ws)
    styles[1] = styles[1].clone()
    styles[1][:, 2] += 3.0 * 0.5 * -1.0
    with torch.no_grad():
        expected = generator.synthesis(styles=styles)
    assert torch.allclose(D.render_edit(generator, found, ws, {"one_s": 3.0}), expected, atol=1e-6)
    assert torch.equal(D.apply_directions(found, ws, {"one_s": 3.0}), ws)  # not a W edit
    assert D.style_editor(found, {"one_s": 0.0}) is None


# -- the committed directions of the default model ---------------------------------------------------
def test_default_model_ships_the_named_directions():
    found = D.load_directions_from(D.PACKAGED_DIR / "ffhq-mobile")
    assert {"age", "gender", "smile", "yaw"} <= set(found.directions)
    assert [name for name, _ in found.sliders()][:4] == ["age", "gender", "smile", "yaw"]
    assert (found.num_ws, found.w_dim) == (23, 512) and found.info["samples"] >= 100
    for name, direction in found.directions.items():
        assert direction.sigma > 0 and direction.rows and all(0 <= r < 23 for r in direction.rows)
        if not direction.in_style_space:
            assert np.isclose(np.linalg.norm(found.vectors[name]), 1.0, atol=1e-5)


@pytest.mark.real
def test_default_age_and_smile_directions_move_the_judges_on_a_held_out_seed():
    from stylegan_core import judges
    from stylegan_core.images import tensor_to_pil
    from stylegan_core.loading.zoo import load_model

    generator = load_model("ffhq-mobile").generator
    found = D.load_directions("ffhq-mobile")
    ws = generator.mapping(generator.seed_to_z(12), psi=0.7)

    def judged(values):
        return judges.judge_face(tensor_to_pil(D.render_edit(generator, found, ws, values)))

    assert judged({"age": 3})["age"] - judged({"age": -3})["age"] > 10
    assert judged({"smile": 3})["expr_happy"] - judged({"smile": -3})["expr_happy"] > 0.3


def test_compute_refuses_a_model_without_faces(tmp_path, monkeypatch):
    from stylegan_core import judges

    monkeypatch.setattr(judges, "judge_or_none", lambda image: None)
    with pytest.raises(UserError, match="found a face in only 0 of 60"):
        D.compute_directions(tiny_mobile_stylegan(seed=3), "tiny", samples=60, cache=tmp_path / "s.npz",
                             progress=lambda line: None)


def test_background_compute_reports_progress_then_stores(tmp_path, monkeypatch):
    from stylegan_core import judges

    monkeypatch.setenv("STYLEGAN_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setattr(judges, "judge_or_none", brightness_judge)
    generator = tiny_mobile_stylegan(seed=3)
    thread = D.compute_in_background(generator, "tiny-bg", samples=60)
    assert D.direction_status("tiny-bg").startswith("computing")
    with pytest.raises(UserError, match="already being computed"):
        D.compute_in_background(generator, "tiny-bg", samples=60)
    thread.join(timeout=120)
    assert D.direction_status("tiny-bg") == "ready"
    assert "age" in D.load_directions("tiny-bg").directions
