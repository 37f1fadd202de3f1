"""Insertion's closed form; its agreement with the RISE code is in test_deletion.py (shared)."""

from __future__ import annotations

import pytest

from metrics import create_metric
from tests.metrics.test_deletion import _sigmoid, _toy


def test_insertion_on_a_linear_toy_is_hand_computable():
    model, images, targets, saliency = _toy()
    scores = create_metric("insertion", steps=4, substrate="mean")(
        model=model, images=images, targets=targets, saliency=saliency
    )
    curve = [_sigmoid(z) for z in (0.0, 2.0, 3.0, 4.0, 3.0)]  # from 0, adding 2, 1, 1, -1
    auc = (sum(curve) - curve[0] / 2 - curve[-1] / 2) / 4
    assert scores["auc"].item() == pytest.approx(auc, rel=1e-6)
