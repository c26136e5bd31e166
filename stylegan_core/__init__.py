"""stylegan_core: the library behind the StyleGAN editing studio (app.py, the CLI and the tests)."""
from .models.generator import Generator, LayerEditor, RowInfo, SynthesisLayer, SynthesisState

__all__ = ["Generator", "LayerEditor", "RowInfo", "SynthesisLayer", "SynthesisState"]
