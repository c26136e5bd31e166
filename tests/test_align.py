"""FFHQ alignment with dlib on real photos, no-face and several-face images, faces near the border.

Tests that need the dlib landmark model (a real weight file found through stylegan_core.loading.weights)
are marked `real`. Photos: public-domain portraits, scikit-image's astronaut (Eileen Collins, NASA)
and Grace Hopper (US Navy; benchmarks/data, taken from matplotlib's sample data).
"""
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from stylegan_core.inversion import align
from stylegan_core.inversion.align import AlignError, NoFaceError
from stylegan_core.images import ImageError, load_image

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def astronaut():
    import skimage.data

    return Image.fromarray(skimage.data.astronaut())


@pytest.fixture(scope="module")
def hopper():
    return load_image(ROOT / "benchmarks" / "data" / "grace_hopper.jpg")


def eye_centres(landmarks):
    return landmarks[36:42].mean(0), landmarks[42:48].mean(0)


def upright_landmarks(eye_distance=40.0, mouth_drop=45.0, centre=(100.0, 100.0)):
    """68 points with only the ones the FFHQ recipe reads placed: eyes and mouth corners."""
    points = np.zeros((68, 2))
    cx, cy = centre
    points[36:42] = (cx - eye_distance / 2, cy)
    points[42:48] = (cx + eye_distance / 2, cy)
    points[48] = (cx - 15, cy + mouth_drop)
    points[54] = (cx + 15, cy + mouth_drop)
    return points


def test_ffhq_quad_geometry():
    quad = align.ffhq_quad(upright_landmarks())
    side = quad[3] - quad[0]
    down = quad[1] - quad[0]
    # half-side = max(2 x eye distance, 1.8 x eye-to-mouth) = 1.8 * 45 = 81; centre 4.5 px below the eyes
    assert np.allclose(side, (162, 0)) and np.allclose(down, (0, 162))
    assert np.allclose(quad.mean(0), (100, 104.5))
    theta = np.radians(30)
    rotation = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    rotated = align.ffhq_quad(upright_landmarks() @ rotation.T)
    assert np.allclose(rotated, quad @ rotation.T)


@pytest.mark.real
def test_real_face_is_aligned_like_ffhq(astronaut):
    faces = align.detect_faces(astronaut)
    assert len(faces) == 1
    aligned = align.align_face(astronaut, 256)
    assert aligned.image.size == (256, 256) and aligned.num_faces == 1
    assert aligned.landmarks.shape == (68, 2)
    side, down = aligned.quad[3] - aligned.quad[0], aligned.quad[1] - aligned.quad[0]
    assert np.dot(side, down) == pytest.approx(0, abs=1e-6) and np.linalg.norm(side) == pytest.approx(np.linalg.norm(down))
    # Detect again in the crop: the eyes sit level, centred, a quarter of the crop apart, just above the middle.
    left, right = eye_centres(align.face_landmarks(aligned.image, align.detect_faces(aligned.image)[0]) / 256)
    assert abs(left[1] - right[1]) < 0.02
    assert (left[0] + right[0]) / 2 == pytest.approx(0.5, abs=0.02)
    assert 0.2 < right[0] - left[0] < 0.3
    assert 0.4 < (left[1] + right[1]) / 2 < 0.5
    assert aligned.warnings == []  # a 173 px face enlarged to 256 px is sharp enough
    matrix = aligned.crop_to_photo_matrix()
    assert np.allclose(matrix @ [256, 256, 1], [*aligned.quad[2], 1])


def test_no_face_and_a_cartoon_raise_no_face_error_and_can_be_centre_cropped():
    smooth = Image.fromarray(np.tile(np.linspace(0, 255, 300, dtype=np.uint8), (200, 1)))
    cartoon = Image.new("RGB", (300, 300), "white")
    draw = ImageDraw.Draw(cartoon)
    draw.ellipse((30, 30, 270, 270), fill=(255, 220, 0), outline="black", width=4)
    draw.ellipse((95, 100, 125, 140), fill="black")
    draw.ellipse((175, 100, 205, 140), fill="black")
    draw.arc((90, 140, 210, 230), 20, 160, fill="black", width=6)
    for image in (smooth, cartoon):
        with pytest.raises(NoFaceError, match="centre crop"):
            align.align_face(image, 64)
    crop = align.center_crop(smooth, 64)
    assert crop.image.size == (64, 64) and crop.face_box is None
    assert np.allclose(crop.quad[0], (50, 0)) and np.allclose(crop.quad[2], (250, 200))


@pytest.mark.real
def test_two_faces_largest_first_and_selectable(astronaut, hopper):
    photo = Image.new("RGB", (1100, 620), (128, 128, 128))
    photo.paste(hopper, (0, 0))
    photo.paste(astronaut.resize((400, 400)), (650, 100))
    faces = align.detect_faces(photo)
    assert len(faces) == 2 and faces[0].area > faces[1].area
    assert faces[0].right < 550 < faces[1].left  # Hopper's face is the larger one
    first = align.align_face(photo, 128, faces=faces)
    second = align.align_face(photo, 128, face_index=1, faces=faces)
    assert first.quad[:, 0].max() < 550 < second.quad[:, 0].min()
    assert second.face_index == 1 and any("2 faces" in note for note in second.warnings)
    with pytest.raises(AlignError, match="has 2 face"):
        align.align_face(photo, 128, face_index=2, faces=faces)


def test_a_corrupt_file_never_reaches_alignment(tmp_path):
    broken = tmp_path / "photo.jpg"
    broken.write_bytes((ROOT / "benchmarks" / "data" / "grace_hopper.jpg").read_bytes()[:2000])
    with pytest.raises(ImageError, match="corrupt or truncated"):
        align.align_face(load_image(broken), 256)


@pytest.mark.real
def test_thumbnail_aligns_with_a_warning(astronaut):
    thumbnail = astronaut.crop((150, 40, 300, 190)).resize((64, 64), Image.Resampling.LANCZOS)
    aligned = align.align_face(thumbnail, 512)
    assert aligned.image.size == (512, 512)
    assert aligned.face_size < 128 and any("soft" in note for note in aligned.warnings)


@pytest.mark.real
def test_huge_photo_is_detected_on_a_reduced_copy_and_cropped_at_full_size(astronaut):
    huge = astronaut.resize((3072, 3072), Image.Resampling.BICUBIC)
    faces = align.detect_faces(huge)
    small = align.detect_faces(astronaut)[0]
    assert faces[0].left == pytest.approx(small.left * 6, rel=0.1)
    aligned = align.align_face(huge, 128, faces=faces)
    reference = align.align_face(astronaut, 128)
    assert aligned.face_size == pytest.approx(reference.face_size * 6, rel=0.05)
    difference = np.abs(np.asarray(aligned.image, float) - np.asarray(reference.image, float)).mean()
    assert difference < 12


# -- faces near the border: only the padding may be blurred -------------------------------------
# The FFHQ squares of the two portraits (from dlib's landmarks) lie inside the photos; each case crops
# the photo so that the square leaves it on one side (or two), keeping the face itself whole.
ASTRONAUT_QUAD = np.array([[142.9, 16.0], [134.2, 189.2], [307.4, 198.0], [316.2, 24.8]])
HOPPER_QUAD = np.array([[97.0, 42.6], [108.1, 368.6], [434.1, 357.5], [423.0, 31.5]])
EDGE_CASES = {  # name: (photo, crop box (left, top, right, bottom) of the photo)
    "top": ("astronaut", (0, 50, 512, 512)),
    "bottom": ("hopper", (0, 0, 512, 355)),
    "left": ("hopper", (120, 0, 512, 600)),
    "right": ("hopper", (0, 0, 400, 600)),
    "corner": ("astronaut", (160, 50, 512, 512)),
}


def laplacian_variance(image, mask):
    gray = np.asarray(image.convert("L"), float)
    laplacian = 4 * gray[1:-1, 1:-1] - gray[:-2, 1:-1] - gray[2:, 1:-1] - gray[1:-1, :-2] - gray[1:-1, 2:]
    return laplacian[mask[1:-1, 1:-1]].var()


def inside_box(quad, resolution, box, margin):
    """Pixels of the crop of `quad` whose photo position lies inside `box` by more than `margin` px."""
    top_left, bottom_left, _, top_right = quad
    centres = np.arange(resolution) + 0.5
    u, v = np.meshgrid(centres, centres)
    points = top_left + u[..., None] * (top_right - top_left) / resolution + v[..., None] * (bottom_left - top_left) / resolution
    left, top, right, bottom = box
    return ((points[..., 0] > left + margin) & (points[..., 0] < right - margin)
            & (points[..., 1] > top + margin) & (points[..., 1] < bottom - margin))


def edge_photo(case, astronaut, hopper):
    name, box = EDGE_CASES[case]
    photo, quad = (astronaut, ASTRONAUT_QUAD) if name == "astronaut" else (hopper, HOPPER_QUAD)
    return photo, quad, box


@pytest.mark.parametrize("case", EDGE_CASES)
def test_a_square_leaving_the_photo_keeps_the_photo_sharp(case, astronaut, hopper):
    photo, quad, box = edge_photo(case, astronaut, hopper)
    cropped = photo.crop(box)
    moved = quad - np.array(box[:2])
    assert moved.min() < 0 or (moved.max(0) > cropped.size).any()  # the square does leave the photo
    padded = align.warp_quad(cropped, moved, 256)
    unpadded = align.warp_quad(photo, quad, 256)  # the same square, inside the full photo
    inside = inside_box(quad, 256, box, margin=8)
    sharp = laplacian_variance(unpadded, inside)
    assert laplacian_variance(padded, inside) == pytest.approx(sharp, rel=0.1)
    # The padding is blurred and fades to a flat colour: far less detail than the photo.
    outside = ~inside_box(quad, 256, box, margin=-8)
    assert laplacian_variance(padded, outside) < 0.2 * sharp


@pytest.mark.real
@pytest.mark.parametrize("case", EDGE_CASES)
def test_a_face_near_the_edge_aligns_sharp_and_keeps_its_identity(case, astronaut, hopper):
    from stylegan_core.inversion import metrics

    photo, _, box = edge_photo(case, astronaut, hopper)
    cropped = photo.crop(box)
    aligned = align.align_face(cropped, 256)
    reference = align.align_face(photo, 256)
    inside = inside_box(aligned.quad + np.array(box[:2]), 256, box, margin=8)
    assert laplacian_variance(aligned.image, inside) == pytest.approx(
        laplacian_variance(reference.image, inside), rel=0.1)
    assert metrics.identity_distance(cropped, aligned.image) < 0.15


def test_concurrent_detection_gives_the_same_faces(astronaut):
    expected = align.detect_faces(astronaut)
    results = []
    threads = [threading.Thread(target=lambda: results.append(align.detect_faces(astronaut))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [expected] * 4


# -- several faces, rotated photos ---------------------------------------------------------------
def test_an_exif_rotated_photo_is_upright_before_detection(astronaut, tmp_path):
    stored = astronaut.transpose(Image.Transpose.ROTATE_90)  # the pixels as a phone held sideways stores them
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    path = tmp_path / "sideways.jpg"
    stored.save(path, quality=95, exif=exif)
    assert align.detect_faces(Image.open(path).convert("RGB")) == []  # as stored, the face lies on its side
    photo = load_image(path)
    assert photo.size == astronaut.size
    (face,) = align.detect_faces(photo)
    (upright,) = align.detect_faces(astronaut)
    assert abs(face.left - upright.left) < 8 and abs(face.top - upright.top) < 8


@pytest.mark.real
def test_each_face_of_a_group_photo_gives_its_own_crop_and_inversion():
    """Two generated people side by side: picking face i aligns and inverts that person."""
    import torch

    from stylegan_core.inversion import metrics
    from stylegan_core.loading import zoo
    from stylegan_core.images import tensor_to_pil
    from stylegan_core.inversion.projector import ProjectorOptions, project

    generator = zoo.load_model("ffhq-mobile").generator
    people = []
    for seed in (1, 6):
        with torch.no_grad():
            ws = generator.mapping(generator.seed_to_z(seed), psi=0.7)
            people.append(tensor_to_pil(generator.synthesis(ws)).resize((400, 400), Image.Resampling.LANCZOS))
    group = Image.new("RGB", (820, 420), (128, 128, 128))
    group.paste(people[0], (0, 10))
    group.paste(people[1], (420, 10))
    faces = align.detect_faces(group)
    assert len(faces) == 2
    descriptors = [metrics.face_descriptor(person) for person in people]
    assert np.linalg.norm(descriptors[0] - descriptors[1]) > metrics.SAME_PERSON_THRESHOLD
    options = ProjectorOptions(steps=10, preview_every=0)
    for index, box in enumerate(faces):
        chosen = 0 if (box.left + box.right) / 2 < 410 else 1
        aligned = align.align_face(group, 256, face_index=index, faces=faces)
        crop = metrics.face_descriptor(aligned.image)
        assert np.linalg.norm(crop - descriptors[chosen]) < 0.3 < np.linalg.norm(crop - descriptors[1 - chosen])
        result = project(generator, aligned.image, options).image
        scores = metrics.photo_metrics(group, aligned, result)
        other = metrics.face_descriptor_at(group, faces[1 - index])
        assert scores["id_distance"] < metrics.identity_distance(None, result, other)
