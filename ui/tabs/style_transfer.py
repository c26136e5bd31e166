"""Style transfer (Image2StyleGAN crossover): coarse rows from the content, fine rows from the style."""
import gradio as gr

from stylegan_core import codes
from ui.common import AppContext
from ui.results import edit_outputs, show_edit

TITLE, ID = "Style transfer", "style"


def build(ctx: AppContext) -> None:
    with gr.Row():
        content = ctx.code_picker("Content (pose, shape)", ctx.studio.example_or("astronaut", "seed 1"))
        style = ctx.code_picker("Style (colours, texture)", ctx.studio.example_or("grace_hopper", "seed 2"))
        split = gr.Dropdown(**_split_choices(ctx.studio.resolutions()), label="Content up to (px)",
                            info="the picture is built from coarse to fine: up to this size (px) it follows the "
                                 "content (pose, face shape); the finer detail (colours, skin, hair texture) "
                                 "comes from the style. Lower: more of the style")
    ctx.follow_model(split, lambda model_name: gr.update(**_split_choices(ctx.studio.resolutions(model_name))))
    button = gr.Button("Transfer style", variant="primary")
    outputs = edit_outputs(ctx, "style-result")

    def style_transfer(lib, content_ref, style_ref, split_px, model_name):
        return lib, *show_edit(ctx.studio.style_transfer(lib, model_name, content_ref, style_ref,
                                                         split_resolution=split_px))

    ctx.event(button.click, style_transfer, [content, style, split], outputs, api_name="style_transfer")


def _split_choices(resolutions: list[int]) -> dict:
    """The model's layer resolutions; the default split, or the middle one for a small model."""
    default = codes.DEFAULT_SPLIT_RESOLUTION
    return {"choices": resolutions, "value": default if default in resolutions else resolutions[len(resolutions) // 2]}
