from __future__ import annotations

import pytest
import torch

from metrics import create_metric
from tests.metrics.test_contract import assert_batch_independent


def _batch(n=3, size=(10, 10)):
    g = torch.Generator().manual_seed(0)
    images = torch.randn(n, 3, *size, generator=g)
    saliency = torch.rand(n, *size, generator=g)  # no ties
    return images, saliency


def _reference(cls, percentile, model, images, saliency, targets):
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    metric = cls(percentile)
    metric.perturbation.imputer.noise = 0.0
    outputs = [ClassifierOutputSoftmaxTarget(int(t)) for t in targets]
    return metric(images, saliency.numpy(), outputs, model.net)


@pytest.mark.parametrize("fraction", [0.1, 0.3, 0.9])
def test_agrees_with_pytorch_grad_cam_per_fraction(small_cnn, fraction):
    from pytorch_grad_cam.metrics.road import ROADLeastRelevantFirst, ROADMostRelevantFirst

    images, saliency = _batch()  # 100 pixels: np.percentile's count equals floor(f*n)
    targets = torch.tensor([0, 2, 4])
    ours = create_metric("road", fractions=(fraction,), noise=0.0)(
        model=small_cnn, images=images, targets=targets, saliency=saliency
    )
    # pytorch-grad-cam's ROADMostRelevantFirst(p) removes the top 100 - p percent.
    p = round(100 * (1 - fraction))
    morf = _reference(ROADMostRelevantFirst, p, small_cnn, images, saliency, targets)
    lerf = _reference(ROADLeastRelevantFirst, p, small_cnn, images, saliency, targets)
    torch.testing.assert_close(ours["morf"] / 100, torch.tensor(morf).float(), atol=1e-4, rtol=0)
    torch.testing.assert_close(ours["lerf"] / 100, torch.tensor(lerf).float(), atol=1e-4, rtol=0)
    assert ours["morf"].abs().max() > 1.0  # the test model reacts: the comparison is not vacuous


def test_agrees_with_road_combined_average(small_cnn):
    from pytorch_grad_cam.metrics.road import ROADCombined
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    images, saliency = _batch(2)
    targets = torch.tensor([1, 3])
    reference = ROADCombined()
    for averager in (reference.morf_averager, reference.lerf_averager):
        inner = averager.imputer
        averager.imputer = lambda p, inner=inner: _noiseless(inner(p))
    outputs = [ClassifierOutputSoftmaxTarget(int(t)) for t in targets]
    theirs = reference(images, saliency.numpy(), outputs, small_cnn.net)
    ours = create_metric("road", noise=0.0)(
        model=small_cnn, images=images, targets=targets, saliency=saliency
    )
    torch.testing.assert_close(
        ours["combined"] / 100, torch.tensor(theirs).float(), atol=1e-4, rtol=0
    )
    torch.testing.assert_close(ours["combined"], (ours["lerf"] - ours["morf"]) / 2)


def _noiseless(metric):
    metric.perturbation.imputer.noise = 0.0
    return metric


def test_seeded_batch_independent_and_timed(small_cnn):
    images, saliency = _batch(3)
    targets = torch.tensor([0, 1, 2])
    metric = create_metric("road", fractions=(0.2, 0.6), batch_size=3)
    a = assert_batch_independent(metric, small_cnn, images, targets, saliency, atol=1e-4)
    b = metric(model=small_cnn, images=images, targets=targets, saliency=saliency)
    for k in ("morf", "lerf", "combined"):
        torch.testing.assert_close(a[k], b[k])
    assert metric.timings["imputation"] > 0 and metric.timings["forward"] > 0
    noisier = create_metric("road", fractions=(0.2, 0.6), noise=0.5)
    c = noisier(model=small_cnn, images=images, targets=targets, saliency=saliency)
    assert not torch.allclose(a["morf"], c["morf"])


def test_road_accuracy_curve_columns(small_cnn):
    images, saliency = _batch(3)
    targets = small_cnn.probabilities(images).argmax(1)
    metric = create_metric("road_accuracy", fractions=(0.1, 0.5, 0.9), noise=0.0)
    scores = metric(model=small_cnn, images=images, targets=targets, saliency=saliency)
    assert set(scores) == set(metric.higher_is_better)
    assert {"morf@0.1", "lerf@0.9", "morf", "lerf"} <= set(scores)
    for order in ("morf", "lerf"):
        curve = torch.stack([scores[f"{order}@{f}"] for f in (0.1, 0.5, 0.9)])
        assert set(curve.unique().tolist()) <= {0.0, 100.0}
        torch.testing.assert_close(scores[order], curve.mean(0))


def test_road_accuracy_imputes_in_pixel_space(small_cnn):
    """All removed: pixel-space imputation gives 0 pixels (black), input-space gives 0 inputs."""
    from metrics import _road

    images, saliency = _batch(1)
    timings: dict[str, float] = {}
    kw = dict(fractions=(1.0,), noise=0.0, seed=0, batch_size=4, workers=0, timings=timings)
    black = small_cnn.normalize(torch.zeros_like(images))
    for pixel_space, filled in ((True, black), (False, torch.zeros_like(images))):
        probs, _ = _road.road_outputs(
            small_cnn, images, torch.tensor([1]), saliency, pixel_space=pixel_space, **kw
        )
        expected = small_cnn.probabilities(filled)[0, 1]
        torch.testing.assert_close(probs[0, 0, 0], expected, atol=1e-6, rtol=0)


def test_cpu_forwards_in_single_threaded_chunks_match_one_batch(small_cnn, monkeypatch):
    from metrics import _forward

    images, _ = _batch(n=11)
    targets = torch.tensor([0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0])
    with torch.no_grad():
        expected = small_cnn.probabilities(images)
    threads = torch.get_num_threads()
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)  # the pool even on a 1-core machine
    monkeypatch.setattr(_forward, "CPU_CHUNK_VALUES", 3 * images[0].numel())  # chunks of 3: 3,3,3,2
    with torch.enable_grad():
        probs, hits = _forward.forward(small_cnn, images, targets, batch_size=64)
    assert not probs.requires_grad  # no graph, though the worker threads start with grad mode on
    torch.testing.assert_close(probs, expected.gather(1, targets.view(-1, 1))[:, 0])
    assert torch.equal(hits, expected.argmax(1) == targets)
    monkeypatch.undo()
    assert torch.get_num_threads() == threads  # the caller's thread count is untouched
