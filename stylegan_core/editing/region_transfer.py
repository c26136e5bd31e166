"""Region attribute transfer of "StyleGAN of All Trades" (SOAT): give the target face the mouth
(eyes, brows, nose, hair or whole face) of a reference face.

1. Align pose: the reference's pose rows (the 4 and 8 px layers) are replaced by the target's, so
   the reference's region sits where the target's is (`feature_blend.align_pose`).
2. A mask of the region, from the 68 dlib landmarks of the target's image: the region's landmark
   hull grown by a margin relative to the eye distance, then feathered with a Gaussian.
3. Feature interpolation inside the mask (`feature_blend.FeatureBlendEditor`) at the layers of
   `min_resolution` px and above: outside the mask every blended layer keeps the target's output,
   so pixels farther from the region than those layers' receptive fields stay the target's.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter

from ..codes import check_code, check_number, layer_resolutions, layers_between
from ..errors import UserError
from .feature_blend import feature_blend
from ..models.generator import Generator
from ..images import tensor_to_pil

# dlib's 68-point layout: index ranges of each part.
JAW, RIGHT_BROW, LEFT_BROW, NOSE = range(0, 17), range(17, 22), range(22, 27), range(27, 36)
RIGHT_EYE, LEFT_EYE, OUTER_MOUTH = range(36, 42), range(42, 48), range(48, 60)
# region -> (landmark groups, each hull grown by this many eye distances)
PART_REGIONS = {
    "eyes": ((RIGHT_EYE, LEFT_EYE), 0.25),
    "brows": ((RIGHT_BROW, LEFT_BROW), 0.15),
    "nose": ((NOSE,), 0.15),
    "mouth": ((OUTER_MOUTH,), 0.35),  # room for a wider (smiling) mouth of the reference
}
REGIONS = (*PART_REGIONS, "hair", "face")
FOREHEAD = 0.6  # the face region reaches this many eye distances above the brows
HEAD_SCALE = 1.6  # hair: the face hull grown by this factor about its centre, minus the face
DEFAULT_FEATHER = 0.08  # Gaussian sigma of the mask edge, in eye distances
DEFAULT_MIN_RESOLUTION = 16  # blended layers: 16 px and up (the pose rows below are copied anyway)


class RegionError(UserError, ValueError):
    """A region transfer that cannot be done (unknown region, no face found in the target)."""


@dataclass
class RegionTransfer:
    image: torch.Tensor  # [1, 3, H, W] in [-1, 1]
    mask: np.ndarray  # [H, W] in [0, 1]: where the reference's region was blended in


# -- landmarks and masks -------------------------------------------------------------------------
def image_landmarks(image: Image.Image) -> np.ndarray:
    """68 dlib landmarks [68, 2] (pixel coordinates) of the largest face in `image`."""
    from ..inversion.align import detect_faces, face_landmarks

    faces = detect_faces(image)
    if not faces:
        raise RegionError("no face found in the target image, so its regions cannot be located "
                          "(region transfer needs a frontal face)")
    return face_landmarks(image, faces[0])


def convex_hull(points: np.ndarray) -> np.ndarray:
    """The vertices of the convex hull of [N, 2] points, in order (Andrew's monotone chain)."""
    ordered = sorted(map(tuple, points))

    def half(sequence) -> list:
        chain: list = []
        for point in sequence:
            while len(chain) >= 2 and np.cross(np.subtract(chain[-1], chain[-2]), np.subtract(point, chain[-2])) <= 0:
                chain.pop()
            chain.append(point)
        return chain[:-1]

    return np.array(half(ordered) + half(reversed(ordered)))


def _grown(points: np.ndarray, margin: float) -> np.ndarray:
    """The convex polygon of `points` with every vertex moved `margin` px away from the centre."""
    hull = convex_hull(points)
    offsets = hull - hull.mean(axis=0)
    lengths = np.maximum(np.linalg.norm(offsets, axis=1, keepdims=True), 1e-6)
    return hull + margin * offsets / lengths


def _face_outline(landmarks: np.ndarray, eye_distance: float) -> np.ndarray:
    """Jaw line plus the brows lifted by FOREHEAD eye distances (dlib has no forehead points)."""
    brows = landmarks[list(RIGHT_BROW) + list(LEFT_BROW)] - [0.0, FOREHEAD * eye_distance]
    return np.concatenate([landmarks[list(JAW)], brows])


def _fill(size: tuple[int, int], polygons: list[np.ndarray], holes: tuple[np.ndarray, ...] = ()) -> Image.Image:
    canvas = Image.new("L", size, 0)
    draw = ImageDraw.Draw(canvas)
    for polygon, value in [(p, 255) for p in polygons] + [(h, 0) for h in holes]:
        draw.polygon([tuple(point) for point in polygon], fill=value)
    return canvas


def region_mask(landmarks: np.ndarray, region: str, size: tuple[int, int],
                feather: float = DEFAULT_FEATHER) -> np.ndarray:
    """[height, width] mask in [0, 1] of `region` of the face with these 68 landmarks ([68, 2] px).

    `size` is (width, height). Parts (eyes, brows, nose, mouth): landmark hulls grown by a margin;
    face: jaw and forehead; hair: an approximation from landmarks alone, the ring between the face
    and the face outline grown HEAD_SCALE times (it also covers background next to the head).
    `feather`: Gaussian sigma of the edge in eye distances (0: a hard edge).
    """
    if region not in REGIONS:
        raise RegionError(f"region must be one of {', '.join(REGIONS)}, got {region!r}")
    landmarks = np.asarray(landmarks, dtype=np.float64)
    if landmarks.shape != (68, 2) or not np.isfinite(landmarks).all():
        raise RegionError(f"expected 68 finite (x, y) landmarks, got an array of shape {landmarks.shape}")
    feather = check_number(feather, "the feather", 0.0, 1.0)
    eye_distance = float(np.linalg.norm(landmarks[list(LEFT_EYE)].mean(0) - landmarks[list(RIGHT_EYE)].mean(0)))
    if region in PART_REGIONS:
        groups, margin = PART_REGIONS[region]
        mask = _fill(size, [_grown(landmarks[list(g)], margin * eye_distance) for g in groups])
    else:
        face = _grown(_face_outline(landmarks, eye_distance), 0.0)
        if region == "face":
            mask = _fill(size, [face])
        else:
            centre = face.mean(axis=0)
            mask = _fill(size, [centre + HEAD_SCALE * (face - centre)], holes=(face,))
    if feather > 0:
        mask = mask.filter(ImageFilter.GaussianBlur(feather * eye_distance))
    return np.asarray(mask, dtype=np.float32) / 255.0


# -- the transfer --------------------------------------------------------------------------------
def transfer_region(generator: Generator, target_ws: torch.Tensor, reference_ws: torch.Tensor, region: str,
                    min_resolution: int = DEFAULT_MIN_RESOLUTION, feather: float = DEFAULT_FEATHER,
                    landmarks: Optional[np.ndarray] = None) -> RegionTransfer:
    """The target's image with `region` taken from the reference (pose-aligned to the target).

    landmarks: the target image's 68 landmarks ([68, 2], pixels of the generator's resolution);
    found with dlib in the target's render when not given (a RegionError if there is no face).
    min_resolution: blend the layers of this many px and above; lower values carry more of the
    reference's shape, and changes reach farther from the region (one cell of a 16 px layer is
    1/16 of the image).
    """
    if not generator.features_match_image:
        raise RegionError(f"region transfer blends features by position; this {generator.arch} model's "
                          "features do not line up with the image (use Blend with a constant alpha)")
    target_ws = check_code(generator, target_ws, "target code")
    reference_ws = check_code(generator, reference_ws, "reference code")
    layers = layers_between(generator, min_resolution)
    if not layers:
        raise RegionError(f"no layers at {min_resolution} px or above; this model's layers are "
                          f"{layer_resolutions(generator)} px")
    if landmarks is None:
        with torch.no_grad():
            landmarks = image_landmarks(tensor_to_pil(generator.synthesis(target_ws)))
    mask = region_mask(landmarks, region, (generator.resolution, generator.resolution), feather)
    image = feature_blend(generator, target_ws, reference_ws, mask, layers, pose_from_a=True)
    return RegionTransfer(image, mask)
