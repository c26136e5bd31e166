"""Edit: attribute sliders (age, gender, smile, head turn, ...) on a code, with a live preview."""
import gradio as gr

from stylegan_core.editing.directions import SLIDER_LIMIT
from stylegan_core.studio_edit import EditSliders, format_values
from ui.common import AppContext
from ui.results import edit_outputs, show_edit
from ui.transform import shown_for_stylegan3, transform_controls

TITLE, ID = "Edit", "edit"
NAMED_SLOTS = 16  # slider slots; the model's directions fill them (labels follow the model picker)
UNNAMED_SLOTS = 16


def slots(count: int, prefix: str) -> list[gr.Slider]:
    return [gr.Slider(-SLIDER_LIMIT, SLIDER_LIMIT, 0, step=0.1, visible=False, elem_id=f"{prefix}-{i}")
            for i in range(count)]


def slot_updates(sliders, count: int) -> list:
    """Slider updates for one group of slots: the model's sliders shown, the rest hidden."""
    shown = [gr.update(label=f"{s.label} ({s.name})", minimum=-s.limit, maximum=s.limit, value=0, visible=True)
             for s in sliders[:count]]
    return shown + [gr.update(visible=False, value=0)] * (count - len(shown))


def build(ctx: AppContext) -> None:
    with gr.Row():
        with gr.Column():
            code = ctx.code_picker("Code", "seed 1", elem_id="edit-code")
            note = gr.Markdown(elem_id="edit-note")
            named = slots(NAMED_SLOTS, "edit-named")
            with gr.Accordion("Unnamed components (SeFa, GANSpace)", open=False) as more:
                unnamed = slots(UNNAMED_SLOTS, "edit-unnamed")
            transform = transform_controls(ctx, "edit")
            values = gr.Textbox(label="Slider values", elem_id="edit-values",
                                info="NAME=VALUE, ... (set by the sliders; the API takes this text)")
            with gr.Row():
                reset = gr.Button("Reset")
                add = gr.Button("Add to library", variant="primary")
            in_frame = gr.Button("Render in the photo's frame (StyleGAN3)", visible=False, elem_id="edit-in-frame")
            shown_for_stylegan3(ctx, in_frame)
        with gr.Column():
            outputs = edit_outputs(ctx, "edit-result", "Edited")
    sliders = named + unnamed

    def follow(index):  # the index-th slot's update for a model
        def update(model_name):
            found = ctx.studio.edit_sliders(model_name)
            return (slot_updates(found.named, NAMED_SLOTS) + slot_updates(found.unnamed, UNNAMED_SLOTS))[index]
        return update

    for index, slider in enumerate(sliders):
        ctx.follow_model(slider, follow(index))
    ctx.follow_model(note, lambda model_name: ctx.studio.edit_sliders(model_name).note)
    ctx.follow_model(more, lambda model_name: gr.update(open=not ctx.studio.edit_sliders(model_name).named))

    def compose(*numbers_and_model):
        *numbers, model_name = numbers_and_model
        found: EditSliders = ctx.studio.edit_sliders(model_name)
        names = ([s.name for s in found.named[:NAMED_SLOTS]] + [None] * (NAMED_SLOTS - len(found.named))
                 + [s.name for s in found.unnamed[:UNNAMED_SLOTS]])
        return format_values({name: value for name, value in zip(names, numbers) if name and value})

    for slider in sliders:
        ctx.event(slider.release, compose, sliders, [values], api_name=None, api_visibility="private",
                  heavy=False, library=False)
    ctx.event(reset.click, lambda: [gr.update(value=0)] * len(sliders) + [""], [], sliders + [values],
              api_name=None, api_visibility="private", heavy=False, library=False, with_model=False)

    def edit(lib, reference, text, rotate, tx, ty, model_name):
        result = ctx.studio.edit_attributes(lib, model_name, reference, text, transform=transform.value(rotate, tx, ty))
        return show_edit(result)

    def add_to_library(lib, reference, text, rotate, tx, ty, model_name):
        result = ctx.studio.edit_attributes(lib, model_name, reference, text, add=True,
                                            transform=transform.value(rotate, tx, ty))
        return lib, *show_edit(result)

    inputs = [code, values, *transform.components]
    live = [values.change, code.change] + [c.release for c in transform.components]
    ctx.event(lambda fn, i, o, **kw: gr.on(live, fn, i, o, **kw), edit, inputs, outputs,
              api_name="edit_attributes", library="read", trigger_mode="always_last")
    ctx.event(add.click, add_to_library, inputs, outputs, api_name="add_edit_to_library")

    def edit_in_photo_frame(lib, reference, text, model_name):
        """A code inverted from a photo, edited, rendered where and how the face sits in that photo."""
        return show_edit(ctx.studio.render_in_photo_frame(lib, model_name, reference, text))

    ctx.event(in_frame.click, edit_in_photo_frame, [code, values], outputs, api_name="edit_in_photo_frame",
              library="read")
