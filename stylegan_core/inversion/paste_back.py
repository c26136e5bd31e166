"""Putting a generated face back into the photo it came from, and remembering that photo.

`paste_back` warps an image of the aligned crop (the inversion, or any edit of its code) into the
photo with the inverse of the alignment transform, at the photo's own resolution. Only the face is
replaced: the mask follows the hull of the 68 landmarks (raised over the forehead, which the
landmarks do not cover), feathered outwards so there is no visible edge, and the result's colours are
shifted to match the photo along that seam (an inversion often gets the skin tone or the light a
little wrong, and a seam shows a difference in mean colour first).

`PhotoLink` is what a library entry keeps to do this later: a copy of the photo, the crop's square
and the landmarks. It saves to and loads from plain arrays, so a library export carries it.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Mapping, Optional, Union

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from .align import AlignedFace, AlignError, crop_to_photo_matrix
from ..images import ImageError, load_image, to_rgb

FEATHER_FRACTION = 0.04  # width of the mask's soft edge, as a fraction of the crop's side
FOREHEAD_FRACTION = 0.14  # how far above the eyebrows the mask reaches, as a fraction of the crop's side
EDGE_FRACTION = 0.03  # the result is faded out this far inside the crop's own border
PHOTO_LINK_MAX_SIDE = 2048  # a library keeps its photos this small at most (a few MB each in memory)
PHOTO_LINK_JPEG_QUALITY = 92

JAW = slice(0, 17)
EYEBROWS = slice(17, 27)


@dataclass
class PhotoLink:
    """Which photo, and which face in it, a code was inverted from.

    photo: a copy of the photo (at most PHOTO_LINK_MAX_SIDE px); quad [4, 2] and landmarks [68, 2]
    (None for a centre crop) in that copy's pixel coordinates; source: the photo's file name.
    Pass a link wherever `paste_back` wants a face: it has the same quad, landmarks and source_size.
    """

    photo: Image.Image
    quad: np.ndarray
    landmarks: Optional[np.ndarray] = None
    face_index: int = 0
    source: str = ""

    @property
    def source_size(self) -> tuple[int, int]:
        return self.photo.size

    @classmethod
    def from_face(cls, photo: Image.Image, face: AlignedFace, source: str = "",
                  max_side: int = PHOTO_LINK_MAX_SIDE) -> "PhotoLink":
        """The link of `face`, aligned in `photo`, keeping a copy of the photo reduced to `max_side`."""
        _check_photo(photo, face)
        scale = min(1.0, max_side / max(photo.size))
        copy = to_rgb(photo).copy()
        if scale < 1.0:
            copy = copy.resize((max(1, round(photo.width * scale)), max(1, round(photo.height * scale))),
                               Image.Resampling.LANCZOS)
        scale_xy = np.array(copy.size, dtype=np.float64) / np.array(photo.size, dtype=np.float64)
        landmarks = None if face.landmarks is None else np.asarray(face.landmarks, np.float64) * scale_xy
        return cls(copy, np.asarray(face.quad, np.float64) * scale_xy, landmarks, face.face_index, source)

    def paste(self, result: Image.Image) -> Image.Image:
        """`result` (an image of the aligned crop) pasted into the linked photo."""
        return paste_back(self.photo, self, result)

    def to_arrays(self, prefix: str) -> dict[str, np.ndarray]:
        """The link as named arrays for an .npz (the photo as JPEG bytes)."""
        buffer = io.BytesIO()
        self.photo.save(buffer, format="JPEG", quality=PHOTO_LINK_JPEG_QUALITY)
        arrays = {f"{prefix}photo": np.frombuffer(buffer.getvalue(), dtype=np.uint8),
                  f"{prefix}quad": np.asarray(self.quad, np.float64),
                  f"{prefix}face_index": np.array(self.face_index), f"{prefix}source": np.array(self.source)}
        if self.landmarks is not None:
            arrays[f"{prefix}landmarks"] = np.asarray(self.landmarks, np.float64)
        return arrays

    @classmethod
    def from_arrays(cls, data: Mapping[str, np.ndarray], prefix: str) -> Optional["PhotoLink"]:
        """The link saved by `to_arrays` under `prefix`; None if there is none.
        Raises ImageError when it is there but unreadable."""
        if f"{prefix}photo" not in data:
            return None
        photo = load_image(np.asarray(data[f"{prefix}photo"], np.uint8).tobytes(), max_side=None)
        quad = np.asarray(data[f"{prefix}quad"], np.float64)
        landmarks = data[f"{prefix}landmarks"] if f"{prefix}landmarks" in data else None
        if quad.shape != (4, 2) or (landmarks is not None and np.shape(landmarks) != (68, 2)):
            raise ImageError("the saved photo link has a malformed face square or landmarks")
        return cls(photo, quad, None if landmarks is None else np.asarray(landmarks, np.float64),
                   int(data[f"{prefix}face_index"]), str(data[f"{prefix}source"]))


Face = Union[AlignedFace, PhotoLink]


def paste_back(photo: Image.Image, face: Face, result: Image.Image) -> Image.Image:
    """`result` (a square image of the aligned crop, any size) warped into `photo` where `face` was
    aligned, inside a feathered mask following the face, its colours matched to the photo at the seam.

    The photo keeps its size; pixels outside the crop's square are left exactly as they were.
    """
    photo = to_rgb(photo)
    _check_photo(photo, face)
    result = to_rgb(result)
    if result.width != result.height:
        raise AlignError(f"The image to paste must be square, got {result.width}x{result.height}.")
    box = _region(face)
    if box is None:
        return photo.copy()
    left, top, right, bottom = box
    region_to_crop = _region_to_crop(face, result.width, box)
    warped = np.asarray(result.transform((right - left, bottom - top), Image.Transform.AFFINE,
                                         region_to_crop, Image.Resampling.BICUBIC), np.float32)
    original = np.asarray(photo.crop(box), np.float32)
    mask = _region_mask(face, box)[..., None]
    warped = warped + _seam_colour_offset(original, warped, mask)
    blended = original + (warped - original) * mask
    pasted = photo.copy()
    pasted.paste(Image.fromarray(blended.round().clip(0, 255).astype(np.uint8), "RGB"), (left, top))
    return pasted


def face_mask(face: Face) -> Image.Image:
    """The paste-back mask at the photo's size (mode "L", 255 = the result): the landmarks' hull
    raised over the forehead and feathered outwards, within the crop's square. Without landmarks
    (a centre crop) the whole square, feathered at its border."""
    width, height = face.source_size
    mask = Image.new("L", (width, height), 0)
    box = _region(face)
    if box is not None:
        mask.paste(Image.fromarray((_region_mask(face, box) * 255).round().astype(np.uint8), "L"), box[:2])
    return mask


# -- geometry --------------------------------------------------------------------------------------
def _check_photo(photo: Image.Image, face: Face) -> None:
    if photo.size != tuple(face.source_size):
        raise AlignError(f"The photo is {photo.width}x{photo.height} but the face was aligned in a "
                         f"{face.source_size[0]}x{face.source_size[1]} image.")


def _crop_side(face: Face) -> float:
    return float(np.linalg.norm(face.quad[3] - face.quad[0]))


def _region(face: Face) -> Optional[tuple[int, int, int, int]]:
    """The part of the photo the crop's square covers (left, top, right, bottom); None if none."""
    width, height = face.source_size
    left, top = np.maximum(np.floor(face.quad.min(axis=0)).astype(int), 0)
    right, bottom = np.minimum(np.ceil(face.quad.max(axis=0)).astype(int), (width, height))
    return None if right <= left or bottom <= top else (int(left), int(top), int(right), int(bottom))


def _region_to_crop(face: Face, crop_size: int, box: tuple[int, int, int, int]) -> tuple:
    """PIL affine coefficients mapping pixel coordinates of the region to those of the crop."""
    region_to_photo = np.array([[1, 0, box[0]], [0, 1, box[1]], [0, 0, 1]], dtype=np.float64)
    return tuple((np.linalg.inv(crop_to_photo_matrix(face.quad, crop_size)) @ region_to_photo)[:2].flatten())


def _region_mask(face: Face, box: tuple[int, int, int, int]) -> np.ndarray:
    """The mask over `box`, float32 in [0, 1]: the face hull (or the whole square) times the square
    faded at its own border (the result has nothing to show beyond it)."""
    side = _crop_side(face)
    feather = max(FEATHER_FRACTION * side, 1.0)
    square = _polygon_mask(_inset(face.quad, EDGE_FRACTION * side), box, feather / 2)
    if face.landmarks is None:
        return square
    hull = _convex_hull(_face_outline(face))
    return _polygon_mask(_inset(hull, -feather), box, feather / 2) * square


def _face_outline(face: Face) -> np.ndarray:
    """The jaw line and the eyebrows, plus the eyebrows moved up over the forehead."""
    landmarks = np.asarray(face.landmarks, np.float64)
    up = face.quad[0] - face.quad[1]  # from the crop's bottom-left corner to its top-left one
    up = up / np.linalg.norm(up)
    forehead = landmarks[EYEBROWS] + up * FOREHEAD_FRACTION * _crop_side(face)
    return np.concatenate([landmarks[JAW], landmarks[EYEBROWS], forehead])


def _inset(polygon: np.ndarray, distance: float) -> np.ndarray:
    """The convex polygon moved `distance` px towards its centre (outwards when negative), along
    the rays from the centre: exact for the square, close enough for a face hull."""
    centre = polygon.mean(axis=0)
    rays = polygon - centre
    lengths = np.linalg.norm(rays, axis=1, keepdims=True)
    return centre + rays * np.maximum(lengths - distance, 0.0) / np.maximum(lengths, 1e-9)


def _polygon_mask(polygon: np.ndarray, box: tuple[int, int, int, int], blur: float) -> np.ndarray:
    width, height = box[2] - box[0], box[3] - box[1]
    image = Image.new("L", (width, height), 0)
    points = [tuple(p) for p in (polygon - np.array(box[:2], np.float64))]
    ImageDraw.Draw(image).polygon(points, fill=255)
    if blur > 0:
        image = image.filter(ImageFilter.GaussianBlur(radius=blur))
    return np.asarray(image, np.float32) / 255.0


def _convex_hull(points: np.ndarray) -> np.ndarray:
    """Andrew's monotone chain: the hull's corners in order."""
    ordered = sorted(map(tuple, np.asarray(points, np.float64)))

    def half(sequence):
        chain: list[tuple] = []
        for point in sequence:
            while len(chain) >= 2 and np.cross(np.subtract(chain[-1], chain[-2]), np.subtract(point, chain[-2])) <= 0:
                chain.pop()
            chain.append(point)
        return chain[:-1]

    return np.array(half(ordered) + half(reversed(ordered)))


def _seam_colour_offset(original: np.ndarray, warped: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per-channel mean colour difference photo - result along the seam (where the mask is between
    fully off and fully on, weighted most at its middle), to shift the result by."""
    weight = mask * (1.0 - mask)
    total = float(weight.sum())
    if total <= 0:
        return np.zeros(3, np.float32)
    return ((original - warped) * weight).sum(axis=(0, 1)) / total
