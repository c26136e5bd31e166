"""VGG16 conversion (against onnxruntime on the ONNX file) and the Image2StyleGAN loss."""
import pytest
import torch

from stylegan_core.inversion import perceptual
from stylegan_core.inversion.perceptual import FEATURE_LAYERS, Image2StyleGANLoss, LossWeights, VGG16Features


def random_vgg(seed=0):
    torch.manual_seed(seed)
    vgg = VGG16Features().eval().requires_grad_(False)
    for conv in vgg.convs.values():  # small weights keep 0..255 inputs from exploding
        conv.weight.data.mul_(0.05)
    return vgg


def onnx_features(onnx_path, caffe_nhwc):
    """The ONNX graph's own post-ReLU outputs at FEATURE_LAYERS, computed by onnxruntime."""
    import onnx
    import onnxruntime

    model = onnx.load(str(onnx_path))
    names = [f"functional_1/{perceptual.keras_name(layer)}_1/Relu:0" for layer in FEATURE_LAYERS]
    del model.graph.output[:]
    model.graph.output.extend(onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None) for n in names)
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(names, {"input": caffe_nhwc})


@pytest.mark.real
def test_converted_vgg_matches_onnxruntime(tmp_path, monkeypatch):
    from stylegan_core.loading.weights import fetch

    monkeypatch.setenv("STYLEGAN_WEIGHTS_DIR", str(tmp_path))  # a fresh conversion, not the cache
    onnx_path = fetch(perceptual.VGG_FILE_ID)
    vgg = perceptual.load_vgg16(onnx_path=onnx_path)
    assert (tmp_path / "converted" / perceptual.CACHE_NAME).is_file()

    rgb = torch.rand(1, 3, 240, 240, generator=torch.Generator().manual_seed(1)) * 2 - 1  # the graph's input size
    caffe_nhwc = vgg.preprocess(rgb).permute(0, 2, 3, 1).contiguous().numpy()
    expected = onnx_features(onnx_path, caffe_nhwc)
    with torch.no_grad():
        ours = vgg(rgb)
    for name, got, want in zip(FEATURE_LAYERS, ours, expected):
        want = torch.from_numpy(want)
        assert got.shape == want.shape, name
        scale = want.abs().max()
        assert scale > 0, name
        assert (got - want).abs().max() / scale < 1e-4, name


def test_preprocess_is_caffe_style():
    vgg = VGG16Features()
    white_rgb = torch.ones(1, 3, 2, 2)
    red_rgb = torch.tensor([1.0, -1.0, -1.0]).view(1, 3, 1, 1)
    assert torch.allclose(vgg.preprocess(white_rgb)[0, :, 0, 0], 255 - torch.tensor(perceptual.CAFFE_MEAN_BGR))
    # red lands in the last (R of BGR) channel
    assert torch.allclose(vgg.preprocess(red_rgb)[0, :, 0, 0],
                          torch.tensor([0.0, 0.0, 255.0]) - torch.tensor(perceptual.CAFFE_MEAN_BGR))


def test_loss_is_zero_at_the_target_and_grows_with_the_difference():
    vgg = random_vgg()
    gen = torch.Generator().manual_seed(0)
    target = torch.rand(1, 3, 64, 64, generator=gen) * 2 - 1
    noise = torch.randn(1, 3, 64, 64, generator=gen)
    loss = Image2StyleGANLoss(target, resolution=32, vgg=vgg)
    zero, terms = loss(target)
    small, _ = loss(target + 0.05 * noise)
    large, _ = loss(target + 0.3 * noise)
    assert float(zero) == pytest.approx(0.0, abs=1e-6)
    assert set(terms) == set(FEATURE_LAYERS) | {"mse"}
    assert 0 < float(small) < float(large)


def test_loss_weights_select_terms_and_gradients_reach_the_image():
    vgg = random_vgg()
    target = torch.zeros(1, 3, 32, 32)
    image = torch.full((1, 3, 32, 32), 0.2, requires_grad=True)
    only_mse = Image2StyleGANLoss(target, LossWeights((0, 0, 0, 0), 2.0), resolution=None, vgg=vgg)
    value, terms = only_mse(image)
    assert list(terms) == ["mse"]
    assert float(value.detach()) == pytest.approx(2.0 * (0.2 * 127.5) ** 2, rel=1e-5)
    value.backward()
    assert image.grad is not None and image.grad.abs().sum() > 0


def test_bf16_loss_stays_close_to_fp32():
    vgg = random_vgg()
    gen = torch.Generator().manual_seed(2)
    target = torch.rand(1, 3, 64, 64, generator=gen) * 2 - 1
    image = (target + 0.2 * torch.randn(1, 3, 64, 64, generator=gen)).clamp(-1, 1)
    fp32 = float(Image2StyleGANLoss(target, resolution=None, vgg=vgg)(image)[0])
    bf16 = float(Image2StyleGANLoss(target, resolution=None, vgg=vgg, bf16=True)(image)[0])
    assert bf16 == pytest.approx(fp32, rel=0.05)


def test_bf16_by_default_only_where_it_was_measured_faster(monkeypatch):
    vgg = random_vgg()
    target = torch.zeros(1, 3, 64, 64)
    monkeypatch.setattr(perceptual, "_BF16_FASTER", {})
    timed = []

    def seconds(vgg, probe, bf16, repeats=3):
        timed.append(bf16)
        return 0.3 if bf16 else 0.2  # fp32 faster, as on one of the project's CPUs

    monkeypatch.setattr(perceptual, "_vgg_step_seconds", seconds)
    assert Image2StyleGANLoss(target, resolution=None, vgg=vgg).bf16 is False  # the class default: fp32
    assert Image2StyleGANLoss(target, resolution=None, vgg=vgg, bf16=None).bf16 is False
    assert Image2StyleGANLoss(target, resolution=None, vgg=vgg, bf16=None).bf16 is False
    assert sorted(timed) == [False, True]  # measured once per process and device
    monkeypatch.setattr(perceptual, "_BF16_FASTER", {})
    monkeypatch.setattr(perceptual, "_vgg_step_seconds", lambda vgg, probe, bf16, repeats=3: 0.1 if bf16 else 0.2)
    assert Image2StyleGANLoss(target, resolution=None, vgg=vgg, bf16=None).bf16 is True


def test_the_bf16_probe_times_a_real_pass():
    assert 0 < perceptual._vgg_step_seconds(random_vgg(), torch.rand(1, 3, 32, 32), True, repeats=1) < 60


def test_bad_weights_and_targets_are_refused():
    with pytest.raises(ValueError, match="4 perceptual weights"):
        LossWeights((1.0, 1.0))
    with pytest.raises(ValueError, match=">= 0"):
        LossWeights(mse=-1.0)
    with pytest.raises(ValueError, match=r"\[batch, 3, H, W\]"):
        Image2StyleGANLoss(torch.zeros(3, 8, 8), vgg=random_vgg())


def test_resize_for_loss_averages_whole_factors():
    images = torch.arange(16.0).view(1, 1, 4, 4).repeat(1, 3, 1, 1)
    halved = perceptual.resize_for_loss(images, 2)
    assert halved[0, 0].tolist() == [[2.5, 4.5], [10.5, 12.5]]
    odd = perceptual.resize_for_loss(torch.rand(1, 3, 10, 10), 4)
    assert odd.shape == (1, 3, 4, 4)
    assert perceptual.resize_for_loss(images, None) is images
