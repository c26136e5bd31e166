"""The result panel of single-image tabs: the image, its downloads and an info line."""
import gradio as gr

from stylegan_core.studio import EditResult


def edit_outputs(elem_id: str, label: str = "Result") -> list:
    image = gr.Image(label=label, elem_id=elem_id)
    files = gr.File(label="Downloads", file_count="multiple")
    info = gr.Markdown()
    return [image, files, info]


def show_edit(result: EditResult) -> tuple:
    """An EditResult as the values of `edit_outputs` (the PNG already written, shown as it is)."""
    return result.picture.path, result.files, result.info
