"""Closed-form and hand cases of the randomisation metrics (mprt, smprt, emprt, random_logit) and
their shared machinery: the forward-order layer cascade, seeded re-initialisation on a copy,
similarities with ties and constant maps. Shapes, determinism and batch independence are the
contract tests'."""

from __future__ import annotations

import pytest
import torch
from scipy.stats import spearmanr
from torch import nn

import metrics
from benchmark.models import Classifier
from explainers import create_explainer
from metrics._randomisation import layer_groups, layer_seed, randomise, randomised_copy, spearman
from tests.models import linear_classifier, pixel_weights

SANITY = [n for n in metrics.list_metrics() if "sanity" in metrics.registry.get(n).tags]


class TopOnly(nn.Module):
    """logits = top(flatten(x)) + 0 * lower(x).sum(): the lower layer never matters."""

    def __init__(self, shape, classes: int) -> None:
        super().__init__()
        self.lower = nn.Conv2d(shape[0], 2, 3, padding=1)
        self.top = nn.Linear(shape[0] * shape[1] * shape[2], classes)

    def forward(self, x):
        unused = self.lower(x).sum()  # called first: the bottom of the cascade
        return self.top(x.flatten(1)) + 0.0 * unused


def _images(n=3, shape=(2, 8, 8), seed=0):
    return torch.randn(n, *shape, generator=torch.Generator().manual_seed(seed))


def _score(name, model, explainer_name, images, targets, **params):
    explainer = create_explainer(explainer_name)
    saliency = explainer.explain(model, images.clone(), targets.clone())
    metric = metrics.create_metric(name, **params)
    return metric(
        model=model, images=images, targets=targets, saliency=saliency, explainer=explainer
    )


def test_mprt_on_a_model_whose_top_layer_is_the_only_one_that_matters():
    """Saliency (|d logit_c / d x| summed over channels) of a linear top is |W_c|: randomising the
    top changes it to the top's re-initialised |W'_c| (its own reset_parameters under the layer's
    seed); randomising the lower layer then changes nothing."""
    shape, classes = (2, 8, 8), 3
    torch.manual_seed(0)
    model = Classifier.from_module(TopOnly(shape, classes), (0.5,) * 2, (0.5,) * 2, shape)
    images, targets = _images(), torch.tensor([0, 2, 1])
    scores = _score("mprt", model, "captum_saliency", images, targets, seed=7)
    assert list(scores)[:2] == ["spearman", "ssim"]
    assert {"spearman@top", "spearman@lower", "ssim@top", "ssim@lower"} <= set(scores)

    top = nn.Linear(shape[0] * shape[1] * shape[2], classes)
    with torch.random.fork_rng():
        torch.manual_seed(layer_seed(7, "top"))
        top.reset_parameters()
    before = model.net.top.weight.detach().view(classes, *shape).abs().sum(1)
    after = top.weight.detach().view(classes, *shape).abs().sum(1)
    expected = [spearmanr(before[t].flatten(), after[t].flatten())[0] for t in targets]
    torch.testing.assert_close(scores["spearman@top"], torch.tensor(expected, dtype=torch.float32))
    torch.testing.assert_close(scores["spearman@lower"], scores["spearman@top"])
    torch.testing.assert_close(scores["spearman"], scores["spearman@lower"])


@pytest.mark.parametrize("explainer", ["center", "silhouette"])
@pytest.mark.parametrize("name", SANITY)
def test_a_model_independent_map_is_unchanged_and_fails_every_sanity_check(
    name, explainer, small_cnn
):
    images, targets = _images(shape=(3, 20, 20)), torch.tensor([0, 3, 1])
    scores = _score(name, small_cnn, explainer, images, targets, **_fast(name))
    metric = metrics.registry.get(name)
    (headline,) = metric.headline_scores()[:1]
    unchanged = 0.0 if name == "emprt" else 1.0  # no entropy rise; similarity 1
    for score, values in scores.items():
        torch.testing.assert_close(values, torch.full_like(values, unchanged), msg=score)
    assert not metric.passes(float(scores[headline].mean()))


def _fast(name):
    return metrics.registry.get(name).fast_params


def test_a_gradient_map_of_a_small_cnn_changes_under_randomisation_and_passes(small_cnn):
    images, targets = _images(shape=(3, 20, 20)), torch.tensor([0, 3, 1])
    for name in ("mprt", "smprt"):
        scores = _score(name, small_cnn, "captum_saliency", images, targets, **_fast(name))
        assert (scores["spearman"] < 0.5).all(), (name, scores["spearman"])
        assert metrics.registry.get(name).passes(float(scores["spearman"].mean()))


def test_smprt_with_one_sample_is_mprt_bottom_up_ending_at_the_same_random_model(small_cnn):
    """Layers draw their weights from their own seed: whatever the order, the fully randomised
    model is the same, so the headline scores agree; the per-layer ones name other steps."""
    images, targets = _images(shape=(3, 20, 20)), torch.tensor([0, 3, 1])
    top_down = _score("mprt", small_cnn, "captum_saliency", images, targets)
    bottom_up = _score("smprt", small_cnn, "captum_saliency", images, targets, samples=1)
    torch.testing.assert_close(top_down["spearman"], bottom_up["spearman"])
    torch.testing.assert_close(top_down["ssim"], bottom_up["ssim"])
    # after the first bottom-up step only the first layer is random, after the first top-down
    # step only the last: different models
    assert not torch.equal(top_down["spearman@7"], bottom_up["spearman@0"])


class Reordered(nn.Module):
    """Defined head first, called body first; BatchNorm after the first convolution."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(4, 2)
        self.body = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
        self.unused = nn.Linear(3, 3)

    def forward(self, x):
        return self.head(self.body(x).mean((2, 3)))


def _reordered() -> Classifier:
    torch.manual_seed(0)
    net = Reordered()
    net.body[1].running_mean.fill_(0.3)
    nn.init.normal_(net.body[1].weight)
    return Classifier.from_module(net, (0.5,), (0.5,), (1, 8, 8))


def test_layers_come_in_forward_order_with_normalisation_joined_to_the_layer_before():
    model = _reordered()
    groups = layer_groups(model, torch.zeros(2, 1, 8, 8))
    assert groups == [("body.0", ["body.0", "body.1"]), ("head", ["head"])]  # unused: never called


def test_randomise_reinitialises_the_copy_keeps_running_stats_and_leaves_the_model_alone():
    model = _reordered()
    original = {k: v.clone() for k, v in model.net.state_dict().items()}
    torch.manual_seed(5)
    rng = torch.get_rng_state()
    copy = randomised_copy(model)
    randomise(copy.net, ["body.0", "body.1"], seed=0)
    assert torch.equal(torch.get_rng_state(), rng), "the global RNG is restored"
    for key, value in model.net.state_dict().items():
        assert torch.equal(value, original[key]), key
    bn = copy.net.body[1]
    assert torch.equal(bn.weight, torch.ones(4)) and torch.equal(bn.bias, torch.zeros(4))
    assert torch.equal(bn.running_mean, original["body.1.running_mean"])
    assert not torch.equal(copy.net.body[0].weight, original["body.0.weight"])
    assert torch.equal(copy.net.head.weight, original["head.weight"])
    again = randomised_copy(model)
    randomise(again.net, ["body.0"], seed=0)
    assert torch.equal(again.net.body[0].weight, copy.net.body[0].weight), "seeded per layer"


def test_spearman_ties_and_constant_maps():
    a = torch.tensor([[[0.0, 0.0], [1.0, 2.0]]])
    b = torch.tensor([[[0.0, 3.0], [3.0, 5.0]]])
    expected = spearmanr(a.flatten(), b.flatten())[0]  # average ranks for ties, as scipy
    torch.testing.assert_close(spearman(a, b), torch.tensor([expected], dtype=torch.float64))
    ones = torch.ones(1, 2, 2)
    assert spearman(ones, 3 * ones).item() == 1.0  # two constant maps: the same map up to scale
    assert spearman(ones, b).item() == 0.0 and spearman(b, ones).item() == 0.0
    nearly = ones + torch.tensor([[[0.0, 1e-9], [0.0, 0.0]]])  # float noise is no order
    assert spearman(nearly, ones).item() == 1.0


def test_random_logit_by_hand_on_a_linear_model():
    """Saliency of a linear model for class k is |W_k| summed over channels: the score is the
    rank correlation of the target's and the drawn class's weight magnitudes."""
    shape, classes = (2, 6, 6), 4
    model = linear_classifier(shape, classes, seed=1)
    images, targets = _images(n=8, shape=shape), torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    metric = metrics.create_metric("random_logit", seed=3)
    others = metric.other_classes(images, targets, classes)
    assert (others != targets).all() and ((others >= 0) & (others < classes)).all()
    weights = pixel_weights(model).abs().sum(1)
    expected = [
        spearmanr(weights[t].flatten(), weights[o].flatten())[0]
        for t, o in zip(targets, others, strict=True)
    ]
    scores = _score("random_logit", model, "captum_saliency", images, targets, seed=3)
    torch.testing.assert_close(scores["spearman"], torch.tensor(expected, dtype=torch.float32))


def test_random_logit_sees_a_sign_flip_of_signed_maps_of_two_opposite_classes():
    """Two classes with W_1 = -W_0: signed gradient x input maps are negatives (Spearman -1),
    their magnitudes identical (Spearman 1: the test fails them)."""
    shape = (1, 6, 6)
    model = linear_classifier(shape, 2, seed=2)
    with torch.no_grad():
        model.net[1].weight[1] = -model.net[1].weight[0]
    images, targets = _images(n=2, shape=shape), torch.tensor([0, 1])
    signed = metrics.create_metric("random_logit")
    explainer = create_explainer("gradient_pixel", signed=True)
    maps = explainer.explain(model, images, targets)
    scores = signed(model=model, images=images, targets=targets, saliency=maps, explainer=explainer)
    torch.testing.assert_close(scores["spearman"], torch.full((2,), -1.0))
    magnitude = _score("random_logit", model, "gradient_pixel", images, targets)
    torch.testing.assert_close(magnitude["spearman"], torch.ones(2))
    assert not metrics.registry.get("random_logit").passes(float(magnitude["spearman"].mean()))


def test_emprt_is_the_entropy_rise_over_ln_bins_by_hand(small_cnn):
    """A constant original map has entropy 0 (one full bin); the score is then the randomised
    map's histogram entropy over ln(bins)."""
    import math

    import numpy as np
    from scipy.stats import entropy

    images, targets = _images(n=2, shape=(3, 20, 20)), torch.tensor([0, 1])
    explainer = create_explainer("captum_saliency")
    flat = torch.full((2, 20, 20), 0.3)
    metric = metrics.create_metric("emprt", bins=10)
    scores = metric(
        model=small_cnn, images=images, targets=targets, saliency=flat, explainer=explainer
    )
    copy = randomised_copy(small_cnn)
    for _, members in layer_groups(copy, images):
        randomise(copy.net, members, 0)
    maps = explainer.explain(copy, images, targets).double()
    expected = [entropy(np.histogram(m.flatten().numpy(), bins=10)[0]) / math.log(10) for m in maps]
    torch.testing.assert_close(scores["entropy_rise"], torch.tensor(expected, dtype=torch.float32))
