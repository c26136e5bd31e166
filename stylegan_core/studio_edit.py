"""The Studio's editing operations: attribute sliders (Edit tab), sketch to face (Sketch tab), the
StyleGAN3 image transform (rotation, translation) that Generate and Edit pass per call, and the
StyleGAN3 rendering of an inverted code in its photo's frame (unaligned photos).

`EditingStudio` is a mixin of `studio.Studio` (it uses its models, code resolution, files and
library helpers); it lives here so the tabs' operations do not crowd studio.py.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, Optional

import torch
from PIL import Image

from . import codes
from .worker import stream_from_worker
from .editing import directions as dirs
from .errors import UserError
from .library import LibraryError
from .images import tensor_to_pil
from .loading import zoo
from .models.generator import LayerEditor

# The sliders the Edit tab shows first (the defaults chosen from the edit-quality benchmark).
DEFAULT_SLIDERS = ("age", "gender_c", "smile", "yaw")
GENDER_LIMIT = 3.0  # past +-3 gender edits stop looking like the same person
ROTATION_LIMIT = 180.0  # degrees
TRANSLATION_LIMIT = 0.5  # image widths: the image spans [-0.5, 0.5]
UNNAMED_KINDS = ("sefa", "ganspace")
# The Expression tab's simple path: shipped W directions that change the expression (in this order).
EXPRESSION_DIRECTIONS = ("smile", "smile_c", "mouth_open", "eyes_open")


@dataclass(frozen=True)
class ImageTransform:
    """A StyleGAN3 image transform: rotation in degrees, translation in image widths."""

    rotate: float = 0.0
    tx: float = 0.0
    ty: float = 0.0

    @property
    def is_identity(self) -> bool:
        return self.rotate == 0 and self.tx == 0 and self.ty == 0

    def checked(self) -> "ImageTransform":
        return ImageTransform(codes.check_number(self.rotate, "the rotation (degrees)", -ROTATION_LIMIT, ROTATION_LIMIT),
                              codes.check_number(self.tx, "the translation x", -TRANSLATION_LIMIT, TRANSLATION_LIMIT),
                              codes.check_number(self.ty, "the translation y", -TRANSLATION_LIMIT, TRANSLATION_LIMIT))


@dataclass(frozen=True)
class Slider:
    name: str  # the direction's name, as in `NAME=VALUE`
    label: str
    limit: float  # the slider goes from -limit to +limit


@dataclass
class EditSliders:
    """What the Edit tab shows for a model: named attributes (defaults first), unnamed components."""

    named: list[Slider]
    unnamed: list[Slider]
    note: str


@dataclass
class SketchUpdate:
    """One update of a running sketch fit: previews while it runs, then the candidates (done=True)."""

    preview: Optional[Image.Image] = None
    pictures: list = field(default_factory=list)  # studio.Picture per candidate, best first
    files: list[str] = field(default_factory=list)
    info: str = ""
    step: int = 0
    total: int = 0
    done: bool = False
    added: list[str] = field(default_factory=list)


def parse_values(text) -> dict[str, float]:
    """'age=2, smile=-1.5' (or a dict) -> {'age': 2.0, 'smile': -1.5}; zeros are dropped."""
    if isinstance(text, dict):
        items = list(text.items())
    else:
        items = []
        for part in str(text or "").replace(";", ",").replace("\n", ",").split(","):
            if not part.strip():
                continue
            name, sep, value = part.partition("=")
            if not sep or not name.strip():
                raise dirs.DirectionError(f"{part.strip()!r}: write slider values as NAME=VALUE, e.g. 'age=2, smile=1'")
            items.append((name.strip(), value.strip()))
    values = {}
    for name, value in items:
        values[name] = codes.check_number(value, f"the value of {name}", -dirs.SLIDER_LIMIT, dirs.SLIDER_LIMIT)
    return {name: value for name, value in values.items() if value != 0}


def format_values(values: dict[str, float]) -> str:
    return ", ".join(f"{name}={value:g}" for name, value in values.items() if value != 0)


class EditingStudio:
    """Mixin of `Studio`: the Edit and Sketch tabs' operations and the StyleGAN3 transform."""

    _direction_sets: dict

    # -- directions ----------------------------------------------------------------------------
    def directions(self, model_name: str) -> dirs.DirectionSet:
        """The model's directions: stored ones, else the instant SeFa/GANSpace ones (computed once)."""
        cache = self.__dict__.setdefault("_direction_sets", {})
        key = (model_name, str(dirs.stored_dir(model_name)))  # directions computed meanwhile replace instant ones
        if key not in cache:
            cache[key] = dirs.load_directions(model_name, self.generator(model_name))
        return cache[key]

    def edit_sliders(self, model_name: str) -> EditSliders:
        directions = self.directions(model_name)
        sliders = [Slider(name, label, GENDER_LIMIT if name.startswith("gender") else dirs.SLIDER_LIMIT)
                   for name, label in directions.sliders()]
        named = [s for s in sliders if directions.directions[s.name].kind not in UNNAMED_KINDS]
        named.sort(key=lambda s: DEFAULT_SLIDERS.index(s.name) if s.name in DEFAULT_SLIDERS else len(DEFAULT_SLIDERS))
        unnamed = [s for s in sliders if directions.directions[s.name].kind in UNNAMED_KINDS]
        status = dirs.direction_status(model_name)
        if status == "ready":
            note = ("Slider units: standard deviations of generated faces (±1 ordinary, ±3 strong). "
                    "Named directions found with the project's judges; unnamed components below.")
        else:
            which = f"--model {model_name}" if model_name in zoo.MODELS else "--checkpoint FILE"
            note = (f"**{model_name}** has no named directions yet ({status}): these are the instant unnamed "
                    f"components (SeFa, GANSpace). Compute named ones with "
                    f"`python -m stylegan_core directions {which} --compute`.")
        return EditSliders(named, unnamed, note)

    # -- the StyleGAN3 transform -----------------------------------------------------------------
    def architecture(self, model_name: Optional[str] = None) -> str:
        """The model's architecture, known without loading a zoo model that is not loaded yet."""
        name = model_name or self.default_model
        if name in zoo.MODELS and name not in self._models:
            return zoo.MODELS[name].arch
        return self.generator(name).arch

    def transform_editor(self, model_name: str, transform: Optional[ImageTransform],
                         inner: Optional[LayerEditor] = None) -> Optional[LayerEditor]:
        """`inner` rendering with the transform, for this call only (the shared model is untouched)."""
        from .models.stylegan3 import StyleGAN3, TransformEditor

        if transform is None or transform.is_identity:
            return inner
        transform = transform.checked()
        generator = self.generator(model_name)
        if not isinstance(generator, StyleGAN3):
            raise UserError(f"rotation and translation need a StyleGAN3 model; {model_name} ({generator.arch}) "
                            "starts from a fixed constant that cannot be rotated or shifted")
        return TransformEditor(transform.rotate, (transform.tx, transform.ty), inner)

    # -- Edit ------------------------------------------------------------------------------------
    def edit_attributes(self, library, model_name: str, reference: str, values, add: bool = False,
                        transform: Optional[ImageTransform] = None):
        """The code `reference` moved along named directions ({'age': 2} or 'age=2, smile=1'): one
        forward. add=True also stores the edited code (its W part) in the library."""
        from .studio import timed

        directions, values = self._checked_values(model_name, values)
        ws = self.resolve_code(reference, library, model_name)
        generator = self.generator(model_name)
        with timed() as clock, torch.no_grad():
            edited = dirs.apply_directions(directions, ws, values)
            editor = self.transform_editor(model_name, transform, dirs.style_editor(directions, values))
            image = tensor_to_pil(generator.synthesis(edited.to(self.device), editor))
        stem = f"edit_{reference}"
        extra = f" · {format_values(values) or 'no change'}"
        if not add:  # the face keeps its place in the photo: the result pastes back like the other edits
            return self._result(library, model_name, image, stem, clock, extra=extra, source=reference)
        in_s = [n for n in values if directions.directions[n].in_style_space]
        if in_s:
            extra += (f" · the library code holds the W part only: {', '.join(in_s)} (style-channel sliders) "
                      "are not in it")
        photo = library.get(reference).photo if reference in library else None  # paste-back still finds it
        result = self._result(library, model_name, image, stem, clock, extra=extra, source=reference)
        try:
            result.added = [library.add(edited, model_name, "edit", f"{reference} edited", image,
                                        {"values": values}, photo=photo).name]
            result.info += f" · added **{result.added[0]}** to your library"
        except LibraryError as error:
            result.info += f" · {error}"
        result.files.append(self.save_code(edited, model_name, stem))
        return result

    def _checked_values(self, model_name: str, values) -> tuple[dirs.DirectionSet, dict[str, float]]:
        """The model's directions and the slider values ('age=2, smile=1' or a dict), checked."""
        directions = self.directions(model_name)
        values = parse_values(values)
        dirs.check_names_ready(directions, list(values))
        dirs.check_values(directions, values)
        return directions, values

    # -- unaligned photos (StyleGAN3) ------------------------------------------------------------
    def render_in_photo_frame(self, library, model_name: str, reference: str, values=None):
        """StyleGAN3 only: the code `reference` (inverted from a photo), moved along the sliders'
        directions (`values` as in `edit_attributes`), rendered where and how the face sits in an
        upright crop of that photo (`inversion.photo_frame`: the aligned crop's rotation and shift
        become the generator's transform), next to that crop of the photo and the StyleGAN2-style
        paste-back. Returns an EditResult: picture = the three side by side; pasted = the render
        put into the whole photo; files = those two, the render alone and the photo's crop.
        Unverified on real StyleGAN3 weights (only tiny random models were available)."""
        from .studio import timed

        self._check_stylegan3(model_name)
        link = self.photo_link(library, reference)
        if link is None:
            raise UserError(f"{reference!r} was not inverted from a photo, so it has no photo frame: invert a photo "
                            "(Invert tab) and pick its code")
        directions, values = self._checked_values(model_name, values)
        ws = self.resolve_code(reference, library, model_name)
        with timed() as clock:
            result = self.in_photo_frame(model_name, dirs.apply_directions(directions, ws, values), link,
                                         f"photo_frame_{reference}", dirs.style_editor(directions, values))
        result.info += f" · {format_values(values) or 'no edit'} · {clock.text(self.device)}"
        return result

    def _check_stylegan3(self, model_name: str):
        from .models.stylegan3 import StyleGAN3

        generator = self.generator(model_name)
        if not isinstance(generator, StyleGAN3):
            raise UserError(f"rendering in the photo's frame needs a StyleGAN3 model; {model_name} ({generator.arch}) "
                            "cannot rotate or shift its output. Use 'Show in the original photo' (paste-back) instead.")
        return generator

    def in_photo_frame(self, model_name: str, ws: torch.Tensor, link, stem: str,
                       editor: Optional[LayerEditor] = None, styles: Optional[list] = None,
                       aligned: Optional[Image.Image] = None):
        """The pictures of `render_in_photo_frame` for a code `ws` (or, from an S-space inversion,
        its exact `styles`) and its photo link (a StyleGAN3 model). `aligned`: its plain render,
        when the caller has it (a render saved: a StyleGAN3 forward at 1024 px takes a while on a CPU)."""
        from .inversion import photo_frame as pf
        from .studio import EditResult

        generator = self._check_stylegan3(model_name)
        frame = pf.photo_frame(link)

        def draw(layer_editor):
            if styles is not None:
                return generator.synthesis(editor=layer_editor, styles=[s.to(self.device) for s in styles])
            return generator.synthesis(ws.to(self.device), layer_editor)

        with torch.no_grad():
            aligned = aligned if aligned is not None else tensor_to_pil(draw(editor))
            in_frame = tensor_to_pil(draw(self.transform_editor(
                model_name, ImageTransform(frame.rotate, frame.tx, frame.ty), editor)))
        crop = pf.photo_frame_crop(link.photo, frame, generator.resolution)
        pasted_sg2 = pf.photo_frame_crop(link.paste(aligned), frame, generator.resolution)
        strip = self.picture(pf.side_by_side([crop, in_frame, pasted_sg2]), stem,
                             "the photo · StyleGAN3 in its frame · paste-back")
        render = self.picture(in_frame, f"{stem}_render")
        pasted = self.picture(pf.paste_frame_render(link.photo, link, frame, in_frame), f"{stem}_in_photo",
                              f"in {link.source or 'the photo'}")
        files = [strip.path, render.path, pasted.path, self.picture(crop, f"{stem}_photo_crop").path]
        info = (f"left: the photo's crop · middle: StyleGAN3 rendered in it (rotation {frame.rotate:.1f}°, shift "
                f"{frame.tx:.3f}, {frame.ty:.3f} image widths) · right: the aligned result pasted back "
                "(StyleGAN2-style) · unverified on real StyleGAN3 weights")
        return EditResult(strip, files, info, [], pasted)

    # -- Expression (the simple path) ---------------------------------------------------------------
    def expression_choices(self, model_name: str) -> list[tuple[str, str]]:
        """(label, name) of the expression directions the model has (none before they are computed)."""
        directions = self.directions(model_name)
        return [(directions.directions[n].display_name, n) for n in EXPRESSION_DIRECTIONS if n in directions.directions]

    def expression_edit(self, library, model_name: str, target: str, expression: str = codes.DEFAULT_EXPRESSION,
                        strength=codes.DEFAULT_EXPRESSION_EDIT_STRENGTH):
        """The target's face with an expression from a shipped direction ('smile', ...), moved by
        `strength` slider units (standard deviations of generated faces). The result joins the
        library; the info line gives its identity distance to the target."""
        from .studio import timed

        if expression and expression not in EXPRESSION_DIRECTIONS:
            raise dirs.DirectionError(f"unknown expression {expression!r}: one of {', '.join(EXPRESSION_DIRECTIONS)}")
        strength = codes.check_number(strength, "the expression strength", -dirs.SLIDER_LIMIT, dirs.SLIDER_LIMIT)
        directions = self.directions(model_name)
        if expression not in directions.directions:  # also None: the model offers no expression at all
            which = f"--model {model_name}" if model_name in zoo.MODELS else "--checkpoint FILE"
            raise dirs.DirectionError(
                f"{model_name} has no {repr(expression) if expression else 'expression'} direction "
                f"({dirs.direction_status(model_name)}): compute its "
                f"directions with `python -m stylegan_core directions {which} --compute`, or use the advanced "
                "mode (two codes of one person)")
        ws = self.resolve_code(target, library, model_name)
        with timed() as clock:
            edited = dirs.apply_directions(directions, ws, {expression: strength})
            image = self.render(model_name, edited)
        extra = f" · {expression}={strength:g}" + self.identity_note(model_name, ws, image)
        return self._result(library, model_name, image, f"{target} {expression}", clock, edited, extra, source=target)

    def identity_note(self, model_name: str, ws: torch.Tensor, image: Image.Image) -> str:
        """' · identity distance to the target: 0.21 (same person ...)' ('' when a face is not found)."""
        from .inversion import metrics

        distance = metrics.identity_distance(self.render(model_name, ws), image)
        if distance is None:
            return ""
        same = "same" if distance < metrics.SAME_PERSON_THRESHOLD else "another"
        return f" · identity distance to the target: {distance:.3f} ({same} person by dlib's 0.6 threshold)"

    # -- Sketch ----------------------------------------------------------------------------------
    def sketch_stream(self, library, model_name: str, drawing, candidates=2, steps=60,
                      reference: Optional[str] = None, cancel: Optional[threading.Event] = None
                      ) -> Iterator[SketchUpdate]:
        """Faces whose line drawings match `drawing` (an image: file, PIL, array), with previews
        while it runs; each candidate joins the library as 'sketch N'. Closing the generator stops it."""
        from .editing import sketch

        candidates = codes.check_whole_number(candidates, "the number of candidates", 1, sketch.MAX_CANDIDATES)
        steps = codes.check_whole_number(steps, "the number of steps", 1, sketch.MAX_STEPS)
        if drawing is None:
            raise sketch.SketchError(sketch.EMPTY_MESSAGE)
        target = sketch.load_sketch(drawing)
        reference = (reference or "").strip()
        reference_ws = self.resolve_code(reference, library, model_name) if reference else None
        generator = self.generator(model_name)
        started = time.perf_counter()
        yield SketchUpdate(info="fitting the first candidate…", total=candidates * steps)

        def task(progress, should_stop):
            return sketch.sketch_to_face(generator, target, candidates, reference_ws, steps=steps,
                                         progress=progress, should_stop=should_stop)

        found = yield from _in_worker(task, cancel)
        yield self._sketch_result(library, model_name, found, target.warnings, time.perf_counter() - started)

    def _sketch_result(self, library, model_name: str, found, warnings, seconds: float) -> SketchUpdate:
        pictures = [self.picture(c.image, f"sketch_{i + 1}", f"loss {c.loss:.3f} · from {c.start}")
                    for i, c in enumerate(found)]
        files = [p.path for p in pictures] + [self.save_code(c.ws, model_name, f"sketch_{i + 1}")
                                              for i, c in enumerate(found)]
        numbers = (n for n in range(1, 1 << 20) if f"sketch {n}" not in library)
        added = self._add_all(library, [(c.ws, f"sketch {next(numbers)}", c.image) for c in found], model_name, "sketch",
                              {"loss": [round(c.loss, 4) for c in found]})
        stopped = " (stopped)" if any(c.stopped == "cancelled" for c in found) else ""
        info = (f"{len(found)} candidate(s) in {seconds:.1f} s on {self.device}{stopped}"
                + (f"; added {', '.join(f'**{n}**' for n in added)} to your library — edit them in the Edit tab"
                   if added else "; your library is full")
                + "".join(f". {w}" for w in warnings))
        return SketchUpdate(pictures=pictures, files=files, info=info, done=True, added=added)


def _in_worker(task: Callable, cancel: Optional[threading.Event]):
    """Run task(progress, should_stop) in a thread, yielding SketchUpdates from its progress;
    returns its result. Closing the consumer sets `cancel`, which the task sees at its next step."""
    cancel = cancel or threading.Event()

    def run(emit):
        def progress(step, total, preview, loss):
            emit(SketchUpdate(preview=preview, step=step, total=total,
                              info=f"step {step}/{total} · sketch loss {loss:.3f}"))
        return task(progress, cancel.is_set)

    return (yield from stream_from_worker(run, cancel, "sketch"))
