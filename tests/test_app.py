"""The running app through gradio_client, as a script user sees it: real weights, end to end."""
import threading
import zlib
import struct
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from stylegan_core.latents import load_latent

pytestmark = pytest.mark.real

REPO = Path(__file__).resolve().parents[1]
ASTRONAUT = REPO / "examples" / "astronaut.jpg"
ALL_RESOLUTIONS = [4, 8, 16, 32, 64, 128, 256, 512, 1024]


@pytest.fixture
def client(app_server):
    return Client(app_server.url, verbose=False)


def not_blank(path) -> bool:
    pixels = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)
    return pixels.std() > 10


def codes(client):
    return [entry["name"] for entry in client.predict(api_name="/list_codes")]


def huge_png(path: Path, side: int = 20000) -> Path:
    """A valid 20000 x 20000 grayscale PNG of a few hundred KB (it decodes to 400 MB)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    compressor, row, body = zlib.compressobj(9), bytes(side + 1), []
    for _ in range(side):
        body.append(compressor.compress(row))
    body.append(compressor.flush())
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"".join(body))
                     + chunk(b"IEND", b""))
    return path


def test_generate(client):
    gallery, files, info = client.predict("1, 2", 0.7, api_name="/generate")
    assert [item["caption"] for item in gallery] == ["seed 1", "seed 2"]
    assert all(not_blank(item["image"]) for item in gallery)
    assert Image.open(files[0]).size == (1024, 1024)
    assert "on cpu" in info
    assert codes(client) == ["seed 1", "seed 2"]


def test_edits(client):
    calls = {
        "/style_transfer": ("seed 1", "seed 2", 64),
        "/expression_transfer": ("seed 1", "seed 2", "seed 3", 1.0, 0, -1),
        "/style_mixing": ("1", "2", "coarse", 0.7),
        "/blend": ("seed 1", "seed 2", "horizontal", 0.5, False, ALL_RESOLUTIONS, None),
        "/panorama": ("seed 1, seed 2", "horizontal", 1.0),
    }
    for api_name, args in calls.items():
        image, files, info = client.predict(*args, api_name=api_name)
        assert not_blank(image), api_name
        assert files and "s on cpu" in info, api_name
    frames, files, info = client.predict("seed 1", "seed 2", 3, "linear W+", api_name="/morph")
    assert len(frames) == 3 and files[0].endswith(".gif")
    assert Image.open(files[0]).n_frames >= 3


def test_invert_a_photo(client):
    aligned, result, metrics, files, info = client.predict(
        handle_file(str(ASTRONAUT)), "largest face", 20, "w+", api_name="/invert")
    assert Image.open(aligned).size == (1024, 1024) and not_blank(result)
    assert {"psnr", "ssim", "id_distance"} <= set(metrics)
    latent = load_latent(next(f for f in files if f.endswith(".npz")))
    assert latent.model_name == "ffhq-mobile" and tuple(latent.ws.shape) == (1, 23, 512)
    assert "astronaut" in codes(client)


def test_bad_inputs_get_messages_and_the_server_keeps_serving(client, tmp_path):
    client.predict("5", 0.7, api_name="/generate")
    text_file = tmp_path / "notes.png"
    text_file.write_text("this is not an image")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    tiny = tmp_path / "thumb.png"
    Image.new("RGB", (64, 64), (200, 150, 120)).save(tiny)
    cartoon = tmp_path / "cartoon.png"
    Image.new("RGB", (512, 512), (250, 220, 0)).save(cartoon)
    alien = tmp_path / "alien.npz"
    np.savez(alien, ws=np.zeros((1, 18, 512), np.float32), model_name=np.array("stylegan2-ffhq"),
             space=np.array("w+"))
    bad_requests = [
        ("/generate", ("abc", 0.7), "not a seed"),
        ("/generate", (str(2**32), 0.7), "out of range"),
        ("/invert", (handle_file(str(text_file)), "largest face", 10, "w+"), "not an image|cannot be read|not a"),
        ("/invert", (handle_file(str(empty)), "largest face", 10, "w+"), "empty"),
        ("/invert", (handle_file(str(huge_png(tmp_path / "huge.png"))), "largest face", 10, "w+"), "pixels"),
        ("/invert", (handle_file(str(tiny)), "largest face", 10, "w+"), "face"),
        ("/invert", (handle_file(str(cartoon)), "largest face", 10, "w+"), "No face"),
        ("/expression_transfer", ("seed 1", "seed 2", "seed 3", 50.0, 0, -1), "maximum|strength"),
        ("/morph", ("seed 1", "seed 2", 999, "linear W+"), "maximum|frames"),
        ("/panorama", ("seed 1", "horizontal", 1.0), "between 2"),
        ("/blend", ("seed 1", "seed 2", "painted", 0.5, False, ALL_RESOLUTIONS, None), "paint"),
        ("/style_transfer", ("nobody", "seed 2", 64), "no code named"),
    ]
    for api_name, args, expected in bad_requests:
        with pytest.raises(AppError) as caught:
            client.predict(*args, api_name=api_name)
        message = str(caught.value)
        assert "Traceback" not in message
        assert any(word.lower() in message.lower() for word in expected.split("|")), (api_name, message)
    client.predict(handle_file(str(alien)), api_name="/restore_latent")
    with pytest.raises(AppError, match="belongs to model 'stylegan2-ffhq'"):
        client.predict("alien", "seed 1", 64, api_name="/style_transfer")
    gallery, _, _ = client.predict("6", 0.7, api_name="/generate")
    assert not_blank(gallery[0]["image"])
    assert {"seed 5", "alien", "seed 6"} <= set(codes(client))


def test_sessions_are_isolated(app_server):
    alice, bob = Client(app_server.url, verbose=False), Client(app_server.url, verbose=False)
    alice.predict("11", 0.7, api_name="/generate")
    assert codes(alice) == ["seed 11"]
    assert codes(bob) == []


def test_five_users_at_once(app_server):
    jobs = {
        "generate": ("/generate", ("21, 22", 0.7)),
        "generate2": ("/generate", ("23", 0.5)),
        "invert": ("/invert", (handle_file(str(ASTRONAUT)), "largest face", 10, "w+")),
        "style": ("/style_transfer", ("seed 1", "seed 2", 32)),
        "blend": ("/blend", ("seed 3", "seed 4", "vertical", 0.5, True, ALL_RESOLUTIONS, None)),
    }
    results, errors = {}, {}

    def user(name, api_name, args):
        try:
            results[name] = Client(app_server.url, verbose=False).predict(*args, api_name=api_name)
        except Exception as error:  # noqa: BLE001 - collected and reported below
            errors[name] = error

    threads = [threading.Thread(target=user, args=(name, *job)) for name, job in jobs.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    assert not errors, errors
    assert len(results["generate"][0]) == 2 and len(results["generate2"][0]) == 1
    assert results["invert"][2]["psnr"] > 0
    assert not_blank(results["style"][0]) and not_blank(results["blend"][0])
    print(f"peak server memory after 5 concurrent users: {app_server.peak_memory_mb():.0f} MB")


def test_the_readme_scripting_example_runs_as_written(app_server, monkeypatch, capsys):
    readme = (REPO / "README.md").read_text()
    start = readme.index("```python\n", readme.index("## Scripting")) + len("```python\n")
    example = readme[start:readme.index("```\n", start)]
    assert "http://127.0.0.1:7860/" in example
    monkeypatch.chdir(REPO)
    namespace = {}
    exec(example.replace("http://127.0.0.1:7860/", app_server.url), namespace)  # noqa: S102 - our README
    assert namespace["metrics"]["psnr"] > 0 and not_blank(namespace["image"])
    assert "s on cpu" in capsys.readouterr().out
