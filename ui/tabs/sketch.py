"""Sketch: draw a face (or upload a line drawing), get photo-real candidates, then edit them."""
import threading
from typing import Optional

import numpy as np
import gradio as gr
from PIL import Image

from stylegan_core.editing.sketch import MAX_STEPS
from ui.common import AppContext, file_path, gallery_value

TITLE, ID = "Sketch", "sketch"
CANVAS = (512, 512)
MAX_SHOWN_CANDIDATES = 4
# The running fit of each browser session: Stop sets its event, and the fit ends with the best
# candidates so far (cancelling the event instead would throw them away).
_RUNNING: dict[str, threading.Event] = {}


def canvas_drawing(value) -> Optional[Image.Image]:
    """A Sketchpad value (a dict of background, layers and the composite) -> the strokes in black on
    white paper, or None when nothing was drawn. The composite is transparent where nobody drew."""
    composite = value.get("composite") if isinstance(value, dict) else value
    if composite is None:
        return None
    rgba = Image.fromarray(np.asarray(composite, dtype=np.uint8)).convert("RGBA")
    if rgba.getchannel("A").getextrema()[1] == 0:
        return None
    paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(paper, rgba).convert("RGB")


def show_updates(lib, updates, progress):
    """SketchUpdates as the tab's outputs: previews while the fit runs, then the candidates."""
    for update in updates:
        if update.done:
            yield lib, update.pictures[0].path, gallery_value(update.pictures), update.files, update.info
        else:
            if update.total:
                progress((update.step, update.total), desc="fitting the sketch")
            shown = gr.skip() if update.preview is None else update.preview
            yield gr.skip(), shown, gr.skip(), gr.skip(), update.info


def build(ctx: AppContext) -> None:
    with gr.Row():
        with gr.Column():
            canvas = gr.Sketchpad(label="Draw a face (pick the brush, then dark lines on white)", canvas_size=CANVAS, type="numpy",
                                  brush=gr.Brush(colors=["#000000"], default_color="#000000", color_mode="fixed",
                                                 default_size=4),
                                  height=620, layers=False, transforms=(), elem_id="sketch-canvas")
            upload = gr.File(label="…or upload a line drawing", file_types=["image"], type="filepath",
                             elem_id="sketch-upload")
            reference = ctx.code_picker("Colours and texture from (optional)", "",
                                        elem_id="sketch-reference")
            with gr.Row():
                candidates = gr.Slider(1, MAX_SHOWN_CANDIDATES, 2, step=1, label="Candidates",
                                       elem_id="sketch-candidates")
                steps = gr.Slider(10, min(MAX_STEPS, 200), 60, step=10, label="Steps per candidate",
                                  elem_id="sketch-steps")
            with gr.Row():
                button = gr.Button("Make faces", variant="primary")
                stop = gr.Button("Stop")
        with gr.Column():
            preview = gr.Image(label="Progress", interactive=False, elem_id="sketch-preview")
            gallery = gr.Gallery(label="Candidates (best first)", columns=2, height="auto", elem_id="sketch-gallery")
            files = gr.File(label="Downloads", file_count="multiple")
            info = gr.Markdown("Each candidate joins your library as 'sketch N'; make it older, smiling or "
                               "turned in the **Edit** tab.")
    ctx.results_of_model(preview, gallery, files)  # the info line keeps its hint

    def make_faces(lib, drawing, upload_path, reference_name, count, step_count, model_name,
                   request: gr.Request, progress=gr.Progress()):
        path = file_path(upload_path)
        source = path if path else canvas_drawing(drawing)
        cancel = _RUNNING[request.session_hash] = threading.Event()
        try:
            yield from show_updates(lib, ctx.studio.sketch_stream(lib, model_name, source, count, step_count,
                                                                  reference_name, cancel), progress)
        finally:
            if _RUNNING.get(request.session_hash) is cancel:
                del _RUNNING[request.session_hash]

    ctx.event(button.click, make_faces, [canvas, upload, reference, candidates, steps],
              [preview, gallery, files, info], api_name="sketch_to_face")

    def stop_fit(request: gr.Request):
        running = _RUNNING.pop(request.session_hash, None)
        if running is not None:
            running.set()

    stop.click(stop_fit, None, None, queue=False, api_visibility="private")
