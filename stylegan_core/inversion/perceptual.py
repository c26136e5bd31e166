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

import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger(__name__)

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


_BF16_FASTER: dict[str, bool] = {}  # device type -> whether VGG under bf16 autocast was faster here
_BF16_LOCK = threading.Lock()


def bf16_pays_off(vgg: VGG16Features, device: torch.device) -> bool:
    """Whether VGG's forward+backward runs faster under bfloat16 autocast on this device, measured
    once per process (about a second). It depends on the hardware and the torch build: bf16 was
    twice as fast on one of this project's 2-core CPUs and 1.5x slower on another with the same
    AVX512-BF16 flags (0.47 s vs 0.31 s per step at 256 px)."""
    with _BF16_LOCK:
        if device.type not in _BF16_FASTER:
            probe = torch.rand(1, 3, 128, 128, device=device)
            seconds = {mode: _vgg_step_seconds(vgg, probe, mode) for mode in (False, True)}
            _BF16_FASTER[device.type] = seconds[True] < seconds[False]
            log.info("VGG loss in %s: fp32 %.3f s, bf16 %.3f s per forward+backward at 128 px",
                     "bf16" if _BF16_FASTER[device.type] else "fp32", seconds[False], seconds[True])
        return _BF16_FASTER[device.type]


def _vgg_step_seconds(vgg: VGG16Features, probe: torch.Tensor, bf16: bool, repeats: int = 3) -> float:
    """The fastest of `repeats` timed forward+backward passes (after one warm-up pass)."""
    times = []
    for _ in range(repeats + 1):
        image = probe.clone().requires_grad_(True)
        started = time.perf_counter()
        with torch.autocast(probe.device.type, dtype=torch.bfloat16, enabled=bf16):
            features = vgg(image)
        torch.stack([f.float().square().mean() for f in features]).sum().backward()
        if probe.is_cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    return min(times[1:])


class Image2StyleGANLoss(nn.Module):
    """The reconstruction loss against one fixed target, at `resolution` px (None: the target's size).

    The target's features are computed once. `bf16` runs VGG under bfloat16 autocast (None: when
    `bf16_pays_off` on this device); the feature differences are still taken in float32.
    """

    def __init__(self, target: torch.Tensor, weights: LossWeights = LossWeights(),
                 resolution: Optional[int] = 256, bf16: Optional[bool] = False,
                 vgg: Optional[VGG16Features] = None) -> None:
        super().__init__()
        if target.dim() != 4 or target.shape[1] != 3:
            raise ValueError(f"the target must be [batch, 3, H, W], got {list(target.shape)}")
        self.vgg = vgg or load_vgg16(target.device)
        self.weights = weights
        self.resolution = resolution
        self.bf16 = bf16_pays_off(self.vgg, target.device) if bf16 is None else bf16
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
