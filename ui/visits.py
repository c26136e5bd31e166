"""What a visitor finds again after a reload: their library, each tab's last result and the inputs
that made it (server-side, in a sessions.VisitorStore, under an id the browser keeps).

`keep_across_reloads(ctx, store)` switches it on (app.py); `AppContext.finish` calls `wire(ctx, demo)`
once every tab is built. What is kept:
- result panels: the components each tab registered with `ctx.results_of_model`, remembered after
  every event that fills them, restored whole while their files exist (codes.FILE_RETENTION_S);
  their info lines then say they are from before the reload;
- inputs: the plain-valued inputs (menus, text, sliders, ticks) of every `ctx.event`, remembered
  after the event ran, forgotten when the visitor picks another model (some belong to the model);
  uploads and drawings are not kept;
- the model that made the panels.
The order on page load: library, panels and model first; then the model views are filled for that
model (`AppContext.follow_model`); then the inputs, so a model view cannot reset a restored value.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import gradio as gr

from stylegan_core.library import CodeLibrary
from stylegan_core.sessions import VisitorStore
from ui.common import FORM_INPUTS

# The start of a result panel's info line shown again after a reload.
RESTORED_NOTE = "*Your last result, kept across the reload.* "
STORAGE_KEY = "stylegan-studio-library"


@dataclass
class Visits:
    store: VisitorStore
    browser_id: gr.BrowserState  # the id the store issued, in the browser's localStorage
    pending: gr.State  # inputs waiting to be restored until the model views are filled


def keep_across_reloads(ctx, store: VisitorStore) -> None:
    """Give each browser its work back after a reload or a closed tab. A new browser starts with
    `store.new_library()` (the example codes). Call inside the Blocks, before `ctx.finish`. API
    clients (no page load) keep a fresh library per session, as before."""
    ctx._visits = Visits(store, gr.BrowserState("", storage_key=STORAGE_KEY), gr.State(None))


@dataclass
class PageMemory:
    """The numbered components a visit keeps: result panels (slots of Visit.shown) and inputs
    (slots of Visit.inputs)."""

    panels: list[list]  # each panel's components
    inputs: list  # plain-valued inputs of the page's events, each once

    @classmethod
    def of(cls, ctx) -> "PageMemory":
        skip = {id(ctx.model)}
        inputs, seen = [], set()
        for _, event_inputs, _ in ctx._events:
            for component in event_inputs:
                if isinstance(component, FORM_INPUTS) and id(component) not in seen | skip:
                    seen.add(id(component))
                    inputs.append(component)
        return cls(ctx._result_groups, inputs)

    @property
    def results(self) -> list:
        return [component for panel in self.panels for component in panel]

    def panel_slots(self) -> list[list[int]]:
        slots, at = [], 0
        for panel in self.panels:
            slots.append(list(range(at, at + len(panel))))
            at += len(panel)
        return slots

    def slots_filled_by(self, outputs) -> list[int]:
        """The slots of every panel that `outputs` touch (a panel is remembered whole)."""
        filled = {id(output) for output in outputs}
        return [slot for panel, slots in zip(self.panels, self.panel_slots())
                if any(id(component) in filled for component in panel) for slot in slots]

    def input_slots_of(self, event_inputs) -> list[int]:
        used = {id(component) for component in event_inputs}
        return [slot for slot, component in enumerate(self.inputs) if id(component) in used]


def wire(ctx, demo: gr.Blocks, emptied) -> None:
    """Restore on page load; remember after every event (and after `emptied`, the event that empties
    the panels when the visitor picks another model)."""
    visits, memory = ctx._visits, PageMemory.of(ctx)
    restore = _restore_on_load(ctx, demo, memory)
    ctx._library_events.append(restore)
    filled = ctx.wire_model_views(demo, after=restore)
    _restore_inputs_after(filled, visits, memory)
    if emptied is not None:
        _remember_after(ctx, emptied, [slot for slots in memory.panel_slots() for slot in slots], [], memory)
    for event, inputs, outputs in ctx._events:
        _remember_after(ctx, event, memory.slots_filled_by(outputs), memory.input_slots_of(inputs), memory)


def _restore_on_load(ctx, demo: gr.Blocks, memory: PageMemory):
    visits, results = ctx._visits, memory.results
    slots = memory.panel_slots()
    notes = {slot for slot, component in enumerate(results) if isinstance(component, gr.Markdown)}

    def restore(saved_id, made_meanwhile: CodeLibrary, model_now: str):
        kept_id, visit = visits.store.open(saved_id)
        visit.library.merge(made_meanwhile)  # codes made while the page was still loading are kept too
        shown = restorable_panels(visit.shown, slots)
        for slot in notes & shown.keys():
            shown[slot] = RESTORED_NOTE + str(shown[slot]).removeprefix(RESTORED_NOTE)
        restores_model = bool(shown) and visit.model != model_now
        # Inputs of another model (its sliders, its resolutions) do not fit the page's model.
        page_model = visit.model if restores_model else model_now
        inputs = dict(visit.inputs) if visit.model in (None, page_model) else {}
        panels = [shown.get(slot, gr.skip()) for slot in range(len(results))]
        return [visit.library, kept_id, visit.model if restores_model else gr.skip(), inputs or None, *panels]

    return demo.load(restore, [visits.browser_id, ctx.library, ctx.model],
                     [ctx.library, visits.browser_id, ctx.model, visits.pending, *results], api_visibility="private")


def _restore_inputs_after(event, visits: Visits, memory: PageMemory) -> None:
    def restore_inputs(pending: Optional[dict]):
        pending = pending or {}
        return [None] + [pending.get(slot, gr.skip()) for slot in range(len(memory.inputs))]

    event.then(restore_inputs, visits.pending, [visits.pending, *memory.inputs], queue=False,
               api_visibility="private")


def _remember_after(ctx, event, panel_slots: list[int], input_slots: list[int], memory: PageMemory) -> None:
    """After `event` succeeds: remember the values its panels show and the inputs it read."""
    if not panel_slots and not input_slots:
        return
    visits, results = ctx._visits, memory.results
    components = [results[slot] for slot in panel_slots] + [memory.inputs[slot] for slot in input_slots]

    def remember(kept_id, model_name, *values):
        visits.store.keep_shown(kept_id, model_name, dict(zip(panel_slots, values)),
                                dict(zip(input_slots, values[len(panel_slots):])))

    event.success(remember, [visits.browser_id, ctx.model, *components], None, queue=False,
                  api_visibility="private")


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
