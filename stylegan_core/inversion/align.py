"""Face detection and FFHQ-style alignment with dlib.

FFHQ generators only know faces framed the way the FFHQ dataset framed them: an oriented square
whose size and angle come from the eye and mouth landmarks (68-point model). `align_face` builds
that square (the "quad") in the photo, resamples it to the generator's resolution and returns the
quad too, so `paste_back.paste_back` can warp a generated image into the original photo.

Coordinates are continuous pixel coordinates: pixel (i, j) covers [i, i+1] x [j, j+1].
dlib models are loaded once per process; every call into a model holds that model's lock, so
concurrent app requests are safe.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
from PIL import Image, ImageFilter

from ..images import ImageError, to_rgb

# dlib's HOG detector finds faces from about 80 px up: small images are enlarged to this size and
# large ones reduced (detection time grows with the pixel count; landmarks use the full image).
DETECTION_MIN_SIDE = 640
DETECTION_MAX_SIDE = 1024
LANDMARK_FACE_SIZE = 256  # face boxes are resampled to about this width for the landmark model
# HOG scores of real faces here were 0.9-1.6; a badge next to a face fired at 0.2-0.4. A detection much
# weaker than the best one in the same image is dropped.
RELATIVE_MIN_SCORE = 0.4
MIN_FACE_PX = 32  # below this the crop has no usable detail
EYE_AND_MOUTH_CORNERS = set(range(36, 48)) | {48, 54}  # the landmarks the FFHQ square is built from
SOFT_UPSCALE = 4.0  # warn when the crop is enlarged more than this


class AlignError(ImageError):
    """The photo cannot be aligned as asked; the message says why and what to do."""


class NoFaceError(AlignError):
    """No face was found. The caller can offer `center_crop` (use the image as is) instead."""


@dataclass(frozen=True)
class FaceBox:
    """A detected face in photo coordinates, with the detector's confidence."""

    left: float
    top: float
    right: float
    bottom: float
    score: float = 0.0

    @property
    def width(self) -> float:
        return self.right - self.left

    @property
    def height(self) -> float:
        return self.bottom - self.top

    @property
    def area(self) -> float:
        return self.width * self.height

    def scaled(self, factor: float) -> "FaceBox":
        return FaceBox(self.left * factor, self.top * factor, self.right * factor, self.bottom * factor,
                       self.score)


@dataclass
class AlignedFace:
    """An aligned square crop and where it came from.

    quad: [4, 2] corners of the crop in the photo (top-left, bottom-left, bottom-right, top-right).
    face_box / landmarks ([68, 2]) are None for a centre crop.
    """

    image: Image.Image
    quad: np.ndarray
    source_size: tuple[int, int]
    face_box: Optional[FaceBox] = None
    landmarks: Optional[np.ndarray] = None
    face_index: int = 0
    num_faces: int = 0
    warnings: list[str] = field(default_factory=list)

    def crop_to_photo_matrix(self, crop_size: Optional[int] = None) -> np.ndarray:
        """3x3 affine matrix from pixel coordinates of a square crop of `crop_size` to photo coordinates."""
        return crop_to_photo_matrix(self.quad, crop_size or self.image.width)

    @property
    def face_size(self) -> float:
        """Side of the crop in photo pixels."""
        return float(np.linalg.norm(self.quad[3] - self.quad[0]))


def crop_to_photo_matrix(quad: np.ndarray, crop_size: int) -> np.ndarray:
    """3x3 affine matrix from pixel coordinates of a square crop of `crop_size` showing `quad` to
    photo coordinates."""
    top_left, bottom_left, _, top_right = np.asarray(quad, dtype=np.float64)
    matrix = np.eye(3)
    matrix[:2, 0] = (top_right - top_left) / crop_size
    matrix[:2, 1] = (bottom_left - top_left) / crop_size
    matrix[:2, 2] = top_left
    return matrix


# -- dlib models -------------------------------------------------------------------------------
class LockedModel:
    """A dlib object with the lock that serialises calls into it."""

    def __init__(self, model) -> None:
        self.model = model
        self.lock = threading.Lock()

    def __call__(self, *args, **kwargs):
        with self.lock:
            return self.model(*args, **kwargs)


_MODELS: dict[str, LockedModel] = {}
_MODELS_LOCK = threading.Lock()


def cached_model(key: str, factory: Callable[[], object]) -> LockedModel:
    with _MODELS_LOCK:
        if key not in _MODELS:
            _MODELS[key] = LockedModel(factory())
        return _MODELS[key]


def _dlib():
    import dlib

    return dlib


def face_detector() -> LockedModel:
    """dlib's frontal (HOG) face detector; call as detector(rgb_array, upsample, threshold)."""
    return cached_model("detector", lambda: _dlib().get_frontal_face_detector().run)


def shape_predictor() -> LockedModel:
    """The 68-landmark model; call as predictor(rgb_array, dlib.rectangle)."""
    from ..loading.weights import fetch

    return cached_model(
        "landmarks68",
        lambda: _dlib().shape_predictor(str(fetch("dlib/shape_predictor_68_face_landmarks.dat"))),
    )


# -- detection ---------------------------------------------------------------------------------
def detect_faces(image: Image.Image) -> list[FaceBox]:
    """All frontal faces in the photo, largest first (the more confident first among equals),
    in photo coordinates."""
    image = to_rgb(image)
    scale = _detection_scale(image.size)
    small = image if scale == 1.0 else image.resize(
        (max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.Resampling.BILINEAR
    )
    pixels = np.ascontiguousarray(np.asarray(small))
    detector = face_detector()
    rects, scores, _ = detector(pixels, 0, 0.0)
    if not rects:  # small faces in a large photo: one level of upsampling finds faces from ~40 px
        rects, scores, _ = detector(pixels, 1, 0.0)
    best = max(scores, default=0.0)
    boxes = [
        FaceBox(r.left(), r.top(), r.right() + 1, r.bottom() + 1, float(s)).scaled(1.0 / scale)
        for r, s in zip(rects, scores) if s >= RELATIVE_MIN_SCORE * best
    ]
    return sorted(boxes, key=lambda box: (box.area, box.score), reverse=True)


def _detection_scale(size: tuple[int, int]) -> float:
    longest = max(size)
    if longest > DETECTION_MAX_SIDE:
        return DETECTION_MAX_SIDE / longest
    if longest < DETECTION_MIN_SIDE:
        return DETECTION_MIN_SIDE / longest
    return 1.0


@dataclass
class LandmarkCrop:
    """The region around a face, resampled so the face is about LANDMARK_FACE_SIZE px wide, and the
    68-landmark detection in it (a dlib full_object_detection, in crop coordinates)."""

    pixels: np.ndarray  # H x W x 3 uint8, contiguous (what dlib reads)
    shape: object
    scale: float  # crop pixels per photo pixel
    origin: np.ndarray  # the crop's top-left corner in the photo

    def landmarks(self) -> np.ndarray:
        """[68, 2] landmark positions in photo coordinates (at pixel centres)."""
        points = np.array([(p.x + 0.5, p.y + 0.5) for p in self.shape.parts()], dtype=np.float64)
        return points / self.scale + self.origin


def landmark_crop(image: Image.Image, box: FaceBox) -> LandmarkCrop:
    """Run the landmark model on a crop around `box` resampled to a fixed face size, so landmarks
    are equally precise for a thumbnail and for a 40-megapixel photo."""
    import dlib

    image = to_rgb(image)
    margin = 0.5 * max(box.width, box.height)
    left, top = max(0.0, box.left - margin), max(0.0, box.top - margin)
    right, bottom = min(float(image.width), box.right + margin), min(float(image.height), box.bottom + margin)
    scale = LANDMARK_FACE_SIZE / max(box.width, 1.0)
    crop_size = (max(1, round((right - left) * scale)), max(1, round((bottom - top) * scale)))
    crop = image.resize(crop_size, Image.Resampling.BILINEAR, box=(left, top, right, bottom))
    rect = dlib.rectangle(
        round((box.left - left) * scale), round((box.top - top) * scale),
        round((box.right - left) * scale) - 1, round((box.bottom - top) * scale) - 1,
    )
    pixels = np.ascontiguousarray(np.asarray(crop))
    return LandmarkCrop(pixels, shape_predictor()(pixels, rect), scale, np.array([left, top]))


def face_landmarks(image: Image.Image, box: FaceBox) -> np.ndarray:
    """68 landmarks [68, 2] (photo coordinates) of the face in `box`."""
    return landmark_crop(image, box).landmarks()


# -- alignment ---------------------------------------------------------------------------------
def ffhq_quad(landmarks: np.ndarray) -> np.ndarray:
    """The FFHQ crop square [4, 2] from 68 landmarks (the FFHQ dataset's recipe).

    Its centre sits a tenth of the way from the eyes' midpoint to the mouth's; its half-side is the
    larger of 2x the eye distance and 1.8x the eye-to-mouth distance; its x axis is the eye line,
    tilted towards the perpendicular of the eye-to-mouth line.
    """
    eye_left = landmarks[36:42].mean(axis=0)
    eye_right = landmarks[42:48].mean(axis=0)
    mouth_avg = (landmarks[48] + landmarks[54]) / 2
    eye_avg = (eye_left + eye_right) / 2
    eye_to_eye = eye_right - eye_left
    eye_to_mouth = mouth_avg - eye_avg
    x_axis = eye_to_eye + np.array([eye_to_mouth[1], -eye_to_mouth[0]])
    x_axis /= np.hypot(*x_axis)
    x_axis *= max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    y_axis = np.array([-x_axis[1], x_axis[0]])
    center = eye_avg + eye_to_mouth * 0.1
    return np.stack([center - x_axis - y_axis, center - x_axis + y_axis,
                     center + x_axis + y_axis, center + x_axis - y_axis])


def align_face(image: Image.Image, resolution: int = 1024, face_index: int = 0,
               faces: Optional[list[FaceBox]] = None) -> AlignedFace:
    """Detect (unless `faces` is given), pick face `face_index` (0 = largest) and crop it FFHQ-style.

    Raises NoFaceError when the photo has no detectable face and AlignError for a bad index or a
    face too small to use.
    """
    image = to_rgb(image)
    faces = detect_faces(image) if faces is None else faces
    if not faces:
        raise NoFaceError(
            "No face was found in the image (dlib's frontal face detector needs a clearly visible, "
            "roughly frontal face). Use another photo, or use the image as it is (centre crop)."
        )
    if not 0 <= face_index < len(faces):
        raise AlignError(f"Face {face_index + 1} was asked for, but the image has {len(faces)} face(s) "
                         f"(numbered 1 to {len(faces)}, largest first).")
    box = faces[face_index]
    landmarks = face_landmarks(image, box)
    cut_off = _cut_off(landmarks, image.size)
    quad = ffhq_quad(landmarks)
    face_size = float(np.linalg.norm(quad[3] - quad[0]))
    if face_size < MIN_FACE_PX:
        raise AlignError(f"The face is only {face_size:.0f} px across; at least {MIN_FACE_PX} px are needed. "
                         "Use a larger photo.")
    notes = [f"The face is cut off by the photo's border ({len(cut_off)} of 68 landmarks outside it); "
             "that part of the crop is filled in."] if cut_off else []
    if resolution / face_size > SOFT_UPSCALE:
        notes.append(f"The face is only {face_size:.0f} px across in the photo: the {resolution} px crop is "
                     f"enlarged {resolution / face_size:.0f}x and will look soft, and so will the inversion.")
    if len(faces) > 1:
        notes.append(f"The image has {len(faces)} faces; using face {face_index + 1} (1 = the largest).")
    return AlignedFace(
        image=warp_quad(image, quad, resolution), quad=quad, source_size=image.size, face_box=box,
        landmarks=landmarks, face_index=face_index, num_faces=len(faces), warnings=notes,
    )


def _cut_off(landmarks: np.ndarray, size: tuple[int, int]) -> list[int]:
    """The landmarks outside the photo; AlignError when an eye or a mouth corner is among them,
    since the FFHQ square is built from those and would rest on guessed positions."""
    outside = np.nonzero((landmarks < 0).any(axis=1) | (landmarks >= size).any(axis=1))[0].tolist()
    if set(outside) & EYE_AND_MOUTH_CORNERS:
        raise AlignError("The face is cut off by the photo's border (an eye or the mouth is outside it), so it "
                         "cannot be aligned. Use a photo that shows the whole face, or use the whole image.")
    return outside


def center_crop(image: Image.Image, resolution: int = 1024) -> AlignedFace:
    """Use the image as it is: its largest centred square, resampled to `resolution`."""
    image = to_rgb(image)
    side = min(image.size)
    left, top = (image.width - side) / 2, (image.height - side) / 2
    quad = np.array([[left, top], [left, top + side], [left + side, top + side], [left + side, top]], float)
    crop = image.resize((resolution, resolution), Image.Resampling.LANCZOS,
                        box=(left, top, left + side, top + side))
    notes = [] if resolution / side <= SOFT_UPSCALE else [
        f"The image is only {side} px across: the {resolution} px crop is enlarged and will look soft."]
    return AlignedFace(image=crop, quad=quad, source_size=image.size, warnings=notes)


def warp_quad(image: Image.Image, quad: np.ndarray, resolution: int) -> Image.Image:
    """Resample the square `quad` of `image` to resolution x resolution.

    Parts of the square outside the photo are filled by reflection, blurred and faded to the
    photo's median colour (as FFHQ did), so the generator sees a plausible background rather than
    black corners.
    """
    quad = np.asarray(quad, dtype=np.float64)
    size = float(np.linalg.norm(quad[3] - quad[0]))
    # Reduce large photos by an integer factor first: the final resampling then never skips pixels.
    shrink = int(np.floor(size / resolution / 2))
    if shrink > 1:
        image = image.reduce(shrink)
        quad = quad / shrink
        size /= shrink
    border = max(int(round(size * 0.1)), 3)
    image, quad = _crop_around(image, quad, border)
    image, quad = _pad_by_reflection(image, quad, border, size)
    supersample = 2 if size > resolution else 1
    warped = image.transform((resolution * supersample,) * 2, Image.Transform.QUAD, tuple(quad.flatten()),
                             Image.Resampling.BILINEAR if supersample > 1 else Image.Resampling.BICUBIC)
    if supersample > 1:
        warped = warped.resize((resolution, resolution), Image.Resampling.LANCZOS)
    return warped


def _crop_around(image: Image.Image, quad: np.ndarray, border: int) -> tuple[Image.Image, np.ndarray]:
    left, top = np.floor(quad.min(axis=0)).astype(int) - border
    right, bottom = np.ceil(quad.max(axis=0)).astype(int) + border
    left, top = max(left, 0), max(top, 0)
    right, bottom = min(right, image.width), min(bottom, image.height)
    if right - left < image.width or bottom - top < image.height:
        image = image.crop((left, top, right, bottom))
    return image, quad - np.array([left, top])


def _pad_by_reflection(image: Image.Image, quad: np.ndarray, border: int,
                       size: float) -> tuple[Image.Image, np.ndarray]:
    """Extend the photo by reflection where the square leaves it, blurring and fading only the new border.

    FFHQ's recipe: the reflected border is blurred (sigma 2% of the square) and faded towards the
    photo's median colour with its distance from the photo. The blur's weight is 1 at the photo's
    edge and falls to 0 one blur radius inside, so the seam is hidden and the photo stays sharp.
    """
    low = np.floor(quad.min(axis=0)).astype(int)
    high = np.ceil(quad.max(axis=0)).astype(int)
    pad_left, pad_top = np.maximum(border - low, 0)
    pad_right, pad_bottom = np.maximum(high - np.array(image.size) + border, 0)
    if max(pad_left, pad_top, pad_right, pad_bottom) <= border // 2:
        return image, quad
    pixels = np.asarray(image, dtype=np.float32)
    padded = _reflect_pad(pixels, (pad_top, pad_bottom), (pad_left, pad_right))
    distance, fraction = _outside_the_photo(padded.shape[:2], (pad_left, pad_top, pad_right, pad_bottom))
    blur_radius = max(size * 0.02, 1.0)
    blurred = np.asarray(
        Image.fromarray(padded.round().clip(0, 255).astype(np.uint8)).filter(
            ImageFilter.GaussianBlur(radius=blur_radius)), dtype=np.float32)
    padded += (blurred - padded) * np.clip(1.0 + distance / blur_radius, 0.0, 1.0)[..., None]
    padded += (np.median(pixels.reshape(-1, 3), axis=0) - padded) * fraction[..., None]
    result = Image.fromarray(padded.round().clip(0, 255).astype(np.uint8), "RGB")
    return result, quad + np.array([pad_left, pad_top])


def _outside_the_photo(shape: tuple[int, int], pads: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """For each pixel of the padded image: its signed distance in pixels beyond the photo's padded
    edges (negative inside the photo; edges that were not padded do not count) and how far it lies
    across the padding, 0 (photo edge or inside) to 1 (outer edge)."""
    height, width = shape
    pad_left, pad_top, pad_right, pad_bottom = pads
    xs = np.arange(width, dtype=np.float32)[None, :]
    ys = np.arange(height, dtype=np.float32)[:, None]
    sides = [(pad_left, pad_left - xs), (pad_right, xs - (width - 1 - pad_right)),
             (pad_top, pad_top - ys), (pad_bottom, ys - (height - 1 - pad_bottom))]
    distance = np.full(shape, -np.inf, dtype=np.float32)
    fraction = np.zeros(shape, dtype=np.float32)
    for pad, beyond in sides:
        if pad > 0:
            distance = np.maximum(distance, beyond)
            fraction = np.maximum(fraction, np.clip(beyond / pad, 0.0, 1.0))
    return distance, fraction


def _reflect_pad(pixels: np.ndarray, pad_y: tuple[int, int], pad_x: tuple[int, int]) -> np.ndarray:
    """Reflect-pad by any amount (np.pad's reflect mode needs pad < size: repeat until done)."""
    while any(pad_y) or any(pad_x):
        step_y = tuple(min(p, pixels.shape[0] - 1) for p in pad_y)
        step_x = tuple(min(p, pixels.shape[1] - 1) for p in pad_x)
        if not any(step_y) and not any(step_x):  # a one-pixel image cannot reflect
            return np.pad(pixels, (pad_y, pad_x, (0, 0)), mode="edge")
        pixels = np.pad(pixels, (step_y, step_x, (0, 0)), mode="reflect")
        pad_y = (pad_y[0] - step_y[0], pad_y[1] - step_y[1])
        pad_x = (pad_x[0] - step_x[0], pad_x[1] - step_x[1])
    return pixels
