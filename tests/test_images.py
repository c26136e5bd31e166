"""Loading whatever users upload: formats, orientation, colour modes, and every kind of bad input."""
import io
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from stylegan_core import images
from stylegan_core.images import ImageError, load_image


def encoded(image, fmt, **save_args):
    buffer = io.BytesIO()
    image.save(buffer, fmt, **save_args)
    return buffer.getvalue()


def gradient(width=48, height=32):
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None, None]
    return Image.fromarray(np.concatenate([x + 0 * y, y + 0 * x, 255 - x + 0 * y], 2).astype(np.uint8))


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF"])
def test_common_formats_load_as_rgb(fmt):
    image = load_image(encoded(gradient(), fmt))
    assert image.mode == "RGB" and image.size == (48, 32)


def test_exif_orientation_is_applied():
    photo = Image.new("RGB", (40, 20), "red")
    photo.paste((0, 0, 255), (0, 0, 10, 20))  # blue on the left as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    loaded = load_image(encoded(photo, "JPEG", exif=exif.tobytes(), quality=95))
    assert loaded.size == (20, 40)
    top = np.asarray(loaded)[2, 10]
    assert top[2] > 200 and top[0] < 60  # the stored left edge is now on top


def test_transparency_is_composited_over_white():
    rgba = Image.new("RGBA", (20, 20), (255, 0, 0, 0))
    rgba.paste((0, 0, 0, 255), (0, 0, 10, 20))
    loaded = np.asarray(load_image(encoded(rgba, "PNG")))
    assert loaded[5, 5].tolist() == [0, 0, 0]
    assert loaded[5, 15].tolist() == [255, 255, 255]
    palette = Image.new("P", (20, 20), 0)
    palette.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    palette.info["transparency"] = 0
    assert np.asarray(load_image(encoded(palette, "PNG", transparency=0)))[0, 0].tolist() == [255, 255, 255]


def test_grayscale_16bit_and_cmyk_become_8bit_rgb():
    gray = load_image(encoded(Image.new("L", (20, 20), 100), "PNG"))
    assert np.asarray(gray)[0, 0].tolist() == [100, 100, 100]

    sixteen = np.full((20, 20), 65535, dtype=np.uint16)
    sixteen[:, :10] = 257 * 40
    deep = load_image(encoded(Image.fromarray(sixteen), "PNG"))
    assert deep.mode == "RGB"
    assert np.asarray(deep)[0, 0].tolist() == [40, 40, 40] and np.asarray(deep)[0, 15].tolist() == [255] * 3

    cmyk = load_image(encoded(Image.new("CMYK", (20, 20), (0, 255, 255, 0)), "JPEG"))
    red = np.asarray(cmyk)[10, 10]
    assert cmyk.mode == "RGB" and red[0] > 200 and red[1] < 60 and red[2] < 60


def png_bomb(width, height):
    """A valid 1-bit PNG of width x height zeros: tiny on disk, huge once decoded."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\0" * (1 + (width + 7) // 8)
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row * 1000) for _ in range(height // 1000)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_decompression_bomb_is_refused_before_decoding():
    bomb = png_bomb(20000, 20000)
    assert len(bomb) < 1_000_000
    with pytest.raises(ImageError, match="megapixels"):
        load_image(bomb)


def test_images_over_the_pixel_limit_are_refused(monkeypatch):
    monkeypatch.setattr(images, "MAX_PIXELS", 1000)
    with pytest.raises(ImageError, match="megapixels"):
        load_image(encoded(gradient(), "PNG"))
    with pytest.raises(ImageError, match="megapixels"):
        load_image(np.zeros((40, 40, 3), np.uint8))


def test_large_photos_are_downscaled():
    loaded = load_image(encoded(gradient(400, 200), "JPEG"), max_side=100)
    assert loaded.size == (100, 50)
    assert load_image(encoded(gradient(400, 200), "PNG"), max_side=None).size == (400, 200)


def test_a_thumbnail_loads_but_a_speck_does_not():
    assert load_image(encoded(gradient(64, 64), "PNG")).size == (64, 64)
    with pytest.raises(ImageError, match="at least 16 px"):
        load_image(encoded(gradient(8, 8), "PNG"))


def test_bad_inputs_have_clear_messages(tmp_path, monkeypatch):
    with pytest.raises(ImageError, match="No image"):
        load_image(None)
    with pytest.raises(ImageError, match="empty"):
        load_image(b"")
    with pytest.raises(ImageError, match="not an image"):
        load_image(b"%PDF-1.4 this is a document, not a picture")
    text = tmp_path / "notes.png"
    text.write_text("hello")
    with pytest.raises(ImageError, match="notes.png is not an image"):
        load_image(text)
    with pytest.raises(ImageError, match="No file"):
        load_image(tmp_path / "missing.jpg")
    with pytest.raises(ImageError, match="corrupt or truncated"):
        load_image(encoded(gradient(200, 200), "JPEG")[:600])
    with pytest.raises(ImageError, match="Cannot read"):
        load_image(12345)
    monkeypatch.setattr(images, "MAX_FILE_BYTES", 100)
    with pytest.raises(ImageError, match="MB"):
        load_image(encoded(gradient(), "BMP"))


def test_arrays_and_pil_images_are_accepted():
    as_float = load_image(np.full((20, 30, 3), 0.5, np.float32))
    assert as_float.size == (30, 20) and np.asarray(as_float)[0, 0].tolist() == [128] * 3
    assert np.asarray(load_image(np.full((20, 20), 257 * 9, np.uint16)))[0, 0].tolist() == [9] * 3
    assert load_image(np.zeros((20, 20, 4), np.uint8)).mode == "RGB"
    assert load_image(Image.new("LA", (20, 20))).mode == "RGB"
    with pytest.raises(ImageError, match="H x W"):
        load_image(np.zeros((20, 20, 2), np.uint8))


def test_tensor_round_trip():
    image = gradient()
    tensor = images.pil_to_tensor(image)
    assert tensor.shape == (1, 3, 32, 48) and tensor.min() >= -1 and tensor.max() <= 1
    assert np.array_equal(np.asarray(images.tensor_to_pil(tensor)), np.asarray(image))
    assert images.pil_to_tensor(image, 16).shape == (1, 3, 16, 16)
    with pytest.raises(ValueError, match="batch of 2"):
        images.tensor_to_pil(torch.zeros(2, 3, 4, 4))
