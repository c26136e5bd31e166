"""The Studio's video edit: a clip's face edited frame by frame (attribute sliders and/or a style
code's fine rows), with progress, an ETA and a partial video when stopped. A mixin of
`studio.Studio`; the pipeline itself is `editing.video.edit_clip`."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional

from PIL import Image

from .editing import video, video_io
from .library import CodeLibrary
from .worker import stream_from_worker

STAGE_NAMES = {"track": "tracking the face", "invert": "inverting frames", "render": "rendering frames"}


@dataclass
class VideoUpdate:
    """One update of a running video edit: progress while it runs, then the result (done=True)."""

    stage: str = ""
    done_frames: int = 0
    total_frames: int = 0
    preview: Optional[Image.Image] = None
    info: str = ""
    video_path: Optional[str] = None
    files: list[str] = field(default_factory=list)
    done: bool = False


class StageClock:
    """Seconds per frame of the current stage, for the ETA: timed from the stage's first report
    (the first inverted frame takes longer steps and is left out), so later frames cost about the same."""

    def __init__(self) -> None:
        self.stage, self.first_done, self.started = "", 0, time.perf_counter()

    def eta_s(self, stage: str, done: int, total: int) -> Optional[float]:
        now = time.perf_counter()
        if stage != self.stage:
            self.stage, self.first_done, self.started = stage, done, now
            return None
        timed_frames = done - self.first_done
        return (now - self.started) / timed_frames * (total - done) if timed_frames > 0 else None


def progress_line(stage: str, done: int, total: int, eta_s: Optional[float]) -> str:
    eta = "" if eta_s is None else f" · about {eta_s:.0f} s left in this stage"
    return f"{STAGE_NAMES.get(stage, stage)}: frame {done}/{total}{eta}"


class VideoStudio:
    """The Video tab's operation (see studio.Studio)."""

    def edit_video_stream(self, library: CodeLibrary, model_name: str, clip_path, face_index=0,
                          settings: Optional[dict] = None, style: Optional[str] = None,
                          max_frames=video.DEFAULT_MAX_FRAMES, quality: str = video.DEFAULT_QUALITY,
                          cancel: Optional[threading.Event] = None) -> Iterator[VideoUpdate]:
        """Edit the face of a clip, yielding progress updates and a final one with the mp4.

        settings: attribute slider values (name -> value; zeros are ignored); style: a code picker
        value whose fine rows restyle every frame (empty: none). Setting `cancel` (or closing this
        generator) stops the run; the frames done so far still make a playable video."""
        from .studio import StudioError, whole

        if clip_path is None:
            raise StudioError("upload a video clip first (mp4, webm or mov)")
        if quality not in video.QUALITY_STEPS:
            raise StudioError(f"unknown quality {quality!r}: one of {', '.join(video.QUALITY_STEPS)}")
        max_frames = whole(max_frames, "the frame cap", 1, video.MAX_FRAMES)
        face_index = whole(face_index, "the face number", 0, 99)
        loaded = self.load(model_name)
        edit = self._video_edit(library, loaded, settings, style)
        clip = video_io.read_clip(clip_path, max_frames)
        out_path = self.new_path(f"{Path(str(clip_path)).stem}_edited", ".mp4")
        yield VideoUpdate("read", 0, len(clip.frames),
                          info=f"read {len(clip.frames)} frames at {float(clip.fps):.2f} fps")
        result = yield from _edit_in_worker(loaded.generator, clip, out_path, edit, face_index, quality, cancel)
        notes = " ".join(result.notes)
        info = (f"{result.frames_written}/{result.frames_total} frames in {result.seconds:.1f} s on {self.device} "
                f"({quality}; face found in {result.found_fraction:.0%} of the frames)"
                + (f". {notes}" if notes else ""))
        yield VideoUpdate("done", result.frames_written, result.frames_total, info=info,
                          video_path=str(result.path), files=[str(result.path)], done=True)

    def _video_edit(self, library: CodeLibrary, loaded, settings: Optional[dict], style: Optional[str]):
        """The per-frame edit (None: a plain re-render, which shows how faithful the inversion is)."""
        from .studio import StudioError

        moved = {name: float(value) for name, value in (settings or {}).items() if value}
        style_ws = self.resolve_code(style, library, loaded.name) if (style or "").strip() else None
        edit = video.build_edit(loaded.generator, loaded.name, moved or None, style_ws)
        if edit is None:
            raise StudioError("choose an edit: move an attribute slider or pick a style code")
        return edit


def _edit_in_worker(generator, clip, out_path, edit, face_index, quality,
                    cancel: Optional[threading.Event]):
    """Run `video.edit_clip` in a thread, yielding its progress as VideoUpdates; returns its result.
    Closing the consumer (Stop, or the browser going away) sets `cancel`."""
    cancel = cancel or threading.Event()
    clock = StageClock()

    def task(emit):
        def report(stage, done, total, preview):
            emit(VideoUpdate(stage, done, total, preview, progress_line(stage, done, total,
                                                                          clock.eta_s(stage, done, total))))
        return video.edit_clip(generator, clip, out_path, edit, face_index, quality, progress=report, cancel=cancel)

    return (yield from stream_from_worker(task, cancel, "video"))
