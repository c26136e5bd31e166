"""Each visitor's library kept across page reloads: a server-side store keyed by a random id that
the visitor's browser keeps (the app puts it in the browser's localStorage).

Only ids this store issued are honoured, so a visitor cannot pick someone else's id: an unknown,
expired or malformed id gets a fresh library under a fresh id. Libraries expire `expiry_s` after
their last use, and at most `max_visitors` are kept (the least recently used goes first), which
caps the memory: each library holds at most codes.MAX_LIBRARY_ENTRIES codes.
"""
from __future__ import annotations

import re
import secrets
import threading
import time
from collections import OrderedDict
from typing import Callable, Optional

from .library import CodeLibrary

DEFAULT_EXPIRY_S = 7 * 24 * 3600
DEFAULT_MAX_VISITORS = 200
ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{32}$")


class LibraryStore:
    def __init__(self, new_library: Callable[[], CodeLibrary] = CodeLibrary,
                 expiry_s: float = DEFAULT_EXPIRY_S, max_visitors: int = DEFAULT_MAX_VISITORS) -> None:
        self.new_library = new_library
        self.expiry_s = expiry_s
        self.max_visitors = max_visitors
        self._libraries: "OrderedDict[str, tuple[CodeLibrary, float]]" = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._libraries)

    def open(self, browser_id: Optional[str], now: Optional[float] = None) -> tuple[str, CodeLibrary]:
        """The library kept for `browser_id`, or a new one (from `new_library`) under a new id."""
        now = time.time() if now is None else now
        with self._lock:
            self._expire(now)
            if isinstance(browser_id, str) and ID_PATTERN.match(browser_id) and browser_id in self._libraries:
                library, _ = self._libraries.pop(browser_id)
                self._libraries[browser_id] = (library, now)
                return browser_id, library
        library, browser_id = self.new_library(), secrets.token_urlsafe(24)  # 32 characters
        self.keep(browser_id, library, now)
        return browser_id, library

    def keep(self, browser_id: str, library: CodeLibrary, now: Optional[float] = None) -> None:
        """Remember `library` (after a change) under an id this store issued; others are ignored."""
        if not (isinstance(browser_id, str) and ID_PATTERN.match(browser_id)):
            return
        now = time.time() if now is None else now
        with self._lock:
            self._libraries.pop(browser_id, None)
            self._libraries[browser_id] = (library, now)
            while len(self._libraries) > self.max_visitors:
                self._libraries.popitem(last=False)

    def _expire(self, now: float) -> None:
        for browser_id in [i for i, (_, used) in self._libraries.items() if now - used > self.expiry_s]:
            del self._libraries[browser_id]
