"""The result panel of single-image tabs: the image, its downloads, an info line, and (when the
result's source code was inverted from a photo) a toggle that shows it inside that photo."""
import gradio as gr

from stylegan_core.studio import EditResult

IN_PHOTO_LABEL = "Show in the original photo"


def edit_outputs(ctx, elem_id: str, label: str = "Result") -> list:
    """The outputs of a single-image event: [image, downloads, info, shown]. `shown` keeps the
    result's plain and pasted-back paths, so the toggle switches between them without a rerun.
    They empty when the model changes (`ctx`: the tab's AppContext)."""
    in_photo = gr.Checkbox(True, label=IN_PHOTO_LABEL, visible=False, elem_id=f"{elem_id}-in-photo",
                           info="the edited face warped back into the photo its code was inverted from")
    image = gr.Image(label=label, elem_id=elem_id)
    files = gr.File(label="Downloads", file_count="multiple")
    info = gr.Markdown()
    shown = gr.State(None)  # (plain path, pasted path or None) of the latest result
    paste_toggle(shown, in_photo, image)
    ctx.results_of_model(image, files, info, shown)
    return [image, files, info, shown]


def paste_toggle(shown: gr.State, in_photo: gr.Checkbox, image: gr.Image) -> None:
    """Show `shown`'s pasted picture in `image` while `in_photo` is ticked (and there is one)."""
    def choose(paths, ticked):
        if not paths:
            return gr.skip(), gr.update(visible=False)
        plain, pasted = paths
        return (pasted if ticked and pasted else plain), gr.update(visible=pasted is not None)

    shown.change(choose, [shown, in_photo], [image, in_photo], queue=False, api_visibility="private")
    in_photo.change(choose, [shown, in_photo], [image, in_photo], queue=False, api_visibility="private")


def show_edit(result: EditResult) -> tuple:
    """An EditResult as the values of `edit_outputs` (the PNGs already written, shown as they are)."""
    pasted = result.pasted.path if result.pasted else None
    return result.picture.path, result.files, result.info, (result.picture.path, pasted)
