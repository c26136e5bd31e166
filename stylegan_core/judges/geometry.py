"""Head pose and eye/mouth openness from dlib's 68 landmarks (iBUG 300-W numbering).

Pose: a generic 3D face (six points) is fitted to the landmarks with an orthographic camera (least
squares), which is accurate enough for the moderate angles StyleGAN faces show and needs no camera
intrinsics. Angles in degrees; yaw > 0 when the face turns towards the image's right, pitch > 0
when it tilts up, roll > 0 when it rotates counter-clockwise in the image. A mirrored image flips
the signs of yaw and roll.
"""
from __future__ import annotations

import numpy as np

# Generic head model (arbitrary units, x right, y up, z towards the camera) and its landmarks:
# nose tip, chin, outer eye corners, mouth corners.
MODEL_POINTS = np.array([
    (0.0, 0.0, 0.0), (0.0, -330.0, -65.0),
    (-225.0, 170.0, -135.0), (225.0, 170.0, -135.0),
    (-150.0, -150.0, -125.0), (150.0, -150.0, -125.0),
])
MODEL_LANDMARKS = [30, 8, 36, 45, 48, 54]
LEFT_EYE, RIGHT_EYE = list(range(36, 42)), list(range(42, 48))
INNER_LIPS = list(range(60, 68))


def head_pose(landmarks: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees from [68, 2] landmarks in image coordinates (y down)."""
    image = landmarks[MODEL_LANDMARKS] * np.array([1.0, -1.0])  # to y up, like the model
    model = MODEL_POINTS - MODEL_POINTS.mean(0)
    projection, *_ = np.linalg.lstsq(model, image - image.mean(0), rcond=None)  # [3, 2]
    rows = projection.T / np.linalg.norm(projection.T, axis=1, keepdims=True)
    rotation = np.vstack([rows, np.cross(rows[0], rows[1])])
    u, _, vt = np.linalg.svd(rotation)  # nearest true rotation
    rotation = u @ vt
    yaw = np.degrees(np.arcsin(np.clip(rotation[0, 2], -1.0, 1.0)))
    pitch = np.degrees(np.arctan2(rotation[1, 2], rotation[2, 2]))
    roll = np.degrees(np.arctan2(rotation[1, 0], rotation[0, 0]))
    return float(yaw), float(pitch), float(roll)


def _eye_aspect_ratio(points: np.ndarray) -> float:
    vertical = np.linalg.norm(points[1] - points[5]) + np.linalg.norm(points[2] - points[4])
    return float(vertical / (2.0 * np.linalg.norm(points[0] - points[3])))


def eye_openness(landmarks: np.ndarray) -> float:
    """Mean eye aspect ratio of both eyes (about 0.3 open, below 0.15 closed)."""
    return 0.5 * (_eye_aspect_ratio(landmarks[LEFT_EYE]) + _eye_aspect_ratio(landmarks[RIGHT_EYE]))


def mouth_openness(landmarks: np.ndarray) -> float:
    """Inner-lip gap over mouth width (0 closed, about 0.3-0.5 wide open)."""
    lips = landmarks[INNER_LIPS]
    gap = sum(np.linalg.norm(lips[i] - lips[8 - i]) for i in (1, 2, 3)) / 3.0
    return float(gap / np.linalg.norm(lips[0] - lips[4]))
