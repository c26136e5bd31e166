"""The Studio's SOAT operations (canvas extension, variations, region transfer, translation) and its
video edit, on tiny random models: the code paths the Extend canvas, Region transfer and Video tabs use."""
import copy
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stylegan_core.editing import spatial, translation, video, video_io
from stylegan_core.inversion import perceptual, projector
from stylegan_core.library import CodeLibrary
from stylegan_core.loading import zoo
from stylegan_core.loading.export import save_generator
from stylegan_core.models.mobile_stylegan import tiny_mobile_stylegan
from stylegan_core.models.stylegan2 import tiny_stylegan2
from stylegan_core.errors import UserError
from stylegan_core.studio import Studio, StudioError

REPO = Path(__file__).resolve().parents[1]
MODEL = zoo.CUSTOM_CHECKPOINT


def tiny_studio(folder: Path, generator) -> Studio:
    path = save_generator(generator, folder / "tiny.safetensors")
    zoo.clear_loaded_models()
    return Studio(default_model=MODEL, device="cpu", checkpoint=str(path), output_dir=str(folder / "out"))


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    yield tiny_studio(tmp_path_factory.mktemp("soat"), tiny_stylegan2(0))
    zoo.clear_loaded_models()


def pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)


def test_extending_by_nothing_is_the_plain_render_and_more_widens_it(studio):
    library = CodeLibrary()
    plain = pixels(studio.picture(studio.render(MODEL, studio.resolve_code("seed 3", library, MODEL)), "p").path)
    same = studio.extend_canvas(library, MODEL, "seed 3", 8, "reflect", 0, 0, 0, 0)
    assert np.abs(pixels(same.picture.path) - plain).max() <= 1
    wider = studio.extend_canvas(library, MODEL, "seed 3", 8, "reflect", 0.25, 0.5, 0, 0)
    assert pixels(wider.picture.path).shape == (32, 32 + 8 + 16, 3)
    assert not library.names()  # an image, not a code: nothing added to the library


def test_bad_canvas_settings_are_user_errors(studio):
    with pytest.raises(spatial.SpatialEditError, match="padding mode"):
        studio.extend_canvas(CodeLibrary(), MODEL, "seed 1", 8, "mirror", 0.5)
    with pytest.raises(spatial.SpatialEditError, match="px for this model"):
        studio.extend_canvas(CodeLibrary(), MODEL, "seed 1", 32, "reflect", 0.5)


def test_layout_variations_are_seeded_and_differ_from_each_other(studio):
    first = studio.layout_variations(CodeLibrary(), MODEL, "seed 2", 8, 3, seed=5)
    again = studio.layout_variations(CodeLibrary(), MODEL, "seed 2", 8, 3, seed=5)
    images = [pixels(p.path) for p in first.pictures]
    assert len(images) == 3 and [p.caption for p in first.pictures][0] == "variation 1"
    assert all(np.array_equal(a, pixels(b.path)) for a, b in zip(images, again.pictures))
    assert any(a.shape != b.shape or np.abs(a - b).mean() > 1 for a, b in zip(images, images[1:]))


def test_region_transfer_with_given_landmarks_shows_result_and_mask(studio, monkeypatch):
    from stylegan_core.editing import region_transfer

    # A face-like landmark layout in the 32 px image (dlib finds no face in a random model's image).
    points = np.stack([np.linspace(6, 26, 68), 8 + 16 * np.abs(np.sin(np.linspace(0, 3, 68)))], axis=1)
    monkeypatch.setattr(region_transfer, "image_landmarks", lambda image: points)
    transferred = studio.transfer_region(CodeLibrary(), MODEL, "seed 1", "seed 2", "face", 8)
    mask = pixels(transferred.mask.path)
    assert mask.shape == (32, 32, 3) and mask.max() > 128 and mask.min() < 128
    target = pixels(studio.picture(studio.render(MODEL, studio.seed_code(MODEL, 1, 0.7)), "t").path)
    assert np.abs(pixels(transferred.result.picture.path) - target).mean() > 0.5


@pytest.fixture
def with_finetune(studio):
    """A second model: the tiny generator with perturbed weights (a stand-in for a fine-tune)."""
    loaded = studio.load(MODEL)
    tuned = copy.deepcopy(loaded.generator)
    with torch.no_grad():
        for parameter in tuned.parameters():
            parameter.add_(0.3 * torch.randn_like(parameter))
    studio._models["tiny fine-tune"] = replace(loaded, generator=tuned, name="tiny fine-tune")
    yield tuned
    studio._models.pop("tiny fine-tune")


def test_translation_runs_from_the_current_model_to_the_second(studio, with_finetune):
    library = CodeLibrary()
    ws = studio.resolve_code("seed 4", library, MODEL)
    start = studio.translate(library, MODEL, "seed 4", "tiny fine-tune", 0.0)
    end = studio.translate(library, MODEL, "seed 4", "tiny fine-tune", 1.0)
    own = pixels(studio.picture(studio.render(MODEL, ws), "a").path)
    tuned = pixels(studio.picture(studio.render("tiny fine-tune", ws), "b").path)
    assert np.abs(pixels(start.picture.path) - own).max() <= 1
    assert np.abs(pixels(end.picture.path) - tuned).max() <= 1
    assert np.abs(own - tuned).mean() > 1 and "α = 1" in end.info


def test_translation_refuses_the_same_model_and_another_architecture_before_loading(studio, monkeypatch):
    with pytest.raises(translation.TranslationError, match="other than the current one"):
        studio.translate(CodeLibrary(), MODEL, "seed 1", MODEL, 0.5)

    def no_download(*args, **kwargs):
        raise AssertionError("an incompatible model must be refused before it is loaded")

    monkeypatch.setattr(zoo, "load_model", no_download)
    with pytest.raises(translation.TranslationError, match="cannot be a fine-tune"):
        studio.translate(CodeLibrary(), MODEL, "seed 1", zoo.DEFAULT_MODEL, 0.5)
    with pytest.raises(UserError, match="alpha"):
        studio.translate(CodeLibrary(), MODEL, "seed 1", zoo.DEFAULT_MODEL, 1.5)


def test_a_video_edit_needs_an_edit_and_a_clip(studio):
    with pytest.raises(StudioError, match="upload a video"):
        list(studio.edit_video_stream(CodeLibrary(), MODEL, None))
    with pytest.raises(StudioError, match="choose an edit"):
        list(studio.edit_video_stream(CodeLibrary(), MODEL, "clip.mp4", settings={"age": 0.0}))
    with pytest.raises(StudioError, match="quality"):
        list(studio.edit_video_stream(CodeLibrary(), MODEL, "clip.mp4", style="seed 1", quality="best"))


@pytest.mark.real  # dlib's detector and landmarks on a clip made from a real photo; the generator is tiny
def test_video_stream_reports_frames_and_eta_then_the_mp4(tmp_path, monkeypatch):
    torch.manual_seed(0)
    vgg = perceptual.VGG16Features().eval().requires_grad_(False)
    monkeypatch.setattr(projector, "load_vgg16", lambda device="cpu": vgg)
    monkeypatch.setattr(video, "QUALITY_STEPS", {**video.QUALITY_STEPS, "fast": (3, 1)})
    photo = Image.open(REPO / "examples" / "astronaut.jpg").convert("RGB")
    frames = [photo.crop((80 + 4 * i, 20, 400 + 4 * i, 340)) for i in range(4)]
    clip = video_io.write_clip(frames, tmp_path / "face.mp4", 12)
    studio = tiny_studio(tmp_path, tiny_mobile_stylegan(0))
    cancel = threading.Event()
    updates = list(studio.edit_video_stream(CodeLibrary(), MODEL, str(clip), 0, style="seed 2", max_frames=3,
                                            quality="fast", cancel=cancel))
    stages = [u.stage for u in updates]
    assert {"invert", "render"} <= set(stages) and updates[-1].done
    assert any("left in this stage" in u.info for u in updates if u.stage == "invert")
    assert video_io.probe(updates[-1].video_path)["frames"] == 3 and "3/3 frames" in updates[-1].info
    assert cancel.is_set()  # the worker is told to stop once the consumer is done


@pytest.mark.real  # dlib's detector on a clip made from a real photo
def test_stopping_before_any_frame_is_rendered_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(video, "QUALITY_STEPS", {**video.QUALITY_STEPS, "fast": (3, 1)})
    photo = Image.open(REPO / "examples" / "astronaut.jpg").convert("RGB")
    clip = video_io.read_clip(video_io.write_clip([photo.crop((80, 20, 400, 340))] * 2, tmp_path / "f.mp4", 12), 2)
    cancel = threading.Event()

    def stop_after_tracking(stage, done, total, preview):
        if stage == "track":
            cancel.set()

    with pytest.raises(video.VideoEditError, match="Stopped before the first frame"):
        video.edit_clip(tiny_mobile_stylegan(0), clip, tmp_path / "out.mp4", progress=stop_after_tracking,
                        cancel=cancel)
