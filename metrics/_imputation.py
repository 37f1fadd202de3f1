"""ROAD's noisy linear imputation (Rong, Leemann et al., ICML 2022, arXiv 2202.00449), fast.

Each removed pixel becomes the weighted mean of its in-image 8-neighbours (weight 1/6 for the four
direct neighbours, 1/12 for the four diagonals; neighbours outside the image are dropped, so border
pixels have a smaller weight sum), one unknown per removed pixel and all channels solved jointly;
then ``noise * N(0,1)`` is added to the imputed pixels only. This is the system of the reference code
(``road_evaluation/imputations.py``, copied into pytorch-grad-cam), which builds it as a
``lil_matrix`` and calls ``spsolve`` per image and fraction. Here each system is solved by a
multifrontal Cholesky on the nested-dissection tree of the pixel grid (:mod:`metrics._multifrontal`:
dense BLAS blocks, no symbolic analysis, about 4x faster than SuperLU on the same ordering), one
system per task on a thread pool (the solver releases the GIL). If every pixel is removed the system
is singular; the imputed values are then 0 (+ noise), as the ROAD definition says.

Where the systems are solved is a hook: inside ``with imputation_map(solve)`` (an executor sets it
for the duration of its work: :mod:`benchmark.executors.ray` sends them out as Ray CPU tasks),
:func:`impute_many` hands its tasks to ``solve`` instead of this process's threads. Every system is
independent and seeded by its task, so where it is solved does not change a byte of the result.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import lru_cache

import numpy as np
from threadpoolctl import threadpool_limits

#: One noisy linear imputation: (image [C,H,W], removed [H,W], noise, seed).
Task = tuple[np.ndarray, np.ndarray, float, "int | list | None"]
#: Solves a list of tasks, returning their imputed images in the same order.
SystemsMap = Callable[[list[Task]], list[np.ndarray]]

_systems_map: SystemsMap | None = None  # set by imputation_map(); None: this process's threads


def add_noise(out: np.ndarray, removed: np.ndarray, noise: float, seed) -> None:
    """Add ``noise * N(0,1)`` from ``default_rng(seed)``, [C, m], onto the ``m`` removed pixels
    [H,W] of ``out`` [C,H,W] in ascending flat-index order (in place; the CPU and GPU solvers' one
    draw)."""
    count = int(np.count_nonzero(removed))
    if noise and count:
        from metrics._multifrontal import add_at_removed  # numba, as the solver

        values = noise * np.random.default_rng(seed).standard_normal((out.shape[0], count))
        add_at_removed(out.reshape(out.shape[0], -1), removed.reshape(-1), values)


def impute(
    image: np.ndarray, removed: np.ndarray, noise: float = 0.0, seed: int | None = None
) -> np.ndarray:
    """Noisy linear imputation of the ``removed`` [H,W] pixels of ``image`` [C,H,W] (float64 out).

    The noise ``noise * N(0,1)`` [C, m] is drawn from ``numpy.random.default_rng(seed)`` and given to
    the removed pixels in ascending flat-index order.
    """
    return impute_here([(image, removed, noise, seed)], workers=0)[0]


@contextmanager
def imputation_map(solve: SystemsMap) -> Iterator[None]:
    """Within the block, :func:`impute_many` (but not :func:`impute`) gives its tasks to
    ``solve(tasks)``, which must return :func:`impute_here`'s result (e.g. by calling it on chunks
    of the tasks elsewhere); the previous map is restored on exit."""
    global _systems_map
    previous, _systems_map = _systems_map, solve
    try:
        yield
    finally:
        _systems_map = previous


def impute_many(tasks: list[Task], workers: int | None = None) -> list[np.ndarray]:
    """:func:`impute` over ``(image, removed, noise, seed)`` tasks: by the map of the enclosing
    :func:`imputation_map` if any (``workers`` then unused), else :func:`impute_here`."""
    if _systems_map is not None:
        return _systems_map(tasks)
    return impute_here(tasks, workers)


def impute_here(tasks: list[Task], workers: int | None = None) -> list[np.ndarray]:
    """:func:`impute` over ``(image, removed, noise, seed)`` tasks in this process, on ``workers``
    threads (the solver releases the GIL; None: one per core, 0 or 1: in this thread)."""
    from metrics._multifrontal import solve  # numba: imported, and compiled (~5 s), on first use

    def one(task: Task) -> np.ndarray:
        image, removed, noise, seed = task
        removed = np.asarray(removed, dtype=bool)
        out = solve(np.asarray(image, dtype=np.float64), removed)
        add_noise(out, removed, noise, seed)
        return out

    if workers is None:
        workers = available_cores()
    if workers > 1 and len(tasks) > 1:
        # Largest systems first, so that the workers finish together.
        largest_first = sorted(range(len(tasks)), key=lambda i: -np.count_nonzero(tasks[i][1]))
        # One BLAS thread per worker: threaded BLAS calls inside every worker oversubscribe the
        # cores (36 systems of 224x224 on 2 cores: 2.1 s, against 0.72 s with this limit).
        with threadpool_limits(1, user_api="blas"):
            solved = _pool(workers).map(one, [tasks[i] for i in largest_first])
            out: list = [None] * len(tasks)
            for i, image in zip(largest_first, solved, strict=True):
                out[i] = image
            return out
    return [one(task) for task in tasks]


def available_cores() -> int:
    """Cores this process may use (its CPU affinity where the OS has one, e.g. in a container)."""
    if hasattr(os, "sched_getaffinity"):  # Linux
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@lru_cache(maxsize=4)
def _pool(workers: int) -> ThreadPoolExecutor:
    """One thread pool per worker count, kept for the life of the process."""
    return ThreadPoolExecutor(workers, thread_name_prefix="road-imputation")
