"""PSNR, SSIM (checked against scikit-image), identity distance with dlib, optional LPIPS."""
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from stylegan_core.inversion import align, metrics
from stylegan_core.images import load_image

ROOT = Path(__file__).resolve().parents[1]


def noisy(image, std, seed=0):
    pixels = np.asarray(image, float) + np.random.RandomState(seed).normal(0, std, (image.height, image.width, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).round().astype(np.uint8))


def textured(size=256, seed=0):
    return Image.fromarray(np.random.RandomState(seed).randint(0, 256, (size, size, 3), dtype=np.uint8)).filter(
        ImageFilter.GaussianBlur(2))


def test_psnr_follows_its_definition():
    reference = Image.new("RGB", (256, 256), (100, 100, 100))
    shifted = Image.new("RGB", (256, 256), (110, 100, 100))  # MSE = (10/255)^2 / 3
    assert metrics.psnr(reference, shifted) == pytest.approx(10 * math.log10(3 * 255**2 / 100))
    assert metrics.psnr(reference, reference) == metrics.MAX_PSNR
    assert metrics.psnr(textured(), noisy(textured(), 5)) > metrics.psnr(textured(), noisy(textured(), 20))


def test_ssim_matches_scikit_image_and_orders_distortions():
    from skimage.metrics import structural_similarity

    reference, distorted = textured(512), noisy(textured(512), 25)
    at_256 = [np.asarray(image.resize((256, 256), Image.Resampling.LANCZOS)) / 255.0 for image in (reference, distorted)]
    expected = structural_similarity(*at_256, channel_axis=2, gaussian_weights=True, sigma=1.5,
                                     use_sample_covariance=False, data_range=1.0)
    assert metrics.ssim(reference, distorted) == pytest.approx(expected, abs=1e-9)
    assert metrics.ssim(reference, reference) == pytest.approx(1.0)
    assert metrics.ssim(reference, noisy(reference, 5)) > metrics.ssim(reference, distorted)


@pytest.mark.real
def test_identity_distance_separates_people_and_needs_faces():
    import skimage.data

    astronaut = align.align_face(Image.fromarray(skimage.data.astronaut()), 256).image
    hopper = align.align_face(load_image(ROOT / "benchmarks" / "data" / "grace_hopper.jpg"), 256).image
    same = metrics.identity_distance(astronaut, astronaut.filter(ImageFilter.GaussianBlur(1.5)))
    other = metrics.identity_distance(astronaut, hopper)
    assert same < metrics.SAME_PERSON_THRESHOLD < other
    assert metrics.identity_distance(astronaut, textured()) is None
    descriptor = metrics.face_descriptor(astronaut)
    assert descriptor.shape == (128,)
    assert metrics.identity_distance(None, hopper, reference_descriptor=descriptor) == pytest.approx(other)

    result = metrics.compute_metrics(astronaut, hopper, reference_descriptor=descriptor)
    assert set(result) == {"psnr", "ssim", "id_distance", "same_person", "lpips"}
    assert result["same_person"] is False and result["id_distance"] == pytest.approx(other)


def test_metrics_without_faces_report_no_identity(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # no LPIPS backbone here: LPIPS is skipped, not downloaded
    result = metrics.compute_metrics(textured(), noisy(textured(), 10))
    assert result["id_distance"] is None and result["same_person"] is None and result["lpips"] is None
    assert 20 < result["psnr"] < 40 and 0 < result["ssim"] < 1


@pytest.mark.real
def test_photo_metrics_judge_the_chosen_face_of_the_photo():
    import dataclasses

    import skimage.data

    from stylegan_core.inversion.paste_back import paste_back

    astronaut = Image.fromarray(skimage.data.astronaut())
    hopper = load_image(ROOT / "benchmarks" / "data" / "grace_hopper.jpg")
    photo = Image.new("RGB", (1100, 620), (128, 128, 128))
    photo.paste(hopper, (0, 0))
    photo.paste(astronaut.resize((400, 400)), (650, 100))
    hopper_face, astronaut_face = (align.align_face(photo, 256, face_index=i) for i in (0, 1))
    pasted = paste_back(photo, astronaut_face, astronaut_face.image)
    same = metrics.photo_metrics(photo, astronaut_face, astronaut_face.image, pasted)
    assert same["id_distance"] < 0.2 and same["id_distance_pasted"] < 0.2 and same["same_person"]
    assert same["psnr"] == metrics.MAX_PSNR  # secondary numbers: against the aligned crop
    other = metrics.photo_metrics(photo, astronaut_face, hopper_face.image)
    assert other["id_distance"] > metrics.SAME_PERSON_THRESHOLD and other["id_distance_pasted"] is None
    # A blurred crop (as a bad alignment made) reproduced exactly looks perfect against the crop, not the photo.
    blurred = dataclasses.replace(astronaut_face, image=astronaut_face.image.filter(ImageFilter.GaussianBlur(4)))
    judged = metrics.photo_metrics(photo, blurred, blurred.image)
    assert judged["id_distance_to_crop"] < 0.05 < judged["id_distance"] - 0.1
