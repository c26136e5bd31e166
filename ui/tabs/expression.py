"""Expression: the simple path moves a face along a shipped expression direction (smile, ...); the
advanced path is Image2StyleGAN's transfer w1 + lambda (w2 - w3) on a range of rows."""
import gradio as gr

from stylegan_core import codes
from stylegan_core.editing.directions import SLIDER_LIMIT
from ui.common import AppContext
from ui.results import edit_outputs, show_edit

TITLE, ID = "Expression", "expression"
SIMPLE, ADVANCED = "Simple: a ready-made expression", "Advanced: from two codes of one person"
ADVANCED_HELP = ("w2 and w3 must be **the same person** with and without the expression (two photos of one "
                 "person, inverted): their difference is the expression alone, and it is added to the target w1. "
                 "Two different people give the difference between two faces, and the target turns into a "
                 "distorted mix. To try it: run the simple mode on *grace_hopper* first, then use "
                 "w2 = 'grace_hopper smile' and w3 = 'grace_hopper'.")


def build(ctx: AppContext) -> None:
    mode = gr.Radio([SIMPLE, ADVANCED], value=SIMPLE, label="Mode", elem_id="expression-mode")
    target = ctx.code_picker("Target person (w1)", ctx.studio.example_or("grace_hopper", "seed 1"))
    with gr.Group(visible=True) as simple:
        with gr.Row():
            expression = gr.Dropdown([("Smile", codes.DEFAULT_EXPRESSION)], value=codes.DEFAULT_EXPRESSION,
                                     label="Expression", elem_id="expression-name")
            amount = gr.Slider(-SLIDER_LIMIT, SLIDER_LIMIT, codes.DEFAULT_EXPRESSION_EDIT_STRENGTH, step=0.5,
                               label="Strength", info="standard deviations of generated faces; negative: less")
        simple_button = gr.Button("Change expression", variant="primary")
    with gr.Group(visible=False) as advanced:
        gr.Markdown(ADVANCED_HELP)
        with gr.Row():
            with_expression = ctx.code_picker("Same person, with the expression (w2)", "")
            without_expression = ctx.code_picker("Same person, neutral (w3)", "")
        with gr.Row():
            strength = gr.Slider(*codes.EXPRESSION_STRENGTH, codes.DEFAULT_EXPRESSION_STRENGTH, step=0.1, label="λ")
            first_row = gr.Number(0, precision=0, label="First row",
                                  info="a code has one row per generator layer: the first rows set pose and face "
                                       "shape, the last ones colour and fine texture")
            last_row = gr.Number(-1, precision=0, label="Last row (-1 = all)", info="the rows in between are changed")
        advanced_button = gr.Button("Transfer expression", variant="primary")
    outputs = edit_outputs(ctx, "expression-result")

    mode.change(lambda chosen: (gr.update(visible=chosen == SIMPLE), gr.update(visible=chosen == ADVANCED)),
                mode, [simple, advanced], queue=False, api_visibility="private")
    ctx.follow_model(expression, lambda model_name: _expression_choices(ctx, model_name))

    def expression_edit(lib, w1, name, value, model_name):
        return lib, *show_edit(ctx.studio.expression_edit(lib, model_name, w1, name, value))

    def expression_transfer(lib, w1, w2, w3, lam, first, last, model_name):
        return lib, *show_edit(ctx.studio.expression_transfer(
            lib, model_name, w1, w2, w3, strength=lam, first_row=first, last_row=last))

    ctx.event(simple_button.click, expression_edit, [target, expression, amount], outputs, api_name="expression_edit")
    ctx.event(advanced_button.click, expression_transfer,
              [target, with_expression, without_expression, strength, first_row, last_row], outputs,
              api_name="expression_transfer")


def _expression_choices(ctx: AppContext, model_name: str) -> dict:
    choices = ctx.studio.expression_choices(model_name)
    names = [name for _, name in choices]
    value = codes.DEFAULT_EXPRESSION if codes.DEFAULT_EXPRESSION in names else (names[0] if names else None)
    return gr.update(choices=choices, value=value)
