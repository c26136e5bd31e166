"""The offline judges. Geometry on synthetic landmarks (fast); the networks on real faces (`real`):
scikit-image's astronaut (Eileen Collins, smiling, about 30-40 at the time), Grace Hopper (older,
neutral) and faces of the default model (seed 1: a neutral man, seed 3: a smiling man, seed 4: a
smiling woman turned to the image's left; looked at by eye)."""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from stylegan_core import judges
from stylegan_core.judges import geometry
from stylegan_core.judges.expression import _same_max_pool

ROOT = Path(__file__).resolve().parents[1]


def frontal_landmarks():
    """68 points: the six pose points of the generic head seen from the front, eyes and lips open."""
    points = np.zeros((68, 2))
    model = geometry.MODEL_POINTS[:, :2] * np.array([1.0, -1.0]) / 4 + 200  # image y down
    points[geometry.MODEL_LANDMARKS] = model
    for eye, (x0, x1) in ((geometry.LEFT_EYE, (143.75, 180)), (geometry.RIGHT_EYE, (220, 256.25))):
        xs = np.linspace(x0, x1, 4)
        points[eye] = [(xs[0], 157.5), (xs[1], 152), (xs[2], 152), (xs[3], 157.5), (xs[2], 163), (xs[1], 163)]
    points[60:68] = [(165, 238), (180, 234), (200, 233), (220, 234), (235, 238), (220, 246), (200, 247), (180, 246)]
    return points


def rotate_3d(yaw_deg):
    """Landmarks of the generic head turned by yaw (orthographic view)."""
    t = np.radians(yaw_deg)
    rotation = np.array([[np.cos(t), 0, np.sin(t)], [0, 1, 0], [-np.sin(t), 0, np.cos(t)]])
    turned = geometry.MODEL_POINTS @ rotation.T
    points = np.zeros((68, 2))
    points[geometry.MODEL_LANDMARKS] = turned[:, :2] * np.array([1.0, -1.0]) / 4 + 200
    return points


def test_frontal_pose_is_zero_and_known_yaw_is_recovered():
    assert np.allclose(geometry.head_pose(frontal_landmarks()), 0.0, atol=1e-6)
    for yaw in (-30.0, 15.0, 40.0):
        assert np.isclose(geometry.head_pose(rotate_3d(yaw))[0], yaw, atol=1e-6)


def test_mirroring_flips_yaw_and_roll_and_in_plane_rotation_is_roll():
    points = rotate_3d(20.0)
    mirrored = points.copy()
    mirrored[:, 0] = 400 - mirrored[:, 0]
    mirrored[geometry.MODEL_LANDMARKS[2:]] = mirrored[[geometry.MODEL_LANDMARKS[i] for i in (3, 2, 5, 4)]]
    yaw, _, roll = geometry.head_pose(mirrored)
    assert np.isclose(yaw, -20.0, atol=1e-6) and np.isclose(roll, 0.0, atol=1e-6)
    t = np.radians(10)  # counter-clockwise on screen (y down): x' = x cos + y sin, y' = -x sin + y cos
    centred = frontal_landmarks() - 200
    turned = centred @ np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]]) + 200
    assert np.isclose(geometry.head_pose(turned)[2], 10.0, atol=1e-6)


def test_openness_ratios():
    points = frontal_landmarks()
    assert 0.25 < geometry.eye_openness(points) < 0.35
    opened = geometry.mouth_openness(points)
    points[65:68, 1] = points[[63, 62, 61], 1]  # lower inner lip onto the upper one: closed
    assert geometry.mouth_openness(points) < 1e-9 < opened


def test_same_max_pool_pads_like_tensorflow():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    # TensorFlow 'same' with k=3, s=2 on 4 px: one pixel of padding at the end only
    assert _same_max_pool(x)[0, 0].tolist() == [[10.0, 11.0], [14.0, 15.0]]
    assert _same_max_pool(torch.zeros(1, 1, 15, 15)).shape[-1] == 8


@pytest.fixture(scope="module")
def astronaut():
    import skimage.data

    return Image.fromarray(skimage.data.astronaut())


@pytest.fixture(scope="module")
def model_faces():
    from stylegan_core.images import tensor_to_pil
    from stylegan_core.loading.zoo import load_model

    generator = load_model("ffhq-mobile").generator
    with torch.no_grad():
        return {seed: tensor_to_pil(generator.synthesis(generator.mapping(generator.seed_to_z(seed), psi=0.7))[0])
                for seed in (1, 3, 4)}


@pytest.mark.real
def test_astronaut_is_a_smiling_adult_facing_the_camera(astronaut):
    verdict = judges.judge_face(astronaut)
    assert verdict["faces"] >= 1
    assert 20 <= verdict["age"] <= 55
    assert verdict["expr_happy"] > 0.5 and verdict["expr_happy"] == max(
        verdict[f"expr_{e}"] for e in judges.EXPRESSIONS)
    assert abs(verdict["yaw"]) < 15 and abs(verdict["roll"]) < 15
    assert sum(verdict[f"expr_{e}"] for e in judges.EXPRESSIONS) == pytest.approx(1.0, abs=1e-4)


@pytest.mark.real
def test_grace_hopper_is_judged_older_and_not_smiling(astronaut):
    from stylegan_core.images import load_image

    hopper = judges.judge_face(load_image(ROOT / "benchmarks" / "data" / "grace_hopper.jpg"))
    assert hopper["age"] > judges.age(astronaut) + 15
    assert hopper["expr_happy"] < 0.3


@pytest.mark.real
def test_generated_faces_smile_gender_and_mirrored_yaw(model_faces):
    neutral, smiling, woman = (judges.judge_face(model_faces[s]) for s in (1, 3, 4))
    assert smiling["expr_happy"] - neutral["expr_happy"] > 0.5
    assert neutral["gender"] > 0.8 and woman["gender"] < 0.2
    mirrored_yaw, _, _ = judges.head_pose(ImageOps.mirror(model_faces[4]))
    assert woman["yaw"] < -10 and mirrored_yaw > 10
    assert abs(woman["yaw"] + mirrored_yaw) < 10


@pytest.mark.real
def test_no_face_raises_a_user_error():
    from stylegan_core.errors import UserError

    with pytest.raises(UserError):
        judges.age(Image.new("RGB", (256, 256), "grey"))
    assert judges.judge_or_none(Image.new("RGB", (256, 256), "grey")) is None
