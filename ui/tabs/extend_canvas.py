"""Extend canvas (SOAT): pad an early layer's features to widen the image ("uncrop"), and layout
variations of one image from stretched or patch-duplicated features."""
import gradio as gr

from stylegan_core.editing import spatial
from ui.common import AppContext, gallery_value
from ui.results import edit_outputs, show_edit

TITLE, ID = "Extend", "extend-canvas"


def resolution_choices(ctx: AppContext, model_name: str) -> dict:
    """The feature resolutions of the current model (every layer resolution below the image's)."""
    choices = spatial.edit_resolutions(ctx.studio.generator(model_name))
    value = spatial.DEFAULT_RESOLUTION if spatial.DEFAULT_RESOLUTION in choices else choices[0]
    return gr.update(choices=choices, value=value)


def build(ctx: AppContext) -> None:
    with gr.Row():
        code = ctx.code_picker("Code", "seed 1")
        resolution = gr.Dropdown([spatial.DEFAULT_RESOLUTION], value=spatial.DEFAULT_RESOLUTION,
                                 label="Feature resolution (px)", allow_custom_value=True,
                                 info="lower: the layout is continued; higher: only textures are")
        mode = gr.Radio(list(spatial.PAD_MODES), value="replicate", label="Padding mode")
    ctx.follow_model(resolution, lambda model_name: resolution_choices(ctx, model_name))
    with gr.Row():
        amounts = [gr.Slider(0.0, spatial.MAX_EXTENSION, value, step=0.125, label=f"{side} (× image side)")
                   for side, value in (("Left", 0.5), ("Right", 0.5), ("Top", 0.0), ("Bottom", 0.0))]
    button = gr.Button("Extend canvas", variant="primary")
    outputs = edit_outputs(ctx, "extend-result", label="Extended canvas")

    def extend(lib, code_ref, resolution_px, pad_mode, left, right, top, bottom, model_name):
        result = ctx.studio.extend_canvas(lib, model_name, code_ref, resolution_px, pad_mode, left, right, top, bottom)
        return lib, *show_edit(result)

    ctx.event(button.click, extend, [code, resolution, mode, *amounts], outputs, api_name="extend_canvas")

    with gr.Row():
        count = gr.Slider(1, 6, 4, step=1, label="Layout variations")
        seed = gr.Number(0, precision=0, label="Variation seed", minimum=0)
        variations_button = gr.Button("Layout variations")
    # Stretched variations are larger than the image: shown whole, side by side.
    gallery = gr.Gallery(label="Variations", columns=4, height=360, object_fit="contain",
                         elem_id="variations-gallery")
    variation_info = gr.Markdown()
    ctx.results_of_model(gallery, variation_info)

    def variations(lib, code_ref, resolution_px, variation_count, variation_seed, model_name):
        result = ctx.studio.layout_variations(lib, model_name, code_ref, resolution_px, variation_count,
                                              variation_seed)
        return lib, gallery_value(result.pictures), result.info

    ctx.event(variations_button.click, variations, [code, resolution, count, seed], [gallery, variation_info],
              api_name="layout_variations")
