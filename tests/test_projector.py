"""The projector on tiny random generators of every architecture, and a short real-model check."""
import json
import threading

import pytest
import torch
from PIL import Image

from stylegan_core import cli
from stylegan_core.inversion import metrics, perceptual, projector
from stylegan_core.images import pil_to_tensor, tensor_to_pil
from stylegan_core.models.mobile_stylegan import tiny_mobile_stylegan
from stylegan_core.inversion.projector import ProjectorOptions, project
from stylegan_core.models.stylegan2 import tiny_stylegan2

TINY_GENERATORS = {"mobile_stylegan": lambda: tiny_mobile_stylegan(0), "stylegan2": lambda: tiny_stylegan2(0, 32)}


def fast(**options):
    """Options for the tiny models: the loss at 32 px in float32 keeps VGG (the bulk of a step) cheap."""
    return ProjectorOptions(**{"loss_resolution": 32, "bf16": False, **options})


def image_size(path):
    with Image.open(path) as image:
        return image.size


def generated_target(generator, seed=7):
    with torch.no_grad():
        return tensor_to_pil(generator.synthesis(generator.mapping(generator.seed_to_z(seed))))


@pytest.mark.parametrize("arch", sorted(TINY_GENERATORS))
@pytest.mark.parametrize("space", ["w+", "w"])
def test_projection_lowers_the_loss(random_vgg, arch, space):
    generator = TINY_GENERATORS[arch]()
    result = project(generator, generated_target(generator), fast(space=space, steps=20))
    assert result.steps_run == 20 and result.stopped == "done"
    assert result.loss < 0.5 * result.history[0]["loss"]
    assert result.ws.shape == (1, generator.num_ws, generator.w_dim)
    assert result.image.size == (generator.resolution, generator.resolution)
    if space == "w":
        assert torch.equal(result.ws, result.ws[:, :1].expand_as(result.ws))


def test_published_recipe_is_plain_w_plus_adam_at_full_resolution(random_vgg):
    generator = tiny_mobile_stylegan(0)
    target = generated_target(generator)
    options = ProjectorOptions.image2stylegan(steps=3)
    assert options.loss_resolution is None and options.lr_schedule == "constant" and options.space == "w+"
    result = project(generator, target, options)

    # The same three steps written out: Adam (lr 0.01) directly on the W+ rows, starting at w_avg.
    loss_fn = perceptual.Image2StyleGANLoss(pil_to_tensor(target, generator.resolution), resolution=None,
                                            vgg=random_vgg)
    ws = generator.mean_ws(1).requires_grad_(True)
    adam = torch.optim.Adam([ws], lr=0.01, betas=(0.9, 0.999), eps=1e-8)
    losses, codes = [], []
    for _ in range(3):
        loss = loss_fn(generator.synthesis(ws))[0]
        losses.append(float(loss.detach()))
        codes.append(ws.detach().clone())
        (ws.grad,) = torch.autograd.grad(loss, [ws])
        adam.step()
    assert [entry["loss"] for entry in result.history] == pytest.approx(losses, rel=1e-5)
    assert torch.allclose(result.ws, codes[losses.index(min(losses))], atol=1e-5)


def test_same_seed_same_result_and_the_seed_matters_with_noise(random_vgg):
    generator = tiny_mobile_stylegan(0)
    target = generated_target(generator)
    options = fast(steps=6, initial_noise=0.3, seed=1)
    first, second = project(generator, target, options), project(generator, target, options)
    other_seed = project(generator, target, fast(steps=6, initial_noise=0.3, seed=2))
    assert torch.equal(first.ws, second.ws)
    assert not torch.equal(first.ws, other_seed.ws)


def test_progress_previews_and_cancellation(random_vgg):
    generator = tiny_mobile_stylegan(0)
    calls = []
    cancel = threading.Event()

    def progress(step, total, preview, loss):
        calls.append((step, total, preview is not None, loss))
        if step == 6:
            cancel.set()

    result = project(generator, generated_target(generator), fast(steps=20, preview_every=3),
                     progress=progress, cancel=cancel)
    assert [c[0] for c in calls] == list(range(1, 7)) and all(c[1] == 20 for c in calls)
    assert [c[2] for c in calls] == [False, False, True, False, False, True]
    assert result.stopped == "cancelled" and result.steps_run == 6
    assert result.loss == min(c[3] for c in calls)

    cancelled_at_once = threading.Event()
    cancelled_at_once.set()
    start = project(generator, generated_target(generator), fast(steps=5), cancel=cancelled_at_once)
    assert start.steps_run == 0 and torch.equal(start.ws, generator.mean_ws(1))


def test_plateau_and_time_budget_stop_early(random_vgg):
    generator = tiny_mobile_stylegan(0)
    target = generated_target(generator)
    plateau = project(generator, target, fast(steps=50, plateau_patience=2, plateau_tolerance=0.99))
    assert plateau.stopped == "plateau" and plateau.steps_run == 3
    budget = project(generator, target, fast(steps=10_000, time_budget_s=0.5))
    assert budget.stopped == "time budget" and 0 < budget.steps_run < 10_000


def test_learning_rate_schedule():
    cosine = ProjectorOptions(warmup_fraction=0.1, rampdown_fraction=0.25)
    assert projector.schedule_at(cosine, 0.0) == 0.0
    assert projector.schedule_at(cosine, 0.05) == pytest.approx(0.5)
    assert projector.schedule_at(cosine, 0.5) == 1.0
    assert projector.schedule_at(cosine, 0.875) == pytest.approx(0.5)
    assert projector.schedule_at(cosine, 1.0) == pytest.approx(0.0, abs=1e-12)
    assert projector.schedule_at(ProjectorOptions(lr_schedule="constant"), 0.7) == 1.0


def test_w_phase_keeps_the_rows_together_first(random_vgg):
    generator = tiny_mobile_stylegan(0)
    together = project(generator, generated_target(generator), fast(steps=6, w_phase_fraction=0.99))
    assert torch.equal(together.ws, together.ws[:, :1].expand_as(together.ws))
    apart = project(generator, generated_target(generator), fast(steps=6, w_phase_fraction=0.5))
    assert not torch.equal(apart.ws, apart.ws[:, :1].expand_as(apart.ws))


@pytest.mark.parametrize("bad, message", [
    (dict(space="z"), "space"), (dict(steps=0), "steps"), (dict(learning_rate=-1), "learning_rate"),
    (dict(space="w", learning_rate=0), "learning_rate must be > 0"),
    (dict(lr_schedule="step"), "lr_schedule"), (dict(loss_resolution=16), "loss_resolution"),
    (dict(w_phase_fraction=1.0), "w_phase_fraction"), (dict(time_budget_s=-1), "time_budget_s"),
])
def test_bad_options_are_refused(bad, message):
    with pytest.raises(ValueError, match=message):
        ProjectorOptions(**bad)


def test_bad_target_tensor_is_refused(random_vgg):
    with pytest.raises(ValueError, match=r"\[1, 3, H, W\]"):
        project(tiny_mobile_stylegan(0), torch.zeros(3, 64, 64))


@pytest.mark.real
def test_short_real_run_beats_the_average_face():
    import skimage.data

    from stylegan_core.inversion import align
    from stylegan_core.loading import zoo

    generator = zoo.load_model("ffhq-mobile").generator
    target = align.align_face(Image.fromarray(skimage.data.astronaut()), generator.resolution).image
    with torch.no_grad():
        average = tensor_to_pil(generator.synthesis(generator.mean_ws(1)))
    result = project(generator, target, ProjectorOptions(steps=24, preview_every=0))
    descriptor = metrics.face_descriptor(target)
    before = metrics.compute_metrics(target, average, reference_descriptor=descriptor)
    after = metrics.compute_metrics(target, result.image, reference_descriptor=descriptor)
    assert after["psnr"] > before["psnr"] + 1.0
    assert after["id_distance"] < before["id_distance"]


@pytest.fixture
def tiny_32px_checkpoint(checkpoint_file):
    generator = tiny_stylegan2(0, 32)
    return generator, checkpoint_file(generator)


def test_cli_invert_writes_crop_result_latent_and_metrics(random_vgg, tiny_32px_checkpoint, tmp_path, capsys):
    from stylegan_core.latents import load_latent

    generator, checkpoint = tiny_32px_checkpoint
    photo = tmp_path / "photo.png"
    generated_target(generator).resize((48, 40)).save(photo)
    out = tmp_path / "out"
    code = cli.main(["invert", str(photo), "--out", str(out), "--steps", "3", "--loss-resolution", "32",
                     "--no-align", "--checkpoint", str(checkpoint)])
    assert code == 0
    for name in ("aligned.png", "result.png", "pasted.png"):
        assert (out / name).is_file()
    assert image_size(out / "pasted.png") == (48, 40) and image_size(out / "result.png") == (32, 32)
    latent = load_latent(out / "latent.npz")
    assert latent.ws.shape == (1, generator.num_ws, generator.w_dim) and latent.space == "w+"
    report = json.loads((out / "metrics.json").read_text())
    assert report["steps_run"] == 3 and report["id_distance"] is None and report["psnr"] > 0
    assert "step 3/3" in capsys.readouterr().err


def test_cli_invert_without_a_face_suggests_no_align(random_vgg, tiny_32px_checkpoint, tmp_path, capsys):
    _, checkpoint = tiny_32px_checkpoint
    photo = tmp_path / "flat.png"
    Image.new("RGB", (64, 64), (90, 120, 150)).save(photo)
    assert cli.main(["invert", str(photo), "--out", str(tmp_path / "o"), "--checkpoint", str(checkpoint)]) == 1
    assert "--no-align" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
