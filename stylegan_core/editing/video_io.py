"""Reading and writing clips with PyAV, whose wheels ship FFmpeg (no system ffmpeg is assumed).

Frames are decoded at the source's own rate, up to a cap; the output is H.264 in MP4 at the same
rate, written frame by frame as a *fragmented* MP4 so that a stopped or crashed run still leaves a
playable file, then remuxed (no re-encoding) with the source's audio copied in.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Iterator, Optional, Union

import numpy as np
from PIL import Image

from ..errors import UserError

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".webm", ".mov", ".mkv", ".avi", ".m4v")
MAX_DECODED_BYTES = 1_500_000_000  # all kept frames together, RGB: bounds one request's memory
MAX_FRAME_SIDE = 4096
FALLBACK_FPS = Fraction(25)  # only when the container states no rate at all


class VideoError(UserError):
    """The file is not a video we can read or write (with the reason)."""


@dataclass
class Clip:
    """Decoded frames (RGB PIL images) and what the output needs to match the source."""

    frames: list[Image.Image]
    fps: Fraction
    source: Path
    has_audio: bool
    truncated: bool  # the source had more frames than the cap
    variable_rate: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def size(self) -> tuple[int, int]:
        return self.frames[0].size

    @property
    def duration_s(self) -> float:
        return len(self.frames) / float(self.fps)


def _open(path: Union[str, os.PathLike]):
    import av

    path = Path(path)
    if not path.is_file():
        raise VideoError(f"No video file at {path.name!r}.")
    try:
        container = av.open(str(path))
    except (av.FFmpegError, ValueError) as error:
        raise VideoError(f"{path.name!r} is not a video this app can read ({type(error).__name__}); "
                         "use an mp4, webm or mov file.") from error
    if not container.streams.video:
        container.close()
        raise VideoError(f"{path.name!r} has no video track.")
    return container


def _stream_rate(stream) -> tuple[Fraction, bool]:
    """The frame rate to write, and whether the source's rate varies (then its average is used)."""
    average = stream.average_rate
    guessed = stream.guessed_rate
    rate = average or guessed or stream.base_rate
    if not rate:
        return FALLBACK_FPS, True
    variable = bool(average and guessed and abs(float(average) - float(guessed)) > 0.01 * float(guessed))
    return Fraction(rate), variable


def read_clip(path: Union[str, os.PathLike], max_frames: int) -> Clip:
    """Decode up to `max_frames` frames at the source rate. Raises VideoError for non-videos,
    empty videos and frames too large to hold."""
    import av

    if max_frames < 1:
        raise VideoError("The frame cap must be at least 1.")
    container = _open(path)
    try:
        stream = container.streams.video[0]
        fps, variable = _stream_rate(stream)
        frames, truncated = _decode_frames(container, stream, max_frames)
        has_audio = bool(container.streams.audio)
    except av.FFmpegError as error:
        raise VideoError(f"The video could not be decoded ({error.__class__.__name__}); the file may be "
                         "damaged or use a codec this build cannot read.") from error
    finally:
        container.close()
    if not frames:
        raise VideoError("The video has no frames that could be decoded.")
    notes = []
    if truncated:
        notes.append(f"The clip is longer than the cap: only its first {len(frames)} frames "
                     f"({len(frames) / float(fps):.1f} s) are used.")
    if variable:
        notes.append(f"The clip has a variable frame rate: the output uses its average, {float(fps):.2f} fps.")
    return Clip(frames, fps, Path(path), has_audio, truncated, variable, notes)


def _decode_frames(container, stream, max_frames: int) -> tuple[list[Image.Image], bool]:
    frames: list[Image.Image] = []
    budget = MAX_DECODED_BYTES
    for frame in container.decode(stream):
        if len(frames) == max_frames:
            return frames, True
        if max(frame.width, frame.height) > MAX_FRAME_SIDE:
            raise VideoError(f"The video is {frame.width}x{frame.height}; at most {MAX_FRAME_SIDE} px a side "
                             "are supported. Scale it down first.")
        budget -= frame.width * frame.height * 3
        if budget < 0:
            raise VideoError(f"{len(frames)} frames of {frame.width}x{frame.height} already fill the memory "
                             "allowed for one clip: lower the frame cap or the resolution.")
        frames.append(frame.to_image())
    return frames, False


def _even_size(size: tuple[int, int]) -> tuple[int, int]:
    """H.264 in 4:2:0 needs even sides: odd ones get one replicated edge pixel."""
    return size[0] + size[0] % 2, size[1] + size[1] % 2


def _to_even(image: Image.Image) -> Image.Image:
    width, height = _even_size(image.size)
    if (width, height) == image.size:
        return image
    pixels = np.asarray(image.convert("RGB"))
    padded = np.pad(pixels, ((0, height - image.height), (0, width - image.width), (0, 0)), mode="edge")
    return Image.fromarray(padded)


class FrameWriter:
    """H.264 frames into a fragmented MP4, one at a time: what is written is always playable."""

    def __init__(self, path: Union[str, os.PathLike], fps: Fraction, size: tuple[int, int], crf: int = 20):
        import av

        self.path = Path(path)
        self.count = 0
        self._container = av.open(str(self.path), "w", format="mp4",
                                  options={"movflags": "frag_keyframe+empty_moov+default_base_moof",
                                           "flush_packets": "1"})
        self._stream = self._container.add_stream("libx264", rate=fps)
        self._stream.width, self._stream.height = _even_size(size)
        self._stream.pix_fmt = "yuv420p"
        # A keyframe (and so a fragment on disk) every second bounds what a crash can lose.
        self._stream.options = {"crf": str(crf), "preset": "veryfast", "g": str(max(1, round(float(fps))))}

    def write(self, image: Image.Image) -> None:
        import av

        frame = av.VideoFrame.from_image(_to_even(image.convert("RGB")))
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.count += 1

    def close(self) -> None:
        if self._container is None:
            return
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()
        self._container = None

    def __enter__(self) -> "FrameWriter":
        return self

    def __exit__(self, *_exc) -> None:
        self.close()


def mux_audio(video_path: Union[str, os.PathLike], audio_source: Union[str, os.PathLike],
              out_path: Union[str, os.PathLike]) -> Path:
    """Copy `video_path`'s video and `audio_source`'s first audio track (cut to the video's length)
    into `out_path`, without re-encoding either. Without an audio track the video is remuxed alone."""
    import av

    out_path = Path(out_path)
    with av.open(str(video_path)) as video_in, av.open(str(audio_source)) as audio_in, \
            av.open(str(out_path), "w", format="mp4", options={"movflags": "+faststart"}) as out:
        video_stream = video_in.streams.video[0]
        out_video = out.add_stream_from_template(video_stream)
        audio_streams = audio_in.streams.audio
        out_audio = out.add_stream_from_template(audio_streams[0]) if audio_streams else None
        end_s = _duration_s(video_in, video_stream)
        for packet in _packets(video_in, video_stream):
            packet.stream = out_video
            out.mux(packet)
        if out_audio is not None:
            for packet in _packets(audio_in, audio_streams[0]):
                if packet.pts is not None and float(packet.pts * packet.time_base) >= end_s:
                    break
                packet.stream = out_audio
                out.mux(packet)
    return out_path


def _packets(container, stream) -> Iterator:
    for packet in container.demux(stream):
        if packet.dts is not None:  # the flush packet at the end carries nothing
            yield packet


def _duration_s(container, stream) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    frames = stream.frames or 0
    rate = stream.average_rate or FALLBACK_FPS
    return frames / float(rate) if frames else float("inf")


def probe(path: Union[str, os.PathLike]) -> dict:
    """Frame count, rate, size and audio presence of a clip, for tests and the CLI."""
    container = _open(path)
    try:
        stream = container.streams.video[0]
        count = sum(1 for _ in container.decode(stream))
        fps, _ = _stream_rate(stream)
        return {"frames": count, "fps": float(fps), "width": stream.width, "height": stream.height,
                "audio": bool(container.streams.audio)}
    finally:
        container.close()


def write_clip(frames: list[Image.Image], path: Union[str, os.PathLike], fps: Union[float, Fraction],
               audio_tone_hz: Optional[float] = None) -> Path:
    """Encode frames into an H.264 MP4 that browsers play while it loads (the index first); with
    `audio_tone_hz`, a sine tone as AAC audio (synthetic test clips)."""
    import av

    path = Path(path)
    fps = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"}) as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height = _even_size(frames[0].size)
        video.pix_fmt = "yuv420p"
        audio = out.add_stream("aac", rate=44100) if audio_tone_hz else None
        for image in frames:
            for packet in video.encode(av.VideoFrame.from_image(_to_even(image.convert("RGB")))):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        if audio is not None:
            _encode_tone(out, audio, audio_tone_hz, len(frames) / float(fps))
    return path


def _encode_tone(out, stream, hz: float, seconds: float) -> None:
    import av

    rate, chunk = 44100, 1024
    samples = (0.2 * np.sin(2 * np.pi * hz * np.arange(int(rate * seconds)) / rate)).astype(np.float32)
    for start in range(0, len(samples), chunk):
        block = samples[start:start + chunk]
        frame = av.AudioFrame.from_ndarray(block.reshape(1, -1), format="fltp", layout="mono")
        frame.sample_rate = rate
        frame.pts = start
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode():
        out.mux(packet)
