"""StyleGAN editing studio: a Gradio Blocks app, one tab per operation.

Layout and event wiring only. Every operation is a method of `stylegan_core.studio.Studio`;
no model code lives here. Run `python app.py --help` for the options.
"""
from __future__ import annotations

import argparse
import functools
import inspect
import logging
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402

from stylegan_core import zoo  # noqa: E402
from stylegan_core.library import CodeLibrary  # noqa: E402
from stylegan_core.runtime import heap_reuse  # noqa: E402
from stylegan_core.studio import USER_ERRORS, Studio, default_invert_steps  # noqa: E402

log = logging.getLogger("app")

LICENCE_NOTE = (
    "**Licences.** The FFHQ generators (MobileStyleGAN FFHQ, StyleGAN2 FFHQ) derive from NVIDIA's FFHQ "
    "StyleGAN2 and the FFHQ data set: research and **non-commercial** use only. The 68-point landmark "
    "model was trained on iBUG 300-W (non-commercial). VGG16 ImageNet weights: CC BY 4.0 (Simonyan & "
    "Zisserman). Do not upload photos of people without their consent."
)
CONCURRENCY_LIMIT = int(os.environ.get("STYLEGAN_CONCURRENCY", "2"))  # 2 vCPUs: more only thrashes
SEED_EXAMPLES = ["seed 1", "seed 2", "seed 3", "seed 4", "seed 5", "seed 6"]


def user_errors(fn):
    """Show expected problems as gr.Error messages; log anything else and show a short message."""

    def translate(error: BaseException) -> gr.Error:
        if isinstance(error, gr.Error):
            return error
        if isinstance(error, USER_ERRORS):
            return gr.Error(str(error))
        log.exception("unexpected error in %s", fn.__name__)
        return gr.Error(f"Something went wrong ({type(error).__name__}). The server keeps running; "
                        "please try again or report it with the server log.")

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def generator_wrapper(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except Exception as error:  # noqa: BLE001 - the boundary between the app and the user
                raise translate(error) from error
        return generator_wrapper

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as error:  # noqa: BLE001 - the boundary between the app and the user
            raise translate(error) from error
    return wrapper


def code_picker(label: str, value: str) -> gr.Dropdown:
    return gr.Dropdown(choices=SEED_EXAMPLES, value=value, label=label, allow_custom_value=True,
                       info="a code from your library, or 'seed N'")


def build_app(studio: Studio) -> gr.Blocks:
    with gr.Blocks(title="StyleGAN Studio") as demo:
        library = gr.State(CodeLibrary())
        gr.Markdown("# StyleGAN Studio\nInvert a face photo into a StyleGAN, then morph, mix, "
                    "blend and extend it. Codes you make go into your library (this browser session only).")
        with gr.Row():
            model = gr.Dropdown(studio.model_choices(), value=studio.default_model, label="Model", scale=1)
            status = gr.Markdown(elem_id="status-line")
        pickers: list[gr.Dropdown] = []

        with gr.Tabs():
            with gr.Tab("Generate", id="generate"):
                with gr.Row():
                    seeds = gr.Textbox("1, 2, 3, 4", label="Seeds", info="e.g. '7' or '1, 5, 10-13'")
                    psi = gr.Slider(-1, 2, 0.7, step=0.05, label="Truncation psi")
                generate_button = gr.Button("Generate", variant="primary")
                generate_gallery = gr.Gallery(label="Faces", columns=4, height="auto", elem_id="generate-gallery")
                generate_files = gr.File(label="Downloads", file_count="multiple")
                generate_info = gr.Markdown()

            with gr.Tab("Invert", id="invert"):
                with gr.Row():
                    with gr.Column():
                        # A file input, not gr.Image: Gradio decodes gr.Image uploads itself, before our
                        # checks for non-images and decompression bombs could give a clear message.
                        photo = gr.File(label="Photo", file_types=["image"], type="filepath", elem_id="invert-photo")
                        photo_preview = gr.Image(label="Faces found", interactive=False, elem_id="invert-preview")
                        faces = gr.Dropdown(["largest face"], value="largest face", label="Face",
                                            info="which face to invert, or the whole image as it is")
                        with gr.Row():
                            invert_steps = gr.Slider(10, 1000, default_invert_steps(), step=10, label="Steps",
                                                     elem_id="invert-steps")
                            invert_space = gr.Radio(["w+", "w"], value="w+", label="Latent space")
                        with gr.Row():
                            invert_button = gr.Button("Invert", variant="primary")
                            stop_button = gr.Button("Stop")
                        latent_upload = gr.File(label="…or restore a saved latent (.npz)", file_types=[".npz"])
                    with gr.Column():
                        with gr.Row():
                            aligned = gr.Image(label="Aligned crop", elem_id="invert-aligned")
                            inverted = gr.Image(label="Inversion", elem_id="invert-result")
                        invert_metrics = gr.JSON(label="Quality (not the optimised loss)")
                        invert_files = gr.File(label="Downloads", file_count="multiple")
                        invert_info = gr.Markdown()

            with gr.Tab("Morph", id="morph"):
                with gr.Row():
                    morph_a, morph_b = code_picker("From", "seed 1"), code_picker("To", "seed 2")
                    pickers += [morph_a, morph_b]
                    morph_frames = gr.Slider(2, 16, 6, step=1, label="Frames")
                    morph_mode = gr.Radio(["linear W+", "spherical Z (seeds only)"], value="linear W+",
                                          label="Interpolation")
                morph_button = gr.Button("Morph", variant="primary")
                morph_gallery = gr.Gallery(label="Frames", columns=6, height="auto", elem_id="morph-gallery")
                morph_files = gr.File(label="Downloads (GIF and frames)", file_count="multiple")
                morph_info = gr.Markdown()

            with gr.Tab("Style transfer", id="style"):
                with gr.Row():
                    style_content, style_style = code_picker("Content (pose, shape)", "seed 1"), code_picker(
                        "Style (colours, texture)", "seed 2")
                    pickers += [style_content, style_style]
                    style_split = gr.Dropdown([4, 8, 16, 32, 64, 128, 256, 512], value=64,
                                              label="Content up to (px)")
                style_button = gr.Button("Transfer style", variant="primary")
                style_image = gr.Image(label="Result", elem_id="style-result")
                style_files = gr.File(label="Downloads", file_count="multiple")
                style_info = gr.Markdown()

            with gr.Tab("Expression transfer", id="expression"):
                with gr.Row():
                    expr_target = code_picker("Target person (w1)", "seed 1")
                    expr_with = code_picker("With expression (w2)", "seed 2")
                    expr_without = code_picker("Same person, neutral (w3)", "seed 3")
                    pickers += [expr_target, expr_with, expr_without]
                with gr.Row():
                    expr_lambda = gr.Slider(-3, 3, 1.0, step=0.1, label="λ")
                    expr_first = gr.Number(0, precision=0, label="First row")
                    expr_last = gr.Number(-1, precision=0, label="Last row (-1 = all)")
                expr_button = gr.Button("Transfer expression", variant="primary")
                expr_image = gr.Image(label="Result", elem_id="expression-result")
                expr_files = gr.File(label="Downloads", file_count="multiple")
                expr_info = gr.Markdown()

            with gr.Tab("Style mixing", id="mixing"):
                with gr.Row():
                    mix_rows = gr.Textbox("1, 2, 3", label="Source seeds (rows)")
                    mix_cols = gr.Textbox("4, 5, 6", label="Destination seeds (columns)")
                    mix_group = gr.Radio(["coarse", "middle", "fine"], value="coarse",
                                         label="Styles copied from the destination")
                    mix_psi = gr.Slider(-1, 2, 0.7, step=0.05, label="Truncation psi")
                mix_button = gr.Button("Mix", variant="primary")
                mix_image = gr.Image(label="Grid", elem_id="mixing-result")
                mix_files = gr.File(label="Downloads", file_count="multiple")
                mix_info = gr.Markdown()

            with gr.Tab("Blend", id="blend"):
                with gr.Row():
                    blend_a, blend_b = code_picker("A", "seed 1"), code_picker("B", "seed 2")
                    pickers += [blend_a, blend_b]
                with gr.Row():
                    blend_mask = gr.Radio(["horizontal", "vertical", "constant", "painted"],
                                          value="horizontal", label="Mask")
                    blend_alpha = gr.Slider(0, 1, 0.5, step=0.05, label="α (constant mask)")
                    blend_pose = gr.Checkbox(False, label="Align pose (coarse rows from A)")
                blend_layers = gr.CheckboxGroup([4, 8, 16, 32, 64, 128, 256, 512, 1024],
                                                value=[4, 8, 16, 32, 64, 128, 256, 512, 1024],
                                                label="Blend at these resolutions (px)")
                blend_paint = gr.ImageEditor(label="Painted mask: paint where B shows", type="numpy",
                                             canvas_size=(256, 256), sources=["upload"], elem_id="blend-paint")
                blend_button = gr.Button("Blend", variant="primary")
                blend_image = gr.Image(label="Result", elem_id="blend-result")
                blend_files = gr.File(label="Downloads", file_count="multiple")
                blend_info = gr.Markdown()

            with gr.Tab("Panorama", id="panorama"):
                with gr.Row():
                    pano_codes = gr.Textbox("seed 1, seed 2, seed 3", label="Codes in order",
                                            info="library names or 'seed N', separated by commas")
                    pano_direction = gr.Radio(["horizontal", "vertical"], value="horizontal", label="Direction")
                    pano_smooth = gr.Slider(0, 3, 1.0, step=0.25, label="Smoothing σ along the sequence")
                pano_button = gr.Button("Grow panorama", variant="primary")
                pano_image = gr.Image(label="Panorama", elem_id="panorama-result")
                pano_files = gr.File(label="Downloads", file_count="multiple")
                pano_info = gr.Markdown()

            with gr.Tab("Library", id="library"):
                library_gallery = gr.Gallery(label="Your codes", columns=8, height="auto", elem_id="library-gallery")
                with gr.Row():
                    library_pick = gr.Dropdown([], label="Code", allow_custom_value=False)
                    library_name = gr.Textbox(label="New name")
                    rename_button = gr.Button("Rename")
                    delete_button = gr.Button("Delete", variant="stop")
                with gr.Row():
                    export_button = gr.Button("Export all (.npz)")
                    export_file = gr.File(label="Export")
                    import_file = gr.File(label="Import codes (.npz)", file_types=[".npz"])
                library_info = gr.Markdown()

        gr.Markdown(LICENCE_NOTE)

        # -- wiring ----------------------------------------------------------------------------
        def refresh(lib: CodeLibrary):
            names = lib.names()
            choices = names + SEED_EXAMPLES
            updates = [gr.update(choices=choices) for _ in pickers]
            gallery = [(e.thumbnail, e.caption) for e in lib.entries() if e.thumbnail is not None]
            return [*updates, gallery, gr.update(choices=names, value=names[-1] if names else None)]

        refresh_outputs = [*pickers, library_gallery, library_pick]

        def after(event):
            return event.success(refresh, library, refresh_outputs, queue=False, api_visibility="private")

        status_timer = gr.Timer(2.0)

        def show_status(model_name):
            """The status line; polled every 2 s only while the model is still loading."""
            return studio.status_line(model_name), gr.Timer(active=studio.is_loading(model_name))

        for trigger in (demo.load, model.change, status_timer.tick):
            trigger(show_status, model, [status, status_timer], api_visibility="private", queue=False)

        @user_errors
        def generate(lib, seeds_text, psi_value, model_name):
            result = studio.generate(lib, model_name, seeds_text, psi_value)
            return lib, result["images"], result["files"], result["info"]

        after(generate_button.click(generate, [library, seeds, psi, model],
                                    [library, generate_gallery, generate_files, generate_info],
                                    api_name="generate"))

        @user_errors
        def find_faces(photo_path):
            found = studio.face_choices(photo_path)
            return gr.update(choices=found["choices"], value=found["value"]), found["preview"]

        photo.upload(find_faces, photo, [faces, photo_preview], api_name="detect_faces")

        @user_errors
        def invert(lib, photo_path, face, steps, space, model_name, progress=gr.Progress()):
            for update in studio.invert_stream(lib, model_name, photo_path, face, steps, space):
                if update.done:
                    yield (lib, update.aligned, update.image, update.metrics, update.files, update.info)
                else:
                    progress((update.step, update.total), desc="inverting")
                    preview = gr.skip() if update.image is None else update.image
                    yield (gr.skip(), update.aligned, preview, gr.skip(), gr.skip(), update.info)

        invert_event = invert_button.click(
            invert, [library, photo, faces, invert_steps, invert_space, model],
            [library, aligned, inverted, invert_metrics, invert_files, invert_info],
            api_name="invert", concurrency_limit=1, concurrency_id="invert")
        after(invert_event)
        stop_button.click(None, None, None, cancels=[invert_event], api_visibility="private")

        @user_errors
        def restore_latent(lib, file, model_name):
            result = studio.import_codes(lib, model_name, file)
            return lib, result["image"], result["info"]

        after(latent_upload.upload(restore_latent, [library, latent_upload, model],
                                   [library, inverted, invert_info], api_name="restore_latent"))

        @user_errors
        def morph(lib, a, b, frames, mode, model_name):
            result = studio.morph(lib, model_name, a, b, frames, mode.startswith("spherical"))
            return lib, result["images"], result["files"], result["info"]

        after(morph_button.click(morph, [library, morph_a, morph_b, morph_frames, morph_mode, model],
                                 [library, morph_gallery, morph_files, morph_info], api_name="morph"))

        def single_image_event(button, method, inputs, image, files, info, api_name):
            @user_errors
            def run(lib, *args):
                *values, model_name = args  # the model picker comes last so API callers may omit it
                result = getattr(studio, method)(lib, model_name, *values)
                return lib, result["image"], result["files"], result["info"]

            run.__name__ = api_name
            after(button.click(run, [library, *inputs, model], [library, image, files, info], api_name=api_name))

        single_image_event(style_button, "style_transfer", [style_content, style_style, style_split],
                           style_image, style_files, style_info, "style_transfer")
        single_image_event(expr_button, "expression_transfer",
                           [expr_target, expr_with, expr_without, expr_lambda, expr_first, expr_last],
                           expr_image, expr_files, expr_info, "expression_transfer")
        single_image_event(mix_button, "style_mixing", [mix_rows, mix_cols, mix_group, mix_psi],
                           mix_image, mix_files, mix_info, "style_mixing")
        single_image_event(blend_button, "blend",
                           [blend_a, blend_b, blend_mask, blend_alpha, blend_pose, blend_layers, blend_paint],
                           blend_image, blend_files, blend_info, "blend")
        single_image_event(pano_button, "panorama", [pano_codes, pano_direction, pano_smooth],
                           pano_image, pano_files, pano_info, "panorama")

        @user_errors
        def delete(lib, name):
            lib.delete(name)
            return lib, f"deleted {name}"

        @user_errors
        def rename(lib, old, new):
            entry = lib.rename(old, new)
            return lib, f"renamed {old} to {entry.name}"

        @user_errors
        def export(lib):
            return studio.export_library(lib)

        @user_errors
        def import_codes(lib, file, model_name):
            result = studio.import_codes(lib, model_name, file)
            return lib, result["info"]

        after(delete_button.click(delete, [library, library_pick], [library, library_info], api_name="delete_code"))
        after(rename_button.click(rename, [library, library_pick, library_name], [library, library_info],
                                  api_name="rename_code"))
        export_button.click(export, library, export_file, api_name="export_library")
        after(import_file.upload(import_codes, [library, import_file, model], [library, library_info],
                                 api_name="import_library"))

        @user_errors
        def list_codes(lib):
            return [{"name": e.name, "model": e.model_name, "source": e.source,
                     "shape": list(e.ws.shape)} for e in lib.entries()]

        gr.Button(visible=False).click(list_codes, library, gr.JSON(visible=False), api_name="list_codes")
    return demo


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="StyleGAN editing studio (Gradio app)")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    parser.add_argument("--share", action="store_true", help="ask Gradio for a public share link")
    parser.add_argument("--model", default=os.environ.get("STYLEGAN_MODEL", zoo.DEFAULT_MODEL),
                        help=f"default model: one of {', '.join(zoo.model_names())}")
    parser.add_argument("--checkpoint", default=os.environ.get("STYLEGAN_CHECKPOINT"),
                        help="a local checkpoint (NVlabs .pkl, rosinality .pt, stylegan_core .safetensors)")
    parser.add_argument("--device", default=os.environ.get("STYLEGAN_DEVICE", "auto"), help="auto, cpu or cuda")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    heap_reuse(True)  # keep freed feature maps for the next request instead of re-faulting them
    studio = Studio(default_model=args.model, device=args.device, checkpoint=args.checkpoint)
    studio.warm_up()
    demo = build_app(studio)
    demo.queue(default_concurrency_limit=CONCURRENCY_LIMIT, max_size=64)
    # Where no share link can be made (offline), Gradio prints why and keeps serving locally.
    demo.launch(server_name=args.host, server_port=args.port, share=args.share, show_error=False)


if __name__ == "__main__":
    main()
