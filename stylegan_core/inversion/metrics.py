"""How close a reconstruction is to its reference, by measures that are not the projector's loss.

- PSNR and SSIM at 256 px (both images resized to 256 x 256 first, so numbers from generators of
  different resolutions compare);
- identity distance: Euclidean distance of dlib's 128-d face descriptors
  (dlib_face_recognition_resnet_model_v1); below 0.6 dlib considers two faces the same person;
  an inversion is judged by it against the face in the ORIGINAL photo (`photo_metrics`): the
  aligned crop is an intermediate that can itself be wrong (blurred, badly padded);
- LPIPS (VGG) only where its backbone weights are already on the machine; None otherwise.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from PIL import Image

from . import align
from ..images import pil_to_tensor, to_rgb

METRIC_RESOLUTION = 256
SAME_PERSON_THRESHOLD = 0.6
MAX_PSNR = 100.0  # identical images: reported as 100 dB instead of infinity (JSON has no infinity)
IDENTITY_DETECTION_SIDE = 640  # descriptors use a 150 px face chip: more pixels add nothing
SSIM_SIGMA = 1.5
SSIM_RADIUS = 5  # 11 x 11 Gaussian window, as in Wang et al. 2004


def _at_metric_size(image: Image.Image, resolution: int) -> np.ndarray:
    image = to_rgb(image)
    if image.size != (resolution, resolution):
        image = image.resize((resolution, resolution), Image.Resampling.LANCZOS)
    return np.asarray(image, dtype=np.float64) / 255.0


def psnr(reference: Image.Image, result: Image.Image, resolution: int = METRIC_RESOLUTION) -> float:
    """Peak signal-to-noise ratio in dB of two RGB images at resolution x resolution."""
    mse = float(np.mean((_at_metric_size(reference, resolution) - _at_metric_size(result, resolution)) ** 2))
    return MAX_PSNR if mse == 0 else min(MAX_PSNR, 10.0 * math.log10(1.0 / mse))


def ssim(reference: Image.Image, result: Image.Image, resolution: int = METRIC_RESOLUTION) -> float:
    """Structural similarity (Wang et al. 2004): 11 x 11 Gaussian window (sigma 1.5), K1 = 0.01,
    K2 = 0.03, data range 1, computed per colour channel where the window fits, then averaged."""
    a, b = _at_metric_size(reference, resolution), _at_metric_size(result, resolution)
    taps = np.exp(-0.5 * (np.arange(-SSIM_RADIUS, SSIM_RADIUS + 1) / SSIM_SIGMA) ** 2)
    taps /= taps.sum()

    def local_mean(x: np.ndarray) -> np.ndarray:  # the separable Gaussian window, 'valid' region only
        size = len(taps)
        rows = sum(w * x[i:x.shape[0] - size + 1 + i] for i, w in enumerate(taps))
        return sum(w * rows[:, i:x.shape[1] - size + 1 + i] for i, w in enumerate(taps))

    mean_a, mean_b = local_mean(a), local_mean(b)
    var_a = local_mean(a * a) - mean_a**2
    var_b = local_mean(b * b) - mean_b**2
    covariance = local_mean(a * b) - mean_a * mean_b
    c1, c2 = 0.01**2, 0.03**2
    ssim_map = ((2 * mean_a * mean_b + c1) * (2 * covariance + c2)) / (
        (mean_a**2 + mean_b**2 + c1) * (var_a + var_b + c2))
    return float(ssim_map.mean())


# -- identity ------------------------------------------------------------------------------------
def face_recognizer() -> align.LockedModel:
    """dlib's ResNet face descriptor model; call as recognizer(pixels, full_object_detection)."""
    import dlib

    from ..loading.weights import fetch

    return align.cached_model("face_recognition", lambda: dlib.face_recognition_model_v1(
        str(fetch("dlib/dlib_face_recognition_resnet_model_v1.dat"))).compute_face_descriptor)


def face_descriptor(image: Image.Image) -> Optional[np.ndarray]:
    """The 128-d identity descriptor of the largest face in `image`, or None if there is no face."""
    image = to_rgb(image)
    if max(image.size) > IDENTITY_DETECTION_SIDE:
        image = image.copy()
        image.thumbnail((IDENTITY_DETECTION_SIDE, IDENTITY_DETECTION_SIDE), Image.Resampling.LANCZOS)
    faces = align.detect_faces(image)
    if not faces:
        return None
    crop = align.landmark_crop(image, faces[0])
    return np.asarray(face_recognizer()(crop.pixels, crop.shape), dtype=np.float64)


def face_descriptor_at(image: Image.Image, box: "align.FaceBox") -> np.ndarray:
    """The identity descriptor of the face in `box` (a detection in this image, or the place a
    face was pasted back into it): the chosen face of a group photo, not the largest."""
    crop = align.landmark_crop(to_rgb(image), box)
    return np.asarray(face_recognizer()(crop.pixels, crop.shape), dtype=np.float64)


def identity_distance(reference: Image.Image, result: Image.Image,
                      reference_descriptor: Optional[np.ndarray] = None) -> Optional[float]:
    """Distance of the two faces' descriptors (< 0.6: the same person); None if either has no face."""
    if reference_descriptor is None:
        reference_descriptor = face_descriptor(reference)
    result_descriptor = face_descriptor(result)
    if reference_descriptor is None or result_descriptor is None:
        return None
    return float(np.linalg.norm(reference_descriptor - result_descriptor))


# -- LPIPS (optional) --------------------------------------------------------------------------
def _lpips_backbone_file() -> Path:
    torch_home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "torch")
    return Path(torch_home) / "hub" / "checkpoints" / "vgg16-397923af.pth"


def _load_lpips():
    from ..compat import import_torchvision

    import_torchvision()  # lpips imports torchvision, which needs the shim with the CPU torch
    import lpips

    return lpips.LPIPS(net="vgg", verbose=False).eval().requires_grad_(False)


def lpips_distance(reference: Image.Image, result: Image.Image,
                   resolution: int = METRIC_RESOLUTION) -> Optional[float]:
    """LPIPS (VGG) at resolution px, or None where torchvision's VGG16 weights are not cached
    (the lpips package would try to download them). Unverified here: no machine of ours has them."""
    if not _lpips_backbone_file().is_file():
        return None
    model = align.cached_model("lpips_vgg", _load_lpips)
    with torch.no_grad():
        value = model(pil_to_tensor(reference, resolution), pil_to_tensor(result, resolution))
    return float(value.flatten()[0])


def photo_metrics(photo: Image.Image, face: "align.AlignedFace", result: Image.Image,
                  pasted: Optional[Image.Image] = None, photo_descriptor: Optional[np.ndarray] = None) -> dict:
    """How well `result` (an image of the aligned crop `face`) reproduces the face in `photo`.

    id_distance: the chosen face in the photo vs the result (the number to judge by; None without a
    face); id_distance_pasted: vs the face in `pasted` (the result pasted back; None when not given);
    same_person: id_distance < 0.6. Secondary, against the aligned crop: psnr, ssim, lpips and
    id_distance_to_crop. `photo_descriptor` skips recomputing the photo face's descriptor.
    """
    if photo_descriptor is None:
        photo_descriptor = (face_descriptor_at(photo, face.face_box) if face.face_box is not None
                            else face_descriptor(photo))
    to_crop = compute_metrics(face.image, result)
    distance = identity_distance(None, result, photo_descriptor) if photo_descriptor is not None else None
    pasted_distance = None
    if pasted is not None and photo_descriptor is not None:
        pasted_descriptor = (face_descriptor_at(pasted, face.face_box) if face.face_box is not None
                             else face_descriptor(pasted))
        if pasted_descriptor is not None:
            pasted_distance = float(np.linalg.norm(photo_descriptor - pasted_descriptor))
    return {
        "id_distance": distance,
        "id_distance_pasted": pasted_distance,
        "same_person": None if distance is None else distance < SAME_PERSON_THRESHOLD,
        "psnr": to_crop["psnr"], "ssim": to_crop["ssim"], "lpips": to_crop["lpips"],
        "id_distance_to_crop": to_crop["id_distance"],
    }


def compute_metrics(reference: Image.Image, result: Image.Image,
                    reference_descriptor: Optional[np.ndarray] = None) -> dict:
    """psnr (dB), ssim, id_distance (None without a face in both), same_person (None likewise),
    lpips (None unless available). `reference_descriptor` skips recomputing the reference's."""
    distance = identity_distance(reference, result, reference_descriptor)
    return {
        "psnr": psnr(reference, result),
        "ssim": ssim(reference, result),
        "id_distance": distance,
        "same_person": None if distance is None else distance < SAME_PERSON_THRESHOLD,
        "lpips": lpips_distance(reference, result),
    }
