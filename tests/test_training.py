"""Training: the pipeline and its cache (quick), and the accuracies the issue asks for (slow)."""

import dataclasses
import json

import pytest
import torch

from benchmark import provenance
from benchmark.cli import main
from benchmark.files import file_digest
from benchmark.models import load_model, registry
from benchmark.training import (
    RECIPES,
    SEED_TRANSFER_SCORES,
    Recipe,
    trainable_models,
    trained_model,
)
from explainers import create_explainer


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCHMARK_CACHE_DIR", str(tmp_path / "user-cache"))
    return tmp_path / "models"


def _same_weights(a, b) -> bool:
    sa, sb = a.net.state_dict(), b.net.state_dict()
    return all(torch.equal(sa[k], sb[k]) for k in sa)


def test_train_once_then_load_from_the_cache(cache):
    model = trained_model(
        "cnn_gap", "synthetic", epochs=1, limit=120, cache_dir=cache, progress=False
    )
    info = model.info
    assert not info["cached"] and info["train_size"] == info["test_size"] == 120
    assert 0 <= info["test_accuracy"] <= 1 and info["epochs"] == 1 and info["seconds"] >= 0
    assert info["sha256"] == model.weights_sha256 == file_digest(info["checkpoint"])
    sidecar = json.loads(open(info["checkpoint"][: -len(".pt")] + ".json").read())
    assert sidecar["cache_key"] == info["cache_key"] and sidecar["mean"] == list(model.mean)
    assert len(model.mean) == 3 and all(0.2 < m < 0.8 for m in model.mean)  # the data's stats

    again = trained_model(
        "cnn_gap", "synthetic", epochs=1, limit=120, cache_dir=cache, progress=False
    )
    assert again.info["cached"] and again.info["cache_key"] == info["cache_key"]
    assert _same_weights(model, again) and again.mean == model.mean

    other = trained_model(
        "cnn_gap", "synthetic", epochs=1, limit=120, seed=1, cache_dir=cache, progress=False
    )
    assert not other.info["cached"] and other.info["cache_key"] != info["cache_key"]
    assert not _same_weights(model, other)
    assert len(list(cache.glob("*.pt"))) == 2


def test_training_is_reproducible(tmp_path):
    runs = [
        trained_model(
            "cnn_shallow",
            "synthetic",
            epochs=1,
            limit=96,
            cache_dir=tmp_path / str(i),
            progress=False,
        )
        for i in range(2)
    ]
    assert _same_weights(*runs) and runs[0].info["sha256"] == runs[1].info["sha256"]


def test_cnn_svm_is_a_hinge_loss_linear_head_on_cnn_gap_features(cache):
    svm = trained_model(
        "cnn_svm", "synthetic", epochs=1, limit=120, cache_dir=cache, progress=False
    )
    gap = trained_model(
        "cnn_gap", "synthetic", epochs=1, limit=120, cache_dir=cache, progress=False
    )
    assert gap.info["cached"] and svm.info["base_model"]["cache_key"] == gap.info["cache_key"]
    features_svm = dict(svm.net.features.named_parameters())
    for name, value in gap.net.features.named_parameters():  # frozen features
        assert torch.equal(value, features_svm[name])
    head = svm.linear_head()
    assert isinstance(head, torch.nn.Linear) and not torch.equal(
        head.weight, gap.linear_head().weight
    )
    images = svm.normalize(torch.rand(2, 3, 64, 64))
    maps = create_explainer("cam").explain(svm, images, torch.tensor([0, 2]))
    assert maps.shape == (2, 64, 64) and torch.isfinite(maps).all()
    # The head minimises the multi-class hinge loss on the training features better than
    # cnn_gap's softmax head does (the test would fail for an unfitted or non-hinge head).
    from benchmark.data import load_dataset
    from benchmark.training import _features

    pixels, labels = load_dataset("synthetic", "train", limit=120).arrays()
    features = _features(gap, pixels)
    hinge = torch.nn.MultiMarginLoss()
    assert hinge(head(features), labels) < hinge(gap.linear_head()(features), labels)


def test_binary_sets_report_roc_auc(cache, data_dir):
    model = trained_model(
        "cnn_shallow", "pneumonia", epochs=1, limit=200, cache_dir=cache, progress=False
    )
    assert 0 <= model.info["test_roc_auc"] <= 1 and model.input_size == (1, 28, 28)


def test_train_command(cache, capsys):
    args = [
        "train",
        "cnn_gap",
        "--dataset",
        "synthetic",
        "--epochs",
        "1",
        "--limit",
        "64",
        "--quiet",
    ]
    assert main(args) == 0
    assert "test_accuracy" in capsys.readouterr().out
    assert main(args) == 0
    assert "loaded from cache" in capsys.readouterr().out


def test_untrainable_models_are_refused(cache):
    with pytest.raises(ValueError, match="trains cnn_gap, cnn_shallow, cnn_svm, .*not 'resnet50'"):
        trained_model("resnet50", "synthetic", cache_dir=cache)


def test_trainable_models_are_the_registrys_trainable_tag(monkeypatch):
    transfer = [f"efficientnet_lite{v}_transfer" for v in range(3)]
    assert trainable_models() == ["cnn_gap", "cnn_shallow", "cnn_svm", *transfer]
    assert {model for model, _ in RECIPES} <= set(trainable_models())
    toy = dataclasses.replace(registry.entry("cnn_gap"), name="toy", tags=("trainable",))
    monkeypatch.setitem(registry._entries, "toy", toy)  # a model that declares it: trained
    assert "toy" in trainable_models()


def test_recipe_fields_are_the_cache_keys():
    """Renaming, adding or changing a Recipe field changes every training cache key."""
    assert dataclasses.asdict(Recipe()) == {
        "epochs": 5,
        "batch_size": 128,
        "lr": 3e-3,
        "weight_decay": 1e-4,
        "hflip": False,
        "svm_epochs": 30,
        "svm_c": 1.0,
    }


@pytest.mark.parametrize(
    "bad, problem",
    [
        ({"epochs": 0}, "epochs must be a whole number >= 1"),
        ({"batch_size": 2.5}, "batch_size must be a whole number >= 1"),
        ({"lr": 0.0}, "lr must be positive"),
        ({"weight_decay": -1e-4}, "weight_decay must be >= 0"),
    ],
)
def test_bad_recipes_are_refused_with_the_field_named(bad, problem):
    with pytest.raises(ValueError, match=problem):
        Recipe(**bad)


# -- transfer learning: the ImageNet Lites with a head trained here --------------------------------


def _transfer(cache_dir, **kw):
    """A quick transfer training: 16 X-rays of each split, two epochs of the head."""
    return trained_model(
        "efficientnet_lite0_transfer",
        "pneumonia",
        epochs=2,
        limit=16,
        cache_dir=cache_dir,
        progress=False,
        **kw,
    )


def test_transfer_head_trains_on_grey_x_rays_is_cached_and_reproducible(tmp_path, data_dir):
    model = _transfer(tmp_path / "a")
    info = model.info
    assert not info["cached"] and info["train_size"] == info["test_size"] == 16
    assert 0 <= info["test_accuracy"] <= 1 and 0 <= info["test_roc_auc"] <= 1
    assert info["seed_study_scores"] == SEED_TRANSFER_SCORES["pneumonia"]
    # grey X-rays go in as the backbone's 3 channels at its input size, normalised its way
    assert model.input_size == (3, 224, 224) and model.mean == model.std == (0.5, 0.5, 0.5)

    # the head-only recipe leaves every backbone weight at its ImageNet value
    imagenet = load_model("efficientnet_lite0", pretrained=True).net.state_dict()
    trained = model.net.state_dict()
    head = {"model._fc.weight", "model._fc.bias"}
    assert set(trained) == set(imagenet)
    assert all(torch.equal(trained[k], imagenet[k]) for k in set(trained) - head)
    assert trained["model._fc.weight"].shape == (2, 1280)

    again = _transfer(tmp_path / "a")
    assert again.info["cached"] and _same_weights(model, again) and again.mean == model.mean
    elsewhere = _transfer(tmp_path / "b")  # same seed, new cache: the same weights, bit for bit
    assert not elsewhere.info["cached"] and elsewhere.info["sha256"] == info["sha256"]
    reseeded = _transfer(tmp_path / "a", seed=1)
    assert reseeded.info["cache_key"] != info["cache_key"] and not _same_weights(model, reseeded)


def test_transfer_models_refuse_flips(tmp_path, data_dir, monkeypatch):
    recipe = Recipe(epochs=1, hflip=True)
    monkeypatch.setitem(RECIPES, ("efficientnet_lite0_transfer", "pneumonia"), recipe)
    with pytest.raises(ValueError, match="hflip is not available for transfer models"):
        _transfer(tmp_path)


# -- provenance (benchmark/provenance.py) ----------------------------------------------------------


def test_recorded_packages_are_the_declared_dependencies(monkeypatch):
    declared = provenance.declared_packages()
    assert {"torch", "timm", "grad-cam", "scikit-image", "numba"} <= set(declared)
    assert "pytest" not in declared  # a test extra, not a dependency
    assert list(provenance.package_versions()) == declared

    def missing(name):
        raise provenance.importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(provenance.importlib.metadata, "requires", missing)  # never installed
    assert provenance.declared_packages() == declared  # read from pyproject.toml instead


# -- the full trainings (slow; runtimes in the module's report) ---------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("model_name", "dataset", "minimum"),
    [
        ("cnn_gap", "synthetic", 0.95),
        ("cnn_shallow", "synthetic", 0.95),
        ("cnn_gap", "fashion-mnist", 0.90),
        (
            "cnn_svm",
            "fashion-mnist",
            0.89,
        ),  # measured 89.4% (the seed: CNN+SVM ~0.90, SVM+mask 0.88)
    ],
)
def test_full_training_reaches_the_issue_accuracy(model_name, dataset, minimum, data_dir):
    model = trained_model(model_name, dataset, progress=False)
    assert model.info["test_accuracy"] >= minimum, model.info


@pytest.mark.slow
def test_full_training_on_pneumonia_reports_auc(data_dir):
    model = trained_model("cnn_shallow", "pneumonia", progress=False)
    assert model.info["test_roc_auc"] >= 0.9, model.info  # the seed reports 0.93


@pytest.mark.slow
def test_full_transfer_training_on_pneumonia_is_near_the_seeds_figures(data_dir):
    # measured 77.88% / 0.949 (the seed: ResNet50 83.04% / 0.906, VGG16 75% / 0.933)
    model = trained_model("efficientnet_lite0_transfer", "pneumonia", progress=False)
    assert model.info["test_accuracy"] >= 0.75 and model.info["test_roc_auc"] >= 0.93, model.info
