"""Editing a face through a short clip: track, align, invert, edit, render, paste back, encode.

The published video pipelines (StyleGAN3 editing, seed 004; STIT) and what people trip over with
them shape each step:
- the crop follows dlib's 68 landmarks, but its centre and axes are smoothed along time (Gaussian,
  sigma 1 frame for the centre, 3 for the axes), or the face jitters; frames where the face is
  lost are bridged from their neighbours and reported;
- the first frame gets the full projector; each later frame starts from the previous frame's code
  with few steps (neighbouring frames differ little), which is what makes a CPU run feasible;
- codes are smoothed along time with (0.25, 0.75, 1, 0.75, 0.25)/3 and the fine rows (colour,
  micro texture) are shared by the whole clip (the first frame's), which stops texture flicker;
- the same edit is applied to every code; results go back into the frame with the inverse crop
  transform and a feathered face mask, so everything outside the face is the source's pixels;
- frames are written as they finish at the source's frame rate, and the audio is copied.
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch
from PIL import Image

from ..inversion import align
from . import video_io
from ..inversion.paste_back import paste_back
from .. import codes
from ..errors import UserError
from ..models.generator import Generator
from ..images import tensor_to_pil
from ..inversion.projector import ProjectorOptions, project

CENTRE_SIGMA_FRAMES = 1.0
AXES_SIGMA_FRAMES = 3.0
CODE_KERNEL = np.array([0.25, 0.75, 1.0, 0.75, 0.25]) / 3.0
SHARED_ROWS_FROM_RESOLUTION = 128  # rows driving 128 px and up: colour scheme and micro texture
DEFAULT_MAX_FRAMES = 90
MAX_FRAMES = 300
# Projector steps for the first frame and for each later (warm-started) frame.
QUALITY_STEPS = {"fast": (60, 4), "balanced": (80, 7), "quality": (120, 20)}
DEFAULT_QUALITY = "balanced"

EditFn = Callable[[torch.Tensor], torch.Tensor]  # ws [1, num_ws, w_dim] -> edited ws
# progress(stage, done, total, preview image or None)
VideoProgress = Callable[[str, int, int, Optional[Image.Image]], None]


class VideoEditError(UserError):
    """The clip cannot be edited as asked (no face, a bad setting), with the reason."""


# -- tracking ------------------------------------------------------------------------------------
@dataclass
class Track:
    """Per frame: the chosen face's 68 landmarks in frame coordinates, or None where it was lost."""

    landmarks: list[Optional[np.ndarray]]

    @property
    def found(self) -> list[bool]:
        return [points is not None for points in self.landmarks]

    @property
    def found_fraction(self) -> float:
        return sum(self.found) / len(self.landmarks)


def _box_centre(box: align.FaceBox) -> np.ndarray:
    return np.array([(box.left + box.right) / 2, (box.top + box.bottom) / 2])


def _nearest_box(boxes: Sequence[align.FaceBox], centre: np.ndarray, max_jump: float) -> Optional[align.FaceBox]:
    """The detection closest to where the face was, unless it is too far to be the same face."""
    if not boxes:
        return None
    best = min(boxes, key=lambda box: float(np.linalg.norm(_box_centre(box) - centre)))
    return best if np.linalg.norm(_box_centre(best) - centre) <= max_jump else None


def track_face(frames: Sequence[Image.Image], face_index: int = 0) -> Track:
    """Follow face `face_index` (0 = largest in the first frame where faces are seen) through the
    clip: each frame takes the detection nearest to the last known position."""
    landmarks: list[Optional[np.ndarray]] = []
    centre, size = None, None
    for frame in frames:
        boxes = align.detect_faces(frame)
        if centre is None:
            box = boxes[face_index] if face_index < len(boxes) else None
        else:
            box = _nearest_box(boxes, centre, max_jump=0.75 * size)
        if box is None:
            landmarks.append(None)
            continue
        centre, size = _box_centre(box), max(box.width, box.height)
        landmarks.append(align.face_landmarks(frame, box))
    if not any(points is not None for points in landmarks):
        which = "a face" if face_index == 0 else f"face {face_index + 1}"
        raise VideoEditError(f"No frame of the clip shows {which} that dlib's detector can find "
                             "(it needs a clearly visible, roughly frontal face).")
    return Track(landmarks)


# -- crops ---------------------------------------------------------------------------------------
def quad_to_params(quad: np.ndarray) -> np.ndarray:
    """FFHQ crop square -> [centre x, centre y, x-axis x, x-axis y, y-axis x, y-axis y]."""
    centre = quad.mean(axis=0)
    x_axis = (quad[3] - quad[0]) / 2
    y_axis = (quad[1] - quad[0]) / 2
    return np.concatenate([centre, x_axis, y_axis])


def params_to_quad(params: np.ndarray) -> np.ndarray:
    centre, x_axis, y_axis = params[:2], params[2:4], params[4:6]
    return np.stack([centre - x_axis - y_axis, centre - x_axis + y_axis,
                     centre + x_axis + y_axis, centre + x_axis - y_axis])


def bridge_gaps(values: np.ndarray, found: Sequence[bool]) -> np.ndarray:
    """Fill rows of `values` [T, ...] where the face was not found by linear interpolation between
    the nearest found frames (holding the first/last found value at the ends)."""
    found = np.asarray(found, dtype=bool)
    times = np.flatnonzero(found)
    flat = values.reshape(len(values), -1).astype(np.float64)
    filled = np.stack([np.interp(np.arange(len(values)), times, flat[times, k]) for k in range(flat.shape[1])], 1)
    return filled.reshape(values.shape)


def gaussian_smooth(values: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian filter along axis 0 (time) with mirrored ends, so the first and last frames are not
    pulled towards zero."""
    if sigma <= 0 or len(values) < 2:
        return values.copy()
    radius = int(math.ceil(3 * sigma))
    offsets = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    kernel /= kernel.sum()
    index = np.clip(np.arange(len(values))[:, None] + offsets[None, :], 0, len(values) - 1)
    return np.tensordot(kernel, values[index].swapaxes(0, 1), axes=(0, 0))


def smooth_quads(track: Track) -> list[np.ndarray]:
    """One FFHQ crop square per frame from the tracked landmarks, bridged and smoothed over time."""
    params = np.stack([quad_to_params(align.ffhq_quad(points)) if points is not None else np.zeros(6)
                       for points in track.landmarks])
    params = bridge_gaps(params, track.found)
    smoothed = np.concatenate([gaussian_smooth(params[:, :2], CENTRE_SIGMA_FRAMES),
                               gaussian_smooth(params[:, 2:], AXES_SIGMA_FRAMES)], axis=1)
    return [params_to_quad(row) for row in smoothed]


def _crop_landmarks(track: Track, quads: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Landmarks per frame for the paste-back mask: measured ones where found; elsewhere the nearest
    found frame's landmarks, carried over in crop coordinates (the face moves with the crop)."""
    relative = [None if points is None else _to_crop(points, quad) for points, quad in zip(track.landmarks, quads)]
    times = [t for t, points in enumerate(relative) if points is not None]
    result = []
    for t, quad in enumerate(quads):
        nearest = relative[t] if relative[t] is not None else relative[min(times, key=lambda s: abs(s - t))]
        result.append(_from_crop(nearest, quad))
    return result


def _to_crop(points: np.ndarray, quad: np.ndarray) -> np.ndarray:
    basis = np.stack([quad[3] - quad[0], quad[1] - quad[0]], axis=1)  # unit square -> photo
    return np.linalg.solve(basis, (points - quad[0]).T).T


def _from_crop(relative: np.ndarray, quad: np.ndarray) -> np.ndarray:
    basis = np.stack([quad[3] - quad[0], quad[1] - quad[0]], axis=1)
    return relative @ basis.T + quad[0]


def aligned_frames(frames: Sequence[Image.Image], track: Track, resolution: int) -> list[align.AlignedFace]:
    """The aligned crop of every frame, from the smoothed squares."""
    quads = smooth_quads(track)
    landmarks = _crop_landmarks(track, quads)
    return [align.AlignedFace(image=align.warp_quad(frame, quad, resolution), quad=quad, source_size=frame.size,
                              landmarks=points, num_faces=1)
            for frame, quad, points in zip(frames, quads, landmarks)]


# -- codes ---------------------------------------------------------------------------------------
def fine_rows(generator: Generator) -> list[int]:
    """The rows shared by the whole clip: 128 px and up (the top two octaves of a small model)."""
    threshold = min(SHARED_ROWS_FROM_RESOLUTION, generator.resolution // 2)
    return [info.row for info in generator.describe_rows() if info.used and info.resolution >= threshold]


def smooth_codes(codes: torch.Tensor, generator: Generator, shared_fine: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Temporal filter on codes [T, num_ws, w_dim] with CODE_KERNEL (renormalised at the ends) and
    the fine rows replaced by `shared_fine` ([1, num_ws, w_dim]; the first code's by default)."""
    kernel = torch.as_tensor(CODE_KERNEL, dtype=codes.dtype)
    radius = len(kernel) // 2
    smoothed = torch.empty_like(codes)
    for t in range(len(codes)):
        low, high = max(0, t - radius), min(len(codes), t + radius + 1)
        weights = kernel[low - t + radius: high - t + radius]
        smoothed[t] = torch.tensordot(weights / weights.sum(), codes[low:high], dims=1)
    rows = fine_rows(generator)
    shared = codes[:1] if shared_fine is None else shared_fine
    smoothed[:, rows] = shared[:, rows]
    return smoothed


def quality_options(quality: str) -> tuple[ProjectorOptions, ProjectorOptions]:
    """Projector options for the first frame and for each warm-started later frame."""
    if quality not in QUALITY_STEPS:
        raise VideoEditError(f"Unknown quality {quality!r}; choose one of {', '.join(QUALITY_STEPS)}.")
    first, later = QUALITY_STEPS[quality]
    return (ProjectorOptions(steps=first, preview_every=0),
            ProjectorOptions(steps=later, preview_every=0, learning_rate=0.02, row_learning_rate=0.01,
                             warmup_fraction=0.0))


# -- the pipeline --------------------------------------------------------------------------------
@dataclass
class VideoResult:
    path: Path  # the mp4 (with audio when the source had some)
    frames_written: int
    frames_total: int
    found_fraction: float
    fps: float
    stopped: bool
    seconds: float
    codes: torch.Tensor  # [frames_written, num_ws, w_dim], the edited codes
    notes: list[str] = field(default_factory=list)


def invert_clip(generator: Generator, faces: Sequence[align.AlignedFace], quality: str,
                progress: Optional[VideoProgress] = None, cancel: Optional[threading.Event] = None) -> torch.Tensor:
    """Codes [T, num_ws, w_dim] of every aligned frame; stops early (fewer codes) when cancelled."""
    first, later = quality_options(quality)
    codes: list[torch.Tensor] = []
    for index, face in enumerate(faces):
        if cancel is not None and cancel.is_set():
            break
        options = first if index == 0 else later
        start = None if index == 0 else codes[-1]
        result = project(generator, face.image, options, cancel=cancel, start_ws=start)
        if result.stopped == "cancelled" and index > 0:
            break
        codes.append(result.ws)
        if progress is not None:
            progress("invert", index + 1, len(faces), result.image)
    return torch.cat(codes) if codes else torch.empty(0, generator.num_ws, generator.w_dim)


def render_into_frames(generator: Generator, frames: Sequence[Image.Image], faces: Sequence[align.AlignedFace],
                       codes: torch.Tensor, writer: video_io.FrameWriter, paste: Callable,
                       progress: Optional[VideoProgress] = None, cancel: Optional[threading.Event] = None) -> int:
    """Render each code, paste it into its frame, write it; returns how many frames were written."""
    for index, code in enumerate(codes):
        if cancel is not None and cancel.is_set():
            break
        with torch.no_grad():
            face_image = tensor_to_pil(generator.synthesis(code[None].to(generator.device)))
        output = paste(frames[index], faces[index], face_image)
        writer.write(output)
        if progress is not None:
            progress("render", index + 1, len(codes), output)
    return writer.count


def edit_clip(generator: Generator, clip: video_io.Clip, out_path: Path, edit: Optional[EditFn] = None,
              face_index: int = 0, quality: str = DEFAULT_QUALITY, progress: Optional[VideoProgress] = None,
              cancel: Optional[threading.Event] = None, paste: Optional[Callable] = None) -> VideoResult:
    """The whole pipeline on a decoded clip. A cancelled run still writes a playable mp4 of the frames
    done so far (with the matching stretch of audio)."""
    started = time.perf_counter()
    paste = paste or default_paste
    track = track_face(clip.frames, face_index)
    if progress is not None:
        progress("track", len(clip.frames), len(clip.frames), None)
    faces = aligned_frames(clip.frames, track, generator.resolution)
    codes = invert_clip(generator, faces, quality, progress, cancel)
    notes = list(clip.notes) + _tracking_notes(track)
    if len(codes):
        codes = smooth_codes(codes, generator)
        codes = torch.cat([edit(code[None]) for code in codes]) if edit is not None else codes
    out_path = Path(out_path)
    partial = out_path.with_name(out_path.stem + ".video-only.mp4")
    with video_io.FrameWriter(partial, clip.fps, clip.size) as writer:
        written = render_into_frames(generator, clip.frames, faces, codes, writer, paste, progress, cancel)
    if written == 0:  # stopped before the first frame was rendered: the writer made no file
        partial.unlink(missing_ok=True)
        raise VideoEditError("Stopped before the first frame was finished, so there is no video to show; "
                             "run again and let it reach the rendering stage.")
    video_io.mux_audio(partial, clip.source, out_path)
    partial.unlink(missing_ok=True)
    stopped = written < len(clip.frames)
    if stopped:
        notes.append(f"Stopped after {written} of {len(clip.frames)} frames; the video holds those frames.")
    return VideoResult(out_path, written, len(clip.frames), track.found_fraction, float(clip.fps), stopped,
                       time.perf_counter() - started, codes[:written], notes)


def _tracking_notes(track: Track) -> list[str]:
    lost = len(track.landmarks) - sum(track.found)
    if not lost:
        return []
    return [f"The face was not found in {lost} of {len(track.landmarks)} frames; those frames use the "
            "crop and code of their neighbours."]


def default_paste(frame: Image.Image, face: align.AlignedFace, result: Image.Image) -> Image.Image:
    """The photo paste-back used for stills: inverse crop transform, feathered face mask."""
    return paste_back(frame, face, result)


# -- the edit applied to every frame ---------------------------------------------------------------
def build_edit(generator: Generator, model_name: str, settings: Optional[dict] = None,
               style_ws: Optional[torch.Tensor] = None, style_path: Optional[str] = None,
               style_split: int = codes.DEFAULT_SPLIT_RESOLUTION) -> Optional[EditFn]:
    """One function ws -> ws for the clip: attribute sliders (name -> value), then the fine rows of a
    style code (a tensor, or a latent file) above `style_split` px. None when nothing is asked."""
    from .edits import crossover_codes

    steps: list[EditFn] = []
    if settings:
        from .directions import apply_directions, check_values, load_directions

        directions = load_directions(model_name, generator)
        check_values(directions, settings)
        in_s = [name for name in settings if directions.directions[name].in_style_space]
        if in_s:
            raise VideoEditError(f"{', '.join(in_s)}: style-channel sliders are not available for video yet; "
                                 "use the W version of the attribute (the name without '_s').")
        steps.append(lambda ws: apply_directions(directions, ws, settings))
    if style_path is not None:
        from ..latents import load_latent

        latent = load_latent(style_path)
        latent.check_fits(model_name, generator.num_ws, generator.w_dim)
        style_ws = latent.ws
    if style_ws is not None:
        steps.append(lambda ws: crossover_codes(generator, ws, style_ws, style_split))
    if not steps:
        return None

    def edit(ws: torch.Tensor) -> torch.Tensor:
        for step in steps:
            ws = step(ws)
        return ws
    return edit
