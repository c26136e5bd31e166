"""Generate: faces from seeds; each code joins the library as 'seed N'."""
import gradio as gr

from stylegan_core import codes
from ui.common import AppContext, gallery_value
from ui.transform import transform_controls

TITLE, ID = "Generate", "generate"


def build(ctx: AppContext) -> None:
    with gr.Row():
        seeds = gr.Textbox("1, 2, 3, 4", label="Seeds",
                           info=f"e.g. '7' or '1, 5, 10-13' (at most {codes.MAX_SEEDS_PER_CALL})")
        psi = psi_slider()
    transform = transform_controls(ctx, "generate")
    button = gr.Button("Generate", variant="primary")
    gallery = gr.Gallery(label="Faces", columns=4, height="auto", elem_id="generate-gallery")
    files = gr.File(label="Downloads", file_count="multiple")
    info = gr.Markdown()
    ctx.results_of_model(gallery, files, info)

    def generate(lib, seeds_text, psi_value, rotate, tx, ty, model_name):
        result = ctx.studio.generate(lib, model_name, seeds_text, psi_value, transform.value(rotate, tx, ty))
        return lib, gallery_value(result.pictures), result.files, result.info

    ctx.event(button.click, generate, [seeds, psi, *transform.components], [gallery, files, info],
              api_name="generate")


def psi_slider() -> gr.Slider:
    return gr.Slider(*codes.PSI_RANGE, codes.DEFAULT_PSI, step=0.05, label="Truncation psi",
                     info="how far random faces may stray from the average face: 0.7 gives typical, clean faces; "
                          "1 the full variety (more odd ones); 0 the average face; below 0 its 'opposite'")
