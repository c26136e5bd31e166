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
from pathlib import Path
from typing import Callable, Optional, Sequence

import gradio as gr

from stylegan_core.errors import UserError
from stylegan_core.library import CodeLibrary
from stylegan_core.sessions import VisitorStore
from stylegan_core.studio import ModelStatus, Picture, Studio

log = logging.getLogger("app")

SEED_EXAMPLES = ["seed 1", "seed 2", "seed 3", "seed 4", "seed 5", "seed 6"]
HEAVY = "heavy"  # the concurrency id every model-running event shares
MAX_MESSAGE_LINES = 3
MAX_MESSAGE_CHARS = 600
# The start of a result panel's info line shown again after a reload (the inputs are not restored).
RESTORED_NOTE = "*Your last result, kept across the reload (the inputs above may have changed since).* "


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
    _visits: Optional[tuple] = None  # (VisitorStore, the gr.BrowserState of its id): see keep_across_reloads
    _result_groups: list = field(default_factory=list)  # [components] of each result panel
    _events: list = field(default_factory=list)  # (event, its outputs) of every `event(...)`

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
        in the library), and shown again after a reload (see keep_across_reloads)."""
        for component in components:
            if isinstance(component, (gr.Image, gr.ImageSlider)):
                # Their values are read back to be kept: as the file shown, not decoded pixels.
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
        self._events.append((event, outputs))
        return event

    def finish(self, demo: gr.Blocks) -> None:
        """Wire the library refresh, the result panels (emptied when the model changes, kept across
        reloads) and the model-following views (after every tab is built)."""
        if self._visits is not None:
            self._library_events.append(self._restore_visit(demo))
        self._wire_library_refresh()
        self._wire_result_panels()
        self._wire_model_views(demo)

    def _result_slots(self) -> list[list[int]]:
        """Each result panel's components, numbered in the order of `_result_groups` (the slots of
        sessions.Visit.shown)."""
        slots, at = [], 0
        for group in self._result_groups:
            slots.append(list(range(at, at + len(group))))
            at += len(group)
        return slots

    def _restore_visit(self, demo: gr.Blocks):
        """On page load: the browser's library, and its result panels with the model that made
        them, where their files still exist (they are deleted after codes.FILE_RETENTION_S)."""
        store, browser_id = self._visits
        results = [component for group in self._result_groups for component in group]
        slots = self._result_slots()
        notes = {slot for slot, component in enumerate(results) if isinstance(component, gr.Markdown)}

        def restore(saved_id, made_meanwhile: CodeLibrary, model_now: str):
            kept_id, visit = store.open(saved_id)
            visit.library.merge(made_meanwhile)  # codes made while the page was still loading are kept too
            shown = restorable_panels(visit.shown, slots)
            for slot in notes & shown.keys():
                shown[slot] = RESTORED_NOTE + str(shown[slot]).removeprefix(RESTORED_NOTE)
            model = visit.model if shown and visit.model != model_now else gr.skip()
            return [visit.library, kept_id, model] + [shown.get(slot, gr.skip()) for slot in range(len(results))]

        return demo.load(restore, [browser_id, self.library, self.model],
                         [self.library, browser_id, self.model, *results], api_visibility="private")

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
                store, browser_id = self._visits
                event.success(lambda library, kept_id: store.keep_library(kept_id, library),
                              [self.library, browser_id], None, queue=False, api_visibility="private")

    def _wire_result_panels(self) -> None:
        """Empty every result panel when the visitor picks another model (`input`, not `change`: a
        reload that restores the model keeps the panels it restored), and remember a panel's values
        after every event that fills it."""
        results = [component for group in self._result_groups for component in group]
        if not results:
            return
        emptied = self.model.input(lambda: [None] * len(results), None, results, queue=False,
                                   api_visibility="private")
        if self._visits is None:
            return
        slots = self._result_slots()
        self._remember_after(emptied, [slot for group in slots for slot in group], results)
        for event, outputs in self._events:
            filled = {id(output) for output in outputs}
            touched = [slot for group, group_slots in zip(self._result_groups, slots)
                       if any(id(component) in filled for component in group) for slot in group_slots]
            if touched:
                self._remember_after(event, touched, results)

    def _remember_after(self, event, slots: list[int], results: list) -> None:
        store, browser_id = self._visits

        def remember(kept_id, model_name, *values):
            store.keep_shown(kept_id, model_name, dict(zip(slots, values)))

        event.success(remember, [browser_id, self.model, *[results[slot] for slot in slots]], None,
                      queue=False, api_visibility="private")

    def _wire_model_views(self, demo: gr.Blocks) -> None:
        if not self._model_views:
            return
        model_outputs = [output for output, _ in self._model_views]

        def follow(model_name: str):
            try:
                return [fn(model_name) for _, fn in self._model_views]
            except UserError:  # the model is not available: the status line says why
                return [gr.skip() for _ in model_outputs]

        for trigger in (demo.load, self.model.change):
            trigger(follow, self.model, model_outputs, queue=False, api_visibility="private")


def restorable_panels(shown: dict, slots: list[list[int]]) -> dict:
    """The values of `shown` ({slot: value}) worth showing again: a panel (a list of slots) comes
    back whole when it shows something and every file it names still exists, else not at all (a
    half-restored panel would present an info line without its picture)."""
    restored = {}
    for group in slots:
        values = {slot: shown[slot] for slot in group if shown.get(slot) is not None}
        if values and all(Path(path).is_file() for path in _paths_in(list(values.values()))):
            restored.update(values)
    return restored


def _paths_in(value) -> list[str]:
    """The absolute file paths named in a panel value (strings, lists, tuples and dicts of them)."""
    if isinstance(value, str):
        return [value] if value.startswith("/") and "\n" not in value and os.path.isabs(value) else []
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        return [path for item in value for path in _paths_in(item)]
    return []


def _picker_updates(lib: CodeLibrary, *values) -> list:
    """Every code picker gets the library's names; one that showed a renamed code shows its new
    name (a deleted one keeps its value and says "no code named ..." when used). Consumes `renamed`."""
    *shown, renamed = values
    old = (renamed or {}).get("from")
    choices = lib.names() + SEED_EXAMPLES
    return [gr.update(choices=choices, value=renamed["select"]) if old is not None and value == old
            else gr.update(choices=choices) for value in shown] + [None]


def keep_across_reloads(ctx: AppContext, store: VisitorStore) -> None:
    """Give each browser its library and its result panels back after a reload or a closed tab: the
    browser keeps a random id in its localStorage, the server keeps the visit under it
    (sessions.VisitorStore: expiry, a cap on visitors, only ids it issued). A new browser starts
    with `store.new_library()` (the example codes). Call inside the Blocks, before `ctx.finish`.
    API clients (no page load) keep a fresh library per session, as before."""
    ctx._visits = (store, gr.BrowserState("", storage_key="stylegan-studio-library"))


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
