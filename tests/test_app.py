"""The app through gradio_client: every endpoint on a tiny random model (fast, the default suite),
then the real default model end to end (marked real)."""
import logging
import os
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import torch
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

import app
from conftest import free_port
from stylegan_core.inversion import align, perceptual, projector
from stylegan_core import codes
from stylegan_core.loading import zoo
from stylegan_core.loading.export import save_generator
from stylegan_core.latents import load_latent
from stylegan_core.library import CodeLibrary
from stylegan_core.models.stylegan2 import tiny_stylegan2
from stylegan_core.studio import Studio
from stylegan_core.errors import UserError
from ui.common import HEAVY, public_message
from ui.visits import RESTORED_NOTE

REPO = Path(__file__).resolve().parents[1]
ASTRONAUT = REPO / "examples" / "astronaut.jpg"
ALL_RESOLUTIONS = [4, 8, 16, 32, 64, 128, 256, 512, 1024]


# -- every endpoint on a tiny model ------------------------------------------------------------------
def random_vgg(device="cpu"):
    """A random-weight VGG: the app's wiring does not need ImageNet features."""
    torch.manual_seed(0)
    vgg = perceptual.VGG16Features().eval().requires_grad_(False)
    for conv in vgg.convs.values():
        conv.weight.data.mul_(0.05)
    return vgg


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """`build_app` on a 32 px random StyleGAN2 checkpoint, served in this process."""
    folder = tmp_path_factory.mktemp("tiny_app")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("STYLEGAN_WEIGHTS_DIR", str(folder / "weights"))
        patch.setattr(projector, "load_vgg16", random_vgg)
        # dlib's detector takes a second a call here and finds no face in a random model's output;
        # detection itself is tested in test_align.py.
        patch.setattr(align, "detect_faces", lambda image: [])
        checkpoint = save_generator(tiny_stylegan2(0), folder / "tiny.safetensors")
        zoo.clear_loaded_models()
        studio = Studio(default_model=zoo.CUSTOM_CHECKPOINT, device="cpu", checkpoint=str(checkpoint),
                        output_dir=str(folder / "out"))
        demo = app.build_app(studio).queue()
        port = free_port()
        demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                    **app.LAUNCH_OPTIONS)
        try:
            yield demo, studio, f"http://127.0.0.1:{port}/", folder
        finally:
            demo.close()
            zoo.clear_loaded_models()


@pytest.fixture
def tiny_client(tiny):
    return Client(tiny[2], verbose=False)


def tiny_photo(folder: Path) -> Path:
    path = folder / "photo.png"
    gradient = np.linspace(0, 255, 48 * 48 * 3).reshape(48, 48, 3).astype(np.uint8)
    Image.fromarray(gradient).save(path)
    return path


def tiny_sketch(folder: Path) -> Path:
    """A face-like line drawing: head outline, eyes and mouth in black on white."""
    from PIL import ImageDraw

    path = folder / "sketch.png"
    image = Image.new("RGB", (256, 256), "white")
    draw = ImageDraw.Draw(image)
    draw.ellipse((48, 24, 208, 232), outline="black", width=4)
    for x in (96, 160):
        draw.ellipse((x - 14, 100, x + 14, 116), outline="black", width=3)
    draw.arc((92, 150, 164, 196), 20, 160, fill="black", width=3)
    image.save(path)
    return path


def tiny_clip(folder: Path) -> Path:
    """Three frames of a moving gradient as an mp4 (no face in it)."""
    from stylegan_core.editing import video_io

    frames = [Image.fromarray(np.roll(np.asarray(Image.open(tiny_photo(folder))), 4 * i, axis=1)) for i in range(3)]
    return video_io.write_clip(frames, folder / "clip.mp4", fps=10)


def refusal(call) -> str:
    """The message of the AppError a call raises (it must raise one)."""
    with pytest.raises(AppError) as caught:
        call()
    return str(caught.value)


def names(client):
    return [entry["name"] for entry in client.predict(api_name="/list_codes")]


def test_every_endpoint_answers_through_gradio_client(tiny, tiny_client):
    demo, studio, url, folder = tiny
    client = tiny_client
    photo = handle_file(str(tiny_photo(folder)))
    calls = {
        "/generate": lambda: client.predict("1, 2", 0.7, api_name="/generate"),
        "/list_codes": lambda: client.predict(api_name="/list_codes"),
        "/detect_faces": lambda: client.predict(photo, api_name="/detect_faces"),
        "/invert": lambda: client.predict(photo, "whole image (no alignment)", 10, "w", api_name="/invert"),
        "/morph": lambda: client.predict("seed 1", "seed 2", 3, "linear W+", api_name="/morph"),
        "/style_transfer": lambda: client.predict("seed 1", "seed 2", 8, api_name="/style_transfer"),
        "/expression_transfer": lambda: client.predict("seed 1", "seed 2", "seed 3", 1.0, 0, -1,
                                                       api_name="/expression_transfer"),
        # The tiny model has no stored directions: the simple path's clear refusal is the answer.
        "/expression_edit": lambda: refusal(lambda: client.predict("seed 1", "smile", 2.0,
                                                                  api_name="/expression_edit")),
        "/style_mixing": lambda: client.predict("1, 2", "3", "coarse", 0.7, api_name="/style_mixing"),
        "/blend": lambda: client.predict("seed 1", "seed 2", "horizontal", 0.5, True, [4, 8, 16, 32], None,
                                         api_name="/blend"),
        "/add_blend_to_library": lambda: client.predict("seed 1", "seed 2", "constant", 0.5, False, [4, 8, 16, 32],
                                                        None, api_name="/add_blend_to_library"),
        "/panorama": lambda: client.predict("seed 1, seed 2, seed 3", "horizontal", 1.0, api_name="/panorama"),
        "/rename_code": lambda: client.predict("seed 1", "first", api_name="/rename_code"),
        "/delete_code": lambda: client.predict("first", api_name="/delete_code"),
        "/undo_delete": lambda: client.predict(api_name="/undo_delete"),
        "/export_library": lambda: client.predict(api_name="/export_library"),
        "/edit_attributes": lambda: client.predict("seed 3", "sefa_coarse_0=3, pca_0=-2", api_name="/edit_attributes"),
        "/add_edit_to_library": lambda: client.predict("seed 3", "pca_0=2", api_name="/add_edit_to_library"),
        "/edit_in_photo_frame": lambda: refusal(lambda: client.predict("seed 3", "", api_name="/edit_in_photo_frame")),
        "/sketch_to_face": lambda: client.predict(None, handle_file(str(tiny_sketch(folder))), "", 2, 10,
                                                  api_name="/sketch_to_face"),
        "/extend_canvas": lambda: client.predict("seed 1", 8, "replicate", 0.5, 0.25, 0.0, 0.125,
                                                 api_name="/extend_canvas"),
        "/layout_variations": lambda: client.predict("seed 1", 8, 3, 7, api_name="/layout_variations"),
        # No face in a random model's image (the detector is stubbed): the clear refusals are the answers.
        "/transfer_region": lambda: refusal(lambda: client.predict("seed 1", "seed 2", "mouth", 16,
                                                                   api_name="/transfer_region")),
        "/translate_generators": lambda: refusal(lambda: client.predict("seed 1", zoo.DEFAULT_MODEL, 0.5,
                                                                        api_name="/translate_generators")),
        "/edit_video": lambda: refusal(lambda: client.predict(handle_file(str(tiny_clip(folder))), 1, 2, "fast",
                                                              "seed 2", 0, 0, 0, 0, api_name="/edit_video")),
    }
    results, seconds = {}, {}
    for name, call in calls.items():
        started = time.perf_counter()
        results[name] = call()
        seconds[name] = round(time.perf_counter() - started, 2)
    print("seconds per call:", seconds)
    exported = results["/export_library"]
    results["/import_library"] = client.predict(handle_file(exported), api_name="/import_library")
    results["/restore_latent"] = client.predict(handle_file(exported), api_name="/restore_latent")
    endpoints = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert endpoints == set(results), "a new endpoint needs a call here"

    gallery, files, info = results["/generate"]
    assert [item["caption"] for item in gallery] == ["seed 1", "seed 2"] and "on cpu" in info
    assert Image.open(gallery[0]["image"]).size == (32, 32)
    assert results["/detect_faces"][0]["value"].startswith("no face found")  # no silent whole-image fallback
    aligned, inverted, metrics, invert_files, _ = results["/invert"]
    assert Image.open(inverted).size == (32, 32) and metrics["psnr"] > 0
    assert load_latent(next(f for f in invert_files if f.endswith(".npz"))).space == "w"
    animation, frames, morph_files, _ = results["/morph"]
    assert len(frames) == 3 and morph_files[0].endswith(".gif") and morph_files[1].endswith(".mp4")
    assert Image.open(animation).n_frames == 3 + 1  # there and back
    for name in ("/style_transfer", "/expression_transfer", "/style_mixing", "/blend", "/panorama"):
        image, downloads, info = results[name]
        assert np.asarray(Image.open(image)).std() > 0 and downloads and "s on cpu" in info, name
    extended, extend_files, extend_info = results["/extend_canvas"]
    assert Image.open(extended).size == (32 + 24, 32 + 4) and "replicate" in extend_info  # 8 px cells: 4 px
    variations, variations_info = results["/layout_variations"]
    assert len(variations) == 3 and "3 variations" in variations_info
    assert "no face found in the target" in results["/transfer_region"]
    blend_info = results["/add_blend_to_library"][2]
    assert "blend seed 1 and seed 2" in blend_info and "blend seed 1 and seed 2" in names(client)
    assert "no 'smile' direction" in results["/expression_edit"] and "advanced" in results["/expression_edit"]
    assert "fine-tune" in results["/translate_generators"]
    assert "needs a StyleGAN3 model" in results["/edit_in_photo_frame"]
    assert "No frame of the clip shows a face" in results["/edit_video"]
    assert "restored" in results["/import_library"] and "restored" in results["/restore_latent"][1]
    edited, _, edit_info = results["/edit_attributes"]  # instant directions: the tiny model has none stored
    plain = client.predict("seed 3", "", api_name="/edit_attributes")[0]
    assert np.abs(np.asarray(Image.open(edited), np.float32) - np.asarray(Image.open(plain), np.float32)).mean() > 1
    assert "sefa_coarse_0=3" in edit_info
    assert "seed 3 edited" in results["/add_edit_to_library"][2] and "seed 3 edited" in names(client)
    preview, candidates, sketch_files, sketch_info = results["/sketch_to_face"]
    assert len(candidates) == 2 and Image.open(candidates[0]["image"]).size == (32, 32)
    assert any(f.endswith(".npz") for f in sketch_files) and "Edit tab" in sketch_info
    assert {"sketch 1", "sketch 2"} <= set(names(client))
    assert "restored 'first'" in results["/undo_delete"]
    assert "first" in names(client) and "seed 1" not in names(client) and "seed 2" in names(client)


def test_every_model_event_shares_one_concurrency_limit(tiny):
    demo = tiny[0]
    heavy = {fn.api_name for fn in demo.fns.values() if fn.concurrency_id == HEAVY}
    assert {"generate", "invert", "morph", "style_transfer", "expression_transfer", "expression_edit",
            "style_mixing", "blend", "add_blend_to_library",
            "panorama", "import_library", "restore_latent", "detect_faces", "extend_canvas",
            "layout_variations", "transfer_region", "translate_generators", "edit_video"} <= heavy
    assert len({fn.concurrency_limit for fn in demo.fns.values() if fn.concurrency_id == HEAVY}) == 1


def test_results_of_another_model_are_emptied_when_the_model_changes(tiny):
    demo = tiny[0]
    menu = next(block for block in demo.blocks.values() if getattr(block, "elem_id", None) == "model-menu")
    # The visitor's choice (`input`): a reload that restores the model keeps the panels it restored.
    emptying = [fn for fn in demo.fns.values() if (menu._id, "input") in fn.targets and not fn.inputs]
    assert len(emptying) == 1
    emptied = {getattr(block, "elem_id", None) for block in emptying[0].outputs}
    assert {"generate-gallery", "invert-result", "invert-aligned", "morph-animation", "morph-gallery",
            "style-result", "mixing-result", "edit-result", "video-result", "sketch-gallery"} <= emptied
    assert "invert-preview" not in emptied and "sketch-canvas" not in emptied  # inputs and their previews stay
    assert emptying[0].fn() == [None] * len(emptying[0].outputs)
    assert not [fn for fn in demo.fns.values() if (menu._id, "change") in fn.targets and not fn.inputs]
    # Read back to be kept across reloads, they must still not turn into upload areas.
    assert all(block.interactive is False for block in emptying[0].outputs if hasattr(block, "interactive"))


def test_a_reload_brings_back_each_panel_made_by_the_visitor(tiny):
    """The page's own wiring, called as the page calls it: an event fills Generate's panel and the
    panel is remembered; a reload with the browser's id gets it back (and the model that made it);
    another browser, or a panel whose files are gone, gets nothing."""
    demo, studio, _, folder = tiny
    by_name = {fn.name: fn for fn in demo.fns.values()}
    restore, blocks = by_name["restore"], demo.blocks
    gallery = next(b for b in blocks.values() if getattr(b, "elem_id", None) == "generate-gallery")
    remembers = [fn for fn in demo.fns.values() if fn.name == "remember" and gallery in fn.inputs]
    assert remembers, "nothing remembers the Generate gallery"
    browser_id = restore.fn("", CodeLibrary(), "any model")[1]
    picture = folder / "seed_1.png"
    Image.new("RGB", (8, 8)).save(picture)
    remember = next(fn for fn in remembers if any(isinstance(b, gr.Textbox) for b in fn.inputs))  # Generate's
    info = next(b for b in remember.inputs if isinstance(b, gr.Markdown))
    seeds = next(b for b in remember.inputs if isinstance(b, gr.Textbox))  # an input of the event
    values = {gallery: [(str(picture), "seed 1")], info: "made from seed 1", seeds: "1"}
    remember.fn(browser_id, "tiny-model", *[values.get(block) for block in remember.inputs[2:]])

    def restored(saved_id):
        out = restore.fn(saved_id, CodeLibrary(), studio.default_model)
        return out[2], dict(zip(restore.outputs[4:], out[4:])), out[3]

    model, panels, pending = restored(browser_id)
    assert model == "tiny-model" and panels[gallery] == [(str(picture), "seed 1")]
    assert panels[info] == RESTORED_NOTE + "made from seed 1"  # says it is from before the reload
    # The inputs come back once the model views are filled (so those cannot reset them).
    restore_inputs = by_name["restore_inputs"]
    inputs_back = dict(zip(restore_inputs.outputs, restore_inputs.fn(pending)))
    assert inputs_back[seeds] == "1" and inputs_back[restore_inputs.outputs[0]] is None  # consumed
    assert isinstance(restored("")[1][gallery], type(gr.skip()))  # another browser
    picture.unlink()  # deleted after codes.FILE_RETENTION_S
    model, panels, pending = restored(browser_id)
    assert isinstance(panels[gallery], type(gr.skip())) and isinstance(model, type(gr.skip()))
    assert pending is None  # the inputs were made under tiny-model, not under the page's model


def test_model_views_reset_values_only_when_the_model_really_changes(tiny):
    """On load the page's values stand (defaults, or what a reload restored); a change of model
    resets them (e.g. the Edit sliders, whose directions belong to the model)."""
    demo, studio = tiny[:2]
    follow = next(fn for fn in demo.fns.values() if fn.name == "follow")
    sliders = [i for i, block in enumerate(follow.outputs) if isinstance(block, gr.Slider)]
    assert sliders
    on_load = follow.fn(studio.default_model, None)
    assert all(not isinstance(on_load[i], dict) or "value" not in on_load[i] for i in sliders)
    assert on_load[-1] == studio.default_model  # what the views are filled for now
    again = follow.fn(studio.default_model, studio.default_model)
    assert all(not isinstance(again[i], dict) or "value" not in again[i] for i in sliders)
    changed = follow.fn(studio.default_model, "another model")
    assert all("value" in changed[i] for i in sliders)


def test_resolution_choices_follow_the_model(tiny):
    demo = tiny[0]
    checkboxes = [block for block in demo.blocks.values() if type(block).__name__ == "CheckboxGroup"]
    assert [value for _, value in checkboxes[0].choices] == [4, 8, 16, 32]  # the 32 px model, not 1024


def test_style_mixing_labels_say_sources_are_columns(tiny):
    labels = {block.elem_id: block.label for block in tiny[0].blocks.values() if getattr(block, "elem_id", None)}
    assert "columns" in labels["mixing-sources"] and "rows" in labels["mixing-destinations"]


def test_style_mixing_takes_library_names_and_seeds(tiny_client):
    client = tiny_client
    client.predict("5", 0.7, api_name="/generate")
    client.predict("seed 5", "five", api_name="/rename_code")
    grid, _, info = client.predict("five, seed 2", "3", "coarse", 0.7, api_name="/style_mixing")
    height, width = np.asarray(Image.open(grid)).shape[:2]
    assert width - height == 32 and height > 2 * 32  # 3 x 2 cells of 32 px and the label strips
    assert "no code named 'nobody'" in refusal(lambda: client.predict("nobody", "3", "coarse", 0.7,
                                                                      api_name="/style_mixing"))


def test_names_and_faces_from_gradio_client_alone(tiny_client):
    """No page state: custom library names and face choices are accepted as values."""
    client = tiny_client
    client.predict("5", 0.7, api_name="/generate")
    assert "renamed 'seed 5' to 'five'" in client.predict("seed 5", "five", api_name="/rename_code")
    with pytest.raises(AppError, match="no code named 'nobody'"):
        client.predict("nobody", api_name="/delete_code")
    photo = handle_file(str(REPO / "examples" / "astronaut.jpg"))
    with pytest.raises(AppError) as caught:  # accepted by the menu; refused by the model check
        client.predict(photo, "face 2", 10, "w+", api_name="/invert")
    assert "not a valid choice" not in str(caught.value)


def test_bad_inputs_get_plain_messages(tiny, tiny_client, tmp_path):
    client = tiny_client
    not_npz = tmp_path / "codes.npz"
    not_npz.write_bytes(b"not a zip file")
    bad_requests = [
        ("/generate", ("9" * 5000, 0.7), "not a seed"),
        ("/generate", ("1", 9.0), "psi|maximum"),
        ("/style_transfer", ("7", "seed 2", 8), "seed 7"),
        ("/morph", ("seed 1", "seed 2", 999, "linear W+"), "frames|maximum"),
        ("/expression_transfer", ("seed 1", "seed 2", "seed 3", 1.0, 5, 2), "rows"),
        ("/style_mixing", ("1-9", "1", "coarse", 0.7), "at most"),
        ("/blend", ("seed 1", "seed 2", "painted", 0.5, False, [4], None), "paint"),
        ("/panorama", ("seed 1", "horizontal", 1.0), "between 2"),
        ("/import_library", (handle_file(str(not_npz)),), "not a latent"),
    ]
    for api_name, args, expected in bad_requests:
        with pytest.raises(AppError) as caught:
            client.predict(*args, api_name=api_name)
        message = str(caught.value)
        assert "Traceback" not in message and "Exceeds the limit" not in message, message
        assert str(tmp_path) not in message and "/tmp/" not in message, message
        assert any(word.lower() in message.lower() for word in expected.split("|")), (api_name, message)
    assert client.predict("6", 0.7, api_name="/generate")[0]


def test_a_bug_is_logged_with_its_trace_and_shown_briefly(tiny, tiny_client, monkeypatch, caplog):
    studio = tiny[1]

    def broken(*args, **kwargs):
        return [][1]

    monkeypatch.setattr(studio, "style_transfer", broken)
    with caplog.at_level(logging.INFO, logger="app"), pytest.raises(AppError, match=r"Something went wrong \(IndexError\)"):
        tiny_client.predict("seed 1", "seed 2", 8, api_name="/style_transfer")
    bug = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert bug and bug[0].exc_info and bug[0].exc_info[0] is IndexError
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="app"), pytest.raises(AppError):
        tiny_client.predict("x", 0.7, api_name="/generate")
    user = [r for r in caplog.records if "not a seed" in r.getMessage()]
    assert user and user[0].exc_info is None and "\n" not in user[0].getMessage()


def test_uploads_over_the_cap_are_refused(tiny_client, tmp_path):
    big = tmp_path / "big.npz"
    with open(big, "wb") as file:
        file.truncate(codes.MAX_UPLOAD_BYTES + 1)
    with pytest.raises(Exception, match="(?i)too large|maximum|size"):
        tiny_client.predict(handle_file(str(big)), api_name="/import_library")


def test_public_message_hides_server_paths():
    class Missing(Exception):
        pass

    message = public_message(Missing("no latent file at /srv/app/tmp/abc/code.npz; psi 0.5/1"))
    assert message == "no latent file at code.npz; psi 0.5/1"


def test_a_model_that_cannot_load_shows_one_sentence_and_folds_the_details(isolated, monkeypatch):
    from stylegan_core.loading.weights import HubLocation, WeightFile, KNOWN_FILES
    from ui.common import model_menu, status_markdown

    file = WeightFile("tiny/off.pt", hub=HubLocation("org/off", "off.pt", "0" * 40))
    monkeypatch.setitem(KNOWN_FILES, file.file_id, file)
    monkeypatch.setitem(zoo.MODELS, "off", zoo.ModelEntry("off", "stylegan2", "", 32, "", (file.file_id,),
                                                          verified=False, converter="checkpoint"))
    studio = Studio(default_model="off", device="cpu", output_dir=str(isolated / "out"))
    state = studio.model_status("off")
    assert state.failed and "\n" not in state.line and "cannot be downloaded offline" in state.line
    assert "Tried:" in state.details and str(isolated) in state.details
    shown = status_markdown(state)
    assert shown.startswith(state.line + "\n<details>") and str(isolated) not in shown  # paths cut
    assert ("off (not available offline)", "off") in model_menu(studio, probe_network=True)
    with pytest.raises(UserError) as failure:
        studio.load("off")
    toast = public_message(failure.value)
    assert "\n" not in toast and toast.startswith("the model 'off' cannot load") and "server log" in toast


# -- the real default model, as a script user sees it ---------------------------------------------
@pytest.fixture
def client(app_server):
    return Client(app_server.url, verbose=False)


def not_blank(path) -> bool:
    pixels = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)
    return pixels.std() > 10


def codes_of(client):
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


@pytest.mark.real
def test_generate(client):
    gallery, files, info = client.predict("1, 2", 0.7, api_name="/generate")
    assert [item["caption"] for item in gallery] == ["seed 1", "seed 2"]
    assert all(not_blank(item["image"]) for item in gallery)
    assert Image.open(files[0]).size == (1024, 1024)
    assert "on cpu" in info
    assert codes_of(client) == ["seed 1", "seed 2"]


@pytest.mark.real
def test_edits(client):
    calls = {
        "/style_transfer": ("seed 1", "seed 2", 64),
        "/expression_transfer": ("seed 1", "seed 2", "seed 3", 1.0, 0, -1),
        "/expression_edit": ("seed 1", "smile", 5.0),  # the shipped smile direction: the tab's default path
        "/style_mixing": ("1", "2", "coarse", 0.7),
        "/blend": ("seed 1", "seed 2", "horizontal", 0.5, False, ALL_RESOLUTIONS, None),
        "/panorama": ("seed 1, seed 2", "horizontal", 1.0),
    }
    for api_name, args in calls.items():
        image, files, info = client.predict(*args, api_name=api_name)
        assert not_blank(image), api_name
        assert files and "s on cpu" in info, api_name
    animation, frames, files, info = client.predict("seed 1", "seed 2", 3, "linear W+", api_name="/morph")
    assert len(frames) == 3 and files[0].endswith(".gif") and files[1].endswith(".mp4")
    assert Image.open(animation).n_frames >= 3 and max(Image.open(animation).size) <= codes.MORPH_GIF_SIDE


@pytest.mark.real
def test_invert_a_photo(client):
    aligned, result, metrics, files, info = client.predict(
        handle_file(str(ASTRONAUT)), "largest face", 20, "w+", api_name="/invert")
    assert Image.open(aligned).size == (1024, 1024) and not_blank(result)
    assert {"psnr", "ssim", "id_distance"} <= set(metrics)
    latent = load_latent(next(f for f in files if f.endswith(".npz")))
    assert latent.model_name == "ffhq-mobile" and tuple(latent.ws.shape) == (1, 23, 512)
    assert "astronaut" in codes_of(client)


@pytest.mark.real
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
    assert {"seed 5", "alien", "seed 6"} <= set(codes_of(client))


@pytest.mark.real
def test_sessions_are_isolated(app_server):
    alice, bob = Client(app_server.url, verbose=False), Client(app_server.url, verbose=False)
    alice.predict("11", 0.7, api_name="/generate")
    assert codes_of(alice) == ["seed 11"]
    assert codes_of(bob) == []


@pytest.mark.real
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


@pytest.mark.real
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


def test_stop_keeps_the_code_so_far_and_says_so(tiny, tmp_path):
    _, studio, _, folder = tiny
    library, cancel = CodeLibrary(), threading.Event()
    updates = []
    for update in studio.invert_stream(library, zoo.CUSTOM_CHECKPOINT, str(tiny_photo(tmp_path)), None, 500, "w",
                                       cancel=cancel):
        updates.append(update)
        if update.step >= 2:
            cancel.set()  # what the Stop button does
    final = updates[-1]
    assert final.done and final.step < 500
    assert final.info.startswith(f"stopped at step {final.step} — the code so far is in your library as")
    assert "photo" in library and library.get("photo").photo is not None
    assert "left" in updates[1].info and "loss" not in updates[1].info  # an ETA, not a raw loss


def test_no_face_is_said_and_whole_image_is_a_choice(tiny, tiny_client):
    with pytest.raises(AppError, match="no face found.*whole image"):
        tiny_client.predict(handle_file(str(tiny_photo(tiny[3]))), "largest face", 10, "w", api_name="/invert")


def test_every_app_process_has_a_gradio_cache_of_its_own(tmp_path):
    """Gradio deletes every file its app made when the app closes, and files are shared by content
    hash: an app started from a process that had built an app (as the tests do) must not share that
    cache, or the example photos vanish under it (a CI failure: 'No file at .../astronaut.jpg')."""
    probe = "import os, app; print(os.environ['GRADIO_TEMP_DIR'])"
    env = {**os.environ, "GRADIO_TEMP_DIR": str(tmp_path)}
    folders = [subprocess.run([sys.executable, "-c", probe], cwd=Path(app.__file__).parent, env=env,
                              capture_output=True, text=True, check=True).stdout.strip() for _ in range(2)]
    assert all(Path(folder).parent == tmp_path for folder in folders)  # inside the chosen folder
    assert folders[0] != folders[1]
