"""Library: the visitor's codes: thumbnails, rename, delete (with undo), export and import."""
import gradio as gr

from stylegan_core.library import CodeLibrary, LibraryError
from ui.common import AppContext, file_path

TITLE, ID = "Library", "library"


def build(ctx: AppContext) -> None:
    gallery = gr.Gallery(label="Your codes", columns=8, height=340, elem_id="library-gallery")
    with gr.Row():
        # Custom values are allowed so API callers (whose page never received the choices) can name a code.
        pick = gr.Dropdown([], value=None, label="Code", allow_custom_value=True, elem_id="library-pick")
        new_name = gr.Textbox(label="New name", info="letters, digits, spaces, . _ - ('seed N' is taken)")
        rename_button = gr.Button("Rename")
        delete_button = gr.Button("Delete", variant="stop")
        undo_button = gr.Button("Undo delete", interactive=False, elem_id="library-undo")
    with gr.Row():
        export_button = gr.Button("Export all (.npz)")
        export_file = gr.File(label="Export")
        import_file = gr.File(label="Import codes (.npz)", file_types=[".npz"])
    info = gr.Markdown(elem_id="library-info")
    ctx.on_library_change([gallery, pick, undo_button], _views, inputs=[pick, ctx.renamed])

    def delete_code(lib, name):
        entry = lib.delete(_picked(name, "delete"))
        return lib, f"deleted '{entry.name}' · **Undo delete** brings it back"

    def undo_delete(lib):
        entry = lib.undo_delete()
        return lib, f"restored '{entry.name}'", {"from": None, "select": entry.name}

    def rename_code(lib, old, new):
        old = _picked(old, "rename")
        entry = lib.rename(old, new)
        return lib, f"renamed '{old}' to '{entry.name}'", {"from": old, "select": entry.name}

    def export_library(lib):
        return ctx.studio.export_library(lib)

    def import_library(lib, upload, model_name):
        return lib, ctx.studio.import_codes(lib, model_name, file_path(upload)).info

    def list_codes(lib):
        return [{"name": e.name, "model": e.model_name, "source": e.source, "shape": list(e.ws.shape)}
                for e in lib.entries()]

    light = dict(heavy=False, with_model=False)
    ctx.event(delete_button.click, delete_code, [pick], [info], api_name="delete_code", **light)
    ctx.event(undo_button.click, undo_delete, [], [info, ctx.renamed], api_name="undo_delete", **light)
    ctx.event(rename_button.click, rename_code, [pick, new_name], [info, ctx.renamed], api_name="rename_code",
              **light)
    ctx.event(export_button.click, export_library, [], [export_file], api_name="export_library",
              library="read", **light)
    ctx.event(import_file.upload, import_library, [import_file], [info], api_name="import_library")
    ctx.event(gr.Button(visible=False).click, list_codes, [], [gr.JSON(visible=False)], api_name="list_codes",
              library="read", **light)


def _picked(name, action: str) -> str:
    if not (name or "").strip():
        raise LibraryError(f"pick the code to {action} in the menu first")
    return name


def _views(lib: CodeLibrary, shown, renamed) -> list:
    """Thumbnails, the menu (keeping its choice while that code exists; a renamed or restored code
    is selected; after a delete nothing is, so a second click cannot delete another code) and
    whether there is a delete to undo."""
    names = lib.names()
    thumbnails = [(e.thumbnail, e.caption) for e in lib.entries() if e.thumbnail is not None]
    selected = (renamed or {}).get("select") or shown
    undo = lib.last_deleted()
    return [thumbnails, gr.update(choices=names, value=selected if selected in names else None),
            gr.update(interactive=undo is not None, value=f"Undo delete of '{undo}'" if undo else "Undo delete")]
