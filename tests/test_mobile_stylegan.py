"""MobileStyleGAN's own layout and ops (fast; the common contract: test_generator_contract.py) and the
real FFHQ port against OpenVINO and dlib (real)."""

import numpy as np
import pytest
import torch

from conftest import tiny_codes
from stylegan_core.models.generator import SynthesisState
from stylegan_core.models.mobile_stylegan import HaarUpsample, MobileStyleGAN, inverse_haar, tiny_mobile_stylegan
from stylegan_core.loading.mobile_stylegan_ir import mobile_stylegan_from_ir
from stylegan_core.loading.openvino_ir import OpenVINOIRError, read_ir


@pytest.fixture(scope="module")
def tiny():
    return tiny_mobile_stylegan(seed=0)


def test_tiny_shapes_and_rows(tiny):
    ws = tiny_codes(tiny, batch=3)
    assert ws.shape == (3, tiny.num_ws, tiny.w_dim) == (3, 11, 8)
    img = tiny.synthesis(ws)
    assert img.shape == (3, 3, 64, 64)
    assert torch.isfinite(img).all() and img.std() > 0.05
    rows = tiny.describe_rows()
    unused = [info.row for info in rows if not info.used]
    # rows 3i+3 fed the pruned image heads of the inner blocks (the last block's is to_img); the
    # last row is unused
    assert unused == [3, 6, 10]
    assert [info.resolution for info in rows if info.used] == [4, 8, 8, 16, 16, 32, 32, 64]
    assert rows[0].layers == ("conv1",) and rows[1].layers == ("block0.up", "block0.conv1")
    assert rows[9].layers == ("to_img",)


def test_bad_config_is_rejected():
    with pytest.raises(ValueError, match="multiple of 4"):
        MobileStyleGAN(channels=[8, 6])


def test_inverse_haar_inverts_the_haar_analysis():
    x = torch.randn(2, 3, 8, 10)
    a, b = x[..., 0::2, 0::2], x[..., 0::2, 1::2]  # a b  (top row of each 2x2 block)
    c, d = x[..., 1::2, 0::2], x[..., 1::2, 1::2]  # c d
    ll, lh = (a + b + c + d) / 2, (a + b - c - d) / 2  # LH: high-pass along y
    hl, hh = (a - b + c - d) / 2, (a - b - c + d) / 2  # HL: high-pass along x
    highs = torch.stack([lh, hl, hh], dim=2).flatten(1, 2)  # per channel: LH, HL, HH
    torch.testing.assert_close(inverse_haar(torch.cat([ll, highs], dim=1)), x)


def test_inverse_haar_gradient_is_exact():
    x = torch.randn(1, 8, 3, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(inverse_haar, (x,))


@pytest.mark.parametrize("batch", [1, 2])
def test_both_haar_upsample_implementations_agree(batch):
    dense = HaarUpsample("up", 0, w_dim=8, channels=16, resolution=8)
    torch.nn.init.normal_(dense.affine.weight)
    butterflies = HaarUpsample("up", 0, w_dim=8, channels=16, resolution=8)
    butterflies.load_state_dict(dense.state_dict())
    butterflies.haar_weight = None  # the path wide layers take
    assert dense.haar_weight is not None
    x = torch.randn(batch, 16, 4, 6, requires_grad=True)
    ws = torch.randn(batch, 1, 8, requires_grad=True)
    outputs = [layer(SynthesisState(x), layer.styles(ws)).x for layer in (dense, butterflies)]
    torch.testing.assert_close(outputs[0], outputs[1])
    grads = [torch.autograd.grad(out.square().sum(), (x, ws)) for out in outputs]
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-4)


def test_ir_reader_reports_missing_and_truncated_files(tmp_path):
    xml = tmp_path / "m.xml"
    xml.write_text(
        '<net name="m" version="10"><layers><layer id="0" name="c" type="Const">'
        '<data element_type="f32" shape="2, 3" offset="0" size="24"/></layer></layers><edges/></net>'
    )
    good = tmp_path / "m.bin"
    good.write_bytes(np.arange(6, dtype="<f4").tobytes())
    (const,) = read_ir(xml, good).constants()
    assert const.value.shape == (2, 3) and const.value[1, 2] == 5
    short = tmp_path / "short.bin"
    short.write_bytes(b"\0" * 20)
    with pytest.raises(OpenVINOIRError, match="truncated"):
        read_ir(xml, short)
    with pytest.raises(OpenVINOIRError, match="cannot read"):
        read_ir(tmp_path / "missing.xml", good)


# -- the real FFHQ 1024 model ----------------------------------------------------------------------
def ir_files():
    from stylegan_core.loading.weights import fetch

    names = ["MappingNetwork.xml", "MappingNetwork.bin", "SynthesisNetwork.xml", "SynthesisNetwork.bin"]
    return [fetch(f"mobilestylegan-ffhq/{name}") for name in names]


@pytest.fixture(scope="module")
def ffhq():
    return mobile_stylegan_from_ir(*ir_files())


@pytest.mark.real
def test_port_matches_the_openvino_runtime(ffhq):
    ov = pytest.importorskip("openvino")
    mapping_xml, _, synthesis_xml, _ = ir_files()
    core, config = ov.Core(), {"INFERENCE_PRECISION_HINT": "f32"}  # default bf16 differs by up to 0.65
    mapping = core.compile_model(str(mapping_xml), "CPU", config)
    synthesis = core.compile_model(str(synthesis_xml), "CPU", config)
    for seed in (0, 1, 2):
        z = ffhq.seed_to_z(seed)
        w_reference = mapping(z.numpy())[0]
        with torch.no_grad():
            w = ffhq.mapping_network(z)
            image = ffhq.synthesis(torch.from_numpy(w_reference)[:, None].repeat(1, ffhq.num_ws, 1))
        assert np.abs(w.numpy() - w_reference).max() < 1e-4
        assert np.abs(image.numpy() - synthesis(w_reference)[0]).max() < 1e-3


@pytest.mark.real
def test_mismatched_ir_files_fail_loudly():
    mapping_xml, mapping_bin, synthesis_xml, synthesis_bin = ir_files()
    with pytest.raises(OpenVINOIRError, match="unexpected constant"):
        mobile_stylegan_from_ir(mapping_xml, mapping_bin, mapping_xml, mapping_bin)
    with pytest.raises(OpenVINOIRError, match="truncated"):
        mobile_stylegan_from_ir(mapping_xml, mapping_bin, synthesis_xml, mapping_bin)


@pytest.mark.real
def test_dlib_finds_one_face_per_generated_image(ffhq):
    dlib = pytest.importorskip("dlib")
    detector = dlib.get_frontal_face_detector()
    counts = []
    with torch.no_grad():
        for seed in range(8):
            image = ffhq.synthesis(ffhq.mapping(ffhq.seed_to_z(seed), psi=0.7))
            pixels = ((image[0].permute(1, 2, 0).clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()
            counts.append(len(detector(np.ascontiguousarray(pixels), 0)))
    assert counts == [1] * 8


@pytest.mark.real
def test_w_avg_is_the_mean_of_mapped_samples(ffhq):
    z = torch.randn(2000, ffhq.z_dim, generator=torch.Generator().manual_seed(123))
    with torch.no_grad():
        sample_mean = ffhq.mapping_network(z).mean(0)
    spread = (sample_mean - ffhq.w_avg).norm() / ffhq.w_avg.norm()
    assert spread < 0.15  # Monte Carlo error of 2000 samples is about 0.06
