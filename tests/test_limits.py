"""Bad input and limits: every operation stays within its memory budget at its limits, and crafted
files and images are refused (or converted) before they cost memory. All cases are cheap: tiny
models, small files that declare huge contents, and limits monkeypatched down where a real-size
case would be slow."""
import io
import math
import struct
import tracemalloc
import zipfile
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from stylegan_core import codes as code_limits, images, latents, library
from stylegan_core.editing import edits, feature_blend
from stylegan_core.errors import UserError
from stylegan_core.images import ImageError, check_mask_image, load_image
from stylegan_core.latents import LatentError, load_latent, save_latent
from stylegan_core.library import CodeLibrary, LibraryError
from stylegan_core.models.mobile_stylegan import tiny_mobile_stylegan
from stylegan_core.models.stylegan2 import tiny_stylegan2

from peak_memory import peak_tensor_bytes, peak_traced_bytes
from ui.tabs.blend import painted_mask


# -- memory budgets of the operations, measured on tiny models -----------------------------------
@pytest.fixture(scope="module", params=["mobile_stylegan", "stylegan2"])
def generator(request):
    if request.param == "mobile_stylegan":
        return tiny_mobile_stylegan(seed=1)
    return tiny_stylegan2(seed=1, resolution=64)


@pytest.fixture(scope="module")
def synthesis_bytes(generator):
    """S: the peak of one synthesis of one code, the unit the budgets are written in."""
    ws = edits.random_codes(generator, [1], 0.7)
    with torch.no_grad():
        return peak_tensor_bytes(lambda: generator.synthesis(ws))


def operations_at_their_limits(generator):
    codes = edits.random_codes(generator, list(range(feature_blend.MAX_PANORAMA_CODES)), 0.7)
    mask = torch.rand(feature_blend.MAX_MASK_SIDE, feature_blend.MAX_MASK_SIDE).numpy()
    side = edits.MAX_MIXING_SEEDS
    return {
        "morph_frames": lambda: edits.morph_frames(generator, codes[:1], codes[1:2], edits.MAX_MORPH_FRAMES),
        "render_codes": lambda: edits.render_codes(
            generator, codes[:1].expand(edits.MAX_MORPH_FRAMES, -1, -1)),
        "style_mixing_grid": lambda: edits.mixing_grid(generator, codes[:side], codes[side:2 * side], "coarse",
                                                       ["source"] * side, ["destination"] * side),
        "feature_blend": lambda: feature_blend.feature_blend(generator, codes[:1], codes[1:2], mask,
                                                             pose_from_a=True),
        "render_panorama": lambda: feature_blend.render_panorama(generator, codes),
    }


def test_every_operation_stays_within_its_budget_at_its_limits(generator, synthesis_bytes, monkeypatch):
    """Measured at lowered limits: every budget is linear in its limit, so what holds for 6 frames,
    2 x 2 seeds, 4 panorama codes and a 512 px mask holds at the real limits (measuring those
    under the tensor tracker would take minutes). Tensors and numpy arrays are measured apart."""
    for module, name, value in ((edits, "MAX_MORPH_FRAMES", 6), (edits, "MAX_MIXING_SEEDS", 2),
                                (feature_blend, "MAX_PANORAMA_CODES", 4), (feature_blend, "MAX_MASK_SIDE", 512)):
        monkeypatch.setattr(module, name, value)
    for name, call in operations_at_their_limits(generator).items():
        tensors, arrays = peak_tensor_bytes(call), peak_traced_bytes(call)
        budget = edits.worst_case_bytes(name, synthesis_bytes, generator.resolution)
        assert tensors + arrays <= budget, (name, tensors, arrays, budget)


def test_the_budgets_are_not_vacuous(generator, synthesis_bytes):
    """The measurement sees what the budgets are about: more frames take more."""
    codes = edits.random_codes(generator, [1, 2], 0.7)
    few = peak_tensor_bytes(lambda: edits.morph_frames(generator, codes[:1], codes[1:], 2))
    many = peak_tensor_bytes(lambda: edits.morph_frames(generator, codes[:1], codes[1:], 6))
    assert many - few >= 4 * 12 * generator.resolution ** 2
    with pytest.raises(ValueError, match="no budget"):
        edits.worst_case_bytes("teleport", synthesis_bytes, generator.resolution)


def test_at_1024_px_the_grid_fits_its_side_limit_and_the_outputs_are_bounded():
    grid_side = edits.grid_cell_size(1024, edits.MAX_MIXING_SEEDS + 1) * (edits.MAX_MIXING_SEEDS + 1)
    assert grid_side <= edits.MAX_GRID_SIDE
    # the 16 x 16 request is refused, not rendered as a 17408 px image
    with pytest.raises(ValueError, match="seeds"):
        edits.style_mixing_grid(tiny_stylegan2(seed=0, resolution=32), range(16), range(16, 32))


def test_a_panorama_is_at_most_its_side_limit_long(monkeypatch):
    generator = tiny_stylegan2(seed=0, resolution=32)
    monkeypatch.setattr(feature_blend, "MAX_PANORAMA_SIDE", 4 * 32)
    codes = edits.random_codes(generator, range(5), 0.7)
    assert feature_blend.render_panorama(generator, codes[:4]).shape[-1] == 4 * 32
    with pytest.raises(ValueError, match="panorama codes at 32 px"):
        feature_blend.render_panorama(generator, codes)


def test_studio_refuses_a_grid_over_the_limit_with_a_user_message():
    with pytest.raises(UserError, match=f"between 1 and {edits.MAX_MIXING_SEEDS}"):
        seeds = code_limits.parse_seeds("0-15")
        edits.style_mixing_grid(tiny_stylegan2(seed=0, resolution=32), seeds, seeds)


# -- latent and library files -----------------------------------------------------------------------
def npz(**arrays) -> io.BytesIO:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    buffer.seek(0)
    return buffer


def latent_file(ws, name="me", model_name="tiny") -> io.BytesIO:
    return npz(ws=ws, model_name=np.array(model_name), space=np.array("w+"), name=np.array(name))


def library_file(codes, names=None, count=None) -> io.BytesIO:
    arrays = {"format": np.array(library.LIBRARY_FORMAT), "count": np.array(len(codes) if count is None else count)}
    for i, ws in enumerate(codes):
        arrays.update({f"ws_{i}": ws, f"name_{i}": np.array((names or [f"c{j}" for j in range(len(codes))])[i]),
                       f"model_name_{i}": np.array("tiny"), f"source_{i}": np.array("seed")})
    return npz(**arrays)


def test_a_small_file_declaring_a_huge_array_is_refused_before_decompressing():
    zeros = np.zeros((1, 8192, 1024), np.float32)  # 32 MB of zeros: ~32 KB compressed
    file = latent_file(zeros)
    del zeros
    assert len(file.getvalue()) < 200_000
    tracemalloc.start()
    try:
        for read in (load_latent, lambda f: CodeLibrary().import_file(f)):
            file.seek(0)
            with pytest.raises((LatentError, LibraryError), match="unpacks to"):
                read(file)
        assert tracemalloc.get_traced_memory()[1] < 1_000_000
    finally:
        tracemalloc.stop()


def forged(member: str, declared_shape, payload: bytes, others=None) -> io.BytesIO:
    """An .npz whose `member` has a header declaring `declared_shape` float32 but holds `payload`."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": declared_shape})
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{member}.npy", header.getvalue() + payload)
        for key, value in (others or {"model_name": "tiny", "space": "w+"}).items():
            item = io.BytesIO()
            np.save(item, np.array(value))
            archive.writestr(f"{key}.npy", item.getvalue())
    buffer.seek(0)
    return buffer


@pytest.mark.parametrize("file, words", [
    (lambda: forged("ws", (1, 4, 8), b"\0" * 16), "corrupt"),  # a header that lies about its data
    (lambda: latent_file(np.zeros((1, latents.MAX_NUM_WS + 1, 8), np.float32)), "at most"),
    (lambda: latent_file(np.zeros((1, 4, latents.MAX_W_DIM + 1), np.float32)), "at most"),
    (lambda: latent_file(np.zeros((latents.MAX_CODES_PER_FILE + 1, 4, 8), np.float32)), "at most"),
    (lambda: latent_file(np.zeros((1, 4, 8), np.int64)), "float codes"),
    (lambda: latent_file(np.zeros((1, 4, 8), np.complex64)), "float codes"),
    (lambda: latent_file(np.zeros((4, 4, 4, 4), np.float32)), "float codes"),
    (lambda: latent_file(np.zeros((1, 4, 8), np.float32), name="x" * (latents.MAX_NAME_CHARS + 1)), "characters"),
    (lambda: latent_file(np.zeros((1, 4, 8), np.float32), model_name=["a", "b"]), "one text"),
    (lambda: latent_file(np.full((1, 4, 8), latents.MAX_ABS_CODE_VALUE * 10, np.float32)), "values up to"),
    (lambda: latent_file(np.full((1, 4, 8), 1e300, np.float64)), "values up to"),
    (lambda: npz(**{f"a{i}": np.zeros(1) for i in range(latents.MAX_NPZ_MEMBERS + 1)}), "arrays"),
])
def test_crafted_latent_files_are_refused_with_a_reason(file, words):
    with pytest.raises(LatentError, match=words):
        load_latent(file())
    with pytest.raises(LibraryError, match=words):
        CodeLibrary().import_file(file())


def test_a_zip_member_that_is_not_an_array_is_refused():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("ws.npy", b"\x93NUMPY\x09\x00" + b"x" * 30)
        archive.writestr("evil.py", b"print('hi')")
    buffer.seek(0)
    with pytest.raises(LatentError):
        load_latent(buffer)


@pytest.mark.parametrize("codes, count, words", [
    ([np.full((1, 4, 8), np.nan, np.float32)], None, "NaN"),
    ([np.full((1, 4, 8), np.inf, np.float32)], None, "infinite"),
    ([np.full((1, 4, 8), 1e9, np.float32)], None, "values up to"),
    ([np.zeros((1, 4, 8), np.float32)], 1000, "1 to"),
    ([np.zeros((1, 4, 8), np.float32)], 2, "incomplete"),
    ([np.zeros((1, 4, 8), np.float32)], -1, "1 to"),
])
def test_library_files_are_checked_like_single_latents(codes, count, words):
    lib = CodeLibrary()
    lib.add(torch.ones(1, 4, 8), "tiny", "seed", "kept")
    with pytest.raises(LibraryError, match=words):
        lib.import_file(library_file(codes, count=count))
    assert lib.names() == ["kept"]  # a refused file adds nothing and removes nothing


def test_a_long_name_in_a_library_file_is_refused():
    with pytest.raises(LibraryError, match="characters"):
        CodeLibrary().import_file(library_file([np.zeros((1, 4, 8), np.float32)], names=["n" * 65]))


def test_importing_a_file_twice_adds_its_codes_once():
    lib = CodeLibrary()
    codes = [np.random.default_rng(i).standard_normal((1, 4, 8)).astype(np.float32) for i in range(3)]
    first = lib.import_file(library_file(codes))
    again = lib.import_file(library_file(codes))
    assert len(lib) == 3 and [e.name for e in again] == [e.name for e in first]
    single = io.BytesIO()
    save_latent(single, torch.from_numpy(codes[1]), "tiny", name="other name")
    single.seek(0)
    assert lib.import_file(single)[0].name == first[1].name and len(lib) == 3
    save_latent(single := io.BytesIO(), torch.from_numpy(codes[1]), "another model")
    single.seek(0)
    lib.import_file(single)  # the same numbers for another model are another code
    assert len(lib) == 4


def test_a_library_already_full_still_takes_a_file_it_holds(monkeypatch):
    monkeypatch.setattr(library, "MAX_ENTRIES", 2)
    lib = CodeLibrary()
    codes = [np.full((1, 4, 8), float(i), np.float32) for i in range(2)]
    lib.import_file(library_file(codes))
    assert len(lib.import_file(library_file(codes))) == 2


# -- images ---------------------------------------------------------------------------------------
def encoded(image, fmt, **save_args) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **save_args)
    return buffer.getvalue()


def png_16bit_rgb(pixels: np.ndarray) -> bytes:
    """A 16-bit-per-channel RGB PNG (PIL cannot write one)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    height, width, _ = pixels.shape
    rows = b"".join(b"\0" + pixels[y].astype(">u2").tobytes() for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))


def pixel(image, x=10, y=10):
    return np.asarray(image)[y, x].tolist()


@pytest.mark.parametrize("name, data, expected", [
    ("grey", lambda: encoded(Image.new("L", (32, 32), 90), "PNG"), [90, 90, 90]),
    ("1-bit", lambda: encoded(Image.new("1", (32, 32), 1), "PNG"), [255, 255, 255]),
    ("grey + alpha", lambda: encoded(Image.new("LA", (32, 32), (0, 0)), "PNG"), [255, 255, 255]),
    ("RGBA half transparent", lambda: encoded(Image.new("RGBA", (32, 32), (0, 0, 0, 128)), "PNG"), [127] * 3),
    ("palette", lambda: encoded(Image.new("RGB", (32, 32), (200, 30, 10)).convert("P", palette=Image.Palette.ADAPTIVE), "PNG"), [200, 30, 10]),
    ("palette + transparency", lambda: encoded(Image.new("P", (32, 32), 0), "PNG", transparency=0), [255] * 3),
    ("CMYK JPEG", lambda: encoded(Image.new("CMYK", (32, 32), (0, 0, 0, 255)), "JPEG"), [0, 0, 0]),
    ("CMYK TIFF", lambda: encoded(Image.new("CMYK", (32, 32), (0, 255, 255, 0)), "TIFF"), [255, 0, 0]),
    ("16-bit grey PNG", lambda: encoded(Image.fromarray(np.full((32, 32), 257 * 70, np.uint16)), "PNG"), [70] * 3),
    ("16-bit RGB PNG", lambda: png_16bit_rgb(np.full((32, 32, 3), [65535, 257 * 128, 0])), [255, 128, 0]),
    ("32-bit integer TIFF", lambda: encoded(Image.fromarray(np.full((32, 32), 50, np.int32)), "TIFF"), [50] * 3),
    ("float TIFF in [0, 1]", lambda: encoded(Image.fromarray(np.full((32, 32), 0.5, np.float32)), "TIFF"),
     [128] * 3),
    ("YCbCr JPEG", lambda: encoded(Image.new("RGB", (32, 32), (20, 120, 220)), "JPEG", quality=100), [20, 120, 220]),
])
def test_every_colour_mode_becomes_8bit_rgb(name, data, expected):
    image = load_image(data())
    assert image.mode == "RGB" and image.size == (32, 32)
    assert np.abs(np.array(pixel(image)) - expected).max() <= 2, name


def test_exif_rotated_photo_is_upright_and_downscaled_correctly():
    photo = Image.new("RGB", (400, 200), (255, 0, 0))
    photo.paste((0, 0, 255), (0, 0, 100, 200))  # blue on the left as stored
    exif = Image.Exif()
    exif[0x0112] = 8  # "rotate 90 degrees counter-clockwise to display": the left edge goes to the bottom
    loaded = load_image(encoded(photo, "JPEG", exif=exif.tobytes(), quality=95), max_side=100)
    assert loaded.size == (50, 100)
    assert pixel(loaded, 25, 95)[2] > 200 and pixel(loaded, 25, 5)[0] > 200


def test_images_are_limited_by_decoded_bytes_not_only_pixels(monkeypatch):
    side = 64
    monkeypatch.setattr(images, "MAX_DECODED_BYTES", side * side * 2 - 1)
    assert load_image(encoded(Image.new("L", (side, side), 9), "PNG")).size == (side, side)  # 1 byte a pixel
    with pytest.raises(ImageError, match="mode I;16.*8-bit"):
        load_image(encoded(Image.fromarray(np.full((side, side), 999, np.uint16)), "PNG"))
    with pytest.raises(ImageError, match="mode RGB"):
        load_image(encoded(Image.new("RGB", (side, side)), "PNG"))


def test_a_big_jpeg_is_measured_at_its_reduced_decoding_scale(monkeypatch):
    big = encoded(Image.new("RGB", (1600, 1600), (10, 200, 30)), "JPEG")
    monkeypatch.setattr(images, "MAX_DECODED_BYTES", 1600 * 1600)  # a quarter of the full decode
    assert load_image(big, max_side=400).size == (400, 400)  # decoded at 1/4 scale: fits
    with pytest.raises(ImageError, match="MB once decoded"):
        load_image(big, max_side=None)


@pytest.mark.parametrize("mode, value, expected", [
    ("I;16", 257 * 200, [200] * 3), ("P", None, [200, 30, 10]), ("RGBA", (0, 0, 255, 255), [0, 0, 255]),
    ("1", 1, [255] * 3), ("F", 0.25, [64] * 3),
])
def test_large_images_of_every_mode_are_reduced_before_conversion(mode, value, expected):
    if mode == "P":
        image = Image.new("RGB", (1000, 600), (200, 30, 10)).convert("P", palette=Image.Palette.ADAPTIVE)
    elif mode == "I;16":
        image = Image.fromarray(np.full((600, 1000), value, np.uint16))
    elif mode == "F":
        image = Image.fromarray(np.full((600, 1000), value, np.float32))
    else:
        image = Image.new(mode, (1000, 600), value)
    loaded = load_image(encoded(image, "TIFF" if mode == "F" else "PNG"), max_side=100)
    assert loaded.size == (100, 60) and loaded.mode == "RGB"
    assert np.abs(np.array(pixel(loaded, 50, 30)) - expected).max() <= 1


def test_mask_layers_are_checked_by_size_before_conversion():
    check_mask_image(np.zeros((64, 48, 4), np.uint8), 64)
    check_mask_image(Image.new("L", (64, 64)), 64)
    for bad, words in [
        (np.zeros((65, 8, 4), np.uint8), "65 pixels"),
        (Image.new("RGBA", (8, 100)), "8x100"),
        (np.zeros((8, 8, 7), np.uint8), "shape"),
        (np.zeros((0, 8), np.uint8), "1 to"),
        (np.zeros((8, 8, 4), np.complex128), "must hold numbers"),
        ("not an image", "str"),
    ]:
        with pytest.raises(ImageError, match=words):
            check_mask_image(bad, 64)


def test_a_huge_painted_mask_is_refused_before_it_is_converted():
    side = feature_blend.MAX_MASK_SIDE + 1
    layer = np.lib.stride_tricks.as_strided(np.zeros(4, np.uint8), (side, side, 4), (0, 0, 1))  # no memory
    tracemalloc.start()
    try:
        with pytest.raises(ImageError, match="masks of 1 to"):
            painted_mask({"background": None, "layers": [layer], "composite": None})
        assert tracemalloc.get_traced_memory()[1] < 1_000_000
    finally:
        tracemalloc.stop()
    painted = np.zeros((32, 32, 4), np.uint8)
    painted[:, 16:, 3] = 255
    mask = painted_mask({"layers": [painted]})
    assert mask.dtype == np.float32 and mask[0, 0] == 0 and mask[0, 31] == 1


def test_limits_are_consistent():
    # a library export of a full library is a file the importer accepts
    assert library.MAX_ENTRIES <= latents.MAX_CODES_PER_FILE
    assert latents.MAX_UNCOMPRESSED_BYTES >= latents.MAX_CODES_PER_FILE * latents.MAX_NUM_WS * latents.MAX_W_DIM * 4
    assert math.isfinite(latents.MAX_ABS_CODE_VALUE)


# -- faces too small or cut off (dlib's real models) --------------------------------------------------
@pytest.fixture(scope="module")
def astronaut():
    from pathlib import Path

    return load_image(Path(__file__).resolve().parents[1] / "examples" / "astronaut.jpg")


@pytest.mark.real
def test_a_face_cut_off_by_the_border_is_refused_or_noted(astronaut):
    from stylegan_core.inversion import align

    box = align.detect_faces(astronaut)[0]
    half = astronaut.crop((int(box.left + 0.4 * box.width), 0, astronaut.width, astronaut.height))
    with pytest.raises(align.AlignError, match="cut off by the photo's border"):
        align.align_face(half, 256)
    no_chin = astronaut.crop((0, 0, astronaut.width, int(box.bottom - 0.25 * box.height)))
    aligned = align.align_face(no_chin, 256)
    assert any("cut off" in note for note in aligned.warnings)
    assert not any("cut off" in note for note in align.align_face(astronaut, 256).warnings)


@pytest.mark.real
def test_a_face_below_the_minimum_size_gets_a_message_not_a_crop(astronaut):
    from stylegan_core.inversion import align

    small = astronaut.resize((80, 80), Image.Resampling.LANCZOS)  # found, but its crop is ~27 px
    with pytest.raises(align.AlignError, match="only 27 px across; at least 32 px"):
        align.align_face(small, 256)
    speck = astronaut.resize((48, 48), Image.Resampling.LANCZOS)  # too small to be found at all
    with pytest.raises(align.NoFaceError, match="No face was found"):
        align.align_face(speck, 256)
