"""Video editing: clip I/O with PyAV, crop smoothing, code smoothing, and the pipeline end to end on a
tiny generator over a synthetic clip made from a real photo by a smooth camera move."""
import subprocess
import sys
import threading
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stylegan_core.editing import video, video_io
from stylegan_core.models.mobile_stylegan import tiny_mobile_stylegan

REPO = Path(__file__).resolve().parents[1]


def coloured_frames(count, size=(64, 48)):
    return [Image.fromarray(np.full((size[1], size[0], 3), (10 * i) % 256, np.uint8)) for i in range(count)]


def camera_move(photo: Image.Image, count: int, size: int = 320, shift: int = 24):
    """Frames that pan smoothly across `photo` (a synthetic clip with a real face in it)."""
    frames = []
    for i in range(count):
        dx = round(shift * i / max(count - 1, 1))
        box = (80 + dx, 20, 80 + dx + size, 20 + size)
        frames.append(photo.crop(box))
    return frames


# -- I/O ------------------------------------------------------------------------------------------
def test_round_trip_keeps_rate_count_size_and_audio(tmp_path):
    path = video_io.write_clip(coloured_frames(12), tmp_path / "in.mp4", Fraction(30000, 1001), audio_tone_hz=440)
    clip = video_io.read_clip(path, max_frames=100)
    assert len(clip.frames) == 12 and not clip.truncated and clip.has_audio
    assert abs(float(clip.fps) - 29.97) < 0.01
    assert clip.size == (64, 48)


def test_the_cap_is_used_and_said(tmp_path):
    path = video_io.write_clip(coloured_frames(10), tmp_path / "in.mp4", 24)
    clip = video_io.read_clip(path, max_frames=4)
    assert len(clip.frames) == 4 and clip.truncated
    assert "first 4 frames" in clip.notes[0]


def test_odd_sizes_are_padded_to_even_for_h264(tmp_path):
    path = video_io.write_clip(coloured_frames(3, size=(33, 21)), tmp_path / "odd.mp4", 10)
    info = video_io.probe(path)
    assert (info["width"], info["height"]) == (34, 22) and info["frames"] == 3


@pytest.mark.parametrize("content", [b"", b"not a video at all" * 100])
def test_not_a_video_is_a_clear_error(tmp_path, content):
    path = tmp_path / "clip.mp4"
    path.write_bytes(content)
    with pytest.raises(video_io.VideoError, match="not a video"):
        video_io.read_clip(path, 10)


def test_an_image_file_is_refused_or_read_as_one_frame(tmp_path):
    path = tmp_path / "photo.png"
    coloured_frames(1)[0].save(path)
    try:
        clip = video_io.read_clip(path, 10)
    except video_io.VideoError:
        return
    assert len(clip.frames) == 1


def test_audio_is_copied_and_cut_to_the_video(tmp_path):
    source = video_io.write_clip(coloured_frames(24), tmp_path / "in.mp4", 24, audio_tone_hz=300)
    with video_io.FrameWriter(tmp_path / "part.mp4", Fraction(24), (64, 48)) as writer:
        for frame in coloured_frames(6):
            writer.write(frame)
    out = video_io.mux_audio(tmp_path / "part.mp4", source, tmp_path / "out.mp4")
    info = video_io.probe(out)
    assert info["audio"] and info["frames"] == 6 and info["fps"] == 24.0


def test_without_an_audio_track_the_video_is_remuxed_alone(tmp_path):
    source = video_io.write_clip(coloured_frames(5), tmp_path / "silent.mp4", 12)
    out = video_io.mux_audio(source, source, tmp_path / "out.mp4")
    assert video_io.probe(out) == {**video_io.probe(source), "audio": False}


def test_a_crash_while_writing_leaves_a_playable_file(tmp_path):
    """The fragmented MP4 is playable up to the last fragment even when the process dies."""
    target = tmp_path / "crash.mp4"
    script = (
        "import os, numpy as np\nfrom fractions import Fraction\nfrom PIL import Image\n"
        "from stylegan_core.editing import video_io\n"
        f"w = video_io.FrameWriter({str(target)!r}, Fraction(10), (64, 48))\n"
        "for i in range(40):\n"
        "    w.write(Image.fromarray(np.full((48, 64, 3), i * 6, np.uint8)))\n"
        "os._exit(3)\n"
    )
    run = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True)
    assert run.returncode == 3, run.stderr
    info = video_io.probe(target)
    assert 1 <= info["frames"] <= 30


# -- crops and codes -----------------------------------------------------------------------------
def test_quad_params_round_trip():
    quad = np.array([[10.0, 20.0], [12.0, 120.0], [112.0, 118.0], [110.0, 18.0]])
    assert np.allclose(video.params_to_quad(video.quad_to_params(quad)), quad)


def test_gaussian_smoothing_keeps_constants_and_lines_and_damps_jitter():
    constant = np.full((20, 2), 5.0)
    assert np.allclose(video.gaussian_smooth(constant, 3.0), constant)
    rng = np.random.default_rng(0)
    jitter = rng.normal(0, 1, (200, 1))
    assert video.gaussian_smooth(jitter, 1.0).std() < 0.6 * jitter.std()


def test_gaps_are_bridged_linearly_and_held_at_the_ends():
    values = np.array([[0.0], [0.0], [2.0], [0.0], [4.0], [0.0]])
    found = [False, True, True, False, True, False]
    filled = video.bridge_gaps(values, found)
    assert filled[:, 0].tolist() == [0.0, 0.0, 2.0, 3.0, 4.0, 4.0]


def test_code_smoothing_keeps_a_still_clip_and_shares_the_fine_rows():
    generator = tiny_mobile_stylegan(0)
    still = generator.mean_ws(1).repeat(7, 1, 1)
    assert torch.allclose(video.smooth_codes(still, generator), still, atol=1e-6)
    moving = torch.randn(7, generator.num_ws, generator.w_dim)
    smoothed = video.smooth_codes(moving, generator)
    fine = video.fine_rows(generator)
    assert fine and torch.equal(smoothed[:, fine], moving[:1, fine].expand(7, -1, -1))
    coarse = [r for r in range(generator.num_ws) if r not in fine]
    assert smoothed[:, coarse].diff(dim=0).abs().mean() < moving[:, coarse].diff(dim=0).abs().mean()


def test_unknown_quality_is_a_user_error():
    with pytest.raises(video.VideoEditError, match="quality"):
        video.quality_options("ultra")


# -- the pipeline ---------------------------------------------------------------------------------
@pytest.fixture
def random_vgg(random_vgg, monkeypatch):
    """The shared random VGG, and a few projector steps per frame."""
    monkeypatch.setattr(video, "QUALITY_STEPS", {**video.QUALITY_STEPS, "balanced": (3, 1)})


@pytest.fixture(scope="module")
def face_clip(tmp_path_factory):
    photo = Image.open(REPO / "examples" / "astronaut.jpg").convert("RGB")
    frames = camera_move(photo, 6)
    path = tmp_path_factory.mktemp("clip") / "face.mp4"
    return video_io.write_clip(frames, path, 12, audio_tone_hz=220)


@pytest.mark.real  # dlib's detector and landmarks on real frames; the generator is tiny
def test_pipeline_edits_the_face_only_and_keeps_rate_and_audio(tmp_path, random_vgg, face_clip):
    generator = tiny_mobile_stylegan(0)
    clip = video_io.read_clip(face_clip, max_frames=10)
    shift = torch.zeros(1, generator.num_ws, generator.w_dim)
    shift[..., 0] = 3.0
    result = video.edit_clip(generator, clip, tmp_path / "out.mp4", edit=lambda ws: ws + shift)
    info = video_io.probe(result.path)
    assert info["frames"] == 6 and info["fps"] == 12.0 and info["audio"]
    assert result.found_fraction == 1.0 and not result.stopped
    out = video_io.read_clip(result.path, 10).frames
    source = clip.frames
    corner = (slice(0, 12), slice(0, 12))  # far from the face: the source's pixels (up to the codec)
    for before, after in zip(source, out):
        b, a = np.asarray(before, float), np.asarray(after, float)
        assert np.abs(b[corner] - a[corner]).mean() < 6
    assert np.abs(np.asarray(source[0], float) - np.asarray(out[0], float)).mean() > 1  # the face changed


@pytest.mark.real
def test_a_stopped_run_leaves_a_playable_partial_video(tmp_path, random_vgg, face_clip):
    generator = tiny_mobile_stylegan(0)
    clip = video_io.read_clip(face_clip, max_frames=10)
    cancel = threading.Event()

    def progress(stage, done, total, preview):
        if stage == "render" and done == 2:
            cancel.set()

    result = video.edit_clip(generator, clip, tmp_path / "out.mp4", progress=progress, cancel=cancel)
    assert result.stopped and result.frames_written == 2
    assert video_io.probe(result.path)["frames"] == 2
    assert any("Stopped after 2 of 6" in note for note in result.notes)


@pytest.mark.real
def test_no_face_in_any_frame_is_a_clear_error(tmp_path):
    path = video_io.write_clip(coloured_frames(3, size=(96, 96)), tmp_path / "blank.mp4", 10)
    clip = video_io.read_clip(path, 10)
    with pytest.raises(video.VideoEditError, match="No frame"):
        video.track_face(clip.frames)


# -- the command line ------------------------------------------------------------------------------
@pytest.mark.real
def test_cli_writes_the_video_with_rate_and_audio(random_vgg, checkpoint_file, face_clip, tmp_path, capsys):
    from stylegan_core import cli
    import json

    out = tmp_path / "edited.mp4"
    code = cli.main(["video", str(face_clip), "--out", str(out), "--max-frames", "4",
                     "--checkpoint", str(checkpoint_file(tiny_mobile_stylegan(0)))])
    assert code == 0, capsys.readouterr().err
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["frames"] == 4 and report["fps"] == 12.0
    assert video_io.probe(out) == {"frames": 4, "fps": 12.0, "width": 320, "height": 320, "audio": True}


@pytest.mark.parametrize("args, message", [
    (["--set", "smile"], "NAME=VALUE"),
    (["--max-frames", "0"], "--max-frames"),
    (["--face-index", "0"], "counts from 1"),
])
def test_cli_refuses_bad_settings(tmp_path, capsys, args, message):
    from stylegan_core import cli

    clip = video_io.write_clip(coloured_frames(2), tmp_path / "c.mp4", 10)
    assert cli.main(["video", str(clip), "--out", str(tmp_path / "o.mp4"), *args]) == 1
    assert message in capsys.readouterr().err
