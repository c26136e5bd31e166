"""Expression transfer (Image2StyleGAN): w1 + lambda (w2 - w3) on a range of rows."""
import gradio as gr

from stylegan_core import codes
from ui.common import AppContext
from ui.results import edit_outputs, show_edit

TITLE, ID = "Expression", "expression"


def build(ctx: AppContext) -> None:
    gr.Markdown("w2 and w3 are the same person with and without the expression; their difference is "
                "added to the target person w1.")
    with gr.Row():
        target = ctx.code_picker("Target person (w1)", ctx.studio.example_or("astronaut", "seed 1"))
        with_expression = ctx.code_picker("With expression (w2)", "seed 2")
        without_expression = ctx.code_picker("Same person, neutral (w3)", "seed 3")
    with gr.Row():
        strength = gr.Slider(*codes.EXPRESSION_STRENGTH, codes.DEFAULT_EXPRESSION_STRENGTH, step=0.1, label="λ")
        first_row = gr.Number(0, precision=0, label="First row",
                              info="a code has one row per generator layer: the first rows set pose and face "
                                   "shape, the last ones colour and fine texture")
        last_row = gr.Number(-1, precision=0, label="Last row (-1 = all)", info="the rows in between are changed")
    button = gr.Button("Transfer expression", variant="primary")
    outputs = edit_outputs("expression-result")

    def expression_transfer(lib, w1, w2, w3, lam, first, last, model_name):
        return lib, *show_edit(ctx.studio.expression_transfer(
            lib, model_name, w1, w2, w3, strength=lam, first_row=first, last_row=last))

    ctx.event(button.click, expression_transfer,
              [target, with_expression, without_expression, strength, first_row, last_row], outputs,
              api_name="expression_transfer")
