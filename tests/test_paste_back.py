"""Pasting a result back into the photo: the mask follows the face, colours match at the seam, the
rest of the photo is untouched; photo links survive a library export. Faces here are synthetic
(68 landmarks drawn on a textured photo) except in the `real` test."""
import io

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter

from stylegan_core.inversion import align, paste_back
from stylegan_core.inversion.align import AlignError
from stylegan_core.library import CodeLibrary
from stylegan_core.inversion.paste_back import PhotoLink



def textured_photo(size=(300, 260), seed=0):
    noise = np.random.RandomState(seed).randint(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(noise).filter(ImageFilter.GaussianBlur(3))


def synthetic_landmarks(centre=(150.0, 120.0), eye_distance=40.0):
    """68 points in dlib's order with the parts the mask reads (jaw, eyebrows) on an upright face."""
    cx, cy = centre
    points = np.zeros((68, 2))
    angles = np.linspace(np.pi, 0, 17)  # the jaw: a half ellipse below the eyes, ear to ear
    points[0:17] = np.stack([cx + 1.1 * eye_distance * np.cos(angles), cy + 2.0 * eye_distance * np.sin(angles)], 1)
    points[17:27] = np.stack([cx + np.linspace(-1.3, 1.3, 10) * eye_distance, np.full(10, cy - 0.5 * eye_distance)], 1)
    points[36:42] = (cx - eye_distance / 2, cy)
    points[42:48] = (cx + eye_distance / 2, cy)
    points[30] = (cx, cy + 0.7 * eye_distance)  # the nose tip
    points[48] = (cx - 0.6 * eye_distance, cy + 1.2 * eye_distance)
    points[54] = (cx + 0.6 * eye_distance, cy + 1.2 * eye_distance)
    return points


def synthetic_face(photo, resolution=128, **kwargs):
    landmarks = synthetic_landmarks(**kwargs)
    quad = align.ffhq_quad(landmarks)
    return align.AlignedFace(image=align.warp_quad(photo, quad, resolution), quad=quad, source_size=photo.size,
                             landmarks=landmarks)


def at(image, point):
    return np.asarray(image, float)[int(point[1]), int(point[0])]


def test_pasting_the_crop_back_restores_the_photo_and_leaves_the_rest_alone():
    photo = textured_photo()
    face = synthetic_face(photo, 256)
    pasted = np.asarray(paste_back.paste_back(photo, face, face.image), float)
    original = np.asarray(photo, float)
    mask = np.asarray(paste_back.face_mask(face)) > 250
    assert mask.sum() > 2000 and np.abs(pasted - original)[mask].mean() < 4
    region = np.zeros(mask.shape, bool)
    left, top = np.floor(face.quad.min(0)).astype(int)
    right, bottom = np.ceil(face.quad.max(0)).astype(int)
    region[max(top, 0):bottom, max(left, 0):right] = True
    assert np.array_equal(pasted[~region], original[~region])


def test_the_mask_follows_the_face_not_the_square():
    photo = textured_photo()
    face = synthetic_face(photo)
    mask = paste_back.face_mask(face)
    assert mask.size == photo.size and mask.mode == "L"
    landmarks = face.landmarks
    assert at(mask, landmarks[30]) == 255  # the nose
    assert all(at(mask, point) > 200 for point in landmarks[0:17])  # the jaw line is pasted
    centre = face.quad.mean(0)
    for corner in face.quad:  # the square's corners, a little inside it, are the photo's
        assert at(mask, centre + 0.85 * (corner - centre)) == 0
    side = face.face_size
    below_chin = landmarks[8] + (0, 0.15 * side)
    assert at(mask, below_chin) == 0
    square_area = side * side
    assert 0.25 * square_area < (np.asarray(mask) > 127).sum() < 0.6 * square_area


def test_colours_are_matched_at_the_seam():
    photo = textured_photo()
    face = synthetic_face(photo, 256)
    tinted = Image.fromarray(np.clip(np.asarray(face.image, int) + (40, -25, 15), 0, 255).astype(np.uint8))
    pasted = paste_back.paste_back(photo, face, tinted)
    inside = np.asarray(paste_back.face_mask(face)) > 250
    error = np.abs(np.asarray(pasted, float) - np.asarray(photo, float))[inside].mean(0)
    assert error.max() < 5  # the tint is gone (it would be 40 / 25 / 15 without matching)


def test_a_centre_crop_pastes_its_whole_square_and_sizes_are_checked():
    photo = textured_photo()
    face = align.center_crop(photo, 64)
    mask = np.asarray(paste_back.face_mask(face), float)
    assert mask[130, 150] == 255 and mask[130, 15] == 0 and 0 < mask[130, 26] < 255  # feathered inside
    black = paste_back.paste_back(photo, face, Image.new("RGB", (64, 64)))
    assert black.size == photo.size
    with pytest.raises(AlignError, match="aligned in a 300x260"):
        paste_back.paste_back(photo.resize((100, 100)), face, face.image)
    with pytest.raises(AlignError, match="square"):
        paste_back.paste_back(photo, face, Image.new("RGB", (64, 32)))


def test_a_photo_link_keeps_a_reduced_photo_and_pastes_into_it():
    photo = textured_photo((600, 520))
    face = synthetic_face(photo, 128, centre=(300.0, 240.0), eye_distance=80.0)
    link = PhotoLink.from_face(photo, face, source="group.jpg", max_side=300)
    assert link.photo.size == (300, 260) and link.source_size == (300, 260)
    assert np.allclose(link.quad, face.quad / 2) and np.allclose(link.landmarks, face.landmarks / 2)
    pasted = link.paste(face.image)
    assert pasted.size == (300, 260)
    inside = np.asarray(paste_back.face_mask(link)) > 250
    assert np.abs(np.asarray(pasted, float) - np.asarray(link.photo, float))[inside].mean() < 5


def test_the_library_export_keeps_the_photo_link(tmp_path):
    photo = textured_photo()
    face = synthetic_face(photo)
    library = CodeLibrary()
    link = PhotoLink.from_face(photo, face, source="me.jpg")
    library.add(torch.zeros(1, 4, 8), "tiny", "inverted", "me", photo=link)
    library.add(torch.ones(1, 4, 8), "tiny", "seed", "seed 1")
    path = tmp_path / "library.npz"
    path.write_bytes(library.export_bytes())
    restored = CodeLibrary()
    me, seed = restored.import_file(str(path))
    assert seed.photo is None and me.photo is not None
    assert me.photo.source == "me.jpg" and me.photo.photo.size == photo.size
    assert np.allclose(me.photo.quad, link.quad) and np.allclose(me.photo.landmarks, link.landmarks)
    assert np.abs(np.asarray(me.photo.photo, float) - np.asarray(photo, float)).mean() < 3  # JPEG


def test_an_unreadable_photo_link_is_reported_and_the_codes_still_import(tmp_path):
    photo = textured_photo()
    library = CodeLibrary()
    library.add(torch.zeros(1, 4, 8), "tiny", "inverted", "me",
                photo=PhotoLink.from_face(photo, synthetic_face(photo)))
    with np.load(io.BytesIO(library.export_bytes())) as data:
        arrays = dict(data)
    arrays["photo_0_photo"] = np.frombuffer(b"not a jpeg at all", np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    buffer.seek(0)
    (entry,) = CodeLibrary().import_file(buffer)
    assert entry.photo is None and "lost" in entry.info["photo"]


@pytest.mark.real
def test_a_real_face_pasted_back_restores_the_photo():
    import skimage.data

    astronaut = Image.fromarray(skimage.data.astronaut())
    aligned = align.align_face(astronaut, 512)
    restored = np.asarray(paste_back.paste_back(astronaut, aligned, aligned.image), float)
    original = np.asarray(astronaut, float)
    inside = aligned.landmarks.astype(int)
    assert np.abs(restored - original)[inside[:, 1], inside[:, 0]].mean() < 6
    mask = np.asarray(paste_back.face_mask(aligned))
    nose, chin = aligned.landmarks[30].astype(int), aligned.landmarks[8]
    assert mask[nose[1], nose[0]] == 255
    assert at(mask, chin + (chin - aligned.landmarks[30]) * 0.6) == 0  # the neck stays the photo's
