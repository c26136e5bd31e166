"""StyleGAN3 rotation and translation controls (and any StyleGAN3-only control), shown only while a
StyleGAN3 model is picked."""
from dataclasses import dataclass

import gradio as gr

from stylegan_core.studio_edit import ROTATION_LIMIT, TRANSLATION_LIMIT, ImageTransform


@dataclass
class TransformControls:
    components: list  # rotation, tx, ty sliders (in this order in an event's inputs)

    @staticmethod
    def value(rotate, tx, ty) -> ImageTransform:
        """The sliders' values (None from API callers that leave them out: no transform)."""
        return ImageTransform(rotate or 0.0, tx or 0.0, ty or 0.0)


def transform_controls(ctx, prefix: str) -> TransformControls:
    with gr.Row(visible=False) as row:  # shifts in image widths: 0.5 moves the face half the image over
        rotate = gr.Slider(-ROTATION_LIMIT, ROTATION_LIMIT, 0, step=1, label="Rotate (degrees)",
                           elem_id=f"{prefix}-rotate")
        tx = gr.Slider(-TRANSLATION_LIMIT, TRANSLATION_LIMIT, 0, step=0.01, label="Shift x",
                       elem_id=f"{prefix}-tx")
        ty = gr.Slider(-TRANSLATION_LIMIT, TRANSLATION_LIMIT, 0, step=0.01, label="Shift y",
                       elem_id=f"{prefix}-ty")
    shown_for_stylegan3(ctx, row)
    return TransformControls([rotate, tx, ty])


def shown_for_stylegan3(ctx, component) -> None:
    """Show `component` only while a StyleGAN3 model is picked."""
    ctx.follow_model(component,
                     lambda model_name: gr.update(visible=ctx.studio.architecture(model_name) == "stylegan3"))
