"""Video: edit the face of a short clip frame by frame (attribute sliders and/or a style code),
with progress, an ETA, a preview, and Stop that keeps the frames done so far."""
import threading

import gradio as gr

from stylegan_core.editing import directions, video
from ui.common import AppContext, file_path

TITLE, ID = "Video", "video"
SLIDERS = (("age", "Age"), ("smile", "Smile"), ("yaw", "Head turn (yaw)"), ("gender_c", "Gender"))
CPU_MAX_FRAMES = 24  # the default cap on a CPU, where each frame's inversion takes minutes at 1024 px
_running: dict[str, threading.Event] = {}  # session -> the cancel event of its running edit


def build(ctx: AppContext) -> None:
    with gr.Row():
        with gr.Column():
            clip = gr.File(label="Clip (mp4, webm, mov)", file_types=[".mp4", ".webm", ".mov"], type="filepath",
                           elem_id="video-clip")
            with gr.Row():
                face = gr.Number(1, precision=0, minimum=1, label="Face number", info="1 = the largest face")
                quality = gr.Radio(list(video.QUALITY_STEPS), value=video.DEFAULT_QUALITY, label="Quality",
                                   info="inversion steps per frame")
            cap = video.DEFAULT_MAX_FRAMES if ctx.studio.device.type == "cuda" else CPU_MAX_FRAMES
            max_frames = gr.Slider(1, video.MAX_FRAMES, min(cap, video.MAX_FRAMES), step=1,
                                   label="Frame cap", info="only the clip's first frames are edited",
                                   elem_id="video-cap")
            sliders = [gr.Slider(-directions.SLIDER_LIMIT, directions.SLIDER_LIMIT, 0.0, step=0.25, label=label,
                                 elem_id=f"video-{name}") for name, label in SLIDERS]
            style = ctx.code_picker("…and/or the fine style (colours, texture) of", "")
            with gr.Row():
                run_button = gr.Button("Edit video", variant="primary")
                stop_button = gr.Button("Stop")
        with gr.Column():
            preview = gr.Image(label="Current frame", interactive=False, elem_id="video-preview")
            result = gr.Video(label="Edited video", elem_id="video-result")
            files = gr.File(label="Download", file_count="multiple")
            info = gr.Markdown(elem_id="video-info")
    ctx.results_of_model(preview, result, files, info)

    def edit_video(lib, clip_path, face_number, cap, quality_name, style_ref, age, smile, yaw, gender, model_name,
                   request: gr.Request = None, progress=gr.Progress()):
        settings = dict(zip([name for name, _ in SLIDERS], (age, smile, yaw, gender)))
        session = getattr(request, "session_hash", None) or "api"
        cancel = _running[session] = threading.Event()
        try:
            updates = ctx.studio.edit_video_stream(lib, model_name, file_path(clip_path), int(face_number or 1) - 1,
                                                   settings, style_ref, cap, quality_name, cancel=cancel)
            for update in updates:
                if update.done:
                    yield gr.skip(), update.video_path, update.files, update.info
                else:
                    progress((update.done_frames, max(update.total_frames, 1)), desc=update.stage)
                    shown = gr.skip() if update.preview is None else update.preview
                    yield shown, gr.skip(), gr.skip(), update.info
        finally:
            _running.pop(session, None)

    ctx.event(run_button.click, edit_video, [clip, face, max_frames, quality, style, *sliders],
              [preview, result, files, info], api_name="edit_video",
              library="read")

    def stop(request: gr.Request):
        event = _running.get(getattr(request, "session_hash", None) or "api")
        if event is not None:
            event.set()  # the run finishes the frames in flight and returns the partial video

    stop_button.click(stop, None, None, queue=False, api_visibility="private")
