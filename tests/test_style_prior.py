"""S-space statistics and S-space inversion with the Gaussian prior (tiny models, random VGG)."""
import threading

import pytest
import torch

from conftest import TINY_MODELS, tiny_codes, tiny_model
from stylegan_core.inversion import projector, style_prior
from stylegan_core.images import tensor_to_pil
from stylegan_core.inversion.projector import ProjectorOptions, project
from stylegan_core.loading.weights import weights_dir


@pytest.fixture(scope="module", params=sorted(TINY_MODELS))
def generator(request):
    return tiny_model(request.param, seed=1)


def test_the_prior_matches_the_statistics_of_sampled_styles(generator):
    prior = style_prior.estimate_style_prior(generator, samples=4000, seed=1)
    with torch.no_grad():
        styles = generator.styles(tiny_codes(generator, batch=4000, seed=2))
    for mean, std, sampled in zip(prior.mean, prior.std, styles):
        scale = sampled.std(0).mean()
        assert (mean - sampled.mean(0)).abs().max() < 0.1 * scale
        assert ((std - sampled.std(0)).abs() / sampled.std(0)).max() < 0.1


def test_the_prior_is_cached_in_the_weights_folder(generator):
    first = style_prior.style_prior(generator)
    files = list(weights_dir().glob(f"{style_prior.PRIOR_FOLDER}/*.pt"))
    assert [f.stem for f in files] == [style_prior.model_key(generator)]
    again = style_prior.style_prior(generator)
    assert all(torch.equal(a, b) for a, b in zip(first.std, again.std))
    other = tiny_model(generator.arch, seed=2)
    assert style_prior.model_key(other) != style_prior.model_key(generator)


def test_an_s_space_result_stores_a_w_plus_code_that_renders_its_picture(random_vgg, generator):
    """Every other operation takes the W+ code: it must look like the S result, not like noise
    (the exact solve for the nearest W+ code of optimised styles rendered noise on the real model)."""
    with torch.no_grad():
        target = tensor_to_pil(generator.synthesis(tiny_codes(generator, seed=7)))
    seen = []
    options = ProjectorOptions(space="s", steps=15, w_fit_steps=15, loss_resolution=32, bf16=False)
    result = project(generator, target, options, progress=lambda step, total, *_: seen.append((step, total)))
    assert seen[-1] == (30, 30) and [step for step, _ in seen] == list(range(1, 31))  # one count over both phases
    assert result.styles is not None and result.steps_run == 30
    with torch.no_grad():
        shown = generator.synthesis(styles=[s.to(generator.device) for s in result.styles])
        stored = generator.synthesis(result.ws.to(generator.device))
        start = generator.synthesis(generator.mean_ws(1))
    assert (stored - shown).abs().mean() < 0.5 * (start - shown).abs().mean()  # the fit moved towards it


def test_a_stopped_s_inversion_still_fits_its_code(random_vgg, generator):
    with torch.no_grad():
        target = tensor_to_pil(generator.synthesis(tiny_codes(generator, seed=7)))
    cancel = threading.Event()
    options = ProjectorOptions(space="s", steps=50, loss_resolution=32, bf16=False)
    result = project(generator, target, options, cancel=cancel,
                     progress=lambda step, *_: cancel.set() if step == 5 else None)
    assert result.stopped == "cancelled" and result.steps_run == 5 + projector.STOPPED_FIT_STEPS
    assert not torch.equal(result.ws, generator.mean_ws(1).cpu())


def test_s_space_projection_lowers_the_loss_and_the_prior_holds_styles_back(random_vgg, generator):
    with torch.no_grad():
        target = tensor_to_pil(generator.synthesis(tiny_codes(generator, seed=7)))
    options = dict(space="s", steps=20, w_fit_steps=5, loss_resolution=32, bf16=False)
    free = project(generator, target, ProjectorOptions(**options, style_prior_weight=0.0))
    assert free.loss < 0.5 * free.history[0]["loss"]
    assert [tuple(s.shape) for s in free.styles] == [(1, layer.style_channels) for layer in generator.layers]
    with torch.no_grad():
        rendered = tensor_to_pil(generator.synthesis(styles=free.styles))
    assert rendered.tobytes() == free.image.tobytes()
    assert free.ws.shape == (1, generator.num_ws, generator.w_dim)
    # (the tiny StyleGAN2 renders far outside [-1, 1]: its pixel loss is ~1e4, so the prior must be huge)
    held = project(generator, target, ProjectorOptions(**options, style_prior_weight=1e7))
    prior = style_prior.style_prior(generator)

    def z_scores(styles):
        return ((torch.cat(styles, 1)[0] - prior.flat_mean()) / prior.flat_std()).square().mean()

    assert z_scores(held.styles) < 0.5 * z_scores(free.styles)
    assert "style_prior" in held.history[options["steps"] - 1]["terms"]  # the last S step (the W+ fit follows)


def test_bad_style_options_are_refused():
    with pytest.raises(ValueError, match="style_learning_rate"):
        ProjectorOptions(space="s", style_learning_rate=0)
    with pytest.raises(ValueError, match="style_prior_weight"):
        ProjectorOptions(space="s", style_prior_weight=-1)


def test_cli_invert_in_s_space_writes_styles_and_their_nearest_code(random_vgg, tmp_path):
    from stylegan_core import cli
    from stylegan_core.loading import export, zoo
    from stylegan_core.latents import load_latent

    zoo.clear_loaded_models()
    generator = tiny_model("stylegan2", seed=0)
    checkpoint = export.save_generator(generator, tmp_path / "tiny.safetensors")
    with torch.no_grad():
        tensor_to_pil(generator.synthesis(tiny_codes(generator, seed=7))).save(tmp_path / "photo.png")
    out = tmp_path / "out"
    assert cli.main(["invert", str(tmp_path / "photo.png"), "--out", str(out), "--space", "s", "--steps", "3",
                     "--loss-resolution", "32", "--no-align", "--checkpoint", str(checkpoint)]) == 0
    styles = torch.load(out / "styles.pt", weights_only=True)
    assert [tuple(s.shape) for s in styles] == [(1, layer.style_channels) for layer in generator.layers]
    assert load_latent(out / "latent.npz").space == "w+"
    zoo.clear_loaded_models()
