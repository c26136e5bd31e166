"""`python -m stylegan_core`: generate, models, fetch, and errors as messages with exit code 1."""
import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stylegan_core import cli
from stylegan_core.loading import weights, zoo
from stylegan_core.images import tensor_to_pil

REPO = Path(__file__).resolve().parents[1]


def expected_image(generator, seed, psi):
    with torch.no_grad():
        return np.asarray(tensor_to_pil(generator.synthesis(generator.mapping(generator.seed_to_z(seed), psi=psi))))


def test_generate_writes_one_png_per_seed(tiny_checkpoint, tmp_path, capsys):
    generator, path = tiny_checkpoint
    code = cli.main(["generate", "--seeds", "1,4-5", "--psi", "0.5", "--checkpoint", str(path),
                     "--out", str(tmp_path / "out" / "img.png")])
    assert code == 0
    written = capsys.readouterr().out.split()
    assert written == [str(tmp_path / "out" / f"img-seed{s}.png") for s in (1, 4, 5)]
    for seed, file in zip((1, 4, 5), written):
        assert np.array_equal(np.asarray(Image.open(file)), expected_image(generator, seed, 0.5))


def test_generate_single_seed_and_pattern(tiny_checkpoint, tmp_path):
    generator, path = tiny_checkpoint
    assert cli.main(["generate", "--seed", "7", "--checkpoint", str(path), "--out", str(tmp_path / "one.png")]) == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "one.png")), expected_image(generator, 7, 0.7))
    assert cli.main(["generate", "--seeds", "8", "--checkpoint", str(path),
                     "--out", str(tmp_path / "s{seed:03d}.png")]) == 0
    assert (tmp_path / "s008.png").is_file()


@pytest.mark.parametrize("arguments, message", [
    (["--seed", "1", "--model", "no-such-model"], "known models: ffhq-mobile"),
    (["--seeds", "1,x"], "not a seed"),
    (["--seed", "1", "--psi", "9"], "psi"),
    (["--seeds", "9" * 5000], "not a seed"),
    (["--seed", "1", "--checkpoint", "/no/such/file.pt"], "no checkpoint file"),
])
def test_generate_errors_are_messages(tiny_checkpoint, tmp_path, capsys, arguments, message):
    assert cli.main(["generate", *arguments, "--out", str(tmp_path / "x.png")]) == 1
    error = capsys.readouterr().err
    assert error.startswith("error: ") and message in error
    assert not (tmp_path / "x.png").exists()


def test_a_bug_prints_its_trace_and_exit_code_2(tiny_checkpoint, tmp_path, monkeypatch, capsys):
    _, path = tiny_checkpoint

    def broken(*args, **kwargs):
        return [][1]

    monkeypatch.setattr(cli, "load_model_from_args", broken)
    assert cli.main(["generate", "--seed", "1", "--checkpoint", str(path), "--out", str(tmp_path / "x.png")]) == 2
    error = capsys.readouterr().err
    assert "Traceback" in error and "IndexError" in error


def test_an_unwritable_output_is_a_message(tiny_checkpoint, tmp_path, capsys):
    _, path = tiny_checkpoint
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should be")
    assert cli.main(["generate", "--seed", "1", "--checkpoint", str(path), "--out", str(blocker / "x.png")]) == 1
    assert "error: cannot write" in capsys.readouterr().err


def test_fetch_of_an_unknown_name_is_a_message(capsys):
    assert cli.main(["fetch", "no/such-file"]) == 1
    assert "neither a zoo model" in capsys.readouterr().err


def test_models_lists_the_zoo(capsys):
    assert cli.main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == zoo.model_names()
    assert "unverified" not in lines[0] and "unverified" in lines[1]


def test_fetch_prints_path_and_source(tmp_path, monkeypatch, capsys):
    data = b"fetch me"
    monkeypatch.setitem(weights.KNOWN_FILES, "tiny/f.bin",
                        weights.WeightFile("tiny/f.bin", sha256=hashlib.sha256(data).hexdigest(), size=len(data)))
    (tmp_path / "f.bin").write_bytes(data)
    monkeypatch.setenv("STYLEGAN_LOCAL_WEIGHTS", str(tmp_path))
    assert cli.main(["fetch", "tiny/f.bin"]) == 0
    file_id, path, source = capsys.readouterr().out.strip().split("\t")
    assert (file_id, path) == ("tiny/f.bin", str(tmp_path / "f.bin")) and "STYLEGAN_LOCAL_WEIGHTS" in source
    assert cli.main(["fetch", "no/such-file"]) == 1


def test_subcommand_is_required(capsys):
    with pytest.raises(SystemExit):
        cli.main([])


@pytest.mark.real
def test_real_generate_with_the_default_model(tmp_path):
    """The whole path a user runs: a fresh process, weights resolved, one 1024 px face."""
    out = tmp_path / "face.png"
    result = subprocess.run([sys.executable, "-m", "stylegan_core", "generate", "--seed", "3", "--out", str(out)],
                            cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "random-face" in result.stderr
    image = np.asarray(Image.open(out))
    assert image.shape == (1024, 1024, 3) and image.std() > 20
