"""The Ray executor against the local one: the same small suite (benchmark.executors.measure:
synthetic x cnn_gap, four explainers, five metrics with ROAD), serial versus two local Ray
workers (``ray.init(num_cpus=2)``), from one run of :func:`benchmark.executors.measure.measure`.

Targets (ratios within the run):

* speed-up, serial wall time / Ray wall time (``ray.init`` excluded), above 1: two workers beat
  one process using both cores as torch threads;
* Ray's overhead per task (a no-op actor call carrying one batch) at most 1% of a unit's work in
  its actor;
* and the two stores equal, score for score.

Run: ``python -m pytest benchmarks/test_ray_speed.py
--benchmark-enable -s`` (about a minute on 2 cores; ``RAY_BENCH_IMAGES`` sets the images, default
32, ``RAY_BENCH_WORKERS`` the Ray CPUs and actors, default 2). Actor start-up (import torch, build
the model, load the data) is part of the Ray time: on a suite this small it is a large share.
"""

from __future__ import annotations

import os

import pytest

pytest.importorskip(
    "ray",
    reason="ray is not installed: pip install 'explainer-benchmark[ray]' to measure --executor ray",
)

from benchmark.executors.measure import measure  # noqa: E402

IMAGES = int(os.environ.get("RAY_BENCH_IMAGES", "32"))
WORKERS = int(os.environ.get("RAY_BENCH_WORKERS", "2"))


def test_ray_speed(benchmark):
    figures = benchmark.pedantic(measure, args=(IMAGES, WORKERS), rounds=1, iterations=1)
    benchmark.extra_info.update(
        vars(figures), speedup=figures.speedup, overhead_per_work=figures.overhead_per_work
    )
    print("\n" + "\n".join(figures.lines()))
    assert figures.stores_equal, "the Ray run's scores differ from the local run's"
    assert figures.imputation_tasks > 0, "ROAD's imputations did not run as Ray tasks"
    assert figures.speedup > 1.0
    assert figures.overhead_per_work <= 0.01
