"""Before/after pictures of a result: the unedited render of the code an edit started from, and the
photo a pasted-back result sits in, so the UI can show either pair side by side.

`ComparingStudio` is a mixin of `studio.Studio` (it uses its rendering, code resolution and files).
The Edit tab re-edits on every slider release, so a code's before-picture is rendered once and kept
(a small LRU keyed by model and the code's bytes), and a photo is written once per distinct content.
The cached files live in the Studio's output folder like every picture: a hit refreshes its folder's
time, so the expiry leaves a picture in use alone, and one expired meanwhile is made again.
"""
from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Hashable, Optional

import numpy as np
import torch
from PIL import Image

from .inversion import align
from .inversion.paste_back import PhotoLink
from .library import CodeEntry

if TYPE_CHECKING:
    from .studio import Picture

BEFORE_CACHE_SIZE = 16  # before-pictures kept: about 3 MB of memory each at 1024 px
PHOTO_CACHE_SIZE = 8  # photos and their aligned crops kept (a photo shares its image with the library's links)


class PictureCache:
    """A thread-safe LRU of written pictures. `get(key, make)` calls `make()` only on a miss, outside
    the lock, so one request's render never holds up another request's hit."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[Hashable, "Picture"] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, make: Callable[[], "Picture"]) -> "Picture":
        with self._lock:
            picture = self._items.get(key)
            if picture is not None:
                self._items.move_to_end(key)
        if picture is not None and _kept(picture):
            return picture
        picture = make()
        with self._lock:
            self._items[key] = picture
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return picture


def _kept(picture: "Picture") -> bool:
    """Whether the picture's file is still there; if so its folder's time is refreshed, so the
    output expiry (by folder age) keeps it while it is in use."""
    path = Path(picture.path)
    try:
        os.utime(path.parent)
    except FileNotFoundError:
        return False
    return path.is_file()


def code_digest(ws: torch.Tensor) -> str:
    """A code's identity for the cache: a hash of its values and shape."""
    values = np.ascontiguousarray(ws.detach().to("cpu", torch.float32).numpy())
    return hashlib.blake2b(values.tobytes() + str(values.shape).encode(), digest_size=16).hexdigest()


def image_digest(image: Image.Image) -> str:
    """A picture's identity for the cache: a hash of its pixels, size and mode."""
    header = f"{image.mode} {image.size}".encode()
    return hashlib.blake2b(header + image.tobytes(), digest_size=16).hexdigest()


class ComparingStudio:
    """Mixin of `Studio`: the `before` and `photo` pictures of EditResults and InvertUpdates."""

    _before_cache: PictureCache
    _photo_cache: PictureCache

    def before_picture(self, library, model_name: str, source) -> "Picture":
        """The unedited render of `source` (a library entry, a name or 'seed N', resolved as every
        tab resolves codes), written once per model and code."""
        ws = source.ws if isinstance(source, CodeEntry) else self.resolve_code(source, library, model_name)
        name = source.name if isinstance(source, CodeEntry) else str(source).strip()
        return self._before_cache.get((model_name, code_digest(ws)), lambda: self.picture(
            self.render(model_name, ws), f"{name}_before", f"{name}, unedited"))

    def photo_picture(self, link: PhotoLink) -> "Picture":
        """The photo of a link as it is (what a pasted-back result is compared with), written once."""
        name = Path(link.source).stem if link.source else "photo"
        return self._photo_cache.get(image_digest(link.photo), lambda: self.picture(
            link.photo, f"{name}_photo", link.source or "the photo"))

    def aligned_from_link(self, link: PhotoLink, resolution: int, stem: str) -> "Picture":
        """The aligned crop of a link's face, cut again from its photo (for a code whose crop was
        not kept, e.g. an example's precomputed inversion), written once per photo, face and size."""
        key = ("aligned", image_digest(link.photo), np.asarray(link.quad).tobytes(), resolution)
        return self._photo_cache.get(key, lambda: self.picture(
            align.warp_quad(link.photo, link.quad, resolution), f"{stem}_aligned"))

    def comparison(self, library, model_name: str, source, pasted: Optional["Picture"]
                   ) -> tuple[Optional["Picture"], Optional["Picture"]]:
        """(before, photo) of a result made from the code `source`: its unedited render (None without
        a source) and, when the result was pasted back, the photo it was pasted into."""
        if source is None:
            return None, None
        link = self.photo_link(library, source) if pasted is not None else None
        photo = None if link is None else self.photo_picture(link)
        return self.before_picture(library, model_name, source), photo
