"""What every tab shares: the `AppContext` a tab builder receives, the error boundary, code pickers
that refresh with the library, model-following choices, and the one concurrency limit for heavy work.
"""
from __future__ import annotations

import functools
import inspect
import logging
import os
import re
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import gradio as gr

from stylegan_core.errors import UserError
from stylegan_core.library import CodeLibrary
from stylegan_core.studio import ModelStatus, Picture, Studio

log = logging.getLogger("app")

SEED_EXAMPLES = ["seed 1", "seed 2", "seed 3", "seed 4", "seed 5", "seed 6"]
HEAVY = "heavy"  # the concurrency id every model-running event shares
MAX_MESSAGE_LINES = 3
MAX_MESSAGE_CHARS = 600
# Components whose value the visitor sets (and a reload restores: ui/visits.py).
FORM_INPUTS = (gr.Dropdown, gr.Textbox, gr.Slider, gr.Number, gr.Radio, gr.Checkbox, gr.CheckboxGroup)


def heavy_concurrency() -> int:
    """How many model-running requests run at once on this machine ($STYLEGAN_CONCURRENCY
    overrides): one per 4 CPU cores (a request uses every core through torch's threads, and
    more at once only stacks memory peaks), two on a GPU."""
    if os.environ.get("STYLEGAN_CONCURRENCY"):
        return max(1, int(os.environ["STYLEGAN_CONCURRENCY"]))
    import torch

    if torch.cuda.is_available():
        return 2
    return max(1, (os.cpu_count() or 1) // 4)


# -- the error boundary ---------------------------------------------------------------------------
def public_message(error: BaseException) -> str:
    """A UserError's message as a visitor may see it: its summary when it has one, absolute server
    paths cut to the file name, at most a few lines (the full text is in the server log)."""
    summary = getattr(error, "summary", None)  # a long message's one sentence; the log has it all
    text = hide_paths(f"{summary} (the details are in the server log)" if summary
                      else str(error).strip() or type(error).__name__)
    lines = text.splitlines()
    if len(lines) > MAX_MESSAGE_LINES:
        text = "\n".join(lines[:MAX_MESSAGE_LINES]) + "\n… (the full text is in the server log)"
    return text if len(text) <= MAX_MESSAGE_CHARS else text[:MAX_MESSAGE_CHARS] + "…"


def hide_paths(text: str) -> str:
    """Absolute server paths cut to their file name ('/srv/app/x/code.npz' -> 'code.npz')."""
    return re.sub(r"(?<![\w.:/~])/(?:[^\s/'\"\])]+/)+([^\s/'\"\])]*)", r"\1", text)


def to_gradio_error(error: BaseException, where: str) -> gr.Error:
    """The one error rule at the app's edge: a UserError is shown as it is (logged in one line);
    anything else is a bug, logged with its stack trace and shown as a short apology."""
    if isinstance(error, gr.Error):
        return error
    if isinstance(error, UserError):
        message = public_message(error)
        log.info("%s: %s: %s", where, type(error).__name__, " ".join(str(error).split()))
        return gr.Error(message, print_exception=False)
    log.error("unexpected error in %s", where, exc_info=error)
    return gr.Error(f"Something went wrong ({type(error).__name__}). The server keeps running; please try "
                    "again or report it with the server log.", print_exception=False)


def user_errors(fn: Callable) -> Callable:
    """Wrap an event handler (plain or generator) with the error boundary."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def generator_wrapper(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except Exception as error:  # noqa: BLE001 - the boundary between the app and the user
                raise to_gradio_error(error, fn.__name__) from None
        return generator_wrapper

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as error:  # noqa: BLE001 - the boundary between the app and the user
            raise to_gradio_error(error, fn.__name__) from None
    return wrapper


# -- values shown by components -------------------------------------------------------------------
def gallery_value(pictures: Sequence[Picture]) -> list[tuple[str, str]]:
    """Pictures as a gr.Gallery value: the files already written, so Gradio does not write them again."""
    return [(picture.path, picture.caption) for picture in pictures]


def file_path(upload) -> Optional[str]:
    """A gr.File value (a path, or an object with .name from older clients) -> a path or None."""
    if upload is None:
        return None
    return str(getattr(upload, "name", upload))


# -- the context a tab builder receives -----------------------------------------------------------
@dataclass
class AppContext:
    """Everything a tab needs besides its own components.

    studio: the operations; library: the visitor's gr.State(CodeLibrary); model: the model picker.
    Register events with `event(...)` and the wiring (error boundary, library refresh, shared
    concurrency, model input) is done for you.
    """

    studio: Studio
    library: gr.State
    model: gr.Dropdown
    pickers: list = field(default_factory=list)
    # {"from": old name or None, "select": name}: set by a rename (or an undone delete) so that every
    # picker showing the old name follows it; consumed by the next library refresh.
    renamed: gr.State = field(default_factory=lambda: gr.State(None))
    _library_views: list = field(default_factory=list)  # (outputs, fn(lib, *inputs) -> updates, inputs)
    _library_events: list = field(default_factory=list)
    _model_views: list = field(default_factory=list)  # (output, fn(model_name) -> update)
    _visits: Optional[object] = None  # ui.visits.Visits: see ui.visits.keep_across_reloads
    _result_groups: list = field(default_factory=list)  # [components] of each result panel
    _events: list = field(default_factory=list)  # (event, its inputs, its outputs) of every `event(...)`

    def code_picker(self, label: str, value: str, **kwargs) -> gr.Dropdown:
        """A dropdown of library codes plus 'seed N' examples; typing any 'seed N' works too."""
        picker = gr.Dropdown(choices=SEED_EXAMPLES, value=value, label=label, allow_custom_value=True,
                             info="a code from your library, or 'seed N'", **kwargs)
        self.pickers.append(picker)
        return picker

    def on_library_change(self, outputs: list, fn: Callable[..., list], inputs: Sequence = ()) -> None:
        """Refresh `outputs` with fn(library, *values of `inputs`) after every event that changes
        the library (e.g. a view that keeps its selection while it is still in the library)."""
        self._library_views.append((outputs, fn, list(inputs)))

    def results_of_model(self, *components) -> None:
        """The components of one result panel, showing what the current model made: emptied when the
        model changes, so a picture of another model is never presented as current (its codes stay
        in the library), and shown again after a reload (ui/visits.py)."""
        for component in components:
            # Their values are read back to be kept, which would make Gradio offer them as inputs
            # (upload areas): they stay outputs; pictures are read as the file shown, not pixels.
            if hasattr(component, "interactive"):
                component.interactive = False
            if isinstance(component, (gr.Image, gr.ImageSlider)):
                component.type, component.image_mode = "filepath", None
        self._result_groups.append(list(components))

    def follow_model(self, output, fn: Callable[[str], dict]) -> None:
        """Update `output` with fn(model_name) when the page loads and when the model changes."""
        self._model_views.append((output, fn))

    def event(self, trigger: Callable, fn: Callable, inputs: list, outputs: list, api_name: str, *,
              heavy: bool = True, library=True, with_model: bool = True, **kwargs):
        """Wire `fn` to `trigger` (e.g. `button.click`) behind the error boundary.

        library=True: fn receives the visitor's CodeLibrary first and returns it first, and the
        library views refresh afterwards; library="read": fn receives it but does not return it;
        False: neither. with_model=True appends the model picker's value to the inputs (last, so
        API callers may omit it). heavy=True puts the event in the one shared queue of model work
        (heavy=False: queued without a limit).
        The API's arguments are `inputs` in order, as shown on the page; keep that order stable.
        """
        inputs = ([self.library] if library else []) + list(inputs) + ([self.model] if with_model else [])
        outputs = ([self.library] if library is True else []) + list(outputs)
        if heavy:
            kwargs.setdefault("concurrency_id", HEAVY)
            kwargs.setdefault("concurrency_limit", heavy_concurrency())
        else:
            # Light events are queued too, without a limit: only a queued event shows a refusal's
            # message in a pop-up (a non-queued one just stamps "Error" on its outputs).
            kwargs.setdefault("concurrency_limit", None)
        event = trigger(user_errors(fn), inputs, outputs, api_name=api_name, **kwargs)
        if library is True:
            self._library_events.append(event)
        self._events.append((event, inputs, outputs))
        return event

    def finish(self, demo: gr.Blocks) -> None:
        """Wire the library refresh, the result panels (emptied when the model changes, kept across
        reloads: ui/visits.py) and the model-following views (after every tab is built)."""
        results = [component for group in self._result_groups for component in group]
        # The visitor's choice (`input`, not `change`): a reload that restores the model keeps the
        # panels it restored. Queued (without a limit): only a queued event's new State values fire
        # their `change` listeners (e.g. the panel's toggles, which hide with the picture).
        emptied = self.model.input(lambda: [None] * len(results), None, results, concurrency_limit=None,
                                   api_visibility="private") if results else None
        if self._visits is not None:
            from ui import visits  # it imports this module

            visits.wire(self, demo, emptied)
        else:
            self.wire_model_views(demo, after=None)
        self._wire_library_refresh()

    def _wire_library_refresh(self) -> None:
        views = [(self.pickers + [self.renamed], _picker_updates, self.pickers + [self.renamed]),
                 *self._library_views]
        refresh_outputs = [output for outputs, _, _ in views for output in outputs]
        refresh_inputs = [self.library] + [value for _, _, inputs in views for value in inputs]

        def refresh(lib: CodeLibrary, *values):
            updates, at = [], 0
            for _, fn, inputs in views:
                updates += fn(lib, *values[at:at + len(inputs)])
                at += len(inputs)
            return updates

        for event in self._library_events:
            event.success(refresh, refresh_inputs, refresh_outputs, queue=False, api_visibility="private")
            if self._visits is not None:
                store, browser_id = self._visits.store, self._visits.browser_id
                event.success(lambda library, kept_id: store.keep_library(kept_id, library),
                              [self.library, browser_id], None, queue=False, api_visibility="private")

    def wire_model_views(self, demo: gr.Blocks, after=None):
        """Fill the model views on page load (after the event `after`, when given) and when the model
        changes. Their values are reset only when the model really changes (from one the views were
        filled for, or on load from a model other than the page's default): a fresh page's values,
        and those a reload restores, stand. Returns the load-time event."""
        built_for = gr.State(None)  # the model the views were last filled for
        outputs = [output for output, _ in self._model_views]

        def follow(model_name: str, built: Optional[str]):
            try:
                updates = [fn(model_name) for _, fn in self._model_views]
            except UserError:  # the model is not available: the status line says why
                return [gr.skip() for _ in outputs] + [gr.skip()]
            changed = built != model_name and (built is not None or model_name != self.studio.default_model)
            if not changed:
                updates = [_without_value(update) if isinstance(output, FORM_INPUTS) else update
                           for output, update in zip(outputs, updates)]
            return updates + [model_name]

        options = dict(queue=False, api_visibility="private")
        self.model.change(follow, [self.model, built_for], outputs + [built_for], **options)
        if after is None:
            return demo.load(follow, [self.model, built_for], outputs + [built_for], **options)
        return after.then(follow, [self.model, built_for], outputs + [built_for], **options)


def _without_value(update):
    """A component update without its value (a bare value: no update)."""
    return {k: v for k, v in update.items() if k != "value"} if isinstance(update, dict) else gr.skip()


def _picker_updates(lib: CodeLibrary, *values) -> list:
    """Every code picker gets the library's names; one that showed a renamed code shows its new
    name (a deleted one keeps its value and says "no code named ..." when used). Consumes `renamed`."""
    *shown, renamed = values
    old = (renamed or {}).get("from")
    choices = lib.names() + SEED_EXAMPLES
    return [gr.update(choices=choices, value=renamed["select"]) if old is not None and value == old
            else gr.update(choices=choices) for value in shown] + [None]



def model_menu(studio: Studio, probe_network: bool = False) -> list[tuple[str, str]]:
    """The model menu's (label, name) choices: a model that cannot load here says so in its label,
    e.g. 'stylegan2-ffhq (not available offline)'; the value stays the plain name."""
    notes = studio.model_notes(probe_network)
    return [(f"{name} ({notes[name]})" if notes.get(name) else name, name) for name in studio.model_choices()]


def status_markdown(state: ModelStatus) -> str:
    """The status line: one short sentence, and the long text (what was tried, how to fix it; or
    where the weights came from) folded away in a <details>, so the line keeps its height."""
    summary = "what was tried, and how to fix it" if state.failed else "details"
    details = hide_paths(state.details).replace("```", "'''")
    return f"{state.line}\n<details><summary>{summary}</summary>\n\n```text\n{details}\n```\n</details>"


def model_bar(studio: Studio, demo: gr.Blocks) -> gr.Dropdown:
    """The model picker and the status line (polled every 2 s only while a model is loading). The
    menu is built from the files on this machine at start-up; on page load (and after each model
    change) it also says which models could be downloaded now."""
    with gr.Row(equal_height=True):
        model = gr.Dropdown(model_menu(studio), value=studio.default_model, label="Model", scale=1,
                            elem_id="model-menu")
        status = gr.Markdown(elem_id="status-line", min_height=64, scale=2)
    timer = gr.Timer(2.0)

    def show_status(model_name):
        state = studio.model_status(model_name)  # loads the model (the menu then knows if it failed)
        loading = studio.is_loading(model_name)
        menu = gr.skip() if loading else gr.update(choices=model_menu(studio, probe_network=True))
        return status_markdown(state), gr.Timer(active=loading), menu

    for trigger in (demo.load, model.change, timer.tick):
        trigger(show_status, model, [status, timer, model], api_visibility="private", queue=False,
                show_progress="hidden")
    return model
