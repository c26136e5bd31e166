"""Latent codes on disk: .npz files with the code and what it belongs to.

A code only means something for the model that made it, so the file records the model name, the
space ('w+' or 'w') and the shape; loading checks them against the model in use.
"""
from __future__ import annotations

import io
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
import torch
from .codes import MAX_LATENT_BYTES, SPACES
from .errors import UserError


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
    """Read a .npz latent; never unpickles (allow_pickle=False)."""
    if isinstance(path_or_file, (str, os.PathLike)):
        path = Path(path_or_file)
        if not path.is_file():
            raise LatentError(f"no latent file at {path}")
        if path.stat().st_size > MAX_LATENT_BYTES:
            raise LatentError(f"{path.name} is too large to be a latent code")
    try:
        with np.load(path_or_file, allow_pickle=False) as data:
            missing = {"ws", "model_name", "space"} - set(data.files)
            if missing:
                raise LatentError(f"not a latent file: missing {sorted(missing)}")
            ws = torch.from_numpy(np.asarray(data["ws"], dtype=np.float32).copy())
            model_name, space = str(data["model_name"]), str(data["space"])
            name = str(data["name"]) if "name" in data.files else ""
    except LatentError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise LatentError(f"could not read the latent file: {error}") from error
    if ws.dim() == 2:  # a single code saved without its batch axis
        ws = ws.unsqueeze(0)
    if ws.dim() != 3:
        raise LatentError(f"latent codes must be [batch, num_ws, w_dim], got {list(ws.shape)}")
    if not torch.isfinite(ws).all():
        raise LatentError("the latent code contains NaN or infinite values")
    if space not in SPACES:
        raise LatentError(f"unknown latent space {space!r}")
    return Latent(ws=ws, model_name=model_name, space=space, name=name)
