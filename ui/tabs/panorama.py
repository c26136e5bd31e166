"""Panorama (SOAT): one wide image growing through a sequence of codes."""
import gradio as gr

from stylegan_core import codes
from ui.common import AppContext
from ui.results import edit_outputs, show_edit

TITLE, ID = "Panorama", "panorama"


def build(ctx: AppContext) -> None:
    with gr.Row():
        references = gr.Textbox("seed 1, seed 2, seed 3", label="Codes in order",
                                info=f"library names, 'seed N' or seed numbers ('1-3'), separated by commas "
                                     f"(2 to {codes.MAX_PANORAMA_CODES})")
        direction = gr.Radio(["horizontal", "vertical"], value="horizontal", label="Direction")
        sigma = gr.Slider(*codes.SMOOTHING_SIGMA, codes.DEFAULT_SMOOTHING_SIGMA, step=0.25,
                          label="Smoothing σ along the sequence",
                          info="0 keeps every person as they are (the default); more blends neighbours into "
                               "each other, and past 0.5 the people in the middle turn into others")
    button = gr.Button("Grow panorama", variant="primary")
    outputs = edit_outputs(ctx, "panorama-result", label="Panorama")

    def panorama(lib, text, direction_name, sigma_value, model_name):
        return lib, *show_edit(ctx.studio.panorama(lib, model_name, text, direction=direction_name,
                                                   sigma=sigma_value))

    ctx.event(button.click, panorama, [references, direction, sigma], outputs, api_name="panorama")
