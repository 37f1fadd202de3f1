"""ROAD's noisy linear imputation (Rong, Leemann et al., ICML 2022, arXiv 2202.00449), fast.

Each removed pixel becomes the weighted mean of its in-image 8-neighbours (weight 1/6 for the four
direct neighbours, 1/12 for the four diagonals; neighbours outside the image are dropped, so border
pixels have a smaller weight sum), one unknown per removed pixel and all channels solved jointly;
then ``noise * N(0,1)`` is added to the imputed pixels only. This is the system of the reference code
(``road_evaluation/imputations.py``, copied into pytorch-grad-cam), which builds it as a
``lil_matrix`` and calls ``spsolve`` per image and fraction. Here the same system is built directly in
compressed form from neighbour tables cached per image size, its unknowns are ordered by a
geometric nested dissection of the pixel grid (cached too) and it is factorised by SuperLU without
pivoting (the matrix is symmetric negative definite, so none is needed): about 2x less fill and time
than ``spsolve``'s default ordering, and no lil construction. Systems are solved on a thread pool
(SuperLU releases the GIL). If every pixel is removed the system
is singular; the imputed values are then 0 (+ noise), as the ROAD definition says.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

# (row offset, column offset, weight), as the reference's ``neighbors_weights``.
NEIGHBOURS = (
    (1, 1, 1 / 12), (0, 1, 1 / 6), (-1, 1, 1 / 12), (1, -1, 1 / 12),
    (0, -1, 1 / 6), (-1, -1, 1 / 12), (1, 0, 1 / 6), (-1, 0, 1 / 6),
)  # fmt: skip


@lru_cache(maxsize=8)
def _grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(neighbour flat index [8, n], ``n`` outside the image; weight sum of in-image neighbours [n];
    nested-dissection order [n])."""
    n = height * width
    rows, cols = np.divmod(np.arange(n), width)
    neighbours = np.full((len(NEIGHBOURS), n), n, dtype=np.int64)
    weight_sum = np.zeros(n)
    for k, (dr, dc, w) in enumerate(NEIGHBOURS):
        r, c = rows + dr, cols + dc
        inside = (r >= 0) & (r < height) & (c >= 0) & (c < width)
        neighbours[k, inside] = r[inside] * width + c[inside]
        weight_sum += w * inside
    return neighbours, weight_sum, _nested_dissection(height, width)


def _nested_dissection(height: int, width: int, leaf: int = 6) -> np.ndarray:
    """Flat pixel indices in geometric nested-dissection order: halves first, separator line last.

    A one-pixel line separates the 8-neighbour grid, so eliminating each half before its separator
    keeps the LU factors' fill at O(n log n) instead of the O(n^1.5) of a band ordering.
    """
    out: list[np.ndarray] = []

    def split(r0: int, r1: int, c0: int, c1: int) -> None:
        h, w = r1 - r0, c1 - c0
        if h <= 0 or w <= 0:
            return
        if h * w <= leaf * leaf:
            out.append((np.arange(r0, r1)[:, None] * width + np.arange(c0, c1)).ravel())
        elif h >= w:
            m = (r0 + r1) // 2
            split(r0, m, c0, c1)
            split(m + 1, r1, c0, c1)
            out.append(m * width + np.arange(c0, c1))
        else:
            m = (c0 + c1) // 2
            split(r0, r1, c0, m)
            split(r0, r1, m + 1, c1)
            out.append(np.arange(r0, r1) * width + m)

    split(0, height, 0, width)
    return np.concatenate(out)


def linear_system(
    image: np.ndarray, removed: np.ndarray
) -> tuple[sp.csc_matrix, np.ndarray, np.ndarray]:
    """The reference's system ``A x = b`` for one image [C,H,W] and removal mask [H,W].

    Returns (A [m,m], b [m,C], flat indices [m] of the unknowns in the system's order). Row i:
    ``-w_i x_i + sum_{removed nbr j} w_ij x_j = -sum_{kept nbr j} w_ij v_j`` with ``w_i`` the weight
    sum of i's in-image neighbours, i.e. x_i is the weighted mean of its neighbours.
    """
    channels, height, width = image.shape
    neighbours, weight_sum, order = _grid(height, width)
    flat_removed = removed.reshape(-1)
    unknowns = order[flat_removed[order]]  # unknowns in nested-dissection order
    m = len(unknowns)
    # b: minus the weighted sum of each pixel's kept neighbours, for all pixels by shifted slices.
    kept = np.pad(image * ~removed, ((0, 0), (1, 1), (1, 1)))
    total = np.zeros_like(image)
    for dr, dc, w in NEIGHBOURS:
        total += w * kept[:, 1 + dr : 1 + dr + height, 1 + dc : 1 + dc + width]
    b = -total.reshape(channels, -1)[:, unknowns].T
    # A, row by row as [m, 9] (diagonal + 8 neighbours; -1 = no entry); variable[n] = -1 stands for
    # "outside the image". A is symmetric, so its CSR arrays are its CSC arrays.
    variable = np.full(height * width + 1, -1, dtype=np.int64)
    variable[unknowns] = np.arange(m)
    cols = np.empty((m, 1 + len(NEIGHBOURS)), dtype=np.int64)
    cols[:, 0] = np.arange(m)
    cols[:, 1:] = variable[neighbours[:, unknowns]].T
    vals = np.empty(cols.shape)
    vals[:, 0] = -weight_sum[unknowns]
    vals[:, 1:] = [w for _, _, w in NEIGHBOURS]
    keep = cols >= 0
    indptr = np.concatenate([[0], np.cumsum(keep.sum(1))])
    matrix = sp.csc_matrix((vals[keep], cols[keep], indptr), shape=(m, m))
    return matrix, b, unknowns


def impute(
    image: np.ndarray, removed: np.ndarray, noise: float = 0.0, seed: int | None = None
) -> np.ndarray:
    """Noisy linear imputation of the ``removed`` [H,W] pixels of ``image`` [C,H,W] (float64 out).

    The noise ``noise * N(0,1)`` [C, m] is drawn from ``numpy.random.default_rng(seed)`` and given to
    the removed pixels in ascending flat-index order.
    """
    image = np.asarray(image, dtype=np.float64)
    removed = np.asarray(removed, dtype=bool)
    out = image.copy()
    flat = out.reshape(image.shape[0], -1)
    if removed.all():
        flat[:] = 0.0  # the system is singular: ROAD defines the imputation as 0 (+ noise)
    elif removed.any():
        matrix, b, unknowns = linear_system(image, removed)
        lu = spla.splu(
            matrix, permc_spec="NATURAL", diag_pivot_thresh=0.0, options={"SymmetricMode": True}
        )
        flat[:, unknowns] = lu.solve(b).T
    if noise and removed.any():
        indices = np.flatnonzero(removed)
        rng = np.random.default_rng(seed)
        flat[:, indices] += noise * rng.standard_normal((image.shape[0], len(indices)))
    return out


def impute_many(
    tasks: list[tuple[np.ndarray, np.ndarray, float, int | None]], workers: int | None = None
) -> list[np.ndarray]:
    """:func:`impute` over ``(image, removed, noise, seed)`` tasks, on ``workers`` threads.

    SuperLU releases the GIL, so threads scale with cores (2 threads: 1.9x on 2 cores, 18 systems
    of 224x224) with no process start-up or copying. ``workers=None`` uses one thread per core when
    the images are large enough (64x64 and up) for a solve to outweigh the hand-off.
    """
    if workers is None:
        large = bool(tasks) and tasks[0][1].size >= 64 * 64
        workers = len(os.sched_getaffinity(0)) if large else 0
    if workers <= 1 or len(tasks) < 2:
        return [impute(*t) for t in tasks]
    return list(_pool(workers).map(lambda task: impute(*task), tasks))


@lru_cache(maxsize=1)
def _pool(workers: int) -> ThreadPoolExecutor:
    """One thread pool per worker count, kept for the life of the process."""
    return ThreadPoolExecutor(workers, thread_name_prefix="road-imputation")
