"""Invert: find the code of a face photo (Image2StyleGAN projection), with previews while it runs."""
import re
import threading
from typing import Optional

import gradio as gr

from stylegan_core import codes, examples
from ui.common import AppContext, file_path, to_gradio_error
from ui.results import IN_PHOTO_LABEL, compare_checkbox, compare_slider, paste_toggle, shown_value
from ui.transform import shown_for_stylegan3

TITLE, ID = "Invert", "invert"
LARGEST = "largest face"
WHOLE_IMAGE = "whole image (no alignment)"
NO_FACE = "no face found: choose the whole image, or another photo"
STOPS: dict[str, threading.Event] = {}  # the Stop flag of each browser session's running inversion


def face_labels(count: int) -> list[str]:
    """The Face menu for a photo with `count` faces, numbered from 1 like the preview. Without a
    face it says so first: the whole image is a choice the user makes, never a silent fallback."""
    return ([f"face {i + 1}" + (" (largest)" if i == 0 else "") for i in range(count)] or [NO_FACE]) + [WHOLE_IMAGE]


def face_index(label: Optional[str]) -> Optional[int]:
    """A Face menu value -> the face's index (0 = largest), or None for the whole image. Any
    'face N' is accepted, so API callers need not call /detect_faces first."""
    label = (label or "").strip().lower()
    if label.startswith("whole"):
        return None
    match = re.search(r"(\d+)", label)
    return int(match.group(1)) - 1 if match and int(match.group(1)) > 0 else 0


def build(ctx: AppContext) -> None:
    with gr.Row():
        with gr.Column():
            # A file input, not gr.Image: Gradio decodes gr.Image uploads itself, before our
            # checks for non-images and decompression bombs could give a clear message.
            photo = gr.File(label="Photo", file_types=["image"], type="filepath", elem_id="invert-photo")
            preview = gr.Image(label="Faces found", interactive=False, elem_id="invert-preview")
            faces = gr.Dropdown([LARGEST, WHOLE_IMAGE], value=LARGEST, label="Face", allow_custom_value=True,
                                info="which face to invert (numbered as in the preview), or the whole image as it is")
            with gr.Row():
                steps = gr.Slider(10, codes.INVERT_STEPS[1], codes.DEFAULT_INVERT_STEPS, step=10, label="Steps",
                                  elem_id="invert-steps")
                space = gr.Radio(list(codes.SPACES), value=codes.DEFAULT_SPACE, label="Latent space",
                                 info="w+ (best likeness): a separate code for each layer of the generator; w: one code "
                                      "for all layers (less like the photo, edits stay more natural); s: per-layer "
                                      "styles")
            with gr.Row():
                invert_button = gr.Button("Invert", variant="primary")
                stop_button = gr.Button("Stop")
            latent_upload = gr.File(label="…or restore a saved latent (.npz)", file_types=[".npz"])
            example_list = examples.example_photos()
            if example_list:
                gr.Examples([[str(e.path), face_labels(e.face_index + 1)[e.face_index]] for e in example_list],
                            [photo, faces], label="Example photos (public domain): a click shows their "
                            "precomputed inversion; Invert runs it again", example_labels=[e.caption for e in example_list])
        with gr.Column():
            with gr.Row():
                aligned = gr.Image(label="Aligned crop", elem_id="invert-aligned")
                inverted = gr.Image(label="Inversion", elem_id="invert-result")
                slider = compare_slider("Inversion", "invert-result")
            with gr.Row():
                in_photo = gr.Checkbox(True, label=IN_PHOTO_LABEL, visible=False, elem_id="invert-in-photo",
                                       info="the inverted face warped back into your photo")
                compare = compare_checkbox("invert-result")
            shown = gr.State(None)  # shown_value of the finished inversion (compared with the crop, the photo)
            paste_toggle(shown, in_photo, compare, inverted, slider)
            in_frame = gr.Image(label="In the photo's frame (StyleGAN3): the photo · the inversion rendered in its "
                                "frame · the paste-back", visible=False, elem_id="invert-in-frame")
            shown_for_stylegan3(ctx, in_frame)
            framed = gr.State(None)  # its path: a State keeps it out of /invert's outputs (the API's tuple)
            framed.change(lambda path: path, framed, in_frame, queue=False, api_visibility="private")
            metrics = gr.JSON(label="Quality (not the optimised loss)")
            files = gr.File(label="Downloads", file_count="multiple")
            info = gr.Markdown()
    ctx.results_of_model(aligned, inverted, slider, shown, framed, metrics, files, info)

    def detect_faces(photo_path, chosen=None):
        found = ctx.studio.find_faces(file_path(photo_path))
        labels = face_labels(found.count)
        index = face_index(chosen)  # an example's face stays chosen
        keep = index is not None and index < found.count
        return gr.update(choices=labels, value=labels[index] if keep else labels[0]), found.preview

    # For API callers; the page detects faces in show_example, on every change of the photo.
    ctx.event(gr.Button(visible=False).click, detect_faces, [photo], [faces, preview], api_name="detect_faces",
              library=False, with_model=False)

    def show_example(lib, photo_path, face, model_name):
        """A new photo's faces; for an example photo also its precomputed inversion, shown (and
        pasted back) at once."""
        unchanged = [gr.skip()] * 7  # the panels of the last run stay until Invert starts a new one
        if photo_path is None:
            return lib, gr.skip(), gr.skip(), *unchanged
        menu, found = detect_faces(photo_path, face)
        result = ctx.studio.example_result(lib, model_name, file_path(photo_path), face_index(face))
        if result is None:
            return lib, menu, found, *unchanged
        paths = shown_value(result.picture, result.pasted, result.before, result.photo)
        crop = result.before.path if result.before else None  # the example's aligned crop
        # Every panel shows the example's inversion: its quality as measured when it was made.
        return lib, menu, found, crop, result.picture.path, result.metrics, result.files, result.info, paths, None

    ctx.event(photo.change, show_example, [photo, faces],
              [faces, preview, aligned, inverted, metrics, files, info, shown, framed],
              api_name="show_example", api_visibility="private")

    def invert(lib, photo_path, face, step_count, latent_space, model_name, request: gr.Request,
               progress=gr.Progress()):
        """Every panel shows one run: the old result, metrics and downloads go once the new photo is
        aligned; an error keeps what is on screen (and says so); Stop keeps the code so far."""
        stop = STOPS[request.session_hash] = threading.Event()
        updates = ctx.studio.invert_stream(lib, model_name, file_path(photo_path), face_index(face),
                                           steps=step_count, space=latent_space, cancel=stop)
        first = True
        try:
            for update in updates:
                if update.done:
                    paths = shown_value(update.result, update.pasted, update.before, update.photo)
                    frame_path = update.in_frame.path if update.in_frame else None
                    yield (lib, update.aligned.path, update.result.path, update.metrics, update.files, update.info,
                           paths, frame_path)
                    continue
                progress((update.step, update.total), desc="inverting")
                cleared = None if first else gr.skip()  # a new run: nothing of the last one stays
                preview_image = cleared if update.preview is None else update.preview
                yield gr.skip(), update.aligned.path, preview_image, cleared, cleared, update.info, cleared, cleared
                first = False
        finally:
            STOPS.pop(request.session_hash, None)

    def invert_on_page(lib, photo_path, face, step_count, latent_space, model_name, request: gr.Request,
                       progress=gr.Progress()):
        """The page's Invert: an error becomes a warning and a line, so the panels keep the last
        good run instead of an error stamp each (API callers get the error raised, from /invert)."""
        try:
            yield from invert(lib, photo_path, face, step_count, latent_space, model_name, request, progress)
        except Exception as error:  # noqa: BLE001 - the error boundary, as a warning
            message = str(to_gradio_error(error, "invert").message)
            gr.Warning(message)
            yield (gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), f"**Not inverted:** {message}", gr.skip(),
                   gr.skip())

    outputs = [aligned, inverted, metrics, files, info, shown, framed]
    ctx.event(invert_button.click, invert_on_page, [photo, faces, steps, space], outputs,
              api_name="invert_on_page", api_visibility="private")
    ctx.event(gr.Button(visible=False).click, invert, [photo, faces, steps, space], outputs, api_name="invert")

    def stop_inversion(request: gr.Request):
        """Stop after the current step; the inversion then finishes with the best code so far."""
        stop = STOPS.get(request.session_hash)
        if stop is not None:
            stop.set()

    stop_button.click(stop_inversion, None, None, queue=False, api_visibility="private")

    def restore_latent(lib, upload, model_name):
        """A saved code's picture; the last inversion's comparisons no longer belong to it."""
        result = ctx.studio.import_codes(lib, model_name, file_path(upload))
        return lib, None if result.picture is None else result.picture.path, result.info, None

    ctx.event(latent_upload.upload, restore_latent, [latent_upload], [inverted, info, shown],
              api_name="restore_latent")
