"""Shared test setup: offline, quiet, the tiny model of every architecture, and one app server
for the end-to-end tests."""
import os
import socket
import subprocess
import sys
import time
import types
import urllib.request
from pathlib import Path
from typing import Callable

import pytest
import torch

from stylegan_core.loading import zoo
from stylegan_core.models.generator import Generator, LayerEditor, SynthesisState
from stylegan_core.models.mobile_stylegan import tiny_mobile_stylegan
from stylegan_core.models.stylegan2 import tiny_stylegan2
from stylegan_core.models.stylegan3 import tiny_stylegan3

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

REPO = Path(__file__).resolve().parents[1]
SERVER_START_TIMEOUT_S = 600  # a fresh machine fetches and converts the weights first


# -- tiny models -------------------------------------------------------------------------------
# One few-KB random model per registered architecture: seed -> generator (eval, frozen, with every
# parameter random and non-zero). A new architecture registers its factory here, and the
# generator-contract suite (test_generator_contract.py) then covers it.
TINY_MODELS: dict[str, Callable[[int], Generator]] = {
    "stylegan2": lambda seed: tiny_stylegan2(seed=seed),
    "mobile_stylegan": lambda seed: tiny_mobile_stylegan(seed=seed),
    "stylegan3": lambda seed: tiny_stylegan3(seed=seed),
}


def tiny_model(arch: str, seed: int = 0) -> Generator:
    return TINY_MODELS[arch](seed)


def tiny_codes(generator: Generator, batch: int = 1, seed: int = 0, psi: float = 1.0) -> torch.Tensor:
    """W+ codes of seeded Gaussian z: [batch, num_ws, w_dim]."""
    z = torch.randn(batch, generator.z_dim, generator=torch.Generator().manual_seed(seed))
    return generator.mapping(z, psi)


@pytest.fixture(scope="module", params=sorted(TINY_MODELS))
def tiny(request) -> Generator:
    """The tiny model of each architecture (module-scoped: tests must not change it)."""
    return tiny_model(request.param)


class Widen(LayerEditor):
    """Appends `extra` columns (the first ones again) to the input features, as a panorama span
    does with the whole width; a partial width makes the layers tile and crop their noise maps."""

    def __init__(self, extra: int):
        self.extra = extra

    def begin(self, state: SynthesisState, generator: Generator) -> SynthesisState:
        return state.map(lambda t: torch.cat([t, t[..., : self.extra]], dim=-1))


# -- real weights -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def real_generator():
    """The default model's generator (MobileStyleGAN FFHQ 1024 px): for @pytest.mark.real tests."""
    return zoo.load_model("ffhq-mobile").generator


def faces_found(image: torch.Tensor) -> int:
    """How many faces dlib finds in an image tensor, at half its size (dlib's detector is trained on
    faces of about 80 px; half of 1024 px still holds them and takes a quarter of the time)."""
    import dlib
    import numpy as np

    from stylegan_core.images import tensor_to_pil

    picture = tensor_to_pil(image)
    picture = picture.resize((picture.width // 2, picture.height // 2))
    return len(dlib.get_frontal_face_detector()(np.asarray(picture), 0))


# -- weights folders ---------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def private_weights_folder(request, tmp_path_factory, monkeypatch):
    """Every test but the real-weight ones gets an empty weights folder of its own, so no test
    writes into (or silently depends on) the real one."""
    if not (request.node.get_closest_marker("real") or request.node.get_closest_marker("browser")):
        monkeypatch.setenv("STYLEGAN_WEIGHTS_DIR", str(tmp_path_factory.mktemp("weights")))


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """A fresh weights folder (tmp_path / "weights"), no user configuration, the Hub offline, pip
    without any index, and no models loaded. Returns tmp_path."""
    monkeypatch.setenv("STYLEGAN_WEIGHTS_DIR", str(tmp_path / "weights"))
    for name in ("STYLEGAN_LOCAL_WEIGHTS", "STYLEGAN_CHECKPOINT", "HF_HOME", "HF_HUB_CACHE",
                 "HUGGINGFACE_HUB_CACHE", "PIP_INDEX_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)  # ignore machine-wide pip config (indexes, find-links)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    (tmp_path / "wheels").mkdir()
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "wheels"))
    zoo.clear_loaded_models()
    yield tmp_path
    zoo.clear_loaded_models()


@pytest.fixture
def checkpoint_file(tmp_path, monkeypatch):
    """save(generator) -> its .safetensors checkpoint, for tests that load models as the CLI does
    (by --checkpoint): a private weights folder, no $STYLEGAN_CHECKPOINT, nothing loaded before or after."""
    from stylegan_core.loading import export

    monkeypatch.setenv("STYLEGAN_WEIGHTS_DIR", str(tmp_path / "weights"))
    monkeypatch.delenv("STYLEGAN_CHECKPOINT", raising=False)
    zoo.clear_loaded_models()
    yield lambda generator: export.save_generator(generator, tmp_path / "tiny.safetensors")
    zoo.clear_loaded_models()


@pytest.fixture
def tiny_checkpoint(checkpoint_file):
    """(a tiny StyleGAN2, the path of its checkpoint)."""
    from stylegan_core.models.stylegan2 import tiny_stylegan2

    generator = tiny_stylegan2(seed=2)
    return generator, checkpoint_file(generator)


@pytest.fixture(autouse=True)
def one_thread_for_tiny_models(request):
    """Tiny models run many microsecond kernels; on a shared CPU the hand-offs between OpenMP
    threads cost far more than the kernels (measured: 60 ms vs 2 s for a tiny panorama)."""
    if request.node.get_closest_marker("real"):
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class AppServer:
    def __init__(self, process: subprocess.Popen, url: str, log_path: Path):
        self.process, self.url, self.log_path = process, url, log_path

    def peak_memory_mb(self) -> float:
        """The server process's peak resident memory (VmHWM), in MB."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture(scope="session")
def app_server(tmp_path_factory):
    """`python app.py` on a free port with the real default model, as a user starts it."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("app") / "server.log"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(log_path, "w") as log:
        process = subprocess.Popen([sys.executable, "app.py", "--port", str(port)], cwd=REPO, env=env,
                                   stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while True:
        try:
            urllib.request.urlopen(url, timeout=5)
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"the app did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
    server = AppServer(process, url, log_path)
    yield server
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture
def random_vgg(monkeypatch):
    """A random-weight VGG instead of the real one for the projector: its mechanics (and the
    pipelines built on it) do not need ImageNet features. Small weights keep 0..255 inputs tame."""
    from stylegan_core.inversion import perceptual, projector

    torch.manual_seed(0)
    vgg = perceptual.VGG16Features().eval().requires_grad_(False)
    for conv in vgg.convs.values():
        conv.weight.data.mul_(0.05)
    monkeypatch.setattr(projector, "load_vgg16", lambda device="cpu": vgg)
    return vgg


# -- a fake NVlabs world, present only while a test writes pickles the way NVlabs' code does -------
# The modules `torch_utils.persistence` and `dnnlib.util` exist so pickle can name their classes; the
# safe loader must read such pickles without ever calling into them.
class EasyDict(dict):
    pass


def _reconstruct_persistent_obj(meta):  # pragma: no cover - the loader must never call it
    raise AssertionError("the loader called the pickle's reconstruct function")


@pytest.fixture
def nvlabs_modules(monkeypatch):
    """Fake `torch_utils.persistence` and `dnnlib.util` while the test runs (removed after)."""
    persistence = types.ModuleType("torch_utils.persistence")
    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj
    dnnlib_util = types.ModuleType("dnnlib.util")
    dnnlib_util.EasyDict = EasyDict
    monkeypatch.setattr(_reconstruct_persistent_obj, "__module__", "torch_utils.persistence")
    monkeypatch.setattr(EasyDict, "__module__", "dnnlib.util")
    for name, module in (("torch_utils", types.ModuleType("torch_utils")), ("torch_utils.persistence", persistence),
                         ("dnnlib", types.ModuleType("dnnlib")), ("dnnlib.util", dnnlib_util)):
        monkeypatch.setitem(sys.modules, name, module)
