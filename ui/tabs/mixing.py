"""Style mixing (the StyleGAN paper's figure): source seeds along the top (columns), destination
seeds down the left (rows); each cell is its row's destination with one style group copied from
its column's source."""
import gradio as gr

from stylegan_core import codes
from ui.common import AppContext
from ui.results import edit_outputs, show_edit
from ui.tabs.generate import psi_slider

TITLE, ID = "Style mixing", "mixing"


def build(ctx: AppContext) -> None:
    with gr.Row():
        sources = gr.Textbox("1, 2, 3", label="Source seeds (columns, along the top)", elem_id="mixing-sources",
                             info=f"their styles of the chosen group are copied (at most {codes.MAX_MIXING_SEEDS})")
        destinations = gr.Textbox("4, 5, 6", label="Destination seeds (rows, down the left)",
                                  elem_id="mixing-destinations", info="they keep all their other styles")
        level = gr.Radio(list(codes.MIXING_LEVELS), value=codes.DEFAULT_MIXING_LEVEL,
                         label="Styles copied from the source",
                         info="coarse: pose and face shape · middle: features, hair · fine: colours")
        psi = psi_slider()
    button = gr.Button("Mix", variant="primary")
    outputs = edit_outputs("mixing-result", label="Grid")

    def style_mixing(lib, source_seeds, destination_seeds, group, psi_value, model_name):
        return lib, *show_edit(ctx.studio.style_mixing(lib, model_name, source_seeds, destination_seeds,
                                                       level=group, psi=psi_value))

    ctx.event(button.click, style_mixing, [sources, destinations, level, psi], outputs, api_name="style_mixing")
