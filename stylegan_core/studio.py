"""The app's operations in user terms: text and numbers in, PIL images, files and messages out.

app.py lays out components and wires each event to one method here; the CLI and the tests call
the same methods. Errors meant for the user are raised as `StudioError` (app.py shows them as
`gr.Error`); anything else is a bug and is logged with its stack trace.
"""
from __future__ import annotations

import logging
import queue
import re
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
import torch
from PIL import Image

from .errors import UserError
from . import align, edits, feature_blend, metrics, zoo
from .images import load_image, tensor_to_pil
from .latents import Latent, latent_to_bytes
from .library import CodeLibrary, LibraryError
from .weights import WeightsUnavailable

log = logging.getLogger(__name__)

MAX_SEEDS_PER_CALL = 16
SEED_REFERENCE = re.compile(r"^\s*seed\s*[:#]?\s*(\d+)\s*$", re.IGNORECASE)


class StudioError(UserError):
    """A problem the user can fix (bad input, missing weights, a code of another model)."""


# Exceptions whose message is meant for the user. Library functions validate their inputs with
# ValueError subclasses (and plain ValueError) whose messages say what is wrong.
USER_ERRORS = (StudioError, ValueError, WeightsUnavailable)


def parse_seeds(text) -> list[int]:
    """'1, 2, 5-8' -> [1, 2, 5, 6, 7, 8]; numbers in [0, 2^32 - 1]."""
    if isinstance(text, (int, float)):
        text = str(int(text))
    seeds: list[int] = []
    for part in str(text or "").replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        match = re.fullmatch(r"(\d+)\s*-\s*(\d+)", part)
        if match:
            start, stop = int(match.group(1)), int(match.group(2))
            if stop < start or stop - start >= MAX_SEEDS_PER_CALL:
                raise StudioError(f"seed range {part!r} must be ascending and at most {MAX_SEEDS_PER_CALL} long")
            seeds.extend(range(start, stop + 1))
        elif re.fullmatch(r"\d+", part):
            seeds.append(int(part))
        else:
            raise StudioError(f"{part!r} is not a seed: use whole numbers like '1, 2, 10-13'")
    if not seeds:
        raise StudioError("enter at least one seed, e.g. '1, 2, 3'")
    if len(seeds) > MAX_SEEDS_PER_CALL:
        raise StudioError(f"at most {MAX_SEEDS_PER_CALL} seeds per call, got {len(seeds)}")
    too_big = [s for s in seeds if s >= 2**32]
    if too_big:
        raise StudioError(f"seeds must be between 0 and {2**32 - 1}; {too_big[0]} is out of range")
    return seeds


def check_psi(psi) -> float:
    psi = float(psi)
    if not -1.0 <= psi <= 2.0:
        raise StudioError(f"truncation psi must be between -1 and 2, got {psi}")
    return psi


@dataclass
class Timed:
    seconds: float = 0.0

    def text(self, device: torch.device) -> str:
        return f"{self.seconds:.2f} s on {device}"


@contextmanager
def timed() -> Iterator[Timed]:
    result = Timed()
    start = time.perf_counter()
    try:
        yield result
    finally:
        result.seconds = time.perf_counter() - start


def pick_device(requested: str = "auto") -> torch.device:
    if requested in ("", "auto", None):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise StudioError("--device cuda was asked for but no CUDA device is available")
    return device


class Studio:
    """Holds the models (loaded once per process) and runs the operations of every tab."""

    def __init__(self, default_model: str = zoo.DEFAULT_MODEL, device: str = "auto",
                 checkpoint: Optional[str] = None, output_dir: Optional[str] = None) -> None:
        self.default_model = default_model
        self.device = pick_device(device)
        self.checkpoint = checkpoint
        self.output_dir = Path(output_dir or tempfile.mkdtemp(prefix="stylegan_studio_"))
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self._load_lock = threading.Lock()
        self._loading: Optional[str] = None  # the model being loaded right now
        self._ready: set[str] = set()

    # -- models ----------------------------------------------------------------------------
    def model_choices(self) -> list[str]:
        names = zoo.model_names()
        if self.checkpoint:
            names = [zoo.CUSTOM_CHECKPOINT] + names
        return names

    def load(self, model_name: Optional[str] = None) -> "zoo.LoadedModel":
        """The loaded model of that name; one load at a time, cached by the zoo."""
        name = model_name or self.default_model
        checkpoint = self.checkpoint if name == zoo.CUSTOM_CHECKPOINT else None
        with self._load_lock:
            self._loading = name
            try:
                loaded = zoo.load_model(name, device=str(self.device), checkpoint=checkpoint)
            except (zoo.ModelError, OSError, ValueError) as error:
                raise StudioError(str(error)) from error
            finally:
                self._loading = None
            self._ready.add(name)
            return loaded

    def is_loading(self, model_name: Optional[str] = None) -> bool:
        return self._loading == (model_name or self.default_model)

    def status_line(self, model_name: Optional[str] = None) -> str:
        """One line: model, where its weights came from, device, CUDA ops. Never waits for a load."""
        from .ops import cuda_ops_status

        name = model_name or self.default_model
        if self.is_loading(name) or (name not in self._ready and self._load_lock.locked()):
            return (f"loading model **{name}**… (the first start fetches and converts the weights, "
                    f"about a minute) · device **{self.device}** · {cuda_ops_status()}")
        try:
            loaded = self.load(name)
            model = f"model **{loaded.name}** ({loaded.entry.description}) from {loaded.source_description}"
        except StudioError as error:
            model = f"model **{name}** not available: {error}"
        return f"{model} · device **{self.device}** · {cuda_ops_status()}"

    # -- codes -----------------------------------------------------------------------------
    def seed_code(self, model_name: str, seed: int, psi: float = 1.0) -> torch.Tensor:
        generator = self.load(model_name).generator
        try:
            z = generator.seed_to_z(seed).to(self.device)
        except ValueError as error:
            raise StudioError(str(error)) from error
        with torch.no_grad():
            return generator.mapping(z, psi=psi).cpu()

    def resolve_code(self, reference: str, library: CodeLibrary, model_name: str,
                     psi: float = 1.0) -> torch.Tensor:
        """A code picker's value -> ws [1, num_ws, w_dim]: a library name, or 'seed N'."""
        reference = (reference or "").strip()
        if not reference:
            raise StudioError("pick a code: a name from your library, or type 'seed 42'")
        match = SEED_REFERENCE.match(reference)
        if match and reference not in library:
            return self.seed_code(model_name, int(match.group(1)), psi)
        try:
            entry = library.get(reference)
        except LibraryError as error:
            raise StudioError(str(error)) from error
        generator = self.load(model_name).generator
        if entry.model_name != model_name or entry.ws.shape[1:] != (generator.num_ws, generator.w_dim):
            raise StudioError(
                f"the code {reference!r} belongs to model {entry.model_name!r} "
                f"(shape {list(entry.ws.shape)}); switch the model picker to it, or pick another code"
            )
        return entry.ws

    def render(self, model_name: str, ws: torch.Tensor, editor=None) -> Image.Image:
        generator = self.load(model_name).generator
        with torch.no_grad():
            image = generator.synthesis(ws.to(self.device), editor)
        return tensor_to_pil(image)

    # -- files -----------------------------------------------------------------------------
    def new_path(self, stem: str, suffix: str) -> Path:
        folder = Path(tempfile.mkdtemp(dir=self.output_dir))
        return folder / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', stem)}{suffix}"

    def save_image(self, image: Image.Image, stem: str) -> str:
        path = self.new_path(stem, ".png")
        image.save(path)
        return str(path)

    def save_code(self, ws: torch.Tensor, model_name: str, stem: str, space: str = "w+") -> str:
        path = self.new_path(stem, ".npz")
        path.write_bytes(latent_to_bytes(Latent(ws=ws, model_name=model_name, space=space, name=stem)))
        return str(path)

    # -- Generate --------------------------------------------------------------------------
    def generate(self, library: CodeLibrary, model_name: str, seeds_text, psi) -> dict:
        """Faces for seeds; each code joins the library. Returns images, captions, files, info."""
        seeds, psi = parse_seeds(seeds_text), check_psi(psi)
        images, files, names = [], [], []
        with timed() as clock:
            for seed in seeds:
                ws = self.seed_code(model_name, seed, psi)
                images.append(self.render(model_name, ws))
                names.append((seed, ws))
        for (seed, ws), image in zip(names, images):
            files.append(self.save_image(image, f"seed{seed}"))
        added = self._add_all(library, [(ws, f"seed {seed}", img) for (seed, ws), img in zip(names, images)],
                              model_name, "seed", {"psi": psi})
        return {
            "images": [(img, f"seed {seed}") for (seed, _), img in zip(names, images)],
            "files": files,
            "added": added,
            "info": f"{len(images)} image(s) in {clock.text(self.device)} · psi {psi:g}",
        }

    def _add_all(self, library: CodeLibrary, items, model_name: str, source: str, info: dict) -> list[str]:
        """Add codes to the library; when it is full the results are still returned, with a note."""
        added = []
        for ws, name, image in items:
            try:
                added.append(library.add(ws, model_name, source, name, image, info).name)
            except LibraryError as error:
                log.info("library: %s", error)
                break
        return added

    # -- start-up --------------------------------------------------------------------------
    def warm_up(self, background: bool = True) -> None:
        """Load the default model (first run: fetch and convert it) and start the CUDA ops build."""
        from .ops import start_cuda_ops_build

        start_cuda_ops_build(background=True)  # on a machine without CUDA it only records why not

        def load_default():
            log.info("preparing model %s (the first start fetches and converts the weights)", self.default_model)
            try:
                self.load(self.default_model)
                log.info("model %s ready", self.default_model)
            except StudioError as error:
                log.warning("the default model is not available: %s", error)
            try:  # the inversion's helpers, so the first Invert does not wait for them
                from .perceptual import load_vgg16

                load_vgg16(self.device)
                align.shape_predictor()
                metrics.face_recognizer()
                log.info("perceptual loss and face models ready")
            except (OSError, ValueError) as error:
                log.warning("the inversion's models are not available: %s", error)

        if background:
            threading.Thread(target=load_default, name="warm-up", daemon=True).start()
        else:
            load_default()

    # -- Invert ----------------------------------------------------------------------------
    def face_choices(self, photo) -> dict:
        """Dropdown choices for an uploaded photo: each detected face, and the whole image."""
        image = load_image(photo)
        faces = align.detect_faces(image)
        choices = [f"face {i + 1}" + (" (largest)" if i == 0 else "") for i in range(len(faces))]
        choices.append(WHOLE_IMAGE)
        return {"choices": choices, "value": choices[0], "preview": _draw_faces(image, faces)}

    def align_photo(self, photo, face_choice: str, resolution: int) -> "align.AlignedFace":
        image = load_image(photo)
        face_choice = (face_choice or "").strip().lower()
        if face_choice.startswith("whole"):
            return align.center_crop(image, resolution)
        match = re.search(r"(\d+)", face_choice)
        index = int(match.group(1)) - 1 if match else 0
        try:
            return align.align_face(image, resolution, face_index=index)
        except align.NoFaceError as error:
            raise StudioError(f"{error} (pick '{WHOLE_IMAGE}' in the Face menu to do that)") from error

    def invert_stream(self, library: CodeLibrary, model_name: str, photo, face_choice: str, steps,
                      space: str = "w+", cancel: Optional[threading.Event] = None) -> Iterator["InvertUpdate"]:
        """Invert a photo, yielding previews while the projector runs and a final update.

        The projection runs in a worker thread; closing this generator (the user pressed Stop,
        or the browser went away) sets the cancel event so the worker stops at its next step.
        """
        from . import projector

        steps = int(steps)
        if not 1 <= steps <= MAX_INVERT_STEPS:
            raise StudioError(f"steps must be between 1 and {MAX_INVERT_STEPS}, got {steps}")
        if space not in ("w+", "w"):
            raise StudioError(f"the latent space must be 'w+' or 'w', got {space!r}")
        loaded = self.load(model_name)
        started = time.perf_counter()
        target = self.align_photo(photo, face_choice, loaded.generator.resolution)
        yield InvertUpdate(aligned=target.image, info="aligned; starting the projection", total=steps)

        cancel = cancel or threading.Event()
        updates: "queue.Queue" = queue.Queue()
        options = projector.ProjectorOptions(steps=steps, space=space)

        def report(step, total, preview, loss):
            updates.put(InvertUpdate(aligned=target.image, step=step, total=total,
                                     image=None if preview is None else _as_pil(preview),
                                     info=f"step {step}/{total} · loss {loss:.4f}"))

        def work():
            try:
                result = projector.project(loaded.generator, target.image, options, progress=report, cancel=cancel)
                updates.put(("result", result))
            except BaseException as error:  # noqa: BLE001 - handed to the consumer thread
                updates.put(("error", error))

        worker = threading.Thread(target=work, name="invert", daemon=True)
        worker.start()
        try:
            while True:
                item = updates.get()
                if isinstance(item, InvertUpdate):
                    yield item
                    continue
                kind, payload = item
                if kind == "error":
                    raise payload
                break
        finally:
            cancel.set()  # a no-op after success; stops the worker when the consumer goes away
        result = payload
        image = _as_pil(result.image)
        # Four decimals are more than these metrics resolve, and they keep the UI's table readable.
        scores = {name: round(value, 4) if isinstance(value, float) else value
                  for name, value in metrics.photo_metrics(load_image(photo), target, image).items()}
        stem = Path(str(photo)).stem if isinstance(photo, (str, Path)) else "photo"
        files = [self.save_image(target.image, f"{stem}_aligned"), self.save_image(image, f"{stem}_inverted"),
                 self.save_code(result.ws, loaded.name, f"{stem}_{space.replace('+', 'plus')}", space)]
        added = self._add_all(library, [(result.ws, stem, image)], loaded.name, "inverted",
                              {"metrics": scores, "space": space})
        seconds = time.perf_counter() - started
        notes = " ".join(target.warnings)
        info = (f"inverted in {seconds:.1f} s on {self.device} ({steps} steps, {space})"
                + (f"; saved to your library as **{added[0]}**" if added else "; your library is full")
                + (f". {notes}" if notes else ""))
        yield InvertUpdate(aligned=target.image, image=image, metrics=scores, files=files, info=info,
                           step=steps, total=steps, done=True)

    # -- Library files ---------------------------------------------------------------------
    def import_codes(self, library: CodeLibrary, model_name: str, file) -> dict:
        """Add the codes of an uploaded .npz (a saved latent or a library export) to the library."""
        if file is None:
            raise StudioError("no file was uploaded")
        path = getattr(file, "name", file)

        def thumbnail(ws, code_model):
            if code_model != model_name:
                return None
            return self.render(model_name, ws)

        default_name = Path(path).stem if isinstance(path, (str, Path)) else "uploaded"
        added = library.import_file(path, render=thumbnail, default_name=default_name)
        first = next((e for e in added if e.thumbnail is not None), None)
        other = sorted({e.model_name for e in added} - {model_name})
        note = f" (codes of {', '.join(other)}: switch the model to use them)" if other else ""
        return {
            "image": None if first is None else self.render(model_name, first.ws),
            "info": f"restored {len(added)} code(s): {', '.join(e.name for e in added)}{note}",
        }

    def export_library(self, library: CodeLibrary) -> str:
        path = self.new_path("stylegan_codes", ".npz")
        path.write_bytes(library.export_bytes())
        return str(path)

    # -- Edits -----------------------------------------------------------------------------
    def _result(self, library: CodeLibrary, model_name: str, image: Image.Image, stem: str,
                clock: Timed, ws: Optional[torch.Tensor] = None, extra: str = "") -> dict:
        """The common return of the single-image edits: the image, downloads and an info line."""
        files = [self.save_image(image, stem)]
        added = []
        if ws is not None:
            files.append(self.save_code(ws, model_name, stem))
            added = self._add_all(library, [(ws, stem, image)], model_name, "edit", {})
        info = f"{clock.text(self.device)}" + (f" · added **{added[0]}** to your library" if added else "") + extra
        return {"image": image, "files": files, "info": info}

    def morph(self, library: CodeLibrary, model_name: str, first: str, second: str, frames,
              spherical: bool = False, psi: float = 0.7) -> dict:
        generator = self.load(model_name).generator
        with timed() as clock:
            if spherical:
                seeds = [SEED_REFERENCE.match(ref or "") for ref in (first, second)]
                if not all(seeds):
                    raise StudioError("spherical interpolation works between two seeds ('seed N'); "
                                      "use linear W+ for codes from your library")
                codes = edits.morph_seed_codes(generator, int(seeds[0].group(1)), int(seeds[1].group(1)),
                                               int(frames), psi)
            else:
                w1 = self.resolve_code(first, library, model_name, psi)
                w2 = self.resolve_code(second, library, model_name, psi)
                codes = edits.morph_codes(w1, w2, int(frames))
            images = edits.render_codes(generator, codes.to(self.device))
        gif = self.new_path("morph", ".gif")
        edits.frames_to_gif(list(images), gif, fps=8, boomerang=True)
        pictures = [tensor_to_pil(image) for image in images]
        return {
            "images": [(picture, f"frame {i + 1}") for i, picture in enumerate(pictures)],
            "files": [str(gif)] + [self.save_image(p, f"morph_{i + 1:02d}") for i, p in enumerate(pictures)],
            "info": f"{len(pictures)} frames in {clock.text(self.device)}",
        }

    def style_transfer(self, library: CodeLibrary, model_name: str, content: str, style: str,
                       split_resolution) -> dict:
        generator = self.load(model_name).generator
        with timed() as clock:
            ws = edits.crossover_codes(generator, self.resolve_code(content, library, model_name, 0.7),
                                       self.resolve_code(style, library, model_name, 0.7), int(split_resolution))
            image = self.render(model_name, ws)
        return self._result(library, model_name, image, "style_transfer", clock, ws)

    def expression_transfer(self, library: CodeLibrary, model_name: str, target: str, with_expression: str,
                            without_expression: str, strength, first_row=0, last_row=-1) -> dict:
        generator = self.load(model_name).generator
        first_row, last_row = int(first_row or 0), int(-1 if last_row is None else last_row)
        last_row = generator.num_ws - 1 if last_row < 0 else last_row
        if not 0 <= first_row <= last_row < generator.num_ws:
            raise StudioError(f"rows must satisfy 0 <= first <= last <= {generator.num_ws - 1}, "
                              f"got {first_row} to {last_row}")
        codes = [self.resolve_code(ref, library, model_name, 0.7)
                 for ref in (target, with_expression, without_expression)]
        with timed() as clock:
            ws = edits.expression_transfer_codes(generator, *codes, strength=float(strength),
                                                 rows=list(range(first_row, last_row + 1)))
            image = self.render(model_name, ws)
        distance = metrics.identity_distance(self.render(model_name, codes[0]), image)
        extra = ("" if distance is None else
                 f" · identity distance to the target: {distance:.3f} ({'same' if distance < 0.6 else 'another'} "
                 "person by dlib's 0.6 threshold)")
        return self._result(library, model_name, image, "expression", clock, ws, extra)

    def style_mixing(self, library: CodeLibrary, model_name: str, source_seeds, destination_seeds,
                     level: str, psi) -> dict:
        generator = self.load(model_name).generator
        with timed() as clock:
            grid = edits.style_mixing_grid(generator, parse_seeds(source_seeds), parse_seeds(destination_seeds),
                                           level, check_psi(psi))
        image = tensor_to_pil(grid.image)
        return self._result(library, model_name, image, f"style_mixing_{level}", clock)

    def blend(self, library: CodeLibrary, model_name: str, first: str, second: str, mask_kind: str, alpha,
              pose_from_a: bool, resolutions, painted=None) -> dict:
        generator = self.load(model_name).generator
        ws_a = self.resolve_code(first, library, model_name, 0.7)
        ws_b = self.resolve_code(second, library, model_name, 0.7)
        mask = self._blend_mask(mask_kind, alpha, painted)
        chosen = {int(r) for r in (resolutions or [])}
        if not chosen:
            raise StudioError("choose at least one resolution to blend at")
        layers = [i for i, layer in enumerate(generator.layers) if layer.resolution in chosen]
        with timed() as clock:
            image = feature_blend.feature_blend(generator, ws_a.to(self.device), ws_b.to(self.device), mask,
                                                layers=layers, pose_from_a=bool(pose_from_a))
        return self._result(library, model_name, tensor_to_pil(image), f"blend_{mask_kind}", clock)

    @staticmethod
    def _blend_mask(kind: str, alpha, painted):
        if kind == "horizontal":
            return feature_blend.horizontal_ramp
        if kind == "vertical":
            return feature_blend.vertical_ramp
        if kind == "constant":
            return float(alpha)
        if kind == "painted":
            return painted_mask(painted)
        raise StudioError(f"unknown mask {kind!r}: horizontal, vertical, constant or painted")

    def panorama(self, library: CodeLibrary, model_name: str, references: str, direction: str,
                 sigma) -> dict:
        generator = self.load(model_name).generator
        refs = [r.strip() for r in str(references or "").split(",") if r.strip()]
        if not 2 <= len(refs) <= feature_blend.MAX_PANORAMA_CODES:
            raise StudioError(f"a panorama needs between 2 and {feature_blend.MAX_PANORAMA_CODES} codes, "
                              f"got {len(refs)}")
        seeds = [SEED_REFERENCE.match(r) for r in refs]
        with timed() as clock:
            if all(seeds) and not any(r in library for r in refs):
                codes = feature_blend.smoothed_random_codes(generator, [int(m.group(1)) for m in seeds], float(sigma))
            else:
                codes = feature_blend.gaussian_smooth(
                    torch.cat([self.resolve_code(r, library, model_name, 0.7) for r in refs]), float(sigma))
            image = feature_blend.render_panorama(generator, codes.to(self.device), direction)
        return self._result(library, model_name, tensor_to_pil(image), f"panorama_{len(refs)}", clock)


WHOLE_IMAGE = "whole image (no alignment)"
MAX_INVERT_STEPS = 5000


def default_invert_steps() -> int:
    """The projector's default number of steps (its default recipe is tuned for it)."""
    from .projector import ProjectorOptions

    return ProjectorOptions().steps


@dataclass
class InvertUpdate:
    aligned: Optional[Image.Image] = None
    image: Optional[Image.Image] = None
    metrics: Optional[dict] = None
    files: Optional[list] = None
    info: str = ""
    step: int = 0
    total: int = 0
    done: bool = False


def _as_pil(image) -> Image.Image:
    return image if isinstance(image, Image.Image) else tensor_to_pil(image)


def painted_mask(editor_value) -> np.ndarray:
    """A Gradio ImageEditor value -> an H x W mask in [0, 1]: where the user painted, B shows."""
    if editor_value is None:
        raise StudioError("paint a mask first (the painted strokes are where B shows)")
    layers = editor_value.get("layers") if isinstance(editor_value, dict) else None
    if not layers:
        raise StudioError("the painted mask is empty: paint where B should show")
    strokes = np.zeros(np.asarray(layers[0]).shape[:2], dtype=np.float32)
    for layer in layers:
        array = np.asarray(layer, dtype=np.float32)
        if array.ndim == 3 and array.shape[2] == 4:
            strokes = np.maximum(strokes, array[..., 3] / 255.0)
    if strokes.max() <= 0:
        raise StudioError("the painted mask is empty: paint where B should show")
    return strokes


def _draw_faces(image: Image.Image, faces) -> Image.Image:
    """A copy of the photo with each detected face boxed and numbered as in the Face menu."""
    from PIL import ImageDraw

    preview = image.copy()
    preview.thumbnail((768, 768))
    scale = preview.width / image.width
    draw = ImageDraw.Draw(preview)
    for number, face in enumerate(faces, start=1):
        box = [face.left * scale, face.top * scale, face.right * scale, face.bottom * scale]
        draw.rectangle(box, outline=(255, 80, 0), width=3)
        draw.text((box[0] + 4, box[1] + 2), str(number), fill=(255, 80, 0))
    return preview
