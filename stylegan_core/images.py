"""Safe image loading and the conversions between PIL images and image tensors.

Uploads can be anything: a file of any format PIL reads, a phone photo whose pixels are stored
sideways (EXIF orientation), RGBA, grayscale, 16-bit, CMYK, a decompression bomb, an empty or
corrupt file, or something that is not an image at all. `load_image` turns all of them into an
upright 8-bit RGB PIL image or raises `ImageError` with a message a user can act on.

Image tensors are [batch, 3, H, W] in [-1, 1], the range of the generators' output.
"""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import BinaryIO, Optional, Union

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from .codes import MAX_DECODED_BYTES, MAX_IMAGE_BYTES as MAX_FILE_BYTES, MAX_IMAGE_PIXELS as MAX_PIXELS
from .errors import UserError

# What decoding allocates (MAX_DECODED_BYTES, in codes.py), by PIL's storage per pixel (RGB is kept as
# 4 bytes, 16-bit grey as 2): a 100 MP RGB photo is 400 MB. JPEGs are measured at the reduced
# scale they decode at (`Image.draft`); every other format is reduced by an integer factor right
# after decoding, before any conversion, so a load's peak is about these bytes plus a quarter.
BYTES_PER_PIXEL = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2}  # others: 4
HIGH_DEPTH_GRAY = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
STRIP_ROWS = 256  # 16-bit grey is converted in strips, so no full-size float copy is ever made
MIN_SIDE = 16
# Nothing in the app needs more: alignment crops a face and resamples it to at most 1024 px.
DEFAULT_MAX_SIDE = 4096

ImageSource = Union[str, os.PathLike, bytes, BinaryIO, Image.Image, np.ndarray]


class ImageError(UserError, ValueError):
    """An input that is not a usable image; the message says why and what to do."""


def load_image(source: ImageSource, max_side: Optional[int] = DEFAULT_MAX_SIDE) -> Image.Image:
    """Any image input -> an upright 8-bit RGB PIL image whose longer side is at most `max_side`.

    `source` is a path, raw bytes, a binary file object, a PIL image or a uint8/float numpy array
    (H x W or H x W x 1/3/4). Raises ImageError for empty, corrupt, non-image, huge or tiny inputs.
    """
    if source is None:
        raise ImageError("No image was given.")
    if isinstance(source, Image.Image):
        image = source
        _check_pixel_count(image.size)
    elif isinstance(source, np.ndarray):
        image = _array_to_pil(source)
    else:
        image = _open_file(source)
        _check_pixel_count(image.size)
        if max_side is not None:
            # JPEG can decode directly at 1/2, 1/4 or 1/8 scale: cheap for huge photos.
            image.draft("RGB", (max_side, max_side))
        check_decoded_bytes(image.mode, image.size)
        image = _decode(image)
        if max_side is not None:
            image = _reduce(image, max_side)
    image = _upright(image)
    image = to_rgb(image)
    if min(image.size) < MIN_SIDE:
        raise ImageError(
            f"The image is only {image.width}x{image.height} pixels; at least {MIN_SIDE} px per side is needed."
        )
    if max_side is not None and max(image.size) > max_side:
        image = image.copy()
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return image


def _open_file(source) -> Image.Image:
    """Open lazily (header only), so size checks run before any pixel is decoded."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise ImageError(f"No file at {path}.")
        size = path.stat().st_size
        name = path.name
        opener = lambda: Image.open(path)  # noqa: E731
    else:
        if isinstance(source, (bytes, bytearray, memoryview)):
            source = io.BytesIO(bytes(source))
        if not hasattr(source, "read"):
            raise ImageError(f"Cannot read an image from a {type(source).__name__}.")
        size = _stream_size(source)
        name = getattr(source, "name", "The upload")
        opener = lambda: Image.open(source)  # noqa: E731
    if size == 0:
        raise ImageError(f"{name} is empty (0 bytes): the upload may have failed.")
    if size is not None and size > MAX_FILE_BYTES:
        raise ImageError(
            f"{name} is {size / 2**20:.0f} MB; images up to {MAX_FILE_BYTES // 2**20} MB are accepted."
        )
    try:
        return opener()
    except Image.DecompressionBombError as error:
        raise ImageError(
            f"{name} has too many pixels to decode safely (at most {MAX_PIXELS / 1e6:.0f} megapixels; {error})"
        ) from error
    except UnidentifiedImageError as error:
        raise ImageError(
            f"{name} is not an image PIL can read (supported: JPEG, PNG, WebP, GIF, BMP, TIFF, ...)."
        ) from error
    except OSError as error:
        raise ImageError(f"{name} could not be read: it is corrupt or truncated ({error}).") from error


def _stream_size(stream) -> Optional[int]:
    try:
        position = stream.tell()
        end = stream.seek(0, io.SEEK_END)
        stream.seek(position)
        return end - position
    except (OSError, AttributeError, ValueError):
        return None


def _check_pixel_count(size: tuple[int, int]) -> None:
    width, height = size
    if width * height > MAX_PIXELS:
        raise ImageError(
            f"The image is {width}x{height} pixels ({width * height / 1e6:.0f} megapixels); "
            f"at most {MAX_PIXELS / 1e6:.0f} megapixels are accepted. Please downscale it first."
        )


def check_decoded_bytes(mode: str, size: tuple[int, int], what: str = "The image") -> None:
    """ImageError when an image of this PIL mode and size would take more than MAX_DECODED_BYTES."""
    width, height = size
    decoded = width * height * BYTES_PER_PIXEL.get(mode, 4)
    if decoded > MAX_DECODED_BYTES:
        raise ImageError(
            f"{what} is {width}x{height} pixels in mode {mode}: {decoded / 1e6:.0f} MB once decoded, and at "
            f"most {MAX_DECODED_BYTES / 1e6:.0f} MB are accepted. Please downscale it or save it as 8-bit."
        )


def check_mask_image(image, max_side: int, what: str = "The painted mask") -> None:
    """Check a mask layer (a numpy array or PIL image) by its size alone, before any conversion:
    2-D or H x W x 1-4 channels, at most `max_side` px a side; else ImageError."""
    if isinstance(image, Image.Image):
        width, height = image.size
    elif isinstance(image, np.ndarray):
        if image.ndim not in (2, 3) or (image.ndim == 3 and not 1 <= image.shape[2] <= 4):
            raise ImageError(f"{what} must be an H x W image, got an array of shape {list(image.shape)}.")
        height, width = image.shape[:2]
    else:
        raise ImageError(f"{what} must be an image, got a {type(image).__name__}.")
    if max(width, height) > max_side or min(width, height) < 1:
        raise ImageError(f"{what} is {width}x{height} pixels; masks of 1 to {max_side} px a side are accepted.")
    if isinstance(image, np.ndarray) and image.dtype.kind not in "biuf":
        raise ImageError(f"{what} must hold numbers (8-bit or float), got {image.dtype} pixels.")


def _reduce(image: Image.Image, max_side: int) -> Image.Image:
    """Shrink by the largest integer factor that keeps the longer side >= max_side (a box filter
    on the decoded pixels, before they are converted), so later steps work on the small copy."""
    factor = max(image.size) // max_side
    if factor < 2:
        return image
    if image.mode in HIGH_DEPTH_GRAY[:4]:
        image = _high_depth_gray_to_l(image)  # Image.reduce does not take 16-bit modes
    elif image.mode in ("P", "1"):
        image = to_rgb(image)
    return image.reduce(factor)


def _decode(image: Image.Image) -> Image.Image:
    """Decode the pixels; truncated or corrupt data raises ImageError instead of a PIL error."""
    try:
        image.seek(0)  # animated GIF / multi-page TIFF: the first frame
        image.load()
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as error:
        raise ImageError(f"The image file is corrupt or truncated ({error}).") from error
    return image


def _upright(image: Image.Image) -> Image.Image:
    """Apply the EXIF orientation tag, so a phone photo is the way up its owner saw it."""
    try:
        return ImageOps.exif_transpose(image)
    except (OSError, ValueError, TypeError, SyntaxError):  # a broken EXIF block: keep the pixels as stored
        return image


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode -> 8-bit RGB: transparency over white, 16-bit/float scaled, CMYK converted."""
    if image.mode == "RGB":
        return image
    if image.mode in HIGH_DEPTH_GRAY:
        return _high_depth_gray_to_l(image).convert("RGB")
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV


def _high_depth_gray_to_l(image: Image.Image) -> Image.Image:
    """16-bit or 32-bit grey -> 8-bit grey, scaled by the range the data uses (16-bit unless every
    value fits in 8 bits; float in [0, 1] or [0, 255]), converted a strip of rows at a time."""
    extrema = image.getextrema()
    if image.mode == "F":
        top = 1.0 if extrema[1] <= 1.0 else 255.0
    else:
        top = 65535.0 if extrema[1] > 255 else 255.0
    gray = np.empty((image.height, image.width), np.uint8)
    for y in range(0, image.height, STRIP_ROWS):
        strip = np.asarray(image.crop((0, y, image.width, min(y + STRIP_ROWS, image.height))), dtype=np.float32)
        gray[y:y + strip.shape[0]] = np.clip(np.nan_to_num(strip) / top * 255.0, 0, 255).round()
    return Image.fromarray(gray, "L")


def _array_to_pil(array: np.ndarray) -> Image.Image:
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ImageError(f"An image array must be H x W or H x W x 3/4, got shape {list(array.shape)}.")
    _check_pixel_count((array.shape[1], array.shape[0]))
    if array.dtype != np.uint8:
        values = np.nan_to_num(array.astype(np.float64))
        if np.issubdtype(array.dtype, np.floating) and values.size and values.max() <= 1.0:
            values = values * 255.0
        elif array.dtype == np.uint16:
            values = values / 257.0
        array = np.clip(values, 0, 255).round().astype(np.uint8)
    mode = "L" if array.ndim == 2 else ("RGB" if array.shape[2] == 3 else "RGBA")
    return Image.fromarray(np.ascontiguousarray(array), mode)


# -- tensors -------------------------------------------------------------------------------------
def pil_to_tensor(image: Image.Image, resolution: Optional[int] = None) -> torch.Tensor:
    """RGB PIL image -> [1, 3, H, W] float in [-1, 1], resized (LANCZOS) to a square `resolution`."""
    image = to_rgb(image)
    if resolution is not None and image.size != (resolution, resolution):
        image = image.resize((resolution, resolution), Image.Resampling.LANCZOS)
    array = np.asarray(image, dtype=np.float32)
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0) / 127.5 - 1.0


def tensor_to_pil(image: torch.Tensor) -> Image.Image:
    """[1, 3, H, W] or [3, H, W] in [-1, 1] -> RGB PIL image."""
    if image.dim() == 4:
        if image.shape[0] != 1:
            raise ValueError(f"expected one image, got a batch of {image.shape[0]}")
        image = image[0]
    array = ((image.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return Image.fromarray(array.permute(1, 2, 0).numpy(), "RGB")
