"""The tabular track: tables from cards, scikit-learn models, feature attributions and their scores.

* :mod:`benchmark.tabular.data`: ``load_table(name)`` and its seeded, stratified split;
* :mod:`benchmark.tabular.models`: seeded scikit-learn classifiers with test accuracy and F1;
* :mod:`benchmark.tabular.explainers`: one contract, ``explain(model, rows [B,F], targets [B])
  -> attributions [B,F]`` float64, for the target class's output (probability);
* :mod:`benchmark.tabular.metrics`: per-row scores of attributions (feature removal,
  faithfulness correlation, agreement between explainers, ground-truth recovery);
* :mod:`benchmark.tabular.synthetic`: a linear model whose Shapley values have a closed form;
* :mod:`benchmark.tabular.run`: a tabular suite (``suites/*.toml``) into the results store,
  rendered by the existing leaderboard; :mod:`benchmark.tabular.plots`: beeswarm / summary plots.

Randomised steps are seeded from a ``seed`` field and each row's content (:func:`row_seeds`), so a
row gets the same attributions and scores alone or in any batch.
"""

from __future__ import annotations

import hashlib

import numpy as np


def row_seeds(rows: np.ndarray, seed: int, *extra: object) -> list[int]:
    """One 63-bit seed per row: a keyed BLAKE2b hash of the row's float64 bytes (and ``extra``)."""
    data = np.ascontiguousarray(rows, dtype=np.float64)
    key = repr((seed, *extra)).encode()[:64]
    digests = (hashlib.blake2b(row.tobytes(), digest_size=8, key=key).digest() for row in data)
    return [int.from_bytes(d, "little") >> 1 for d in digests]


def rank_features(scores: np.ndarray, rows: np.ndarray, seed: int) -> np.ndarray:
    """Feature indices per row [B,F], highest score first; ties broken by a permutation seeded by
    the row's content (never by feature order)."""
    order = np.empty(scores.shape, dtype=np.int64)
    for i, (s, row_seed) in enumerate(zip(scores, row_seeds(rows, seed, "rank"), strict=True)):
        tie = np.random.default_rng(row_seed).permutation(scores.shape[1])
        order[i] = np.lexsort((tie, -s))
    return order


__all__ = ["rank_features", "row_seeds"]
