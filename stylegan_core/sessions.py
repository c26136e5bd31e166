"""What each visitor keeps across page reloads: their library, what their result panels showed and
the inputs that made it, in a server-side store keyed by a random id that the visitor's browser
keeps (the app puts it in the browser's localStorage).

Only ids this store issued are honoured, so a visitor cannot pick someone else's id: an unknown,
expired or malformed id gets a fresh visit under a fresh id. Visits expire `expiry_s` after their
last use, and at most `max_visitors` are kept (the least recently used goes first), which caps the
memory: a library holds at most codes.MAX_LIBRARY_ENTRIES codes, and the panels' and inputs' values
(file paths, numbers and short texts; the files themselves are deleted after codes.FILE_RETENTION_S)
at most MAX_SHOWN_CHARS characters.
"""
from __future__ import annotations

import json
import re
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from .library import CodeLibrary

DEFAULT_EXPIRY_S = 7 * 24 * 3600
DEFAULT_MAX_VISITORS = 200
MAX_SHOWN_CHARS = 200_000
ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{32}$")


@dataclass
class Visit:
    """One browser's work: its library, the values of its result panels ({slot: value}, slots
    numbered by the app) with the model that made them (None before any result), and the inputs
    that made them ({slot: value})."""

    library: CodeLibrary
    shown: dict[int, Any] = field(default_factory=dict)
    model: Optional[str] = None
    inputs: dict[int, Any] = field(default_factory=dict)


class VisitorStore:
    def __init__(self, new_library: Callable[[], CodeLibrary] = CodeLibrary,
                 expiry_s: float = DEFAULT_EXPIRY_S, max_visitors: int = DEFAULT_MAX_VISITORS) -> None:
        self.new_library = new_library
        self.expiry_s = expiry_s
        self.max_visitors = max_visitors
        self._visits: "OrderedDict[str, tuple[Visit, float]]" = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._visits)

    def open(self, browser_id: Optional[str], now: Optional[float] = None) -> tuple[str, Visit]:
        """The visit kept for `browser_id`, or a new one (a library from `new_library`) under a new id."""
        now = time.time() if now is None else now
        with self._lock:
            self._expire(now)
            if _is_id(browser_id) and browser_id in self._visits:
                visit, _ = self._visits.pop(browser_id)
                self._visits[browser_id] = (visit, now)
                return browser_id, visit
        visit, browser_id = Visit(self.new_library()), secrets.token_urlsafe(24)  # 32 characters
        self._put(browser_id, visit, now)
        return browser_id, visit

    def keep_library(self, browser_id: str, library: CodeLibrary, now: Optional[float] = None) -> None:
        """Remember `library` (after a change) under an id this store issued; others are ignored."""
        def update(visit: Optional[Visit]) -> Visit:
            if visit is None:  # expired or evicted while the page stayed open: kept again
                return Visit(library)
            visit.library = library
            return visit

        self._update(browser_id, now, update)

    def keep_shown(self, browser_id: str, model: str, values: dict[int, Any], inputs: Optional[dict[int, Any]] = None,
                   now: Optional[float] = None) -> None:
        """Remember what some result panels show now ({slot: value}; None = empty), made by `model`,
        and the inputs that made them. Panels and inputs of another model are forgotten (the page
        empties the panels when the model changes); a change that would take the visit over
        MAX_SHOWN_CHARS is not kept."""
        def update(visit: Optional[Visit]) -> Optional[Visit]:
            if visit is None:
                return None
            same_model = visit.model in (None, model)
            shown = {**(visit.shown if same_model else {}), **values}
            # Inputs too: some belong to the model (its sliders, its resolutions), reset on a change.
            kept_inputs = {**(visit.inputs if same_model else {}), **(inputs or {})}
            if len(json.dumps([shown, kept_inputs], default=str)) <= MAX_SHOWN_CHARS:
                visit.shown, visit.model, visit.inputs = shown, model, kept_inputs
            return visit

        self._update(browser_id, now, update)

    def _update(self, browser_id: str, now: Optional[float],
                change: Callable[[Optional[Visit]], Optional[Visit]]) -> None:
        """Apply `change` to the visit of `browser_id` (None when there is none) and keep what it returns."""
        if not _is_id(browser_id):
            return
        now = time.time() if now is None else now
        with self._lock:
            kept = self._visits.pop(browser_id, None)
            visit = change(kept[0] if kept else None)
            if visit is not None:
                self._put_locked(browser_id, visit, now)

    def _put(self, browser_id: str, visit: Visit, now: float) -> None:
        with self._lock:
            self._put_locked(browser_id, visit, now)

    def _put_locked(self, browser_id: str, visit: Visit, now: float) -> None:
        self._visits[browser_id] = (visit, now)
        while len(self._visits) > self.max_visitors:
            self._visits.popitem(last=False)

    def _expire(self, now: float) -> None:
        for browser_id in [i for i, (_, used) in self._visits.items() if now - used > self.expiry_s]:
            del self._visits[browser_id]


def _is_id(browser_id) -> bool:
    return isinstance(browser_id, str) and bool(ID_PATTERN.match(browser_id))
