"""Translation between two generators ("StyleGAN of All Trades"): when generator B was fine-tuned
from generator A (a face model and its cartoon or painting version), both share an architecture,
so the same code can run through both, layer by layer, on the *same* input features:
    f_i = (1 - alpha_i) * layer_i^A(f_{i-1}; s_A) + alpha_i * layer_i^B(f_{i-1}; s_B)
with s_A, s_B each model's own styles of the code (the affines are fine-tuned too). A constant
alpha gives a continuous translation (0: A's image, 1: B's image, bit for bit); a mask translates a
region only. The learned constant input is blended the same way (with the first layer). Masks are those of
`feature_blend` (a number, an H x W array of any size, or a function of the layer's size).
"""
from __future__ import annotations

from typing import Iterable, Optional

import torch

from ..codes import check_code, check_whole_number
from ..errors import UserError
from .feature_blend import FeatureBlendEditor, MaskLike
from ..models.generator import Generator, SynthesisLayer, SynthesisState


class TranslationError(UserError, ValueError):
    """Two generators that cannot be blended layer by layer."""


def check_compatible(generator_a: Generator, generator_b: Generator) -> None:
    """Raise TranslationError unless B has A's architecture, configuration and every layer's
    parameter shapes (as a fine-tune of A has)."""
    if generator_a.arch != generator_b.arch or generator_a.config != generator_b.config:
        raise TranslationError(
            f"the two models differ in architecture ({generator_a.arch} {generator_a.config} vs "
            f"{generator_b.arch} {generator_b.config}); translation needs a model fine-tuned from the other")
    shapes_a = {name: tuple(p.shape) for name, p in generator_a.state_dict().items()}
    shapes_b = {name: tuple(p.shape) for name, p in generator_b.state_dict().items()}
    if shapes_a != shapes_b:
        raise TranslationError("the two models' parameters differ in shape; translation needs a model "
                               "fine-tuned from the other")


class TranslationEditor(FeatureBlendEditor):
    """Run every blended layer of A (the generator the loop runs) also as B's layer of the same
    index on the same input, and mix the outputs with the mask (0: A, 1: B)."""

    def __init__(self, generator_b: Generator, ws: torch.Tensor, mask: MaskLike,
                 layers: Optional[Iterable[int]] = None):
        super().__init__(ws, mask, layers)
        self.generator_b = generator_b

    def begin(self, state: SynthesisState, generator: Generator) -> SynthesisState:
        if self.layers is not None and 0 not in self.layers:
            return state  # the constant belongs to the first layer: blended with it, or not at all
        state_b = self.generator_b.input_state(state.x.shape[0])
        return SynthesisState(self._mix(state.x, state_b.x, None), self._mix(state.img, state_b.img, None))

    def layer(self, index: int, layer: SynthesisLayer, state: SynthesisState, s: torch.Tensor) -> SynthesisState:
        if self.layers is not None and index not in self.layers:
            return layer(state, s)
        layer_b = self.generator_b.layers[index]
        out_a, out_b = layer(state, s), layer_b(state, layer_b.styles(self.ws_b))
        return SynthesisState(self._mix(out_a.x, out_b.x, state.x), self._mix(out_a.img, out_b.img, state.img))


def translate(generator_a: Generator, generator_b: Generator, ws: torch.Tensor, alpha: MaskLike = 1.0,
              layers: Optional[Iterable[int]] = None) -> torch.Tensor:
    """The image of code `ws` translated from generator A towards its fine-tune B: [1, 3, H, W].

    alpha: 0 = A's image, 1 = B's image (bit for bit), a number in between for a continuous
    translation, or a mask (H x W array in [0, 1], or a function of the layer size) to translate
    a region only. layers: which layers blend (indices; the others run A's layer only).
    """
    check_compatible(generator_a, generator_b)
    ws = check_code(generator_a, ws, "code")
    if layers is not None:
        layers = [check_whole_number(i, "each translated layer index", 0, len(generator_a.layers) - 1) for i in layers]
        if not layers:
            raise TranslationError("no layers chosen to translate")
    with torch.no_grad():
        return generator_a.synthesis(ws, TranslationEditor(generator_b, ws, alpha, layers))
