"""The model zoo: names -> files -> generators, the conversion cache and the process cache."""
import hashlib
import os
import re
import tempfile

import pytest
import torch

from stylegan_core.loading import export, weights, zoo
from stylegan_core.models.mobile_stylegan import tiny_mobile_stylegan
from stylegan_core.loading.stylegan2_formats import rosinality_names
from stylegan_core.models.stylegan2 import tiny_stylegan2
from stylegan_core.loading.weights import HubLocation, WeightFile

REVISION = "fedcba9876543210fedcba9876543210fedcba98"


def render(generator, seed=1):
    with torch.no_grad():
        return generator.synthesis(generator.mapping(generator.seed_to_z(seed), psi=0.7))


def put_in_hub_cache(path, repo_id, filename):
    """Lay out one file as huggingface_hub's cache does (refs/main -> snapshot -> blob)."""
    data = path.read_bytes()
    repo = weights.hub_cache_dir() / ("models--" + repo_id.replace("/", "--"))
    blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
    blob.parent.mkdir(parents=True)
    blob.write_bytes(data)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(REVISION)
    snapshot = repo / "snapshots" / REVISION / filename
    snapshot.parent.mkdir(parents=True)
    snapshot.symlink_to(os.path.relpath(blob, snapshot.parent))
    return hashlib.sha256(data).hexdigest(), len(data)


def save_rosinality(generator, path):
    """Write a StyleGAN2 as a rosinality .pt ({'g_ema': state dict, 'latent_avg'}) in that repo's shapes."""
    state = generator.state_dict()
    g_ema = {}
    for name, (rosinality_name, _) in rosinality_names(generator).items():
        tensor = state[name]
        if rosinality_name.endswith("conv.weight") or rosinality_name == "input.input":
            tensor = tensor.unsqueeze(0)  # [1, out, in, k, k] and [1, C, 4, 4]
        elif rosinality_name.endswith("noise.weight"):
            tensor = tensor.reshape(1)
        elif rosinality_name.startswith("noises."):
            tensor = tensor.reshape(1, 1, *tensor.shape)
        elif re.fullmatch(r"to_rgb(1|s\.\d+)\.bias", rosinality_name):
            tensor = tensor.reshape(1, -1, 1, 1)
        g_ema[rosinality_name] = tensor.clone()
    torch.save({"g_ema": g_ema, "latent_avg": generator.w_avg.clone()}, path)
    return path


@pytest.fixture
def hub_model(isolated, monkeypatch):
    """A zoo entry whose one file (a tiny rosinality-format StyleGAN2) is served from a local Hub cache.

    The real checkpoint converter is wrapped to count its calls, so tests see when a conversion happens.
    """
    original = tiny_stylegan2(seed=3)
    source = save_rosinality(original, isolated / "tiny.pt")
    sha, size = put_in_hub_cache(source, "org/tiny-stylegan2", "g.pt")
    file = WeightFile("tiny/g.pt", sha256=sha, size=size, hub=HubLocation("org/tiny-stylegan2", "g.pt", REVISION))
    monkeypatch.setitem(weights.KNOWN_FILES, file.file_id, file)
    calls = []
    convert, modules = zoo.CONVERTERS["checkpoint"]

    def counting_convert(paths):
        calls.append(paths)
        return convert(paths)

    monkeypatch.setitem(zoo.CONVERTERS, "checkpoint", (counting_convert, modules))
    entry = zoo.ModelEntry("tiny-hub", "stylegan2", "tiny test model", 32, "test", (file.file_id,),
                           verified=False, converter="checkpoint")
    monkeypatch.setitem(zoo.MODELS, entry.name, entry)
    return original, calls


def test_unknown_model_lists_the_known_names():
    with pytest.raises(zoo.ModelError) as failure:
        zoo.load_model("no-such-model")
    for name in zoo.MODELS:
        assert name in str(failure.value)


def test_every_entry_names_known_files_and_the_default_comes_first():
    assert zoo.model_names()[0] == zoo.DEFAULT_MODEL
    for entry in zoo.MODELS.values():
        assert entry.converter in zoo.CONVERTERS
        for file_id in entry.file_ids:
            file = weights.KNOWN_FILES[file_id]
            # Verified models are fully pinned; unverified ones must not pretend to be.
            pinned = file.sha256 is not None and (file.hub is None or file.hub.revision is not None)
            assert pinned == entry.verified, file_id


def test_hub_model_loads_converts_once_and_is_cached(hub_model, isolated):
    original, calls = hub_model
    loaded = zoo.load_model("tiny-hub")
    assert loaded.name == "tiny-hub" and loaded.entry.description == "tiny test model"
    assert loaded.source_description == f"Hugging Face Hub org/tiny-stylegan2@{REVISION}"
    assert torch.equal(render(loaded.generator), render(original))
    assert zoo.load_model("tiny-hub") is loaded  # process cache
    assert len(calls) == 1

    zoo.clear_loaded_models()  # a new process: the conversion cache on disk serves it
    again = zoo.load_model("tiny-hub")
    assert again is not loaded and len(calls) == 1
    assert torch.equal(render(again.generator), render(original))
    assert [p.name for p in (isolated / "weights" / "converted").iterdir()][0].startswith("tiny-hub-")


def test_converter_change_invalidates_and_replaces_the_cached_conversion(hub_model, isolated, monkeypatch):
    _, calls = hub_model
    zoo.load_model("tiny-hub")
    converter, modules = zoo.CONVERTERS["checkpoint"]
    monkeypatch.setitem(zoo.CONVERTERS, "checkpoint", (converter, modules + ("models.generator",)))
    zoo.clear_loaded_models()
    zoo.load_model("tiny-hub")
    assert len(calls) == 2
    assert len(list((isolated / "weights" / "converted").glob("tiny-hub-*"))) == 1


def test_unreadable_cached_conversion_is_redone(hub_model, isolated):
    _, calls = hub_model
    zoo.load_model("tiny-hub")
    [cached] = (isolated / "weights" / "converted").glob("tiny-hub-*")
    cached.write_bytes(b"garbage")
    zoo.clear_loaded_models()
    zoo.load_model("tiny-hub")
    assert len(calls) == 2


def test_cache_with_overwritten_tensor_data_is_detected_and_converted_again(hub_model, isolated, caplog):
    original, calls = hub_model
    zoo.load_model("tiny-hub")
    [cached] = (isolated / "weights" / "converted").glob("tiny-hub-*")
    data = bytearray(cached.read_bytes())
    data[-400:] = bytes(400)  # same size, tensor data zeroed
    cached.write_bytes(bytes(data))
    zoo.clear_loaded_models()
    again = zoo.load_model("tiny-hub")
    assert len(calls) == 2 and "content hash" in caplog.text
    assert torch.equal(render(again.generator), render(original))
    assert cached.read_bytes() != bytes(data)  # repaired on disk


def test_a_model_that_renders_a_constant_image_is_refused(isolated):
    generator = tiny_stylegan2(seed=4)
    with torch.no_grad():
        for layer in generator.layers:
            if layer.name.endswith("torgb"):
                layer.weight.zero_()
                layer.bias.zero_()
    path = export.save_generator(generator, isolated / "black.safetensors")
    with pytest.raises(zoo.ModelError, match="constant"):
        zoo.load_model(checkpoint=path)


def test_unwritable_weights_folder_falls_back_to_a_writable_cache(isolated, monkeypatch, caplog):
    blocker = isolated / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("STYLEGAN_WEIGHTS_DIR", str(blocker / "weights"))
    monkeypatch.setattr(tempfile, "tempdir", str(isolated / "tmp"))
    original = tiny_stylegan2(seed=3)
    source = save_rosinality(original, isolated / "tiny.pt")
    loaded = zoo.load_model(checkpoint=source)
    assert torch.equal(render(loaded.generator), render(original))
    assert len(list((isolated / "tmp").rglob("checkpoint-tiny-*.safetensors"))) == 1
    assert caplog.text.count("cannot be written") == 1


def test_no_writable_cache_runs_from_memory(isolated, monkeypatch, caplog):
    blocker = isolated / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setattr(weights, "_cache_folders", lambda kind: [blocker / kind])
    original = tiny_stylegan2(seed=3)
    loaded = zoo.load_model(checkpoint=save_rosinality(original, isolated / "tiny.pt"))
    assert torch.equal(render(loaded.generator), render(original))
    assert "from memory" in caplog.text


def test_a_hub_id_loads_a_hub_file(hub_model):
    original, _ = hub_model
    loaded = zoo.load_model(f"hf://org/tiny-stylegan2/g.pt@{REVISION}")
    assert loaded.name == f"hf://org/tiny-stylegan2/g.pt@{REVISION}"
    assert f"org/tiny-stylegan2@{REVISION}" in loaded.source_description
    assert torch.equal(render(loaded.generator), render(original))
    with pytest.raises(zoo.ModelError, match="Hub id looks like"):
        zoo.load_model("hf://org/only-a-repo")
    with pytest.raises(weights.WeightsUnavailable):
        zoo.load_model(f"hf://org/tiny-stylegan2/absent.pt@{REVISION}")


def test_missing_weights_raise_the_resolver_message(isolated, monkeypatch):
    monkeypatch.setitem(weights.KNOWN_FILES, "tiny/absent.pt", WeightFile("tiny/absent.pt", sha256="0" * 64))
    monkeypatch.setitem(zoo.MODELS, "absent", zoo.ModelEntry("absent", "stylegan2", "", 32, "", ("tiny/absent.pt",),
                                                             verified=False, converter="checkpoint"))
    with pytest.raises(weights.WeightsUnavailable, match="STYLEGAN_LOCAL_WEIGHTS/tiny/absent.pt"):
        zoo.load_model("absent")


def test_a_missing_hub_model_says_so_in_one_sentence(isolated, monkeypatch):
    file = WeightFile("tiny/off.pt", hub=HubLocation("org/off", "off.pt", REVISION))
    monkeypatch.setitem(weights.KNOWN_FILES, file.file_id, file)
    monkeypatch.setitem(zoo.MODELS, "off", zoo.ModelEntry("off", "stylegan2", "", 32, "", (file.file_id,),
                                                          verified=False, converter="checkpoint"))
    with pytest.raises(weights.WeightsUnavailable) as failure:
        zoo.load_model("off")
    assert "Tried:" in str(failure.value)  # the full text keeps what was tried
    assert failure.value.summary == ("the model 'off' cannot load: its weights are not on this server and "
                                     "cannot be downloaded offline")
    assert zoo.availability("off") == zoo.Availability(False, None)
    assert zoo.availability("off", probe_network=True).note == "not available offline"  # HF_HUB_OFFLINE=1


def test_availability_comes_from_the_files_on_this_machine(hub_model, isolated, monkeypatch):
    assert zoo.availability("tiny-hub").local and zoo.availability("tiny-hub").note == ""  # in the Hub cache
    folder = isolated / "local"
    (folder / "tiny").mkdir(parents=True)
    local = WeightFile("tiny/here.pt", size=3)
    monkeypatch.setitem(weights.KNOWN_FILES, local.file_id, local)
    monkeypatch.setitem(zoo.MODELS, "here", zoo.ModelEntry("here", "stylegan2", "", 32, "", (local.file_id,),
                                                           verified=False, converter="checkpoint"))
    monkeypatch.setenv("STYLEGAN_LOCAL_WEIGHTS", str(folder))
    (folder / "tiny" / "here.pt").write_bytes(b"ab")  # truncated: not counted
    assert not zoo.availability("here").local
    (folder / "tiny" / "here.pt").write_bytes(b"abc")
    assert zoo.availability("here").local


@pytest.mark.parametrize("make", [tiny_stylegan2, tiny_mobile_stylegan])
def test_checkpoint_file_by_argument_path_or_env(isolated, monkeypatch, make):
    original = make(seed=5)
    path = export.save_generator(original, isolated / "model.safetensors")

    loaded = zoo.load_model(checkpoint=path)
    assert loaded.name == zoo.CUSTOM_CHECKPOINT and loaded.entry.arch == original.arch
    assert path.name in loaded.source_description
    assert torch.equal(render(loaded.generator), render(original))
    assert zoo.load_model(str(path)) is loaded  # a path as the name; same process-cache entry
    monkeypatch.setenv("STYLEGAN_CHECKPOINT", str(path))
    assert zoo.load_model() is loaded
    assert zoo.load_model(zoo.CUSTOM_CHECKPOINT) is loaded

    export.save_generator(make(seed=6), path)  # a changed file is loaded again
    assert not torch.equal(render(zoo.load_model(checkpoint=path).generator), render(original))


def test_checkpoint_request_errors(isolated, tmp_path):
    with pytest.raises(zoo.ModelError, match="no checkpoint file at"):
        zoo.load_model(checkpoint=tmp_path / "missing.pt")
    with pytest.raises(zoo.ModelError, match="either a model name"):
        zoo.load_model("ffhq-mobile", checkpoint=tmp_path / "missing.pt")
    with pytest.raises(zoo.ModelError, match="STYLEGAN_CHECKPOINT"):
        zoo.load_model(zoo.CUSTOM_CHECKPOINT)


@pytest.mark.real
def test_real_default_model_loads_from_pypi_weights():
    loaded = zoo.load_model()
    assert loaded.name == "ffhq-mobile" and loaded.generator.resolution == 1024
    assert "random-face 2021.7.21.1" in loaded.source_description


def test_entry_with_files_of_another_architecture_is_refused(hub_model, monkeypatch):
    entry = zoo.MODELS["tiny-hub"]
    monkeypatch.setitem(zoo.MODELS, "tiny-hub", zoo.ModelEntry(
        entry.name, "mobile_stylegan", entry.description, entry.resolution, entry.licence, entry.file_ids,
        entry.verified, entry.converter))
    with pytest.raises(zoo.ModelError, match="hold a stylegan2 model, expected mobile_stylegan"):
        zoo.load_model("tiny-hub")


def test_a_zoo_model_loads_from_local_weights_when_the_weights_folder_cannot_be_created(isolated, monkeypatch):
    original = tiny_stylegan2(seed=3)
    local = isolated / "local"
    local.mkdir()
    source = save_rosinality(original, local / "g.pt")
    file = WeightFile("tiny/g.pt", sha256=hashlib.sha256(source.read_bytes()).hexdigest(), size=source.stat().st_size)
    monkeypatch.setitem(weights.KNOWN_FILES, file.file_id, file)
    monkeypatch.setitem(zoo.MODELS, "tiny-local", zoo.ModelEntry("tiny-local", "stylegan2", "", 32, "", (file.file_id,),
                                                                 verified=False, converter="checkpoint"))
    blocker = isolated / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("STYLEGAN_WEIGHTS_DIR", str(blocker / "weights"))
    monkeypatch.setenv("STYLEGAN_LOCAL_WEIGHTS", str(local))
    monkeypatch.setattr(tempfile, "tempdir", str(isolated / "tmp"))
    loaded = zoo.load_model("tiny-local")
    assert torch.equal(render(loaded.generator), render(original))
    assert "STYLEGAN_LOCAL_WEIGHTS" in loaded.source_description
