"""The Studio's StyleGAN-of-All-Trades operations: canvas extension, layout variations, region
transfer and translation between two generators. A mixin of `studio.Studio` (it uses the Studio's
models, code resolution and output files); every operation returns images only, since none of
them yields a code (the features are edited, not the W+ code)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from .editing import region_transfer, spatial, translation
from .errors import UserError
from .images import tensor_to_pil
from .library import CodeLibrary
from .loading import zoo

if TYPE_CHECKING:
    from .studio import EditResult, GalleryResult, Picture


@dataclass
class RegionResult:
    """A region transfer: the edited image (with downloads and info) and the blend mask shown as an image."""

    result: "EditResult"
    mask: "Picture"


class SoatStudio:
    """Canvas extension, layout variations, region transfer and generator translation (see studio.Studio)."""

    def extend_canvas(self, library: CodeLibrary, model_name: str, code: str, resolution=spatial.DEFAULT_RESOLUTION,
                      mode: str = "replicate", left=0.0, right=0.0, top=0.0, bottom=0.0) -> "EditResult":
        """'Uncrop': the code's image on a larger canvas (amounts are fractions of the image side)."""
        from .studio import timed, whole

        generator = self.generator(model_name)
        ws = self.resolve_code(code, library, model_name)
        resolution = whole(resolution, "the feature resolution", 1, generator.resolution)
        with timed() as clock:
            image = spatial.extend_canvas(generator, ws.to(self.device), resolution, _pad_mode(mode),
                                          left, right, top, bottom)
        size = f" · {image.shape[-1]} x {image.shape[-2]} px (features padded at {resolution} px, {mode})"
        return self._result(library, model_name, tensor_to_pil(image), "extended_canvas", clock, extra=size)

    def layout_variations(self, library: CodeLibrary, model_name: str, code: str,
                          resolution=spatial.DEFAULT_RESOLUTION, count=4, seed=0) -> "GalleryResult":
        """Single-image variations: the code re-rendered from randomly stretched or patched features."""
        from .studio import GalleryResult, timed, whole

        generator = self.generator(model_name)
        ws = self.resolve_code(code, library, model_name)
        resolution = whole(resolution, "the feature resolution", 1, generator.resolution)
        with timed() as clock:
            images = spatial.layout_variations(generator, ws.to(self.device), resolution, count, seed)
        pictures = [self.picture(tensor_to_pil(image), f"variation_{i + 1:02d}", f"variation {i + 1}")
                    for i, image in enumerate(images)]
        return GalleryResult(pictures, [p.path for p in pictures],
                             f"{len(pictures)} variations in {clock.text(self.device)} (features at {resolution} px)")

    def transfer_region(self, library: CodeLibrary, model_name: str, target: str, reference: str,
                        region: str = "mouth",
                        min_resolution=region_transfer.DEFAULT_MIN_RESOLUTION) -> RegionResult:
        """The target's image with `region` taken from the reference (pose aligned to the target first)."""
        from .studio import timed, whole

        generator = self.generator(model_name)
        min_resolution = whole(min_resolution, "the lowest blended resolution", 1, generator.resolution)
        target_ws = self.resolve_code(target, library, model_name)
        reference_ws = self.resolve_code(reference, library, model_name)
        with timed() as clock:
            transfer = region_transfer.transfer_region(generator, target_ws.to(self.device),
                                                       reference_ws.to(self.device), region, min_resolution)
        mask = Image.fromarray((np.clip(transfer.mask, 0, 1) * 255).astype(np.uint8), mode="L")
        result = self._result(library, model_name, tensor_to_pil(transfer.image), f"region_{region}", clock,
                              extra=f" · {region} from {reference} (layers of {min_resolution} px and up)",
                              source=target)  # the target's face, pose and place in its photo stay
        return RegionResult(result, self.picture(mask, f"mask_{region}", f"{region} mask"))

    def translate(self, library: CodeLibrary, model_name: str, code: str, second_model: str,
                  alpha=1.0) -> "EditResult":
        """The code's image translated from the current model towards `second_model` (0: this model's
        image, 1: the second model's), blending the two generators' features layer by layer."""
        from .codes import check_number
        from .studio import timed

        alpha = check_number(alpha, "alpha", 0.0, 1.0)
        generator_a = self.generator(model_name)
        generator_b = self._translation_partner(model_name, second_model, generator_a)
        ws = self.resolve_code(code, library, model_name)
        with timed() as clock:
            image = translation.translate(generator_a, generator_b, ws.to(self.device), alpha)
        return self._result(library, model_name, tensor_to_pil(image), "translated", clock,
                            extra=f" · {model_name} → {second_model} at α = {alpha:g}")

    def _translation_partner(self, model_name: str, second_model: str, generator_a):
        """The second generator, refused with a clear message before any download when it cannot
        be a fine-tune of the first (another architecture or resolution, or the same model)."""
        second_model = (second_model or "").strip()
        if not second_model or second_model == model_name:
            raise translation.TranslationError(
                "pick a second model other than the current one: translation blends two generators, the "
                "current model and one fine-tuned from it (e.g. a cartoon or painting fine-tune)")
        entry = zoo.MODELS.get(second_model)
        if entry is not None and second_model not in self._models and (
                entry.arch != generator_a.arch or entry.resolution != generator_a.resolution):
            raise translation.TranslationError(
                f"{second_model} ({entry.arch}, {entry.resolution} px) cannot be a fine-tune of {model_name} "
                f"({generator_a.arch}, {generator_a.resolution} px); translation needs two models of the same "
                "architecture, one fine-tuned from the other")
        try:
            return self.generator(second_model)
        except UserError as error:
            raise translation.TranslationError(
                f"the second model {second_model} is not available here ({str(error).splitlines()[0]}); "
                "translation needs two models of the same architecture, one fine-tuned from the other, "
                "both available on this server") from error


def _pad_mode(mode: str) -> str:
    if mode not in spatial.PAD_MODES:
        raise spatial.SpatialEditError(f"unknown padding mode {mode!r}: one of {', '.join(spatial.PAD_MODES)}")
    return mode
