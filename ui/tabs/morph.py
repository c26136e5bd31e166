"""Morph: frames from one code to another, linear in W+ or spherical in Z between two seeds."""
import gradio as gr

from stylegan_core import codes
from ui.common import AppContext, gallery_value

TITLE, ID = "Morph", "morph"
LINEAR, SPHERICAL = "linear W+", "spherical Z (seeds only)"


def build(ctx: AppContext) -> None:
    with gr.Row():
        first = ctx.code_picker("From", ctx.studio.example_or("astronaut", "seed 1"))
        second = ctx.code_picker("To", ctx.studio.example_or("grace_hopper", "seed 2"))
        frames = gr.Slider(*codes.MORPH_FRAMES, codes.DEFAULT_MORPH_FRAMES, step=1, label="Frames")
        mode = gr.Radio([LINEAR, SPHERICAL], value=LINEAR, label="Interpolation")
    button = gr.Button("Morph", variant="primary")
    gallery = gr.Gallery(label="Frames", columns=6, height="auto", elem_id="morph-gallery")
    files = gr.File(label="Downloads (GIF and frames)", file_count="multiple")
    info = gr.Markdown()

    def morph(lib, a, b, frame_count, mode_label, model_name):
        result = ctx.studio.morph(lib, model_name, a, b, frames=frame_count,
                                  spherical=str(mode_label).startswith("spherical"))
        return lib, gallery_value(result.pictures), result.files, result.info

    ctx.event(button.click, morph, [first, second, frames, mode], [gallery, files, info], api_name="morph")
