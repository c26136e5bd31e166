"""The Image2StyleGAN reconstruction loss: VGG16 perceptual features plus pixel MSE.

VGG16 comes from the ImageNet (Oxford) weights inside an ONNX file (Keras VGG16 base, see
docs/WEIGHTS.md section 2). The convolutions up to conv4_2 are converted to PyTorch once and cached
as safetensors; later starts load the cache. Preprocessing is Keras "caffe" style: BGR, 0..255,
minus the ImageNet mean, no std division.

The loss (Abdal et al. 2019), for an image x and a target t, both [B, 3, H, W] in [-1, 1]:
    L = sum_j lambda_j * mean((F_j(x) - F_j(t))^2) + lambda_mse * mean((x - t)^2)
with F_j the post-ReLU features at conv1_1, conv1_2, conv3_2 and conv4_2. The means are the
paper's 1/N_j and 1/N normalisations. Pixel values in the MSE are measured in 0..255 units, the
units VGG sees, so that lambda_mse = 1 weighs both terms alike.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

VGG_FILE_ID = "vgg16-imagenet/vgg16.onnx"
CACHE_NAME = "vgg16-imagenet-to-conv4_2.safetensors"
FEATURE_LAYERS = ("conv1_1", "conv1_2", "conv3_2", "conv4_2")
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
PIXEL_SCALE = 127.5  # [-1, 1] -> 0..255 is (x + 1) * 127.5

# (name, in channels, out channels); "pool" is a 2x2 max pooling. Stops at the last layer we need.
VGG16_TO_CONV4_2 = (
    ("conv1_1", 3, 64), ("conv1_2", 64, 64), "pool",
    ("conv2_1", 64, 128), ("conv2_2", 128, 128), "pool",
    ("conv3_1", 128, 256), ("conv3_2", 256, 256), ("conv3_3", 256, 256), "pool",
    ("conv4_1", 256, 512), ("conv4_2", 512, 512),
)


class VGG16Features(nn.Module):
    """VGG16 convolutions up to conv4_2; returns the post-ReLU features of FEATURE_LAYERS."""

    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.ModuleDict(
            {name: nn.Conv2d(cin, cout, 3, padding=1) for name, cin, cout in
             (layer for layer in VGG16_TO_CONV4_2 if layer != "pool")}
        )
        self.register_buffer("mean_bgr", torch.tensor(CAFFE_MEAN_BGR).view(1, 3, 1, 1), persistent=False)

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """RGB in [-1, 1] -> caffe input: BGR, 0..255, mean subtracted."""
        return (images.flip(1) + 1.0) * PIXEL_SCALE - self.mean_bgr

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        x = self.preprocess(images)
        features = []
        for layer in VGG16_TO_CONV4_2:
            if layer == "pool":
                x = F.max_pool2d(x, 2)
                continue
            x = F.relu(self.convs[layer[0]](x))
            if layer[0] in FEATURE_LAYERS:
                features.append(x)
        return features


def keras_name(layer: str) -> str:
    """'conv3_2' -> 'block3_conv2' (the Keras layer name in the ONNX graph)."""
    block, conv = layer[4:].split("_")
    return f"block{block}_conv{conv}"


def convert_onnx(onnx_path: os.PathLike) -> dict[str, torch.Tensor]:
    """The state dict of VGG16Features read from the Keras VGG16 ONNX export.

    The ONNX convolutions already use PyTorch's [out, in, kh, kw] layout (tf2onnx transposes), and
    consume BGR caffe input, which `VGG16Features.preprocess` produces.
    """
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(onnx_path)).graph
    initializers = {init.name: init for init in graph.initializer}
    wanted = {keras_name(layer[0]): layer[0] for layer in VGG16_TO_CONV4_2 if layer != "pool"}
    state = {}
    for node in graph.node:
        # input names look like functional_1/block3_conv2_1/convolution/ReadVariableOp:0
        keras = node.input[1].split("/")[1].rsplit("_", 1)[0] if node.op_type == "Conv" else None
        if keras in wanted:
            for name, tensor_name in (("weight", node.input[1]), ("bias", node.input[2])):
                array = numpy_helper.to_array(initializers[tensor_name]).copy()
                state[f"convs.{wanted[keras]}.{name}"] = torch.from_numpy(array)
    missing = {f"convs.{layer}.weight" for layer in wanted.values()} - set(state)
    if missing:
        raise ValueError(f"{onnx_path} is not the Keras VGG16 export: missing {sorted(missing)}")
    return state


def _cached_state(onnx_path: Optional[os.PathLike]) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file, save_file

    from ..loading.weights import cache_path, fetch

    cache = cache_path(CACHE_NAME)
    if onnx_path is None and cache.is_file():
        try:
            return load_file(str(cache))
        except (SafetensorError, OSError):  # a damaged cache is rebuilt from the source file below
            pass
    state = convert_onnx(onnx_path or fetch(VGG_FILE_ID))
    tmp = cache.with_name(f"{cache.name}.tmp{os.getpid()}.{threading.get_ident()}")
    save_file(state, str(tmp), metadata={"source": Path(onnx_path or VGG_FILE_ID).name})
    os.replace(tmp, cache)  # atomic: a concurrent reader sees the old file or the whole new one
    return state


_VGG: dict[str, VGG16Features] = {}
_VGG_LOCK = threading.Lock()


def load_vgg16(device: str | torch.device = "cpu", onnx_path: Optional[os.PathLike] = None) -> VGG16Features:
    """The frozen VGG16 feature extractor, converted on first use and shared within the process.

    `onnx_path` forces a fresh conversion from that file (tests use it); otherwise the cached
    conversion is used, made from `weights.fetch("vgg16-imagenet/vgg16.onnx")` if missing.
    """
    key = f"{torch.device(device)}|{onnx_path or ''}"
    with _VGG_LOCK:
        if key not in _VGG:
            model = VGG16Features()
            model.load_state_dict(_cached_state(onnx_path), strict=True)
            model = model.eval().requires_grad_(False).to(device)
            _VGG[key] = model.to(memory_format=torch.channels_last)  # ~10% faster convolutions on CPU
        return _VGG[key]


# -- the loss ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LossWeights:
    """lambda_j for conv1_1, conv1_2, conv3_2, conv4_2 and lambda_mse. Image2StyleGAN: all 1."""

    perceptual: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
    mse: float = 1.0

    def __post_init__(self) -> None:
        if len(self.perceptual) != len(FEATURE_LAYERS):
            raise ValueError(f"need {len(FEATURE_LAYERS)} perceptual weights ({', '.join(FEATURE_LAYERS)}), "
                             f"got {len(self.perceptual)}")
        if min(self.perceptual) < 0 or self.mse < 0:
            raise ValueError("loss weights must be >= 0")


def resize_for_loss(images: torch.Tensor, resolution: Optional[int]) -> torch.Tensor:
    """Downsample to resolution x resolution (area average for whole factors, else antialiased bilinear)."""
    if resolution is None or images.shape[-1] == resolution and images.shape[-2] == resolution:
        return images
    height, width = images.shape[-2:]
    if height % resolution == 0 and width % resolution == 0:
        return F.avg_pool2d(images, (height // resolution, width // resolution))
    return F.interpolate(images, size=(resolution, resolution), mode="bilinear", antialias=True,
                         align_corners=False)


class Image2StyleGANLoss(nn.Module):
    """The reconstruction loss against one fixed target, at `resolution` px (None: the target's size).

    The target's features are computed once. `bf16` runs VGG under bfloat16 autocast (about twice
    as fast on CPUs with AVX512-BF16); the feature differences are still taken in float32.
    """

    def __init__(self, target: torch.Tensor, weights: LossWeights = LossWeights(),
                 resolution: Optional[int] = 256, bf16: bool = False,
                 vgg: Optional[VGG16Features] = None) -> None:
        super().__init__()
        if target.dim() != 4 or target.shape[1] != 3:
            raise ValueError(f"the target must be [batch, 3, H, W], got {list(target.shape)}")
        self.vgg = vgg or load_vgg16(target.device)
        self.weights = weights
        self.resolution = resolution
        self.bf16 = bf16
        with torch.no_grad():
            self.target = resize_for_loss(target, resolution).to(memory_format=torch.channels_last)
            self.target_features = [f.float() for f in self._features(self.target)]

    def _features(self, images: torch.Tensor) -> list[torch.Tensor]:
        with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            return self.vgg(images)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """images [B, 3, H, W] in [-1, 1] -> (scalar loss, its terms as floats)."""
        images = resize_for_loss(images, self.resolution).to(memory_format=torch.channels_last)
        terms: dict[str, torch.Tensor] = {}
        for name, weight, feature, target in zip(FEATURE_LAYERS, self.weights.perceptual,
                                                 self._features(images), self.target_features):
            if weight:
                terms[name] = weight * (feature.float() - target).square().mean()
        if self.weights.mse:
            terms["mse"] = self.weights.mse * ((images - self.target) * PIXEL_SCALE).square().mean()
        total = torch.stack(list(terms.values())).sum() if terms else images.new_zeros(())
        return total, {name: float(value.detach()) for name, value in terms.items()}
