"""Morph: frames from one code to another, linear in W+ or spherical in Z between two seeds,
shown as an animation in the page, with an MP4, a small GIF and the frames to download."""
import gradio as gr

from stylegan_core import codes
from ui.common import AppContext, gallery_value

TITLE, ID = "Morph", "morph"
LINEAR, SPHERICAL = "linear W+", "spherical Z (seeds only)"


def build(ctx: AppContext) -> None:
    with gr.Row():
        first = ctx.code_picker("From", ctx.studio.example_or("astronaut", "seed 1"))
        second = ctx.code_picker("To", ctx.studio.example_or("grace_hopper", "seed 2"))
        frames = gr.Slider(*codes.MORPH_FRAMES, codes.DEFAULT_MORPH_FRAMES, step=1, label="Frames",
                           info="pictures from the first face to the second, both included")
        mode = gr.Radio([LINEAR, SPHERICAL], value=LINEAR, label="Interpolation",
                        info="W+: a straight blend of the two codes (any codes); Z: along the sphere "
                             "random faces come from (two seeds only)")
    button = gr.Button("Morph", variant="primary")
    with gr.Row():
        animation = gr.Image(label="Animation (plays there and back)", elem_id="morph-animation", height=384,
                             scale=2, interactive=False)
        gallery = gr.Gallery(label="Frames", columns=4, height=384, elem_id="morph-gallery", scale=3)
    files = gr.File(label="Downloads (MP4, GIF and frames)", file_count="multiple", height=160)
    info = gr.Markdown()
    ctx.results_of_model(animation, gallery, files, info)

    def morph(lib, a, b, frame_count, mode_label, model_name):
        result = ctx.studio.morph(lib, model_name, a, b, frames=frame_count,
                                  spherical=str(mode_label).startswith("spherical"))
        return lib, result.animation, gallery_value(result.pictures), result.files, result.info

    ctx.event(button.click, morph, [first, second, frames, mode], [animation, gallery, files, info],
              api_name="morph")
