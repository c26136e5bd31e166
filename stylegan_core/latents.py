"""Latent codes on disk: .npz files with the code and what it belongs to.

A code only means something for the model that made it, so the file records the model name, the
space ('w+' or 'w') and the shape; loading checks them against the model in use.
"""
from __future__ import annotations

import io
import math
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
import torch
from .codes import SPACES
from .errors import UserError

# -- limits (moves to codes.py) ---------------------------------------------------------------
# A file of codes is checked against these from its zip directory and .npy headers before any
# array is decompressed: a 1 MB .npz can otherwise declare gigabytes of zeros.
MAX_CODES_PER_FILE = 64  # a library export holds at most a library's 64 codes
MAX_NUM_WS = 32          # rows of the largest model (MobileStyleGAN: 23, StyleGAN2 at 1024 px: 18)
MAX_W_DIM = 1024         # every supported model has 512
MAX_NAME_CHARS = 64      # code names and model names
MAX_ABS_CODE_VALUE = 1e4  # W codes lie within about +-50 even after a long inversion
MAX_NPZ_MEMBERS = 4 * MAX_CODES_PER_FILE + 8  # ws, name, model name, source per code + the header
# Budget: all arrays of a file together, as float64 codes at the largest shapes (+ 1 MB of text);
# the file itself is compressed, so it can be no larger.
MAX_UNCOMPRESSED_BYTES = MAX_CODES_PER_FILE * MAX_NUM_WS * MAX_W_DIM * 8 + 2**20
MAX_LATENT_BYTES = MAX_UNCOMPRESSED_BYTES
CODE_DTYPES = ("float16", "float32", "float64")
MAX_NPY_HEADER_BYTES = 10_016  # magic, version, length and numpy's 10000-byte header cap


class LatentError(UserError, ValueError):
    """A latent file that cannot be read or does not fit the model."""


@dataclass
class Latent:
    ws: torch.Tensor  # [batch, num_ws, w_dim]
    model_name: str
    space: str = "w+"
    name: str = ""

    def check_fits(self, model_name: str, num_ws: int, w_dim: int) -> None:
        shape = tuple(self.ws.shape[1:])
        if shape != (num_ws, w_dim):
            raise LatentError(
                f"this code has shape {list(self.ws.shape)} (model {self.model_name!r}); "
                f"the model {model_name!r} needs [batch, {num_ws}, {w_dim}]"
            )


def save_latent(path_or_file: Union[str, os.PathLike, BinaryIO], ws: torch.Tensor, model_name: str,
                space: str = "w+", name: str = "") -> None:
    """Write ws [batch, num_ws, w_dim] with its model name, space and name."""
    if space not in SPACES:
        raise LatentError(f"space must be one of {SPACES}, got {space!r}")
    if ws.dim() != 3:
        raise LatentError(f"codes must have shape [batch, num_ws, w_dim], got {list(ws.shape)}")
    np.savez(
        path_or_file,
        ws=ws.detach().cpu().float().numpy(),
        model_name=np.array(model_name),
        space=np.array(space),
        name=np.array(name),
        shape=np.array(ws.shape, dtype=np.int64),
    )


def latent_to_bytes(latent: Latent) -> bytes:
    buffer = io.BytesIO()
    save_latent(buffer, latent.ws, latent.model_name, latent.space, latent.name)
    return buffer.getvalue()


def load_latent(path_or_file: Union[str, os.PathLike, BinaryIO]) -> Latent:
    """Read a .npz latent; never unpickles, and checks the declared sizes before decompressing."""
    if isinstance(path_or_file, (str, os.PathLike)):
        path = Path(path_or_file)
        if not path.is_file():
            raise LatentError(f"no latent file at {path.name}")
        if path.stat().st_size > MAX_LATENT_BYTES:
            raise LatentError(f"{path.name} is too large to be a latent code")
    headers = inspect_npz(path_or_file)
    missing = {"ws", "model_name", "space"} - set(headers)
    if missing:
        raise LatentError(f"not a latent file: missing {sorted(missing)}")
    check_code_header("ws", headers["ws"], batched_or_single=True)
    for key in ("model_name", "space", "name"):
        if key in headers:
            check_text_header(key, headers[key])
    try:
        with np.load(path_or_file, allow_pickle=False) as data:
            ws = code_tensor(data["ws"], "the latent code")
            model_name, space = str(data["model_name"]), str(data["space"])
            name = str(data["name"]) if "name" in data.files else ""
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise LatentError(f"could not read the latent file: {error}") from error
    if ws.dim() == 2:  # a single code saved without its batch axis
        ws = ws.unsqueeze(0)
    if space not in SPACES:
        raise LatentError(f"unknown latent space {space!r}")
    return Latent(ws=ws, model_name=model_name, space=space, name=name)


# -- checking a file before decompressing it ------------------------------------------------------
@dataclass
class ArrayHeader:
    shape: tuple
    dtype: np.dtype


def inspect_npz(file: Union[str, os.PathLike, BinaryIO]) -> dict[str, ArrayHeader]:
    """The shape and dtype of every array of an .npz, read from the zip directory and the .npy
    headers only (a few hundred bytes each); LatentError when the file is not an .npz of plain
    arrays, holds too many, or declares more bytes than MAX_UNCOMPRESSED_BYTES."""
    position = file.tell() if hasattr(file, "tell") else None
    try:
        with zipfile.ZipFile(file) as archive:
            members = archive.infolist()
            if len(members) > MAX_NPZ_MEMBERS:
                raise LatentError(f"the file holds {len(members)} arrays; a file of codes has at most "
                                  f"{MAX_NPZ_MEMBERS}")
            declared = sum(member.file_size for member in members)
            if declared > MAX_UNCOMPRESSED_BYTES:
                raise LatentError(f"the file unpacks to {declared / 2**20:.0f} MB; a file of {MAX_CODES_PER_FILE} "
                                  f"codes is at most {MAX_UNCOMPRESSED_BYTES / 2**20:.0f} MB")
            return {member.filename[:-4]: _read_header(archive, member) for member in members}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, NotImplementedError) as error:
        if isinstance(error, LatentError):
            raise
        raise LatentError(f"not a latent or library file (.npz): {error}") from error
    finally:
        if position is not None:
            file.seek(position)


def _read_header(archive: zipfile.ZipFile, member: zipfile.ZipInfo) -> ArrayHeader:
    if not member.filename.endswith(".npy") or len(member.filename) > 2 * MAX_NAME_CHARS:
        raise LatentError(f"unexpected member {member.filename[:80]!r}: not a file of codes")
    with archive.open(member) as stream:  # decompress only the header (numpy caps it at 10000 bytes)
        head = io.BytesIO(stream.read(MAX_NPY_HEADER_BYTES))
    version = np.lib.format.read_magic(head)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(head)
    elif version == (2, 0):
        shape, _, dtype = np.lib.format.read_array_header_2_0(head)
    else:
        raise LatentError(f"unsupported .npy version {version} in {member.filename!r}")
    header_bytes = head.tell()
    if dtype.hasobject:
        raise LatentError(f"{member.filename!r} holds Python objects; only numbers and text are read")
    if math.prod(shape) * dtype.itemsize != member.file_size - header_bytes:
        raise LatentError(f"{member.filename!r} declares {list(shape)} {dtype} but holds "
                          f"{member.file_size - header_bytes} bytes: the file is corrupt")
    return ArrayHeader(tuple(shape), dtype)


def check_code_header(key: str, header: ArrayHeader, batched_or_single: bool = False) -> None:
    """Codes: floats of shape [batch, num_ws, w_dim] (or [num_ws, w_dim]) within the limits."""
    shape = header.shape if len(header.shape) != 2 or not batched_or_single else (1, *header.shape)
    if header.dtype.name not in CODE_DTYPES or len(shape) != 3:
        raise LatentError(f"{key} must be float codes [batch, num_ws, w_dim], got {list(header.shape)} "
                          f"{header.dtype}")
    batch, num_ws, w_dim = shape
    if not (1 <= batch <= MAX_CODES_PER_FILE and 1 <= num_ws <= MAX_NUM_WS and 1 <= w_dim <= MAX_W_DIM):
        raise LatentError(f"{key} has shape {list(header.shape)}; codes are at most [{MAX_CODES_PER_FILE}, "
                          f"{MAX_NUM_WS}, {MAX_W_DIM}]")


def check_text_header(key: str, header: ArrayHeader) -> None:
    """Names: one string of at most MAX_NAME_CHARS characters."""
    if header.dtype.kind != "U" or header.shape != () or header.dtype.itemsize > 4 * MAX_NAME_CHARS:
        raise LatentError(f"{key} must be one text of at most {MAX_NAME_CHARS} characters")


def code_tensor(array: np.ndarray, what: str) -> torch.Tensor:
    """A checked code array -> float32 tensor; LatentError for NaN, inf or absurd values."""
    values = np.asarray(array)
    if not np.isfinite(values).all():
        raise LatentError(f"{what} contains NaN or infinite values")
    if values.size and np.abs(values).max() > MAX_ABS_CODE_VALUE:
        raise LatentError(f"{what} has values up to {np.abs(values).max():.3g}; codes lie within "
                          f"+-{MAX_ABS_CODE_VALUE:g}")
    return torch.from_numpy(values.astype(np.float32))
