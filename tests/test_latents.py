import io

import numpy as np
import pytest
import torch

from stylegan_core.latents import Latent, LatentError, latent_to_bytes, load_latent, save_latent


def test_round_trip_keeps_code_and_metadata(tmp_path):
    ws = torch.randn(2, 23, 512)
    save_latent(tmp_path / "a.npz", ws, "ffhq-mobile", "w+", name="me")
    latent = load_latent(tmp_path / "a.npz")
    assert torch.equal(latent.ws, ws)
    assert (latent.model_name, latent.space, latent.name) == ("ffhq-mobile", "w+", "me")


def test_bytes_round_trip():
    latent = Latent(torch.randn(1, 18, 512), "stylegan2-ffhq", "w", "x")
    again = load_latent(io.BytesIO(latent_to_bytes(latent)))
    assert torch.equal(again.ws, latent.ws) and again.space == "w"


def test_shape_check_names_both_models():
    latent = Latent(torch.randn(1, 18, 512), "stylegan2-ffhq")
    with pytest.raises(LatentError, match="stylegan2-ffhq.*ffhq-mobile"):
        latent.check_fits("ffhq-mobile", 23, 512)


@pytest.mark.parametrize("payload", [b"", b"not a zip at all", b"PK\x03\x04broken"])
def test_garbage_is_refused_with_a_message(payload):
    with pytest.raises(LatentError):
        load_latent(io.BytesIO(payload))


def test_npz_without_code_fields_is_refused():
    buffer = io.BytesIO()
    np.savez(buffer, something=np.zeros(3))
    buffer.seek(0)
    with pytest.raises(LatentError, match="missing"):
        load_latent(buffer)


def test_pickled_object_arrays_are_never_loaded():
    buffer = io.BytesIO()
    np.savez(buffer, ws=np.array([object()], dtype=object), model_name=np.array("m"), space=np.array("w+"))
    buffer.seek(0)
    with pytest.raises(LatentError):
        load_latent(buffer)


def test_non_finite_codes_are_refused():
    ws = torch.zeros(1, 4, 8)
    ws[0, 0, 0] = float("nan")
    buffer = io.BytesIO()
    save_latent(buffer, ws, "m")
    buffer.seek(0)
    with pytest.raises(LatentError, match="NaN"):
        load_latent(buffer)
