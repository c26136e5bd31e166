"""Editing unaligned faces with StyleGAN3 ("Third Time's the Charm?", Alaluf et al.): the photo's frame.

A StyleGAN2 result can only be shown in the photo by warping the aligned crop back (`paste_back`).
StyleGAN3 can instead render the face where it is: its user transform y = G(w; (r, tx, ty))
rotates and shifts the output. So invert the aligned (FFHQ) crop, then render the code with the
similarity transform that carries the aligned crop's face to where the face sits in an upright
square crop of the photo around it (the "photo frame").

Geometry. The aligned crop shows the square `quad` (side s, centre c_a, x axis at angle a in the
photo). The photo frame is an axis-aligned square of the same side s (the transform has no
scale), centred on the face, moved into the photo where the photo is large enough (so the
comparison shows the photo rather than padding). In both crops a point is given in image widths
from the crop's centre (the generator's units): photo = c_a + s R(a) u = c_f + s v, so
v = R(a) u + (c_a - c_f) / s. The generator's transform moves content at u to
[[cos r, sin r], [-sin r, cos r]] u + (tx, ty) (see models/stylegan3.py `transform_matrix`),
hence r = -a (degrees) and (tx, ty) = (c_a - c_f) / s.

Unverified on real StyleGAN3 weights (none are reachable offline here): the geometry and the
generator's convention are tested on tiny random StyleGAN3 models.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from .align import warp_quad
from .paste_back import Face, paste_back


@dataclass(frozen=True)
class PhotoFrame:
    """The photo's frame of an aligned face and the StyleGAN3 transform that renders into it.

    rotate: degrees; tx, ty: image widths (the units of `StyleGAN3.set_transform` and
    `TransformEditor`); box: the frame's square in photo pixels (left, top, right, bottom); it
    can reach past the photo's border when the photo is smaller than the face's square.
    """

    rotate: float
    tx: float
    ty: float
    box: tuple[float, float, float, float]

    @property
    def transform(self) -> tuple[float, tuple[float, float]]:
        """(rotation, (tx, ty)) as `TransformEditor(rotate_deg, translate)` takes them."""
        return self.rotate, (self.tx, self.ty)

    @property
    def quad(self) -> np.ndarray:
        """The frame as a crop square [4, 2] in `align`'s corner order (top-left, bottom-left,
        bottom-right, top-right)."""
        left, top, right, bottom = self.box
        return np.array([[left, top], [left, bottom], [right, bottom], [right, top]], dtype=np.float64)


def photo_frame(face: Face) -> PhotoFrame:
    """The photo frame of `face` (an AlignedFace or a PhotoLink) and the transform that renders the
    aligned crop's code into it; see the module docstring for the geometry."""
    quad = np.asarray(face.quad, dtype=np.float64)
    x_axis = quad[3] - quad[0]
    side = float(np.linalg.norm(x_axis))
    centre = quad.mean(axis=0)
    frame_centre = np.array([_frame_centre(centre[i], side, face.source_size[i]) for i in range(2)])
    tx, ty = (centre - frame_centre) / side
    rotate = -math.degrees(math.atan2(x_axis[1], x_axis[0]))
    left, top = frame_centre - side / 2
    return PhotoFrame(rotate + 0.0, float(tx) + 0.0, float(ty) + 0.0,  # + 0.0: no -0.0 in the info line
                      (float(left), float(top), float(left + side), float(top + side)))


def _frame_centre(face_centre: float, side: float, photo_extent: int) -> float:
    """Centre the frame on the face along one axis, moved inside the photo if it fits there."""
    if side > photo_extent:
        return face_centre
    return min(max(face_centre, side / 2), photo_extent - side / 2)


def photo_frame_crop(photo: Image.Image, frame: PhotoFrame, resolution: int) -> Image.Image:
    """The photo's frame resampled to resolution x resolution (padded as the aligned crop is where
    it leaves the photo): what a render with `frame.transform` is compared with."""
    return warp_quad(photo, frame.quad, resolution)


def paste_frame_render(photo: Image.Image, face: Face, frame: PhotoFrame, render: Image.Image) -> Image.Image:
    """A render in the photo's frame put into the photo: only scaled and shifted (the rotation is in
    the render), inside `paste_back`'s feathered face mask (its forehead part raised straight up
    in the photo rather than along the face's tilt)."""
    return paste_back(photo, dataclasses.replace(face, quad=frame.quad), render)


def side_by_side(images: list[Image.Image], gap: int = 4) -> Image.Image:
    """Equal-height images in a row on white, `gap` pixels apart (a comparison to look at)."""
    height = max(image.height for image in images)
    row = Image.new("RGB", (sum(image.width for image in images) + gap * (len(images) - 1), height), "white")
    left = 0
    for image in images:
        row.paste(image.convert("RGB"), (left, 0))
        left += image.width + gap
    return row
