from __future__ import annotations

import numpy as np
import pytest
import torch

from metrics._imputation import impute, impute_many


def _reference(image, removed):
    from pytorch_grad_cam.metrics.road import NoisyLinearImputer

    kept = torch.from_numpy((~removed).astype(np.float32))
    out = NoisyLinearImputer(noise=0.0)(torch.from_numpy(image).float(), kept)
    return out.numpy()


@pytest.mark.parametrize("fraction", [0.05, 0.5, 0.95])
def test_matches_reference_imputer(fraction):
    rng = np.random.default_rng(0)
    image = rng.random((3, 17, 23))
    removed = rng.random((17, 23)) < fraction
    np.testing.assert_allclose(impute(image, removed), _reference(image, removed), atol=1e-6)


def test_blob_matches_reference():
    rng = np.random.default_rng(1)
    image = rng.standard_normal((2, 30, 30))
    removed = np.zeros((30, 30), bool)
    removed[:20, 5:] = True  # touches the border
    np.testing.assert_allclose(impute(image, removed), _reference(image, removed), atol=1e-5)


def test_linear_ramp_is_reproduced_exactly():
    ramp = np.fromfunction(lambda c, i, j: 0.3 * i - 0.2 * j + c, (3, 30, 30))
    removed = np.zeros((30, 30), bool)
    removed[5:25, 3:20] = True
    removed[1:3, 1:29] = True
    removed[10:28, 26:29] = True  # interior holes (at the border the mean is one-sided)
    np.testing.assert_allclose(impute(ramp, removed), ramp, atol=1e-10)


def test_all_removed_imputes_zero_and_kept_pixels_untouched():
    image = np.random.default_rng(0).random((3, 8, 8))
    np.testing.assert_array_equal(impute(image, np.ones((8, 8), bool)), 0.0)
    removed = np.zeros((8, 8), bool)
    removed[2:5, 2:5] = True
    out = impute(image, removed, noise=0.5, seed=3)
    np.testing.assert_array_equal(out[:, ~removed], image[:, ~removed])
    noisy_again = impute(image, removed, noise=0.5, seed=3)
    np.testing.assert_array_equal(out, noisy_again)  # seeded
    clean = impute(image, removed)
    spread = (out - clean)[:, removed]
    assert 0.2 < spread.std() < 0.8  # noise on imputed pixels only, sigma 0.5


@pytest.mark.parametrize("side, count", [(12, 300), (70, 3)])
def test_batched_and_threaded_imputation_equal_one_image_at_a_time(side, count):
    # 12x12: block-diagonal batches of 227 images (two blocks here); 70x70: one image per solve.
    rng = np.random.default_rng(0)
    tasks = [
        (rng.random((3, side, side)), rng.random((side, side)) < rng.random(), 0.01, [i, 0, 1])
        for i in range(count)
    ]
    tasks[1] = (tasks[1][0], np.ones((side, side), bool), 0.01, [1, 0, 1])  # all removed: 0 + noise
    tasks[2] = (tasks[2][0], np.zeros((side, side), bool), 0.01, [2, 0, 1])  # nothing removed
    one_by_one = [impute(*task) for task in tasks]
    for workers in (0, 2):
        for a, b in zip(one_by_one, impute_many(tasks, workers=workers), strict=True):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(one_by_one[2], tasks[2][0])


def test_the_imputation_hook_routes_the_systems_and_is_restored_even_on_errors():
    from metrics._imputation import imputation_map, impute_here

    rng = np.random.default_rng(0)
    tasks = [(rng.random((3, 12, 10)), rng.random((12, 10)) < 0.4, 0.01, 7 + i) for i in range(3)]
    here = impute_many(tasks, workers=1)
    seen = []

    def solve(given):
        seen.append(len(given))
        return impute_here(given, 0)

    with imputation_map(solve):
        routed = impute_many(tasks, workers=1)
    assert seen == [3], "inside the block the map solves the systems"
    assert all(np.array_equal(a, b) for a, b in zip(here, routed, strict=True)), "same bytes"
    with pytest.raises(RuntimeError), imputation_map(solve):
        raise RuntimeError("boom")
    impute_many(tasks, workers=1)
    assert seen == [3], "the previous (local) map is back after a block that raised"
