"""Translation between a generator and its fine-tune: two tiny models, one a perturbed copy."""
import copy

import pytest
import torch

from conftest import TINY_MODELS, tiny_codes, tiny_model
from stylegan_core.editing import feature_blend as fb, translation


def fine_tuned(generator, seed: int = 1, strength: float = 0.3):
    """A copy of `generator` with every stored tensor (parameters, noise maps, w_avg) moved by
    relative Gaussian noise, as a fine-tune moves them (same architecture and shapes); fixed
    filters that are not stored stay as they are."""
    tuned = copy.deepcopy(generator)
    noise = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in tuned.state_dict().values():
            tensor.add_(strength * tensor.abs().mean() * torch.randn(tensor.shape, generator=noise))
    return tuned


@pytest.fixture(scope="module", params=sorted(TINY_MODELS))
def pair(request):
    generator = tiny_model(request.param, seed=6)
    return generator, fine_tuned(generator)


@pytest.fixture(scope="module")
def code(pair):
    return tiny_codes(pair[0], seed=3, psi=0.8)


def render(generator, ws):
    with torch.no_grad():
        return generator.synthesis(ws)


def test_alpha_zero_is_a_and_alpha_one_is_b_bit_for_bit(pair, code):
    a, b = pair
    assert torch.equal(translation.translate(a, b, code, 0.0), render(a, code))
    assert torch.equal(translation.translate(a, b, code, 1.0), render(b, code))
    assert not torch.allclose(render(a, code), render(b, code), atol=1e-2)


def test_a_constant_alpha_moves_continuously_from_a_to_b(pair, code):
    a, b = pair
    image_a, image_b = render(a, code), render(b, code)
    distances = [(translation.translate(a, b, code, alpha) - image_b).abs().mean().item()
                 for alpha in (0.0, 0.25, 0.5, 0.75, 1.0)]
    assert all(later < earlier for earlier, later in zip(distances, distances[1:]))
    halfway = translation.translate(a, b, code, 0.5)
    assert (halfway - image_a).abs().mean() > 0.1 * (image_b - image_a).abs().mean()


def test_a_mask_translates_only_its_region(pair, code):
    """With a ramp mask, the left quarter stays closer to A and the right quarter closer to B."""
    a, b = pair
    image_a, image_b = render(a, code), render(b, code)
    translated = translation.translate(a, b, code, fb.horizontal_ramp)
    edge = a.resolution // 8
    for start, near, far in ((0, image_a, image_b), (a.resolution - edge, image_b, image_a)):
        part = translated[..., start:start + edge]
        assert (part - near[..., start:start + edge]).abs().mean() < (part - far[..., start:start + edge]).abs().mean()


def test_translating_only_the_last_layer_uses_bs_last_layer(pair, code):
    a, b = pair
    last = len(a.layers) - 1
    hybrid = copy.deepcopy(a)
    hybrid.layers[last].load_state_dict(b.layers[last].state_dict())
    translated = translation.translate(a, b, code, 1.0, layers=[last])
    torch.testing.assert_close(translated, render(hybrid, code), rtol=0, atol=1e-5)


def test_incompatible_generators_and_bad_input_raise_clear_errors(pair, code):
    a, b = pair
    other = next(tiny_model(arch) for arch in TINY_MODELS if arch != a.arch)
    cases = [
        (lambda: translation.translate(a, other, code), "architecture"),
        (lambda: translation.translate(a, b, code, 2.0), "alpha"),
        (lambda: translation.translate(a, b, code, layers=[]), "no layers"),
        (lambda: translation.translate(a, b, code, layers=[len(a.layers)]), "layer index"),
        (lambda: translation.translate(a, b, None), "missing"),
    ]
    for call, words in cases:
        with pytest.raises(ValueError, match=words):
            call()


def test_cli_translate_writes_the_blend(tmp_path, capsys):
    import numpy as np
    from PIL import Image

    from stylegan_core import cli
    from stylegan_core.loading import export, zoo
    from stylegan_core.images import tensor_to_pil

    zoo.clear_loaded_models()
    a = tiny_model("stylegan2", seed=6)
    b = fine_tuned(a)
    path_a = export.save_generator(a, tmp_path / "a.safetensors")
    path_b = export.save_generator(b, tmp_path / "b.safetensors")
    out = tmp_path / "half.png"
    assert cli.main(["translate", "3", "--checkpoint", str(path_a), "--to-checkpoint", str(path_b),
                     "--alpha", "0.5", "--out", str(out)]) == 0
    with torch.no_grad():
        ws = a.mapping(a.seed_to_z(3), psi=0.7)
    expected = tensor_to_pil(translation.translate(a, b, ws, 0.5))
    assert np.array_equal(np.asarray(Image.open(out)), np.asarray(expected))
    other = export.save_generator(tiny_model("mobile_stylegan"), tmp_path / "other.safetensors")
    assert cli.main(["translate", "3", "--checkpoint", str(path_a), "--to-checkpoint", str(other),
                     "--out", str(out)]) == 1
    assert "fine-tuned" in capsys.readouterr().err
    zoo.clear_loaded_models()
