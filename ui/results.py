"""The result panel of single-image tabs: the image, its downloads, an info line, a toggle that
shows it inside the photo its source code was inverted from, and a before/after slider that
compares it with what it started from (the code unedited, or the photo as it was)."""
from typing import Optional

import gradio as gr
from PIL import Image

from stylegan_core.studio import EditResult, Picture

IN_PHOTO_LABEL = "Show in the original photo"
COMPARE_LABEL = "Before / after"
FALLBACK_HEIGHT = 1024  # the slider's height cap when a picture's file has expired meanwhile


def edit_outputs(ctx, elem_id: str, label: str = "Result") -> list:
    """The outputs of a single-image event: [image, downloads, info, shown]. `shown` keeps the
    result's pictures (`shown_value`), so the toggles switch between them without a rerun.
    They empty when the model changes (`ctx`: the tab's AppContext)."""
    with gr.Row():
        in_photo = gr.Checkbox(True, label=IN_PHOTO_LABEL, visible=False, elem_id=f"{elem_id}-in-photo",
                               info="the edited face warped back into the photo its code was inverted from")
        compare = compare_checkbox(elem_id)
    image = gr.Image(label=label, elem_id=elem_id)
    slider = compare_slider(label, elem_id)
    files = gr.File(label="Downloads", file_count="multiple")
    info = gr.Markdown()
    shown = gr.State(None)  # shown_value of the latest result
    paste_toggle(shown, in_photo, compare, image, slider)
    ctx.results_of_model(image, slider, files, info, shown)
    return [image, files, info, shown]


def compare_checkbox(elem_id: str) -> gr.Checkbox:
    return gr.Checkbox(False, label=COMPARE_LABEL, visible=False, elem_id=f"{elem_id}-compare",
                       info="drag the line across the picture to compare with what it started from")


def compare_slider(label: str, elem_id: str) -> gr.ImageSlider:
    """The before/after view that takes the result image's place while "Before / after" is ticked."""
    return gr.ImageSlider(label=f"{label}: before · after", type="filepath", visible=False, elem_id=f"{elem_id}-slider")


def shown_value(plain: Picture, pasted: Optional[Picture] = None, before: Optional[Picture] = None,
                photo: Optional[Picture] = None) -> dict:
    """A `shown` State's value: the paths of a result's pictures (None where it has none)."""
    return {key: picture.path if picture else None
            for key, picture in dict(plain=plain, pasted=pasted, before=before, photo=photo).items()}


def choose_view(shown: Optional[dict], in_photo: bool, compare: bool) -> tuple[Optional[str], Optional[tuple]]:
    """What the panel shows: (the image's path, None), or (None, (before, after)) for the slider.
    In the photo (ticked, and there is a pasted picture): the pasted one, compared with the photo;
    else the plain picture, compared with its source unedited."""
    if not shown:
        return None, None
    if in_photo and shown.get("pasted"):
        after, before = shown["pasted"], shown.get("photo")
    else:
        after, before = shown["plain"], shown.get("before")
    if compare and before:
        return None, (before, after)
    return after, None


def paste_toggle(shown: gr.State, in_photo: gr.Checkbox, compare: gr.Checkbox, image: gr.Image,
                 slider: gr.ImageSlider) -> None:
    """Keep the panel showing `choose_view` of `shown` and the two toggles: the toggles show only
    when they change something, and the slider takes the image's place while it compares."""
    def show(value, ticked, comparing):
        if not value:  # emptied (a new run, another model): the empty image panel stays in place
            return (gr.update(visible=True), gr.update(visible=False, value=None), gr.update(visible=False),
                    gr.update(visible=False))
        path, pair = choose_view(value, ticked, comparing)
        if pair:
            panel = gr.update(visible=False), gr.update(visible=True, value=pair, max_height=natural_height(pair[1]))
        else:
            panel = gr.update(visible=True, value=path), gr.update(visible=False)
        return *panel, gr.update(visible=bool(value.get("pasted"))), gr.update(visible=bool(value.get("before")))

    for trigger in (shown.change, in_photo.change, compare.change):
        trigger(show, [shown, in_photo, compare], [image, slider, in_photo, compare], queue=False,
                api_visibility="private")


def natural_height(path: str) -> int:
    """A picture's height in pixels (from its header). gr.Image shows a picture at its own size, as
    wide as the column at most; the slider (500 px high by default) does the same when capped at it."""
    try:
        with Image.open(path) as image:
            return image.height
    except OSError:  # expired meanwhile: the slider says so itself
        return FALLBACK_HEIGHT


def show_edit(result: EditResult) -> tuple:
    """An EditResult as the values of `edit_outputs` (the PNGs already written, shown as they are)."""
    return (result.picture.path, result.files, result.info,
            shown_value(result.picture, result.pasted, result.before, result.photo))
