"""VGG-16: Flax port against a PyTorch VGG-16 written here, through the converter."""

from __future__ import annotations

import numpy as np
import pytest

from poz_jax.models import convert
from poz_jax.models.vgg import VGG16, _pool_windows, adaptive_avg_pool, param_shapes

torch = nn = None  # PyTorch, imported by _import_torch when this file's first test runs


@pytest.fixture(scope="module", autouse=True)
def _import_torch():
    # On use, not at collection: every xdist worker collects this file, and
    # importing torch costs each a second.
    global torch, nn
    torch = pytest.importorskip("torch")
    nn = torch.nn


pytestmark = pytest.mark.slow  # VGG-16 in PyTorch and Flax: outside the fast loop


def _torch_vgg16() -> nn.Module:
    """torchvision's vgg16 layout (same state-dict keys), with He-scaled random weights."""
    layers, cin = [], 3
    for v in [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M"] + [
        512,
        512,
        512,
        "M",
    ]:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(cin, v, 3, padding=1), nn.ReLU(inplace=True)]
            cin = v
    model = nn.Module()
    model.features = nn.Sequential(*layers)
    model.avgpool = nn.AdaptiveAvgPool2d((7, 7))
    model.classifier = nn.Sequential(
        nn.Linear(512 * 7 * 7, 4096),
        nn.ReLU(True),
        nn.Dropout(),
        nn.Linear(4096, 4096),
        nn.ReLU(True),
        nn.Dropout(),
        nn.Linear(4096, 1000),
    )
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                fan_in = m.weight[0].numel()
                m.weight.normal_(0.0, float(np.sqrt(2.0 / fan_in)), generator=gen)
                m.bias.uniform_(-0.1, 0.1, generator=gen)
    return model.eval()


def _torch_forward(model, images_nchw):
    """``(fc7 after ReLU, logits)`` of the PyTorch model, in eval mode."""
    with torch.no_grad():
        x = model.avgpool(model.features(images_nchw)).flatten(1)
        fc7 = model.classifier[:5](x)
        return fc7.numpy(), model.classifier[5:](fc7).numpy()


@pytest.fixture(scope="module")
def torch_model():
    torch.set_num_threads(2)
    return _torch_vgg16()


def _rel_err(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a) - b)) / np.max(np.abs(b)))


@pytest.fixture(scope="module")
def converted(torch_model, tmp_path_factory):
    """The torch model's weights through .pth -> convert-vgg16 -> .npz -> load_params, once."""
    folder = tmp_path_factory.mktemp("vgg")
    torch.save(torch_model.state_dict(), folder / "vgg16.pth")
    convert.convert(folder / "vgg16.pth", folder / "vgg16.npz")
    return convert.load_params(folder / "vgg16.npz")


@pytest.mark.parametrize("size", [32, 224])
def test_converted_torchvision_weights_match_pytorch(torch_model, converted, size):
    rng = np.random.default_rng(size)
    images = rng.normal(size=(2, 3, size, size)).astype(np.float32)
    fc7_ref, logits_ref = _torch_forward(torch_model, torch.from_numpy(images))
    assert (fc7_ref > 0).mean() > 0.05  # a meaningful comparison, not all zeros
    out = VGG16().apply({"params": converted}, images.transpose(0, 2, 3, 1))
    assert out["fc7"].shape == (2, 4096) and out["logits"].shape == (2, 1000)
    assert _rel_err(out["fc7"], fc7_ref) < 1e-4
    assert _rel_err(out["logits"], logits_ref) < 1e-4
    # Post-ReLU: the zeros PoZ counts must be the same zeros.
    np.testing.assert_array_equal(np.asarray(out["fc7"]) == 0, fc7_ref == 0)


def test_timm_safetensors_layout_gives_the_same_params(torch_model, tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    sd = {k: v.numpy() for k, v in torch_model.state_dict().items()}
    timm = {k: v for k, v in sd.items() if k.startswith("features.")}
    timm["pre_logits.fc1.weight"] = sd["classifier.0.weight"].reshape(4096, 512, 7, 7)
    timm["pre_logits.fc1.bias"] = sd["classifier.0.bias"]
    timm["pre_logits.fc2.weight"] = sd["classifier.3.weight"].reshape(4096, 4096, 1, 1)
    timm["pre_logits.fc2.bias"] = sd["classifier.3.bias"]
    timm["head.fc.weight"] = sd["classifier.6.weight"]
    timm["head.fc.bias"] = sd["classifier.6.bias"]
    st.save_file(timm, str(tmp_path / "model.safetensors"))
    from_timm = convert.to_flax(convert.read_state_dict(tmp_path / "model.safetensors"))
    from_tv = convert.to_flax(sd)
    assert from_timm.keys() == from_tv.keys()
    for layer in from_tv:
        for kind in ("kernel", "bias"):
            np.testing.assert_array_equal(from_timm[layer][kind], from_tv[layer][kind])


def test_safetensors_reader_handles_bf16_and_f16(tmp_path):
    st = pytest.importorskip("safetensors.torch")
    x = torch.randn(3, 5)
    st.save_file({"a": x.to(torch.bfloat16), "b": x.to(torch.float16)}, str(tmp_path / "t.st"))
    got = convert.read_safetensors(tmp_path / "t.st")
    np.testing.assert_array_equal(got["a"], x.to(torch.bfloat16).float().numpy())
    np.testing.assert_array_equal(got["b"], x.to(torch.float16).float().numpy())


def test_converter_errors_are_clear(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        convert.read_state_dict(tmp_path / "missing.pth")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x05")
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        convert.read_state_dict(bad)
    with pytest.raises(ValueError, match="features.0.weight"):
        convert.to_flax({"something.else": np.zeros(3)})
    # A head of the wrong shape: the key is named, not a bare reshape error.
    convs = {}
    for index in convert.FEATURE_INDICES:
        convs[f"features.{index}.weight"] = np.zeros((2, 2, 1, 1), np.float32)
        convs[f"features.{index}.bias"] = np.zeros(2, np.float32)
    for head, msg in (
        (
            {"classifier.0.weight": np.zeros((4, 50))},
            "'classifier.0.weight' have shape \\(4, 50\\)",
        ),
        ({"pre_logits.fc1.weight": np.zeros((4, 50))}, "'pre_logits.fc1.weight' have shape"),
    ):
        with pytest.raises(ValueError, match=msg):
            convert.to_flax({**convs, **head})
    (tmp_path / "other.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a readable .npz"):
        convert.load_params(tmp_path / "other.npz")
    with pytest.raises(ValueError, match="convert-vgg16"):
        convert.load_params(tmp_path / "nothing.npz")


def test_adaptive_avg_pool_matches_pytorch():
    rng = np.random.default_rng(1)
    for h, w in [(1, 1), (2, 3), (5, 9), (7, 7), (10, 14)]:
        x = rng.normal(size=(2, 4, h, w)).astype(np.float32)
        ref = nn.AdaptiveAvgPool2d((7, 7))(torch.from_numpy(x)).numpy()
        got = adaptive_avg_pool(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
        np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(_pool_windows(10, 7).sum(1), 1.0)


def test_vgg16_has_torchvision_shapes():
    shapes = param_shapes()  # what random_params draws, without drawing 138 M numbers
    assert shapes["conv1_1"]["kernel"] == (3, 3, 3, 64)
    assert shapes["fc6"]["kernel"] == (25088, 4096)
    assert shapes["fc8"]["kernel"] == (4096, 1000)
    assert sum(int(np.prod(s)) for w in shapes.values() for s in w.values()) == 138_357_544


def test_apoz_of_every_layer_matches_pytorchs_zeros(torch_model, converted):
    from poz_jax.models.vgg import APOZ_LAYERS, layer_apoz

    rng = np.random.default_rng(4)
    images = rng.normal(size=(3, 32, 32, 3)).astype(np.float32)
    # Pre-activations from hooks (cloned: the ReLUs work in place), in layer order.
    pre = []
    linear = [torch_model.classifier[0], torch_model.classifier[3]]
    mods = [m for m in torch_model.features if isinstance(m, nn.Conv2d)] + linear
    hooks = [m.register_forward_hook(lambda m, i, o: pre.append(o.detach().clone())) for m in mods]
    _torch_forward(torch_model, torch.from_numpy(images.transpose(0, 3, 1, 2)).contiguous())
    for h in hooks:
        h.remove()
    got = layer_apoz(converted, images, batch=2)
    assert list(got) == list(APOZ_LAYERS) and len(pre) == len(APOZ_LAYERS)
    for name, z in zip(APOZ_LAYERS, pre, strict=True):
        z = z.numpy()
        z = z.transpose(0, 2, 3, 1).reshape(-1, z.shape[1]) if z.ndim == 4 else z
        # The two frameworks round differently: a pre-activation within float32's
        # reach of 0 (1e-4 of the layer's largest, far above fan-in * eps) may
        # land on either side, so the APoZ lies between the two counts.
        tol = 1e-4 * np.abs(z).max()
        lo, hi = (z < -tol).mean(0), (z <= tol).mean(0)
        assert got[name].shape == (z.shape[1],)
        assert np.all(got[name] >= lo - 1e-12) and np.all(got[name] <= hi + 1e-12), name
    assert 0 < np.mean(got["conv1_1"]) < 1
    with pytest.raises(ValueError, match="layers must be names"):
        layer_apoz(converted, images, ("pool1",))
    with pytest.raises(ValueError, match="images must be"):
        layer_apoz(converted, images[:, :16])
