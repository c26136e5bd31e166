"""Video editing on synthetic clips made from still photos by a smooth camera move (pan and zoom).

For each clip and the default model: seconds per frame after the first, the share of frames where
the face was found, identity distance of each output frame's face to the INPUT frame's face (dlib,
no edit: the pipeline must keep the person), and temporal flicker: the mean absolute frame-to-frame
change inside the face region of the output, relative to the same measure on the input clip (1.0 =
as steady as the source). Writes results/video.md.

    python benchmarks/bench_video.py [--frames 12] [--quality fast]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from common import ROOT, machine

from stylegan_core.inversion import metrics
from stylegan_core.editing import video, video_io
from stylegan_core.loading import zoo
from stylegan_core.runtime import heap_reuse

PHOTOS = {"astronaut": ROOT / "examples" / "astronaut.jpg", "grace_hopper": ROOT / "benchmarks" / "data" / "grace_hopper.jpg"}


def camera_clip(photo: Image.Image, frames: int, size: int = 384) -> list[Image.Image]:
    """A slow pan plus zoom over the photo, centred on its middle third."""
    clip = []
    side = min(photo.size)
    for i in range(frames):
        t = i / max(frames - 1, 1)
        crop = side * (0.95 - 0.1 * t)
        left = (photo.width - crop) / 2 + 0.05 * side * (t - 0.5)
        top = (photo.height - crop) / 2
        clip.append(photo.resize((size, size), Image.Resampling.BICUBIC, box=(left, top, left + crop, top + crop)))
    return clip


def face_flicker(frames: list[Image.Image], faces) -> float:
    """Mean |frame t - frame t-1| inside the union of the face boxes (the quads' bounding box)."""
    quads = np.stack([face.quad for face in faces])
    left, top = np.floor(quads[..., 0].min()), np.floor(quads[..., 1].min())
    right, bottom = np.ceil(quads[..., 0].max()), np.ceil(quads[..., 1].max())
    box = (max(0, int(left)), max(0, int(top)), min(frames[0].width, int(right)), min(frames[0].height, int(bottom)))
    arrays = [np.asarray(frame.crop(box), dtype=np.float64) for frame in frames]
    return float(np.mean([np.abs(a - b).mean() for a, b in zip(arrays[1:], arrays[:-1])]))


def run(name: str, photo_path: Path, frames: int, quality: str, generator, model_name: str, out_dir: Path) -> dict:
    source = video_io.write_clip(camera_clip(Image.open(photo_path).convert("RGB"), frames),
                                 out_dir / f"{name}-in.mp4", 12, audio_tone_hz=330)
    clip = video_io.read_clip(source, frames)
    times = []

    def progress(stage, done, total, _preview):
        if stage == "invert":
            times.append(time.perf_counter())

    started = time.perf_counter()
    result = video.edit_clip(generator, clip, out_dir / f"{name}-out.mp4", quality=quality, progress=progress)
    total = time.perf_counter() - started
    output = video_io.read_clip(result.path, frames).frames
    faces = video.aligned_frames(clip.frames, video.track_face(clip.frames), generator.resolution)
    distances = [metrics.identity_distance(src, out) for src, out in zip(clip.frames, output)]
    found = [d for d in distances if d is not None]
    later = np.diff(times) if len(times) > 1 else np.array([float("nan")])
    return {
        "clip": name, "frames": len(clip.frames), "first_frame_s": times[0] - started if times else float("nan"),
        "later_frame_s": float(np.mean(later)), "total_s": total, "face_found": result.found_fraction,
        "id_mean": float(np.mean(found)) if found else float("nan"), "id_max": max(found, default=float("nan")),
        "flicker_ratio": face_flicker(output, faces) / max(face_flicker(clip.frames, faces), 1e-6),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--quality", default="fast", choices=sorted(video.QUALITY_STEPS))
    args = parser.parse_args()
    heap_reuse(True)
    loaded = zoo.load_model()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, path in PHOTOS.items():
            rows.append(run(name, path, args.frames, args.quality, loaded.generator, loaded.name, Path(tmp)))
            print(rows[-1], flush=True)
    lines = [
        "# Video editing (synthetic clips: pan + zoom over a still photo, 12 fps, 384 px)", "",
        f"Machine: {machine()}", f"Command: `python benchmarks/bench_video.py --frames {args.frames} "
        f"--quality {args.quality}`; model {loaded.name}; no edit (the identity test).", "",
        "| clip | frames | first frame s | later frames s/frame | total s | face found | ID to input frame mean / max | flicker vs input |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['clip']} | {r['frames']} | {r['first_frame_s']:.1f} | {r['later_frame_s']:.2f} | "
                     f"{r['total_s']:.1f} | {r['face_found']:.0%} | {r['id_mean']:.3f} / {r['id_max']:.3f} | "
                     f"{r['flicker_ratio']:.2f} |")
    lines += ["", "Targets (issue 17): <= 5 s per frame after the first at the default quality; identity "
              "< 0.5 to the input frame with no edit."]
    out = ROOT / "benchmarks" / "results" / "video.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
