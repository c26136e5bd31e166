"""The Gradio UI of the studio: `app.py` composes the tabs listed in `app.TABS`.

How to add a tab (e.g. attribute sliders, Sketch, Video):

1. Write `ui/tabs/<name>.py` with two constants and one function:

       TITLE, ID = "Video", "video"          # the tab's label and its element id

       def build(ctx: AppContext) -> None:   # called inside `gr.Tab(TITLE, id=ID)`
           first = ctx.code_picker("From", "seed 1")      # refreshes with the visitor's library
           button = gr.Button("Make video", variant="primary")
           outputs = edit_outputs(ctx, "video-result")      # image, downloads, info, in-photo (ui/results.py)

           def make_video(lib, a, model_name):              # library first, model last
               result = ctx.studio.make_video(lib, model_name, a)   # a typed Studio method
               return lib, *show_edit(result)

           ctx.event(button.click, make_video, [first], outputs, api_name="make_video")

2. Add `tabs.video,` to `TABS` in app.py (one line; `ui.tabs` imports the module on first use).

The contract: `ctx.event` wraps the handler in the error boundary (UserErrors shown as they are,
everything else logged with its stack trace), adds the visitor's library (first) and the model
picker (last) to the inputs, puts model work in the one shared queue, and refreshes every code
picker and the Library tab after the library changed (`heavy=False, library="read"/False,
with_model=False` for light or library-free events). Parse Gradio's value formats (editor dicts,
menu labels, file objects) in the tab module and call `Studio` with plain values and dataclasses;
Studio returns dataclasses (`EditResult`, `GalleryResult`, ...). `ctx.follow_model(component, fn)`
updates a component when the model changes (e.g. choices that depend on the model's resolutions);
`ctx.on_library_change(outputs, fn, inputs=[...])` refreshes other views of the library (fn(lib, *inputs)).
`ctx.results_of_model(*components)` registers one result panel (edit_outputs does it for its own):
it empties when the model changes, so no picture of another model is shown as current, and comes
back after a reload with the inputs of the events that filled it (ui/visits.py); its components
stay outputs (never upload areas). `ctx.follow_model` views reset their values only when the model
really changes, so a reload's restored values stand.
Light events (`heavy=False`) are queued without a limit, so their refusals show as pop-ups too.
"""
