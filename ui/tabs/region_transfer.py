"""Region transfer (SOAT): one region of the target face (eyes, mouth, hair, ...) taken from a
reference code; and, in an accordion, translation of a code's image into a second generator."""
import gradio as gr

from stylegan_core.editing import region_transfer
from ui.common import AppContext, model_menu
from ui.results import edit_outputs, show_edit

TITLE, ID = "Regions", "region-transfer"


def build(ctx: AppContext) -> None:
    with gr.Row():
        target = ctx.code_picker("Target", "seed 1")
        reference = ctx.code_picker("Reference (the region comes from here)", "seed 2")
        region = gr.Radio(list(region_transfer.REGIONS), value="mouth", label="Region")
        min_resolution = gr.Dropdown([region_transfer.DEFAULT_MIN_RESOLUTION], label="Blend from (px)",
                                     value=region_transfer.DEFAULT_MIN_RESOLUTION, allow_custom_value=True,
                                     info="lower: more of the reference's shape; changes reach farther")
    ctx.follow_model(min_resolution, lambda model_name: gr.update(choices=ctx.studio.resolutions(model_name)))
    button = gr.Button("Transfer region", variant="primary")
    with gr.Row():
        with gr.Column(scale=2):
            outputs = edit_outputs(ctx, "region-result")
        mask = gr.Image(label="Mask (where the reference shows)", elem_id="region-mask", scale=1)

    def transfer(lib, target_ref, reference_ref, region_name, lowest, model_name):
        transferred = ctx.studio.transfer_region(lib, model_name, target_ref, reference_ref, region_name, lowest)
        return lib, *show_edit(transferred.result), transferred.mask.path

    ctx.event(button.click, transfer, [target, reference, region, min_resolution], [*outputs, mask],
              api_name="transfer_region")
    build_translation(ctx)


def build_translation(ctx: AppContext) -> None:
    with gr.Accordion("Translate into a second model", open=False):
        gr.Markdown("The same code rendered by the current model and by a model fine-tuned from it "
                    "(e.g. a cartoon fine-tune), their features blended layer by layer: 0 is the current "
                    "model's image, 1 the second model's. Both models must share an architecture.")
        with gr.Row():
            code = ctx.code_picker("Code", "seed 1")
            second = gr.Dropdown(model_menu(ctx.studio), label="Second model", allow_custom_value=True)
            alpha = gr.Slider(0.0, 1.0, 0.5, step=0.05, label="α (0: current model, 1: second model)")
        button = gr.Button("Translate")
        outputs = edit_outputs(ctx, "translate-result", label="Translated")

    def translate(lib, code_ref, second_model, alpha_value, model_name):
        return lib, *show_edit(ctx.studio.translate(lib, model_name, code_ref, second_model, alpha_value))

    ctx.event(button.click, translate, [code, second, alpha], outputs, api_name="translate_generators")
