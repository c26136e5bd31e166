"""The app's operations in user terms: codes by name, numbers in; pictures, files and messages out.

The UI layer (`ui/`) parses Gradio's value formats and calls one typed method here per event; the
tests call the same methods. Results are dataclasses (`Picture`, `EditResult`, `GalleryResult`,
...); every image is written to disk once (`Picture.path`), and the UI shows that file.
Errors meant for the user are `UserError`s (`StudioError` for the Studio's own checks); anything
else is a bug, logged with its stack trace by the UI.
"""
from __future__ import annotations

import copy
import logging
import re
import shutil
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional, Sequence

import numpy as np
import torch
from PIL import Image

from .inversion import align, metrics
from . import codes, examples
from .editing import edits, feature_blend, video_io
from .loading import zoo
from .errors import UserError
from .images import load_image, tensor_to_pil
from .latents import Latent, latent_to_bytes
from .inversion.paste_back import PhotoLink
from .library import CodeEntry, CodeLibrary, LibraryError
from .studio_compare import BEFORE_CACHE_SIZE, PHOTO_CACHE_SIZE, ComparingStudio, PictureCache
from .studio_edit import EditingStudio, ImageTransform
from .studio_soat import SoatStudio
from .studio_video import VideoStudio
from .worker import stream_from_worker

log = logging.getLogger(__name__)

MODEL_LOAD_WAIT_S = 900  # a request waits this long for another request's load of the same model
EXPIRY_CHECK_EVERY_S = 60


class StudioError(UserError):
    """A problem the user can fix (bad input, a code of another model, a model still loading)."""


# -- results -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Picture:
    """One result image, written once as a PNG at `path`."""

    image: Image.Image
    path: str
    caption: str = ""


@dataclass
class EditResult:
    """A single-image operation: the picture, its downloads, an info line, library names added."""

    picture: Picture
    files: list[str]
    info: str
    added: list[str] = field(default_factory=list)
    pasted: Optional[Picture] = None  # the picture inside the photo its source code was inverted from
    before: Optional[Picture] = None  # what `picture` is compared with: its source code unedited
    photo: Optional[Picture] = None  # what `pasted` is compared with: that photo as it is


@dataclass
class ExampleResult(EditResult):
    """An example photo's precomputed inversion, with its quality as measured when it was made."""

    metrics: Optional[dict] = None


@dataclass
class GalleryResult:
    """Several pictures (Generate, Morph) with their downloads."""

    pictures: list[Picture]
    files: list[str]
    info: str
    added: list[str] = field(default_factory=list)


@dataclass
class ModelStatus:
    """A model's state for the status line: one short sentence (markdown) and the details."""

    line: str
    details: str  # plain text: where the weights came from, or what was tried and how to fix it
    failed: bool = False  # the model cannot load (details: what was tried)


@dataclass
class MorphResult(GalleryResult):
    """A morph: its frames, and `animation`, the GIF that plays them there and back."""

    animation: str = ""


@dataclass
class FacesFound:
    """The faces of an uploaded photo (largest first) and a preview with each one numbered from 1."""

    count: int
    preview: Image.Image


@dataclass
class ImportResult:
    picture: Optional[Picture]  # the first restored code of the current model, rendered
    info: str
    added: list[str] = field(default_factory=list)


@dataclass
class InvertUpdate:
    """One update of a running inversion: previews while it runs, then the result (done=True).

    aligned: the aligned crop (written once, in every update); preview: the current image every
    few steps (None between previews); result: the final image (done=True only)."""

    aligned: Optional[Picture] = None
    preview: Optional[Image.Image] = None
    result: Optional[Picture] = None
    metrics: Optional[dict] = None
    files: Optional[list] = None
    pasted: Optional[Picture] = None  # the result inside the original photo (done=True only)
    in_frame: Optional[Picture] = None  # StyleGAN3: the result in the photo's frame (done=True only)
    before: Optional[Picture] = None  # what `result` is compared with: the aligned crop (done=True only)
    photo: Optional[Picture] = None  # what `pasted` is compared with: the photo (done=True only)
    info: str = ""
    step: int = 0
    total: int = 0
    done: bool = False


@dataclass(frozen=True)
class BlendMask:
    """Where B shows: 'horizontal' or 'vertical' ramps, a 'constant' alpha, or a 'painted' H x W array."""

    kind: str = "horizontal"
    alpha: float = 0.5
    painted: Optional[np.ndarray] = None


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


def whole(value, name: str, low: int, high: int) -> int:
    """A whole number from a UI field (sliders and number boxes send floats)."""
    return codes.check_whole_number(value, name, low, high)


class Studio(EditingStudio, SoatStudio, VideoStudio, ComparingStudio):
    """Holds the models (loaded once per process) and runs the operations of every tab."""

    def __init__(self, default_model: str = zoo.DEFAULT_MODEL, device: str = "auto",
                 checkpoint: Optional[str] = None, output_dir: Optional[str] = None,
                 retention_s: float = codes.FILE_RETENTION_S) -> None:
        self.default_model = default_model
        self.device = pick_device(device)
        self.checkpoint = checkpoint
        self.output_dir = Path(output_dir or tempfile.mkdtemp(prefix="stylegan_studio_"))
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.retention_s = retention_s
        self._last_expiry = 0.0
        self._models: dict[str, zoo.LoadedModel] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._loading: set[str] = set()
        self._failed: set[str] = set()  # models whose last load failed (the menu says so)
        self._new_library: Optional[CodeLibrary] = None  # the template of a new visitor's library
        self._new_library_lock = threading.Lock()
        self._before_cache = PictureCache(BEFORE_CACHE_SIZE)  # unedited renders, for before/after views
        self._photo_cache = PictureCache(PHOTO_CACHE_SIZE)

    # -- models ----------------------------------------------------------------------------
    def model_choices(self) -> list[str]:
        names = zoo.model_names()
        if self.checkpoint:
            names = [zoo.CUSTOM_CHECKPOINT] + names
        return names

    def load(self, model_name: Optional[str] = None) -> "zoo.LoadedModel":
        """The loaded model of that name. A loaded model is served without any lock; a load holds
        only that model's lock, so one user's slow download never delays another user's request."""
        name = model_name or self.default_model
        loaded = self._models.get(name)
        if loaded is not None:
            return loaded
        with self._locks_guard:
            lock = self._locks.setdefault(name, threading.Lock())
        if not lock.acquire(timeout=MODEL_LOAD_WAIT_S):
            raise StudioError(f"the model {name!r} has been loading for over {MODEL_LOAD_WAIT_S // 60} minutes "
                              "(its weights download may be stalled); try again later or pick another model")
        try:
            if name not in self._models:
                self._loading.add(name)
                try:
                    checkpoint = self.checkpoint if name == zoo.CUSTOM_CHECKPOINT else None
                    self._models[name] = zoo.load_model(name, device=str(self.device), checkpoint=checkpoint)
                    self._failed.discard(name)
                except UserError:
                    self._failed.add(name)
                    raise
                finally:
                    self._loading.discard(name)
            return self._models[name]
        finally:
            lock.release()

    def generator(self, model_name: Optional[str] = None):
        return self.load(model_name).generator

    def is_loading(self, model_name: Optional[str] = None) -> bool:
        return (model_name or self.default_model) in self._loading

    def model_status(self, model_name: Optional[str] = None) -> ModelStatus:
        """The model's state in one short sentence, and the details (where its weights came from,
        the CUDA ops; or what was tried to load it). Loads the model (a load under way: no wait)."""
        from .ops import cuda_ops_status

        name = model_name or self.default_model
        device = f"device: {self.device}\n{cuda_ops_status()}"
        if self.is_loading(name):
            return ModelStatus(f"loading model **{name}**… (a first start fetches and converts the weights, "
                               f"about a minute)", device)
        try:
            loaded = self.load(name)
        except UserError as error:
            log.info("model %s not available: %s", name, " ".join(str(error).split()))
            line = (error.summary[0].upper() + error.summary[1:] + "." if error.summary
                    else f"**{name}** is not available: {str(error).splitlines()[0]}")
            return ModelStatus(line, str(error), failed=True)
        except Exception:  # noqa: BLE001 - a bug while loading: logged, and the line still shows
            log.exception("loading model %s failed", name)
            return ModelStatus(f"**{name}** is not available (an unexpected error); pick another model.",
                               "see the server log", failed=True)
        return ModelStatus(f"model **{loaded.name}** ready on **{self.device}**: "
                           f"{loaded.entry.description.split(' (')[0]}",
                           f"{loaded.entry.description}\nweights from {loaded.source_description}\n{device}")

    def model_notes(self, probe_network: bool = False) -> dict[str, str]:
        """A few words per model of `model_choices` on whether it can load here ('' = it can):
        "not available offline", "downloads on first use", "failed to load"... Never loads one."""
        notes = {}
        for name in self.model_choices():
            if name in self._models or name not in zoo.MODELS:
                notes[name] = "failed to load" if name in self._failed else ""
                continue
            note = zoo.availability(name, probe_network).note
            notes[name] = "failed to load" if name in self._failed and not note else note
        return notes

    def resolutions(self, model_name: Optional[str] = None) -> list[int]:
        """The layer resolutions of a model (the choices of 'content up to' and 'blend at'), known
        without loading a zoo model that is not loaded yet."""
        name = model_name or self.default_model
        if name in self._models or name not in zoo.MODELS:
            return codes.layer_resolutions(self.generator(name))
        top = zoo.MODELS[name].resolution
        return [4 << i for i in range(top.bit_length()) if 4 << i <= top]

    # -- codes -----------------------------------------------------------------------------
    def seed_code(self, model_name: str, seed: int, psi: float = 1.0) -> torch.Tensor:
        """Seed -> code [1, num_ws, w_dim] on the CPU."""
        return codes.random_codes(self.generator(model_name), [seed], psi).cpu()

    def resolve_code(self, reference: str, library: CodeLibrary, model_name: str,
                     psi: float = codes.DEFAULT_PSI) -> torch.Tensor:
        """A code picker's value -> ws [1, num_ws, w_dim]: a library name, or 'seed N' (truncated by psi)."""
        reference = (reference or "").strip()
        if not reference:
            raise StudioError("pick a code: a name from your library, or type 'seed 42'")
        seed = codes.seed_of(reference)
        if seed is not None and reference not in library:
            return self.seed_code(model_name, seed, psi)
        if reference not in library and reference in self.example_names():
            examples.example_codes(library, render=self._example_thumbnail)  # the tabs' defaults always work
        try:
            entry = library.get(reference)
        except LibraryError as error:  # its message suggests 'seed 7' for a bare '7'
            raise StudioError(str(error)) from error
        if entry.model_name != model_name or not codes.fits(self.generator(model_name), entry.ws):
            raise StudioError(
                f"the code {reference!r} belongs to model {entry.model_name!r} "
                f"(shape {list(entry.ws.shape)}); switch the model picker to it, or pick another code"
            )
        return entry.ws

    def resolve_codes(self, references, library: CodeLibrary, model_name: str, psi=codes.DEFAULT_PSI,
                      limit: int = codes.MAX_CODES_PER_CALL, what: str = "codes",
                      at_least: int = 1) -> tuple[list[str], torch.Tensor]:
        """Several codes -> (their names, ws [N, num_ws, w_dim]). `references`: text separated by
        commas, or a list, of library names and 'seed N'; a bare seed or seed range ('1, 2, 5-7')
        that is no library name means those seeds, as the seed fields always took them."""
        if not isinstance(references, (list, tuple)):
            references = str(references or "").replace(";", ",").split(",")
        names = []
        for part in (str(p).strip() for p in references):
            if part and part not in library and re.fullmatch(r"\d{1,12}(\s*-\s*\d{1,12})?", part):
                names += [f"seed {seed}" for seed in codes.parse_seeds(part, limit)]
            elif part:
                names.append(part)
        if not at_least <= len(names) <= limit:
            raise StudioError(f"give between {at_least} and {limit} {what}: library names or 'seed N', separated "
                              f"by commas (got {len(names)})")
        return names, torch.cat([self.resolve_code(name, library, model_name, psi) for name in names])

    def render(self, model_name: str, ws: torch.Tensor, editor=None,
               transform: Optional[ImageTransform] = None) -> Image.Image:
        generator = self.generator(model_name)
        editor = self.transform_editor(model_name, transform, editor)
        with torch.no_grad():
            image = generator.synthesis(ws.to(self.device), editor)
        return tensor_to_pil(image)

    def preview(self, library: CodeLibrary, model_name: str, reference: str, size: int) -> Image.Image:
        """A code's image at `size` px a side (a canvas background, a small picture beside it)."""
        image = self.render(model_name, self.resolve_code(reference, library, model_name))
        return image if image.width == size else image.resize((size, size), Image.Resampling.LANCZOS)

    # -- files -----------------------------------------------------------------------------
    def new_path(self, stem: str, suffix: str) -> Path:
        self.expire_outputs()
        folder = Path(tempfile.mkdtemp(dir=self.output_dir))
        return folder / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', stem)[:64]}{suffix}"

    def expire_outputs(self, now: Optional[float] = None) -> int:
        """Delete output folders older than `retention_s` (checked at most once a minute); returns
        how many were deleted."""
        now = time.time() if now is None else now
        if now - self._last_expiry < EXPIRY_CHECK_EVERY_S:
            return 0
        self._last_expiry = now
        removed = 0
        for folder in self.output_dir.iterdir():
            try:
                if folder.is_dir() and now - folder.stat().st_mtime > self.retention_s:
                    shutil.rmtree(folder, ignore_errors=True)
                    removed += 1
            except FileNotFoundError:  # deleted meanwhile (Gradio's cache expiry shares the folder)
                continue
        return removed

    def picture(self, image: Image.Image, stem: str, caption: str = "") -> Picture:
        path = self.new_path(stem, ".png")
        image.save(path)
        return Picture(image, str(path), caption)

    def save_code(self, ws: torch.Tensor, model_name: str, stem: str, space: str = "w+") -> str:
        path = self.new_path(stem, ".npz")
        path.write_bytes(latent_to_bytes(Latent(ws=ws, model_name=model_name, space=space, name=stem)))
        return str(path)

    def _add_all(self, library: CodeLibrary, items, model_name: str, source: str, info: dict,
                 photo: Optional[PhotoLink] = None) -> list[str]:
        """Add codes to the library; when it is full the results are still returned, with a note."""
        added = []
        for ws, name, image in items:
            try:
                added.append(library.add(ws, model_name, source, name, image, info, photo=photo).name)
            except LibraryError as error:
                log.info("library: %s", error)
                break
        return added

    # -- paste-back ------------------------------------------------------------------------
    @staticmethod
    def photo_link(library: CodeLibrary, source) -> Optional[PhotoLink]:
        """The photo a code (a library entry, or its name; 'seed N' has none) was inverted from."""
        if isinstance(source, CodeEntry):
            return source.photo
        name = (source or "").strip() if isinstance(source, str) else ""
        return library.get(name).photo if name in library else None

    def pasted_for(self, library: CodeLibrary, source, image: Image.Image,
                   stem: str = "pasted") -> Optional[Picture]:
        """`image` (made from the code `source`: an entry or its name) shown inside the photo that
        code was inverted from, written once; None when the code has no photo. Every tab whose
        result keeps the source's face geometry calls this (the UI shows it behind a toggle)."""
        link = self.photo_link(library, source)
        if link is None:
            return None
        return self.picture(link.paste(image), f"{stem}_in_photo", f"in {link.source or 'the photo'}")

    # -- a new visitor's library ----------------------------------------------------------
    def new_library(self) -> CodeLibrary:
        """A new visitor's library: the precomputed codes of the example photos (with their photo
        links), so every tab can start from real faces. Built once, copied for each visitor."""
        with self._new_library_lock:
            if self._new_library is None:
                template = CodeLibrary()
                examples.example_codes(template, render=self._example_thumbnail)
                self._new_library = template
        return copy.deepcopy(self._new_library)

    @staticmethod
    def example_names() -> set[str]:
        """The names of the shipped example codes."""
        return {e.code_name for e in examples.example_photos() if e.code_path.is_file()}

    def example_or(self, code_name: str, fallback: str) -> str:
        """`code_name` when the examples ship that code for the default model (so a new visitor's
        library has it), else `fallback` (e.g. 'seed 1'): a tab's default input."""
        shipped = {e.code_name: e for e in examples.example_photos() if e.code_path.is_file()}
        if code_name not in shipped:
            return fallback
        try:
            model = examples.read_codes_file(shipped[code_name].code_path)[0].model_name
        except UserError:
            return fallback
        return code_name if model == self.default_model else fallback

    def example_result(self, library: CodeLibrary, model_name: str, photo,
                       face_index: Optional[int]) -> Optional[ExampleResult]:
        """The shipped inversion of an example photo (matched by file name and face), rendered and
        pasted back into the photo at once; None for any other photo (or a code of another model).
        A visitor who deleted the example's code gets it back in the library."""
        name = Path(str(photo)).name
        example = next((e for e in examples.example_photos() if e.path.name == name
                        and e.face_index == face_index and e.code_path.is_file()), None)
        if example is None:
            return None
        if example.code_name not in library:
            examples.example_codes(library, render=self._example_thumbnail)
        entry = library.get(example.code_name) if example.code_name in library else None
        if entry is None or entry.model_name != model_name:
            return None
        with timed() as clock:
            image = self.render(model_name, entry.ws)
        picture = self.picture(image, example.code_name)
        pasted = self.pasted_for(library, entry, image, example.code_name)
        info = (f"**{entry.name}** is in your library: {examples.PRECOMPUTED_NOTE} (shown in "
                f"{clock.text(self.device)}). Press **Invert** to run the inversion yourself.")
        result = ExampleResult(picture, [picture.path] + ([pasted.path] if pasted else []), info, [], pasted,
                               metrics=example.metrics())
        if entry.photo is not None:  # compared as an inversion is: with its aligned crop and its photo
            result.before = self.aligned_from_link(entry.photo, image.width, example.code_name)
            result.photo = self.photo_picture(entry.photo)
        return result

    def _example_thumbnail(self, ws: torch.Tensor, model_name: str) -> Optional[Image.Image]:
        """A thumbnail of an example code, rendered only by the default (or an already loaded) model."""
        if model_name != self.default_model and model_name not in self._models:
            return None
        try:
            return self.render(model_name, ws) if codes.fits(self.generator(model_name), ws) else None
        except UserError as error:
            log.info("no thumbnails for the example codes: %s", error)
            return None

    # -- Generate --------------------------------------------------------------------------
    def generate(self, library: CodeLibrary, model_name: str, seeds_text, psi=codes.DEFAULT_PSI,
                 transform: Optional[ImageTransform] = None) -> GalleryResult:
        """Faces for seeds ('1, 2, 5-8'); each code joins the library as 'seed N'. `transform`
        rotates/shifts the images of a StyleGAN3 model (the codes stay as they are)."""
        seeds, psi = codes.parse_seeds(seeds_text), codes.check_psi(psi)
        with timed() as clock:
            made = [(seed, ws, self.render(model_name, ws, transform=transform))
                    for seed, ws in ((s, self.seed_code(model_name, s, psi)) for s in seeds)]
        pictures = [self.picture(image, f"seed{seed}", f"seed {seed}") for seed, _, image in made]
        added = self._add_all(library, [(ws, f"seed {seed}", image) for seed, ws, image in made],
                              model_name, "seed", {"psi": psi})
        return GalleryResult(pictures, [p.path for p in pictures],
                             f"{len(pictures)} image(s) in {clock.text(self.device)} · psi {psi:g}", added)

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
            except UserError as error:
                log.warning("the default model is not available: %s", error)
            try:  # the inversion's helpers, so the first Invert does not wait for them
                from .inversion.perceptual import load_vgg16

                load_vgg16(self.device)
                align.shape_predictor()
                metrics.face_recognizer()
                log.info("perceptual loss and face models ready")
            except (UserError, OSError) as error:
                log.warning("the inversion's models are not available: %s", error)

        if background:
            threading.Thread(target=load_default, name="warm-up", daemon=True).start()
        else:
            load_default()

    # -- Invert ----------------------------------------------------------------------------
    def find_faces(self, photo) -> FacesFound:
        """The faces of an uploaded photo and a preview with each one boxed and numbered from 1."""
        image = load_image(photo)
        faces = align.detect_faces(image)
        return FacesFound(len(faces), _draw_faces(image, faces))

    def align_photo(self, photo, face_index: Optional[int], resolution: int) -> "align.AlignedFace":
        """Align face `face_index` (0 = largest) of the photo, or use it whole when face_index is None."""
        image = load_image(photo)
        if face_index is None:
            return align.center_crop(image, resolution)
        try:
            return align.align_face(image, resolution, face_index=face_index)
        except align.NoFaceError as error:
            raise StudioError(f"no face found. {error} To do that, pick 'whole image (no alignment)' in "
                              "the Face menu.") from error

    def invert_stream(self, library: CodeLibrary, model_name: str, photo, face_index: Optional[int] = 0,
                      steps=codes.DEFAULT_INVERT_STEPS, space: str = codes.DEFAULT_SPACE,
                      cancel: Optional[threading.Event] = None) -> Iterator[InvertUpdate]:
        """Invert a photo, yielding previews while the projector runs and a final update.

        The projection runs in a worker thread; closing this generator (the user pressed Stop,
        or the browser went away) sets the cancel event so the worker stops at its next step.
        """
        from .inversion import projector

        steps = whole(steps, "the number of steps", *codes.INVERT_STEPS)
        space = codes.check_space(space)
        loaded = self.load(model_name)
        started = time.perf_counter()
        # Read once: Gradio's cache expiry may delete an upload it deduplicated with an old copy.
        photo_image = load_image(photo)
        target = self.align_photo(photo_image, face_index, loaded.generator.resolution)
        stem = Path(str(photo)).stem if isinstance(photo, (str, Path)) else "photo"
        stem += f"-face{face_index + 1}" if face_index else ""  # the code is named after its face
        aligned = self.picture(target.image, f"{stem}_aligned")
        options = projector.ProjectorOptions(steps=steps, space=space)
        yield InvertUpdate(aligned=aligned, info="aligned; starting the projection", total=options.total_steps)
        original = photo_image
        descriptor = _photo_descriptor(original, target)
        result = yield from _project_in_worker(loaded.generator, aligned, options, cancel, descriptor)
        image = _as_pil(result.image)
        inverted = self.picture(image, f"{stem}_inverted")
        link = PhotoLink.from_face(original, target, source=stem)
        pasted = self.picture(link.paste(image), f"{stem}_in_photo", f"in {stem}")
        in_frame = None if loaded.generator.arch != "stylegan3" else self.in_photo_frame(
            model_name or self.default_model, result.ws, link, f"{stem}_photo_frame", styles=result.styles,
            aligned=image)
        # Four decimals are more than these metrics resolve, and they keep the UI's table readable.
        scores = {name: round(value, 4) if isinstance(value, float) else value for name, value in
                  metrics.photo_metrics(original, target, image, pasted.image, descriptor).items()}
        files = [aligned.path, inverted.path, pasted.path,
                 self.save_code(result.ws, loaded.name, f"{stem}_{space.replace('+', 'plus')}", space)]
        files += in_frame.files if in_frame else []
        added = self._add_all(library, [(result.ws, stem, image)], loaded.name, "inverted",
                              {"metrics": scores, "space": space, "steps": result.steps_run}, photo=link)
        info = _invert_info(result, added, target, time.perf_counter() - started, self.device)
        info += self._w_fit_note(loaded.name, result, image)
        yield InvertUpdate(aligned=aligned, result=inverted, metrics=scores, files=files, pasted=pasted,
                           in_frame=in_frame and in_frame.picture, step=result.steps_run, total=options.total_steps,
                           before=aligned, photo=self.photo_picture(link), done=True,
                           info=info + (f" · in the photo's frame (StyleGAN3): {in_frame.info}" if in_frame else ""))

    def _w_fit_note(self, model_name: str, result, image: Image.Image) -> str:
        """S space: how close the library's code (a W+ fit of the styles' image) comes to what is shown."""
        if result.styles is None:
            return ""
        try:
            distance = metrics.identity_distance(image, self.render(model_name, result.ws))
        except (UserError, OSError) as error:  # the face models are missing: no likeness to report
            log.info("no identity distance of the W+ fit: %s", error)
            distance = None
        likeness = "" if distance is None else f", identity distance {distance:.2f} from the picture shown"
        return (" · shown: the exact styles (S); the library code, which every other tab uses, is a W+ fit of "
                f"this picture{likeness}")

    # -- Library files ---------------------------------------------------------------------
    def import_codes(self, library: CodeLibrary, model_name: str, path) -> ImportResult:
        """Add the codes of an uploaded .npz (a saved latent or a library export) to the library."""
        if path is None:
            raise StudioError("no file was uploaded")

        def thumbnail(ws, code_model):
            fits = code_model == model_name and codes.fits(self.generator(model_name), ws)
            return self.render(model_name, ws) if fits else None

        default_name = Path(path).stem if isinstance(path, (str, Path)) else "uploaded"
        added = library.import_file(path, render=thumbnail, default_name=default_name)
        first = next((e for e in added if e.thumbnail is not None), None)
        other = sorted({e.model_name for e in added} - {model_name})
        note = f" (codes of {', '.join(other)}: switch the model to use them)" if other else ""
        picture = None if first is None else self.picture(self.render(model_name, first.ws), first.name)
        return ImportResult(picture, f"restored {len(added)} code(s): {', '.join(e.name for e in added)}{note}",
                            [e.name for e in added])

    def export_library(self, library: CodeLibrary) -> str:
        path = self.new_path("stylegan_codes", ".npz")
        path.write_bytes(library.export_bytes())
        return str(path)

    # -- Edits -----------------------------------------------------------------------------
    def _result(self, library: CodeLibrary, model_name: str, image: Image.Image, stem: str,
                clock: Timed, ws: Optional[torch.Tensor] = None, extra: str = "", source=None) -> EditResult:
        """The common return of the single-image edits: the picture, downloads and an info line.
        `source` (the code whose face the result keeps) links the result to that code's photo:
        the pasted-back picture joins the downloads and a new library entry keeps the link; the
        result also carries what to compare it with (`comparison`: the source unedited, the photo)."""
        picture = self.picture(image, stem)
        pasted = self.pasted_for(library, source, image, stem) if source is not None else None
        files, added = [picture.path] + ([pasted.path] if pasted else []), []
        if ws is not None:
            files.append(self.save_code(ws, model_name, stem))
            added = self._add_all(library, [(ws, stem, image)], model_name, "edit", {},
                                  photo=self.photo_link(library, source) if source is not None else None)
        info = clock.text(self.device) + (f" · added **{added[0]}** to your library" if added else "") + extra
        before, photo = self.comparison(library, model_name, source, pasted)
        return EditResult(picture, files, info, added, pasted, before, photo)

    def morph(self, library: CodeLibrary, model_name: str, first: str, second: str,
              frames=codes.DEFAULT_MORPH_FRAMES, spherical: bool = False, psi=codes.DEFAULT_PSI) -> GalleryResult:
        """Frames from `first` to `second`: linear in W+, or (two seeds) spherical in Z."""
        generator = self.generator(model_name)
        frames = whole(frames, "the number of frames", *codes.MORPH_FRAMES)
        with timed() as clock:
            if spherical:
                seeds = [codes.seed_of(ref) for ref in (first, second)]
                if None in seeds:
                    raise StudioError("spherical interpolation works between two seeds ('seed N'); "
                                      "use linear W+ for codes from your library")
                path = edits.morph_seed_codes(generator, seeds[0], seeds[1], frames, psi)
            else:
                path = edits.morph_codes(self.resolve_code(first, library, model_name, psi),
                                         self.resolve_code(second, library, model_name, psi), frames)
            images = edits.render_codes(generator, path.to(self.device))
        stills = [tensor_to_pil(image) for image in images]
        gif = edits.frames_to_gif(stills, self.new_path("morph", ".gif"), fps=codes.MORPH_FPS, boomerang=True,
                                  max_side=codes.MORPH_GIF_SIDE)
        mp4 = video_io.write_clip(edits.there_and_back(stills), self.new_path("morph", ".mp4"), codes.MORPH_FPS)
        pictures = [self.picture(still, f"morph_{i + 1:02d}", f"frame {i + 1}") for i, still in enumerate(stills)]
        return MorphResult(pictures, [str(gif), str(mp4)] + [p.path for p in pictures],
                           f"{len(pictures)} frames in {clock.text(self.device)} · downloads: MP4 "
                           f"({stills[0].width} px), GIF ({min(stills[0].width, codes.MORPH_GIF_SIDE)} px), "
                           "frames (PNG)", animation=str(gif))

    def style_transfer(self, library: CodeLibrary, model_name: str, content: str, style: str,
                       split_resolution=codes.DEFAULT_SPLIT_RESOLUTION) -> EditResult:
        """Image2StyleGAN crossover: rows up to `split_resolution` px from content, the rest from style."""
        generator = self.generator(model_name)
        split = whole(split_resolution, "the split resolution", 0, generator.resolution)
        with timed() as clock:
            ws = edits.crossover_codes(generator, self.resolve_code(content, library, model_name),
                                       self.resolve_code(style, library, model_name), split)
            image = self.render(model_name, ws)
        return self._result(library, model_name, image, "style_transfer", clock, ws, source=content)

    def expression_transfer(self, library: CodeLibrary, model_name: str, target: str, with_expression: str,
                            without_expression: str, strength=codes.DEFAULT_EXPRESSION_STRENGTH,
                            first_row=0, last_row=-1) -> EditResult:
        """w1 + strength (w2 - w3) on rows first..last (last -1: the last row). w2 and w3 must be one
        person with and without the expression (`expression_edit` is the simple path)."""
        if not (str(with_expression or "").strip() and str(without_expression or "").strip()):
            raise StudioError("pick w2 and w3: the same person with and without the expression (e.g. make "
                              "'grace_hopper smile' with the simple mode, then w2 = 'grace_hopper smile', "
                              "w3 = 'grace_hopper')")
        generator = self.generator(model_name)
        top = generator.num_ws - 1
        first = whole(first_row if first_row is not None else 0, "the first row", 0, top)
        last = whole(last_row if last_row is not None else -1, "the last row", -1, top)
        last = top if last < 0 else last
        if first > last:
            raise StudioError(f"rows must satisfy 0 <= first <= last <= {top}, got {first} to {last}")
        codes_in = [self.resolve_code(ref, library, model_name) for ref in (target, with_expression, without_expression)]
        with timed() as clock:
            ws = edits.expression_transfer_codes(generator, *codes_in, strength=strength,
                                                 rows=list(range(first, last + 1)))
            image = self.render(model_name, ws)
        return self._result(library, model_name, image, "expression", clock, ws,
                            self.identity_note(model_name, codes_in[0], image), source=target)

    def style_mixing(self, library: CodeLibrary, model_name: str, sources, destinations,
                     level: str = codes.DEFAULT_MIXING_LEVEL, psi=codes.DEFAULT_PSI) -> EditResult:
        """The StyleGAN paper's grid: sources along the top (columns), destinations down the left
        (rows); each cell is the destination with the `level` styles copied from the source.
        `sources` and `destinations`: codes separated by commas (see `resolve_codes`); the grid
        names them in strips above the columns and left of the rows."""
        generator = self.generator(model_name)
        psi = codes.check_psi(psi)
        source_names, source_ws = self.resolve_codes(sources, library, model_name, psi, codes.MAX_MIXING_SEEDS,
                                                     "sources")
        destination_names, destination_ws = self.resolve_codes(destinations, library, model_name, psi,
                                                               codes.MAX_MIXING_SEEDS, "destinations")
        with timed() as clock:
            grid = edits.mixing_grid(generator, source_ws, destination_ws, level, source_names, destination_names)
        return self._result(library, model_name, Image.fromarray(grid.image), f"style_mixing_{level}", clock)

    def blend(self, library: CodeLibrary, model_name: str, first: str, second: str, mask: BlendMask,
              pose_from_a: bool = False, resolutions: Optional[Sequence[int]] = None, add: bool = False) -> EditResult:
        """SOAT feature blend of A and B at the layers of the chosen resolutions (None: all). A
        painted mask is feathered (codes.PAINTED_MASK_FEATHER). A blend mixes features, so it has
        no code of its own: add=True fits one to it (`fit_blend_code`) and adds that to the library."""
        generator = self.generator(model_name)
        ws_a = self.resolve_code(first, library, model_name).to(self.device)
        ws_b = self.resolve_code(second, library, model_name).to(self.device)
        chosen = set(codes.layer_resolutions(generator)) if resolutions is None else {
            whole(r, "a blend resolution", 1, 1 << 20) for r in resolutions}
        layers = [i for i, layer in enumerate(generator.layers) if layer.resolution in chosen]
        if not layers:
            raise StudioError(f"choose at least one resolution to blend at: "
                              f"{', '.join(map(str, codes.layer_resolutions(generator)))}")
        alpha = _blend_mask(mask)
        if mask.kind == "painted":
            alpha = feature_blend.feather_mask(alpha, codes.PAINTED_MASK_FEATHER, generator.resolution)
        with timed() as clock:
            image = feature_blend.feature_blend(generator, ws_a, ws_b, alpha, layers=layers,
                                                pose_from_a=bool(pose_from_a))
        result = self._result(library, model_name, tensor_to_pil(image), f"blend_{mask.kind}", clock, source=first)
        if add:
            if pose_from_a:
                ws_b = feature_blend.align_pose(generator, ws_b, ws_a)
            share_of_b = float(feature_blend.mask_function(alpha)(generator.resolution, generator.resolution).mean())
            self.fit_blend_code(library, model_name, result, torch.lerp(ws_a, ws_b, share_of_b),
                                f"blend {first} and {second}", first)
        return result

    def fit_blend_code(self, library: CodeLibrary, model_name: str, result: EditResult, start: torch.Tensor,
                       name: str, source: str) -> None:
        """Fit a code to `result`'s picture (a short inversion from `start`), add it to the library
        as `name` (linked to `source`'s photo) and its file to the downloads; the info line says
        how alike the code's picture and the blend are."""
        from .inversion import projector

        options = projector.ProjectorOptions(steps=codes.BLEND_FIT_STEPS, preview_every=0)
        with timed() as clock:
            fitted = projector.project(self.generator(model_name), result.picture.image, options, start_ws=start)
        added = self._add_all(library, [(fitted.ws, name, fitted.image)], model_name, "edit",
                              {"fitted_steps": fitted.steps_run}, photo=self.photo_link(library, source))
        distance = metrics.identity_distance(result.picture.image, fitted.image)
        alike = "" if distance is None else f"; identity distance of its picture to the blend {distance:.2f}"
        result.added = added
        result.files.append(self.save_code(fitted.ws, model_name, "blend_code"))
        result.info += (f" · added **{added[0]}** to your library: a code fitted to the blend in "
                        f"{fitted.steps_run} steps ({clock.seconds:.0f} s{alike})" if added else
                        " · your library is full: the fitted code is in the downloads only")

    def panorama(self, library: CodeLibrary, model_name: str, references,
                 direction: str = "horizontal", sigma=codes.DEFAULT_SMOOTHING_SIGMA) -> EditResult:
        """A SOAT panorama through the codes in order (text or a list of library names, 'seed N',
        bare seeds and seed ranges, as `resolve_codes` takes them). Seeds alone are smoothed in Z
        (random codes stay typical); any library code makes it smooth the codes themselves."""
        generator = self.generator(model_name)
        names, ws = self.resolve_codes(references, library, model_name, limit=codes.MAX_PANORAMA_CODES,
                                       what="codes for a panorama", at_least=2)
        sigma = codes.check_number(sigma, "the smoothing sigma", *codes.SMOOTHING_SIGMA)
        seeds = [None if name in library else codes.seed_of(name) for name in names]
        with timed() as clock:
            if None not in seeds:
                path = feature_blend.smoothed_random_codes(generator, seeds, sigma)
            else:
                path = feature_blend.gaussian_smooth(ws, sigma)
            image = feature_blend.render_panorama(generator, path.to(self.device), direction)
        return self._result(library, model_name, tensor_to_pil(image), f"panorama_{len(names)}", clock)


def _photo_descriptor(photo: Image.Image, face: "align.AlignedFace") -> Optional[np.ndarray]:
    """The identity descriptor of the chosen face in the photo (None when it has none to judge by)."""
    try:
        if face.face_box is not None:
            return metrics.face_descriptor_at(photo, face.face_box)
        return metrics.face_descriptor(photo)
    except (UserError, OSError) as error:  # the face models are missing: progress shows no likeness
        log.info("no identity descriptor for the progress line: %s", error)
        return None


def _invert_info(result, added: list[str], target, seconds: float, device) -> str:
    """The final line of an inversion: how it ended, where the code went, alignment notes."""
    saved = f"your library as **{added[0]}**" if added else "the downloads only: your library is full"
    if result.stopped == "cancelled":
        head = f"stopped at step {result.steps_run} — the code so far is in {saved}"
    else:
        head = f"inverted in {seconds:.1f} s on {device} ({result.steps_run} steps, {result.space}); saved in {saved}"
    notes = " ".join(target.warnings)
    return head + (f". {notes}" if notes else "")


def _progress_line(step: int, total: int, seconds: float, distance: Optional[float]) -> str:
    """'step 20/80 · about 45 s left · looks like the photo: yes (identity distance 0.52)'."""
    line = f"step {step}/{total} · about {seconds / max(step, 1) * (total - step):.0f} s left"
    if distance is not None:
        looks = "yes" if distance < metrics.SAME_PERSON_THRESHOLD else "not yet"
        line += f" · looks like the photo: {looks} (identity distance {distance:.2f}; below 0.6 = same person)"
    return line


def _project_in_worker(generator, aligned: Picture, options, cancel: Optional[threading.Event],
                       descriptor: Optional[np.ndarray] = None):
    """Run the projector in a thread, yielding its progress as InvertUpdates (with an ETA, and on
    previews the identity distance to the photo's face); returns its result."""
    from .inversion import projector

    cancel = cancel or threading.Event()
    started, last_distance = time.perf_counter(), [None]

    def task(emit):
        def report(step, total, preview, loss):
            image = None if preview is None else _as_pil(preview)
            if image is not None and descriptor is not None:
                last_distance[0] = metrics.identity_distance(None, image, descriptor)
            emit(InvertUpdate(aligned=aligned, step=step, total=total, preview=image,
                              info=_progress_line(step, total, time.perf_counter() - started, last_distance[0])))
        return projector.project(generator, aligned.image, options, progress=report, cancel=cancel)

    return (yield from stream_from_worker(task, cancel, "invert"))


def _blend_mask(mask: BlendMask):
    if mask.kind == "horizontal":
        return feature_blend.horizontal_ramp
    if mask.kind == "vertical":
        return feature_blend.vertical_ramp
    if mask.kind == "constant":
        return codes.check_number(mask.alpha, "the constant alpha", 0.0, 1.0)
    if mask.kind == "painted":
        if mask.painted is None:
            raise StudioError("paint a mask first (the painted strokes are where B shows)")
        if float(np.max(mask.painted)) <= 0:
            raise StudioError("the painted mask is empty: paint where B should show")
        return mask.painted
    raise StudioError(f"unknown mask {mask.kind!r}: horizontal, vertical, constant or painted")


def _as_pil(image) -> Image.Image:
    return image if isinstance(image, Image.Image) else tensor_to_pil(image)


def _draw_faces(image: Image.Image, faces) -> Image.Image:
    """A copy of the photo with each detected face boxed and numbered from 1, largest first."""
    from PIL import ImageDraw, ImageFont

    preview = image.convert("RGB")
    preview.thumbnail((768, 768))
    scale = preview.width / image.width
    draw = ImageDraw.Draw(preview)
    # Labels large enough to read when the page shows the preview at a third of its size.
    font = ImageFont.load_default(size=max(28, max(preview.size) // 10))
    for number, face in enumerate(faces, start=1):
        box = [face.left * scale, face.top * scale, face.right * scale, face.bottom * scale]
        draw.rectangle(box, outline=(255, 80, 0), width=4)
        label = f"face {number}"
        left, top, right, bottom = draw.textbbox((0, 0), label, font=font, stroke_width=3)
        x = min(max(0, box[0]), preview.width - right)
        y = box[1] - bottom - 4 if box[1] - bottom - 4 >= 0 else box[3] + 4
        draw.text((x, y), label, fill=(255, 255, 255), font=font, stroke_width=3, stroke_fill=(255, 80, 0))
    return preview
