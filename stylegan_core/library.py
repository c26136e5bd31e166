"""The per-session library of latent codes that every tab of the app reads and writes.

Each browser session (and each gradio_client session) holds its own `CodeLibrary`, so two users
never see each other's codes. Entries are only ever added after an operation succeeded, and a
failed operation never removes one: what a person made survives later errors.
"""
from __future__ import annotations

import io
import os
import re
import zipfile
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import BinaryIO, Optional, Union

import numpy as np
import torch
from PIL import Image

from .codes import MAX_LIBRARY_ENTRIES as MAX_ENTRIES, seed_of
from .errors import UserError
from .latents import (MAX_CODES_PER_FILE, MAX_NAME_CHARS, Latent, LatentError, check_code_header,
                      check_text_header, code_tensor, inspect_npz, load_latent)
from .images import ImageError
from .inversion.paste_back import PhotoLink

THUMBNAIL_SIZE = 128
LIBRARY_FORMAT = "stylegan_core.library.v1"
MISSING_NAMES_SHOWN = 8  # names listed when a name is not found (the Library tab shows them all)


class LibraryError(UserError, ValueError):
    """A request the library cannot honour (unknown name, full library, unreadable file)."""


@dataclass
class CodeEntry:
    name: str
    ws: torch.Tensor  # [1, num_ws, w_dim], on the CPU
    model_name: str
    source: str  # 'seed', 'inverted', 'uploaded', 'edit'
    thumbnail: Optional[Image.Image] = None
    info: dict = field(default_factory=dict)
    photo: Optional[PhotoLink] = None  # the photo and face it was inverted from (edits share their source's)

    @property
    def caption(self) -> str:
        return f"{self.name} ({self.source})"


class CodeLibrary:
    """An ordered, bounded collection of named codes."""

    def __init__(self) -> None:
        self._entries: "OrderedDict[str, CodeEntry]" = OrderedDict()
        self._deleted: Optional[tuple[int, CodeEntry]] = None  # (position, entry) of the last delete

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def names(self, model_name: Optional[str] = None) -> list[str]:
        return [n for n, e in self._entries.items() if model_name is None or e.model_name == model_name]

    def entries(self) -> list[CodeEntry]:
        return list(self._entries.values())

    def get(self, name: str) -> CodeEntry:
        if name not in self._entries:
            raise LibraryError(self.missing_message(name))
        return self._entries[name]

    def missing_message(self, name: str) -> str:
        """Why `name` names no code, with the likely meant reference: '7' -> "did you mean 'seed 7'?"."""
        text = str(name).strip()
        if text.isdigit():
            return f"no code named {text!r} — did you mean 'seed {int(text)}'? (a number alone names no code)"
        names = list(self._entries)
        known = ", ".join(repr(n) for n in names[:MISSING_NAMES_SHOWN]) or "none yet"
        more = f" and {len(names) - MISSING_NAMES_SHOWN} more" if len(names) > MISSING_NAMES_SHOWN else ""
        return f"no code named {text!r} in your library (codes: {known}{more})"

    def add(self, ws: torch.Tensor, model_name: str, source: str, name: str = "",
            thumbnail: Optional[Image.Image] = None, info: Optional[dict] = None,
            photo: Optional[PhotoLink] = None) -> CodeEntry:
        if ws.dim() == 2:
            ws = ws.unsqueeze(0)
        if ws.dim() != 3 or ws.shape[0] != 1:
            raise LibraryError(f"one code of shape [1, num_ws, w_dim] per entry, got {list(ws.shape)}")
        if len(self._entries) >= MAX_ENTRIES:
            raise LibraryError(
                f"your library is full ({MAX_ENTRIES} codes): export it or delete some codes first"
            )
        entry = CodeEntry(
            name=self._unique_name(name or source),
            ws=ws.detach().to("cpu", torch.float32).clone(),
            model_name=model_name,
            source=source,
            thumbnail=_thumbnail(thumbnail),
            info=dict(info or {}),
            photo=photo,
        )
        self._entries[entry.name] = entry
        return entry

    def delete(self, name: str) -> CodeEntry:
        """Remove a code; `undo_delete` brings the last one deleted back, at its place."""
        entry = self.get(name)
        self._deleted = (list(self._entries).index(name), entry)
        del self._entries[name]
        return entry

    def last_deleted(self) -> Optional[str]:
        """The name of the code `undo_delete` would restore, or None."""
        deleted = getattr(self, "_deleted", None)  # libraries kept from before undo existed lack it
        return deleted[1].name if deleted else None

    def undo_delete(self) -> CodeEntry:
        """Restore the last deleted code at its old place (renamed if its name was taken since)."""
        if self.last_deleted() is None:
            raise LibraryError("nothing to undo: no code was deleted since the last undo")
        if len(self._entries) >= MAX_ENTRIES:
            raise LibraryError(f"your library is full ({MAX_ENTRIES} codes): delete another code first")
        position, entry = self._deleted
        entry.name = self._unique_name(entry.name)
        items = list(self._entries.items())
        items.insert(min(position, len(items)), (entry.name, entry))
        self._entries, self._deleted = OrderedDict(items), None
        return entry

    def rename(self, old: str, new: str) -> CodeEntry:
        entry = self.get(old)
        new = _clean_name(new)
        if not new:
            raise LibraryError("a code needs a non-empty name")
        if seed_of(new) is not None and new != old:
            raise LibraryError(f"{new!r} already means the random face of that seed in every picker; "
                               f"choose another name (e.g. '{new} copy')")
        if new != old and new in self._entries:
            raise LibraryError(f"a code named {new!r} exists already")
        self._entries = OrderedDict((new if n == old else n, e) for n, e in self._entries.items())
        entry.name = new
        return entry

    def _unique_name(self, hint: str) -> str:
        base = _clean_name(hint) or "code"
        if base not in self._entries:
            return base
        index = 2
        while f"{base}-{index}" in self._entries:
            index += 1
        return f"{base}-{index}"

    # -- files -----------------------------------------------------------------------------
    def export_bytes(self, names: Optional[list[str]] = None) -> bytes:
        """All (or the named) codes as one .npz: codes, names, model names and sources."""
        chosen = [self.get(n) for n in names] if names else self.entries()
        if not chosen:
            raise LibraryError("the library is empty: nothing to export")
        arrays = {"format": np.array(LIBRARY_FORMAT), "count": np.array(len(chosen))}
        for i, entry in enumerate(chosen):
            arrays[f"ws_{i}"] = entry.ws.numpy()
            arrays[f"name_{i}"] = np.array(entry.name)
            arrays[f"model_name_{i}"] = np.array(entry.model_name)
            arrays[f"source_{i}"] = np.array(entry.source)
            if entry.photo is not None:
                arrays.update(entry.photo.to_arrays(f"photo_{i}_"))
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        return buffer.getvalue()

    def import_file(self, file: Union[str, os.PathLike, BinaryIO], render: Optional[callable] = None,
                    default_name: str = "uploaded") -> list[CodeEntry]:
        """Add the codes of a library export or of a single latent file (.npz).

        Everything is read and checked before anything is added, so a bad file adds nothing.
        `render(ws, model_name) -> PIL image` makes thumbnails when given; codes saved without a
        name are called `default_name`. Returns the entries of the file's codes; a code the
        library holds already (same model, same values) is not added again.
        """
        latents = read_codes_file(file)
        links, link_note = read_photo_links(file, len(latents))
        codes = [(row, latent, link) for latent, link in zip(latents, links) for row in latent.ws.split(1)]
        known = [row for row, latent, _ in codes if self.find(row, latent.model_name)]
        if len(self._entries) + len(codes) - len(known) > MAX_ENTRIES:
            raise LibraryError(f"importing these codes would exceed the library's {MAX_ENTRIES} entries")
        entries = []
        for row, latent, link in codes:
            existing = self.find(row, latent.model_name)  # importing a file twice adds nothing new
            if existing is not None:
                entries.append(existing)
                continue
            thumb = render(row, latent.model_name) if render else None
            entries.append(self.add(row, latent.model_name, "uploaded", latent.name or default_name, thumb,
                                    {"photo": link_note} if link_note else None, photo=link))
        return entries

    def merge(self, other: "CodeLibrary") -> list[CodeEntry]:
        """Add the entries of `other` this library does not hold yet (same model and values), as
        far as there is room; returns the entries added."""
        added = []
        for entry in other.entries():
            if other is self or self.find(entry.ws, entry.model_name) is not None:
                continue
            try:
                added.append(self.add(entry.ws, entry.model_name, entry.source, entry.name, entry.thumbnail,
                                      entry.info, photo=entry.photo))
            except LibraryError:
                break
        return added

    def find(self, ws: torch.Tensor, model_name: str) -> Optional[CodeEntry]:
        """The entry holding exactly this code of this model, if any."""
        ws = ws if ws.dim() == 3 else ws.unsqueeze(0)
        return next((entry for entry in self._entries.values() if entry.model_name == model_name
                     and entry.ws.shape == ws.shape and torch.equal(entry.ws, ws.to(entry.ws))), None)


def read_codes_file(file: Union[str, os.PathLike, BinaryIO]) -> list[Latent]:
    """Read a library export (many codes) or a single latent .npz (one code, maybe batched).
    Sizes, shapes and names are checked from the file's headers before anything is decompressed."""
    try:
        headers = inspect_npz(file)
        if "format" not in headers:
            return [load_latent(file)]
        return _read_library(file, headers)
    except LatentError as error:
        raise LibraryError(str(error)) from error


def _read_library(file, headers: dict) -> list[Latent]:
    check_text_header("format", headers["format"])
    count_header = headers.get("count")
    if count_header is None or count_header.shape != () or count_header.dtype.kind not in "iu":
        raise LatentError("not a library file: it has no count of codes")
    try:
        with np.load(file, allow_pickle=False) as data:
            if str(data["format"]) != LIBRARY_FORMAT:
                raise LatentError(f"unknown library format {str(data['format'])!r}: expected {LIBRARY_FORMAT}")
            count = int(data["count"])
            if not 1 <= count <= MAX_CODES_PER_FILE:
                raise LatentError(f"a library file holds 1 to {MAX_CODES_PER_FILE} codes, this one says {count}")
            for i in range(count):
                check_code_header(f"ws_{i}", _header(headers, f"ws_{i}"))
                for key in (f"name_{i}", f"model_name_{i}"):
                    check_text_header(key, _header(headers, key))
            return [Latent(ws=code_tensor(data[f"ws_{i}"], f"code {i}"), model_name=str(data[f"model_name_{i}"]),
                           name=str(data[f"name_{i}"])) for i in range(count)]
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        if isinstance(error, LatentError):
            raise
        raise LatentError(f"could not read the library file: {error}") from error


def _header(headers: dict, key: str):
    if key not in headers:
        raise LatentError(f"the library file is incomplete: {key} is missing")
    return headers[key]


def read_photo_links(file, count: int) -> tuple[list[Optional[PhotoLink]], str]:
    """The photo links a library export keeps beside its codes (None where a code has none), and a
    note for the user when links were there but could not be read (the codes are imported anyway)."""
    if hasattr(file, "seek"):
        file.seek(0)
    try:
        with np.load(file, allow_pickle=False) as data:
            if "format" not in data.files or str(data["format"]) != LIBRARY_FORMAT:
                return [None] * count, ""
            return [PhotoLink.from_arrays(data, f"photo_{i}_") for i in range(count)], ""
    except (ImageError, OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as error:
        return [None] * count, f"the link to the original photo was lost ({error}); paste-back is unavailable"


def _clean_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\- ]+", "", str(name)[:4 * MAX_NAME_CHARS]).strip()[:MAX_NAME_CHARS]


def _thumbnail(image: Optional[Image.Image]) -> Optional[Image.Image]:
    if image is None:
        return None
    thumb = image.convert("RGB").copy()
    thumb.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE))
    return thumb
