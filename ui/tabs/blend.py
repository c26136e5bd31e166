"""Blend (SOAT feature interpolation): A and B mixed in space by a mask, at chosen resolutions."""
from typing import Optional

import gradio as gr
import numpy as np

from stylegan_core import codes
from stylegan_core.images import check_mask_image
from stylegan_core.studio import BlendMask
from ui.common import AppContext
from ui.results import edit_outputs, show_edit

TITLE, ID = "Blend", "blend"
MASKS = ["horizontal", "vertical", "constant", "painted"]


def build(ctx: AppContext) -> None:
    with gr.Row():
        first = ctx.code_picker("A", ctx.studio.example_or("astronaut", "seed 1"))
        second = ctx.code_picker("B", ctx.studio.example_or("grace_hopper", "seed 2"))
    with gr.Row():
        mask_kind = gr.Radio(MASKS, value="horizontal", label="Mask")
        alpha = gr.Slider(0, 1, 0.5, step=0.05, label="α (constant mask)")
        pose = gr.Checkbox(False, label="Align pose (coarse rows from A)")
    resolutions = ctx.studio.resolutions()
    layers = gr.CheckboxGroup(resolutions, value=resolutions, label="Blend at these resolutions (px)")
    ctx.follow_model(layers, lambda model_name: _all_resolutions(ctx, model_name))
    paint = gr.ImageEditor(label="Painted mask: paint where B shows", type="numpy", canvas_size=(256, 256),
                           sources=["upload"], elem_id="blend-paint")
    button = gr.Button("Blend", variant="primary")
    outputs = edit_outputs("blend-result")

    def blend(lib, a, b, kind, alpha_value, pose_from_a, chosen, painted, model_name):
        mask = BlendMask(kind=kind, alpha=alpha_value, painted=painted_mask(painted) if kind == "painted" else None)
        return lib, *show_edit(ctx.studio.blend(lib, model_name, a, b, mask, pose_from_a=bool(pose_from_a),
                                                resolutions=list(chosen or [])))

    ctx.event(button.click, blend, [first, second, mask_kind, alpha, pose, layers, paint], outputs, api_name="blend")


def _all_resolutions(ctx: AppContext, model_name: str) -> dict:
    resolutions = ctx.studio.resolutions(model_name)
    return gr.update(choices=resolutions, value=resolutions)


def painted_mask(editor_value) -> Optional[np.ndarray]:
    """A gr.ImageEditor value -> an H x W mask in [0, 1] (the strokes' opacity: where B shows), or
    None when nothing was painted."""
    layers = editor_value.get("layers") if isinstance(editor_value, dict) else None
    if not layers:
        return None
    for layer in layers:  # by size alone, before anything is converted
        check_mask_image(layer, codes.MAX_MASK_SIDE)
    strokes = None
    for layer in layers:
        array = np.asarray(layer)
        if array.ndim == 3 and array.shape[2] == 4 and (strokes is None or array.shape[:2] == strokes.shape):
            alpha = array[..., 3].astype(np.float32) / 255.0
            strokes = alpha if strokes is None else np.maximum(strokes, alpha)
    return strokes
