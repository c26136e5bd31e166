"""StyleGAN editing studio: a Gradio Blocks app, one tab per operation.

This file only composes the tabs (`ui/tabs/*.py`, see `ui/__init__.py` for how to add one) and
starts the server. Every operation is a typed method of `stylegan_core.studio.Studio`; no model
code lives here. Run `python app.py --help` for the options.
"""
from __future__ import annotations

import argparse
import logging
import os
import tempfile
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
# A stalled Hub download fails after this many seconds without data instead of hanging a model load.
os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", "10")
os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", "30")
# Gradio stores files in its cache by content hash, expires them by age and deletes all it made
# when an app closes: a file identical to one of another app process (an earlier run's hours-old copy,
# or the example photos of an app that closed, e.g. one a test built in the process that started
# this one and whose GRADIO_TEMP_DIR we inherited) is reused, then deleted while a request still
# reads it. So every process gets a cache folder of its own, inside $GRADIO_TEMP_DIR when it is set.
os.environ["GRADIO_TEMP_DIR"] = tempfile.mkdtemp(prefix="stylegan_studio_gradio_",
                                                 dir=os.environ.get("GRADIO_TEMP_DIR") or None)

import gradio as gr  # noqa: E402

from stylegan_core import codes  # noqa: E402
from stylegan_core.loading import zoo  # noqa: E402
from stylegan_core.library import CodeLibrary  # noqa: E402
from stylegan_core.sessions import VisitorStore  # noqa: E402
from stylegan_core.runtime import heap_reuse  # noqa: E402
from stylegan_core.studio import Studio  # noqa: E402
from ui.common import AppContext, model_bar  # noqa: E402
from ui.visits import keep_across_reloads  # noqa: E402
from ui import tabs  # noqa: E402

log = logging.getLogger("app")

LICENCE_NOTE = (
    "**Licences.** The FFHQ generators (MobileStyleGAN FFHQ, StyleGAN2 FFHQ) derive from NVIDIA's FFHQ "
    "StyleGAN2 and the FFHQ data set: research and **non-commercial** use only. The 68-point landmark "
    "model was trained on iBUG 300-W (non-commercial). VGG16 ImageNet weights: CC BY 4.0 (Simonyan & "
    "Zisserman). Do not upload photos of people without their consent. Uploads and results are "
    f"deleted from the server after {codes.FILE_RETENTION_S // 60} minutes."
)
# Uploads are capped, and Gradio deletes uploads and results (the studio writes into its cache)
# once they are FILE_RETENTION_S old, checking every sixth of that.
DELETE_CACHE = (max(60, codes.FILE_RETENTION_S // 6), codes.FILE_RETENTION_S)
LAUNCH_OPTIONS = dict(show_error=False, max_file_size=codes.MAX_UPLOAD_BYTES)
# The tabs in page order: each module has TITLE, ID and build(ctx) (see ui/__init__.py).
TABS = [
    tabs.generate,
    tabs.invert,
    tabs.edit,
    tabs.sketch,
    tabs.morph,
    tabs.style_transfer,
    tabs.expression,
    tabs.mixing,
    tabs.blend,
    tabs.panorama,
    tabs.extend_canvas,
    tabs.region_transfer,
    tabs.video,
    tabs.library,
]


def build_app(studio: Studio) -> gr.Blocks:
    with gr.Blocks(title="StyleGAN Studio", delete_cache=DELETE_CACHE) as demo:
        gr.Markdown("# StyleGAN Studio\nInvert a face photo into a StyleGAN, then morph, mix, "
                    "blend and extend it. Codes you make go into your library; after a reload this browser gets "
                    "it back (kept for a week after its last use), and each tab's last result with its settings (for "
                    f"{codes.FILE_RETENTION_S // 60} minutes). The library starts with the precomputed "
                    "codes of the example photos (Invert tab).")
        ctx = AppContext(studio=studio, library=gr.State(CodeLibrary()), model=model_bar(studio, demo))
        keep_across_reloads(ctx, VisitorStore(studio.new_library))
        with gr.Tabs():
            for tab in TABS:
                with gr.Tab(tab.TITLE, id=tab.ID):
                    tab.build(ctx)
        gr.Markdown(LICENCE_NOTE)
        ctx.finish(demo)
    return demo


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="StyleGAN editing studio (Gradio app)")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    parser.add_argument("--share", action="store_true", help="ask Gradio for a public share link")
    parser.add_argument("--model", default=os.environ.get("STYLEGAN_MODEL", zoo.DEFAULT_MODEL),
                        help=f"default model: one of {', '.join(zoo.model_names())}")
    parser.add_argument("--checkpoint", default=os.environ.get("STYLEGAN_CHECKPOINT"),
                        help="a local checkpoint (NVlabs .pkl, rosinality .pt, stylegan_core .safetensors)")
    parser.add_argument("--device", default=os.environ.get("STYLEGAN_DEVICE", "auto"), help="auto, cpu or cuda")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    heap_reuse(True)  # keep freed feature maps for the next request instead of re-faulting them
    # Results are written once, into Gradio's cache, which serves them and deletes them (and the
    # uploads) after FILE_RETENTION_S.
    output_dir = Path(gr.utils.get_upload_folder()) / "studio"
    studio = Studio(default_model=args.model, device=args.device, checkpoint=args.checkpoint,
                    output_dir=str(output_dir))
    studio.warm_up()
    demo = build_app(studio)
    demo.queue(max_size=64)  # heavy events share one concurrency limit (ui.common.heavy_concurrency)
    # Where no share link can be made (offline), Gradio prints why and keeps serving locally.
    demo.launch(server_name=args.host, server_port=args.port, share=args.share, **LAUNCH_OPTIONS)


if __name__ == "__main__":
    main()
