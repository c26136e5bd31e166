"""Blend (SOAT feature interpolation): A and B mixed in space by a mask, at chosen resolutions. The
painted mask is drawn over A's picture (B is shown beside it) and feathered by the library."""
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
CANVAS_SIDE = 256  # px of the painting canvas and of A's picture under it (a cheap preview)


def build(ctx: AppContext) -> None:
    with gr.Row():
        first = ctx.code_picker("A", ctx.studio.example_or("astronaut", "seed 1"))
        second = ctx.code_picker("B", ctx.studio.example_or("grace_hopper", "seed 2"))
    with gr.Row():
        mask_kind = gr.Radio(MASKS, value="horizontal", label="Mask", elem_id="blend-mask-kind",
                             info="where B shows: the right or lower half, everywhere by α, or where you paint")
        alpha = gr.Slider(0, 1, 0.5, step=0.05, label="α (constant mask)", visible=False, elem_id="blend-alpha")
        pose = gr.Checkbox(False, label="Align pose (coarse rows from A)")
    resolutions = ctx.studio.resolutions()
    layers = gr.CheckboxGroup(resolutions, value=resolutions, label="Blend at these resolutions (px)")
    ctx.follow_model(layers, lambda model_name: _all_resolutions(ctx, model_name))
    with gr.Row(visible=False) as painting:
        paint = gr.ImageEditor(label="Paint where B shows (A underneath; the edges are softened)", type="numpy",
                               canvas_size=(CANVAS_SIDE, CANVAS_SIDE), fixed_canvas=True, sources=None,
                               transforms=(), layers=False, elem_id="blend-paint", scale=3,
                               brush=gr.Brush(default_size=24, colors=["#ff00ff"], color_mode="fixed"))
        b_preview = gr.Image(label="B", interactive=False, height=160, elem_id="blend-b-preview", scale=1)
    with gr.Row():
        button = gr.Button("Blend", variant="primary")
        add = gr.Button(f"Blend and add to library (fits a code: {codes.BLEND_FIT_STEPS} inversion steps)",
                        elem_id="blend-add")
    outputs = edit_outputs(ctx, "blend-result")

    mask_kind.change(lambda kind: (gr.update(visible=kind == "painted"), gr.update(visible=kind == "constant")),
                     mask_kind, [painting, alpha], queue=False, api_visibility="private")

    def canvas(lib, a, b, kind, model_name):
        """A under the canvas and B beside it, rendered only while the painted mask is chosen."""
        if kind != "painted":
            return gr.skip(), gr.skip()
        background = ctx.studio.preview(lib, model_name, a, CANVAS_SIDE)
        return {"background": background, "layers": [], "composite": None}, \
            ctx.studio.preview(lib, model_name, b, CANVAS_SIDE // 2)

    ctx.event(lambda fn, i, o, **kw: gr.on([mask_kind.change, first.change, second.change], fn, i, o, **kw),
              canvas, [first, second, mask_kind], [paint, b_preview], api_name=None, api_visibility="private",
              library="read", trigger_mode="always_last")

    def blending(add_code: bool):
        def blend(lib, a, b, kind, alpha_value, pose_from_a, chosen, painted, model_name):
            mask = BlendMask(kind=kind, alpha=alpha_value,
                             painted=painted_mask(painted) if kind == "painted" else None)
            return lib, *show_edit(ctx.studio.blend(lib, model_name, a, b, mask, pose_from_a=bool(pose_from_a),
                                                    resolutions=list(chosen or []), add=add_code))
        return blend

    inputs = [first, second, mask_kind, alpha, pose, layers, paint]
    ctx.event(button.click, blending(False), inputs, outputs, api_name="blend")
    ctx.event(add.click, blending(True), inputs, outputs, api_name="add_blend_to_library")


def _all_resolutions(ctx: AppContext, model_name: str) -> dict:
    resolutions = ctx.studio.resolutions(model_name)
    return gr.update(choices=resolutions, value=resolutions)


def painted_mask(editor_value) -> Optional[np.ndarray]:
    """A gr.ImageEditor value -> an H x W mask in [0, 1] (the strokes' opacity: where B shows), or
    None when nothing was painted. The background (A's picture) is not part of the mask."""
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
