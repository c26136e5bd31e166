"""SOAT region attribute transfer: masks from landmarks and the masked, pose-aligned blend
(tiny models with made-up landmarks; real weights with dlib marked)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import TINY_MODELS, tiny_codes, tiny_model
from stylegan_core.editing import feature_blend as fb, region_transfer as rt


def face_landmarks(size: float) -> np.ndarray:
    """A made-up frontal face in a size x size image, in dlib's 68-point layout: parts on ellipses
    at plausible places (eyes at 0.38/0.62 of the width, the mouth at 0.75 of the height)."""
    def ellipse(count, cx, cy, rx, ry, start=0.0, end=2 * np.pi):
        angles = np.linspace(start, end, count, endpoint=end - start < 2 * np.pi)
        return np.stack([cx + rx * np.cos(angles), cy + ry * np.sin(angles)], axis=1)

    parts = [
        ellipse(17, 0.5, 0.45, 0.36, 0.45, 0.0, np.pi)[::-1],  # jaw, left to right along the chin
        ellipse(5, 0.37, 0.36, 0.08, 0.03, np.pi, 2 * np.pi),  # brows
        ellipse(5, 0.63, 0.36, 0.08, 0.03, np.pi, 2 * np.pi),
        np.stack([np.full(4, 0.5), np.linspace(0.42, 0.58, 4)], axis=1),  # nose bridge
        ellipse(5, 0.5, 0.6, 0.06, 0.02, 0.0, np.pi),  # nostrils
        ellipse(6, 0.38, 0.43, 0.05, 0.02), ellipse(6, 0.62, 0.43, 0.05, 0.02),  # eyes
        ellipse(12, 0.5, 0.75, 0.11, 0.04), ellipse(8, 0.5, 0.75, 0.07, 0.015),  # mouth
    ]
    return np.concatenate(parts) * size


@pytest.fixture(scope="module", params=sorted(a for a in TINY_MODELS if a != "stylegan3"))
def generator(request):
    return tiny_model(request.param, seed=4)


@pytest.fixture(scope="module")
def codes(generator):
    return tiny_codes(generator, batch=2, seed=9, psi=0.8)


def render(generator, ws):
    with torch.no_grad():
        return generator.synthesis(ws)


def grown(mask: np.ndarray, pixels: int) -> torch.Tensor:
    """Where the mask is > 0, grown by `pixels` in every direction (a square neighbourhood; two
    1-D max filters): a boolean [H, W] tensor."""
    support = torch.from_numpy(mask > 0).float()[None, None]
    size = 2 * pixels + 1
    support = F.max_pool2d(support, (1, size), stride=1, padding=(0, pixels))
    return F.max_pool2d(support, (size, 1), stride=1, padding=(pixels, 0))[0, 0] > 0


# -- masks ----------------------------------------------------------------------------------------
def test_the_made_up_face_has_dlibs_layout():
    points = face_landmarks(100)
    assert points.shape == (68, 2)
    assert points[36:42, 0].mean() < points[42:48, 0].mean()  # right eye (image left) first
    assert points[17:27, 1].max() < points[36:48, 1].min() < points[48:60, 1].min()


@pytest.mark.parametrize("region", rt.REGIONS)
def test_each_region_mask_covers_its_landmarks_and_little_else(region):
    points = face_landmarks(256)
    mask = rt.region_mask(points, region, (256, 256))
    assert mask.shape == (256, 256) and mask.min() >= 0 and mask.max() <= 1
    assert 0.002 < mask.mean() < 0.6
    if region in rt.PART_REGIONS:
        groups, _ = rt.PART_REGIONS[region]
        for group in groups:
            x, y = points[list(group)].mean(axis=0).round().astype(int)
            assert mask[y, x] > 0.8
        assert mask[10, 10] == 0 and mask[245, 128] == 0


def test_the_face_and_hair_masks_do_not_overlap_before_feathering():
    points = face_landmarks(256)
    face = rt.region_mask(points, "face", (256, 256), feather=0)
    hair = rt.region_mask(points, "hair", (256, 256), feather=0)
    assert (face * hair).sum() <= 0.01 * face.sum()  # only the shared outline
    cx, cy = points[27:36].mean(axis=0).astype(int)
    assert face[cy, cx] == 1 and hair[cy, cx] == 0


def test_convex_hull_keeps_only_the_corners():
    square = np.array([[0, 0], [2, 0], [2, 2], [0, 2], [1, 1], [1, 0]], dtype=float)
    assert {tuple(p) for p in rt.convex_hull(square)} == {(0, 0), (2, 0), (2, 2), (0, 2)}


# -- the transfer -----------------------------------------------------------------------------------
def test_pixels_far_from_the_region_are_unchanged(generator, codes):
    """Only the layers at a quarter of the image size and above blend: farther than a quarter of
    the image from the mask, the target's pixels come out as they were."""
    size = generator.resolution
    min_resolution = size // 4
    result = rt.transfer_region(generator, codes[0:1], codes[1:2], "mouth", min_resolution=min_resolution,
                                landmarks=face_landmarks(size))
    target = render(generator, codes[0:1])
    near = grown(result.mask, size // 4)
    difference = (result.image - target).abs().amax(dim=1)[0]
    assert (~near).sum() > 0.25 * near.numel()
    assert difference[~near].max() < 1e-5
    assert difference[near].max() > 1e-2


def test_the_region_moves_towards_the_pose_aligned_reference(generator, codes):
    size = generator.resolution
    result = rt.transfer_region(generator, codes[0:1], codes[1:2], "face", min_resolution=8,
                                landmarks=face_landmarks(size), feather=0.0)
    target = render(generator, codes[0:1])
    reference = render(generator, fb.align_pose(generator, codes[1:2], codes[0:1]))
    inside = torch.from_numpy(result.mask == 1)
    to_reference = (result.image - reference).abs().mean(dim=1)[0][inside].mean()
    target_to_reference = (target - reference).abs().mean(dim=1)[0][inside].mean()
    assert to_reference < 0.5 * target_to_reference


def test_bad_region_input_raises_clear_errors(generator, codes):
    size = generator.resolution
    cases = [
        (lambda: rt.transfer_region(generator, codes[0:1], codes[1:2], "ears", landmarks=face_landmarks(size)), "region"),
        (lambda: rt.transfer_region(generator, codes[0:1], codes[1:2], "mouth", landmarks=np.zeros((5, 2))), "68"),
        (lambda: rt.transfer_region(generator, codes[0:1], codes[1:2], "mouth", min_resolution=4096,
                                    landmarks=face_landmarks(size)), "no layers"),
        (lambda: rt.transfer_region(generator, codes[0:1], None, "mouth"), "missing"),
        (lambda: rt.region_mask(face_landmarks(size), "mouth", (size, size), feather=-1), "feather"),
    ]
    for call, words in cases:
        with pytest.raises(ValueError, match=words):
            call()


def test_a_target_without_a_face_is_reported():
    blank = __import__("PIL.Image", fromlist=["Image"]).new("RGB", (256, 256), (128, 128, 128))
    with pytest.raises(rt.RegionError, match="no face"):
        rt.image_landmarks(blank)


# -- real weights ---------------------------------------------------------------------------------
def mouth_shape(landmarks: np.ndarray) -> np.ndarray:
    """Inner-lip opening and mouth width, both in eye distances."""
    eyes = np.linalg.norm(landmarks[42:48].mean(0) - landmarks[36:42].mean(0))
    return np.array([np.linalg.norm(landmarks[66] - landmarks[62]), np.linalg.norm(landmarks[54] - landmarks[48])]) / eyes


@pytest.mark.real
def test_real_mouth_transfer_is_local_and_moves_the_mouth_towards_the_reference():
    from stylegan_core.editing import edits
    from stylegan_core.loading import zoo
    from stylegan_core.images import tensor_to_pil

    generator = zoo.load_model("ffhq-mobile").generator
    codes = edits.random_codes(generator, [11, 22], psi=0.7)  # a closed mouth, a wide open smile
    result = rt.transfer_region(generator, codes[0:1], codes[1:2], "mouth")
    target = render(generator, codes[0:1])
    difference = (result.image - target).abs().amax(dim=1)[0]
    # Blending at 16 px and up: changes reach 5 cells of the 16 px layers (measured: 3e-7 there).
    far = ~grown(result.mask, 5 * generator.resolution // 16)
    assert far.float().mean() > 0.25 and difference[far].max() < 1e-5
    shapes = {name: mouth_shape(rt.image_landmarks(tensor_to_pil(image)))
              for name, image in (("target", target), ("result", result.image),
                                  ("reference", render(generator, codes[1:2])))}
    assert np.linalg.norm(shapes["result"] - shapes["reference"]) < 0.8 * np.linalg.norm(
        shapes["target"] - shapes["reference"])  # measured 0.69
    opening = [shapes[name][0] for name in ("target", "result", "reference")]
    assert opening[1] > opening[0] + 0.25 * (opening[2] - opening[0])  # the mouth opens (measured 0.33)


def test_cli_transfer_region_reports_a_target_without_a_face(tmp_path, capsys):
    from stylegan_core import cli
    from stylegan_core.loading import export, zoo

    zoo.clear_loaded_models()
    path = export.save_generator(tiny_model("stylegan2", seed=2), tmp_path / "tiny.safetensors")
    assert cli.main(["transfer-region", "1", "2", "--region", "mouth", "--checkpoint", str(path),
                     "--out", str(tmp_path / "out.png")]) == 1
    assert "no face" in capsys.readouterr().err
    zoo.clear_loaded_models()
