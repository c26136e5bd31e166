"""Style mixing (the StyleGAN paper's figure): source codes along the top (columns), destination
codes down the left (rows); each cell is its row's destination with one style group copied from
its column's source. Codes are library names or seeds, named in the grid's label strips."""
import gradio as gr

from stylegan_core import codes
from ui.common import AppContext
from ui.results import edit_outputs, show_edit
from ui.tabs.generate import psi_slider

TITLE, ID = "Style mixing", "mixing"
CODES_INFO = "library names or 'seed N' (plain numbers and ranges like 1-3 are seeds), separated by commas"


def build(ctx: AppContext) -> None:
    with gr.Row():
        sources = gr.Textbox("seed 1, seed 2, seed 3", label="Source codes (columns, along the top)",
                             elem_id="mixing-sources",
                             info=f"{CODES_INFO}; their styles of the chosen group are copied "
                                  f"(at most {codes.MAX_MIXING_SEEDS})")
        destinations = gr.Textbox(f"{ctx.studio.example_or('astronaut', 'seed 4')}, seed 5, seed 6",
                                  label="Destination codes (rows, down the left)", elem_id="mixing-destinations",
                                  info=f"{CODES_INFO}; they keep all their other styles")
        level = gr.Radio(list(codes.MIXING_LEVELS), value=codes.DEFAULT_MIXING_LEVEL,
                         label="Styles copied from the source",
                         info="coarse: pose and face shape · middle: features, hair · fine: colours")
        psi = psi_slider()
    button = gr.Button("Mix", variant="primary")
    outputs = edit_outputs(ctx, "mixing-result", label="Grid")

    def style_mixing(lib, source_codes, destination_codes, group, psi_value, model_name):
        return lib, *show_edit(ctx.studio.style_mixing(lib, model_name, source_codes, destination_codes,
                                                       level=group, psi=psi_value))

    ctx.event(button.click, style_mixing, [sources, destinations, level, psi], outputs, api_name="style_mixing")
