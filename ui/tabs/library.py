"""Library: the visitor's codes: thumbnails, rename, delete, export and import."""
import gradio as gr

from stylegan_core.library import CodeLibrary
from ui.common import AppContext, file_path

TITLE, ID = "Library", "library"


def build(ctx: AppContext) -> None:
    gallery = gr.Gallery(label="Your codes", columns=8, height="auto", elem_id="library-gallery")
    with gr.Row():
        # Custom values are allowed so API callers (whose page never received the choices) can name a code.
        pick = gr.Dropdown([], label="Code", allow_custom_value=True)
        new_name = gr.Textbox(label="New name")
        rename_button = gr.Button("Rename")
        delete_button = gr.Button("Delete", variant="stop")
    with gr.Row():
        export_button = gr.Button("Export all (.npz)")
        export_file = gr.File(label="Export")
        import_file = gr.File(label="Import codes (.npz)", file_types=[".npz"])
    info = gr.Markdown()
    ctx.on_library_change([gallery, pick], _views)

    def delete_code(lib, name):
        lib.delete(name)
        return lib, f"deleted {name}"

    def rename_code(lib, old, new):
        entry = lib.rename(old, new)
        return lib, f"renamed {old} to {entry.name}"

    def export_library(lib):
        return ctx.studio.export_library(lib)

    def import_library(lib, upload, model_name):
        return lib, ctx.studio.import_codes(lib, model_name, file_path(upload)).info

    def list_codes(lib):
        return [{"name": e.name, "model": e.model_name, "source": e.source, "shape": list(e.ws.shape)}
                for e in lib.entries()]

    light = dict(heavy=False, with_model=False)
    ctx.event(delete_button.click, delete_code, [pick], [info], api_name="delete_code", **light)
    ctx.event(rename_button.click, rename_code, [pick, new_name], [info], api_name="rename_code", **light)
    ctx.event(export_button.click, export_library, [], [export_file], api_name="export_library",
              library="read", **light)
    ctx.event(import_file.upload, import_library, [import_file], [info], api_name="import_library")
    ctx.event(gr.Button(visible=False).click, list_codes, [], [gr.JSON(visible=False)], api_name="list_codes",
              library="read", **light)


def _views(lib: CodeLibrary) -> list:
    names = lib.names()
    thumbnails = [(e.thumbnail, e.caption) for e in lib.entries() if e.thumbnail is not None]
    return [thumbnails, gr.update(choices=names, value=names[-1] if names else None)]
