"""The figures of docs/RAY.md: one small suite, serial (local executor) versus Ray.

``python -m benchmark.executors.measure [--limit 32] [--workers 2]`` (needs the ``ray`` extra;
the synthetic data needs no files); ``benchmarks/test_ray_speed.py`` runs the same
:func:`measure` as a pytest-benchmark. Prints the wall times, the speed-up, and Ray's overhead per
task: a no-op actor call carrying one batch, against the mean time a unit of work spends in its
actor. Each run writes a fresh store in a temporary folder; both stores are checked equal.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import ray
import torch

from benchmark.config import parse_suite
from benchmark.executors.ray import RayExecutor, local_runtime_env
from benchmark.runner import run_suite
from benchmark.store import ResultsStore, score_values


def small_suite(limit: int):
    return parse_suite(
        "ray-measure",
        {
            "seed": 0,
            "batch_size": 4,
            "explainers": ["grad_cam", "gradient_pixel", "random", "center"],
            "metrics": ["pointing_game", "energy_pointing_game", "sparseness", "deletion", "road"],
            "metric_params": {"road": {"fractions": [0.3, 0.7]}},
            "grid": [{"dataset": "synthetic", "limit": limit, "models": [{"name": "cnn_gap"}]}],
        },
    )


@dataclass
class Figures:
    """One measurement: seconds, and what the Ray run sent out."""

    serial_s: float  # the local executor, this process's torch threads
    ray_s: float  # the Ray executor, ray.init excluded
    ray_init_s: float
    workers: int
    units_sent: int
    imputation_tasks: int
    stores_equal: bool
    overhead_s: float  # a no-op actor call carrying one batch, median of 200
    unit_work_s: float  # mean time a unit spends in its actor

    @property
    def speedup(self) -> float:
        return self.serial_s / self.ray_s

    @property
    def overhead_per_work(self) -> float:
        return self.overhead_s / self.unit_work_s

    def lines(self) -> list[str]:
        return [
            f"serial (local executor, {torch.get_num_threads()} torch threads): "
            f"{self.serial_s:.1f} s",
            f"ray ({self.workers} actors): {self.ray_s:.1f} s (+{self.ray_init_s:.1f} s ray.init); "
            f"{self.units_sent} units sent, {self.imputation_tasks} ROAD imputation tasks; "
            f"stores equal: {self.stores_equal}",
            f"speed-up serial / ray: {self.speedup:.2f}x",
            f"ray overhead per task (no-op call with one batch, median of 200): "
            f"{self.overhead_s * 1e3:.2f} ms; a unit's work in its actor: "
            f"{self.unit_work_s * 1e3:.0f} ms mean; overhead / work: {self.overhead_per_work:.4f}",
        ]


@ray.remote(num_cpus=1)
class _Echo:
    def call(self, payload):
        return len(payload["ids"])


def _overhead(batch_size: int) -> float:
    """Median seconds of a no-op actor call carrying one batch of synthetic pixels."""
    echo = _Echo.remote()
    payload = {"ids": ["x"] * batch_size, "pixels": torch.rand(batch_size, 3, 32, 32)}
    ray.get(echo.call.remote(payload))
    calls = []
    for _ in range(200):
        start = time.perf_counter()
        ray.get(echo.call.remote(payload))
        calls.append(time.perf_counter() - start)
    ray.kill(echo)
    return statistics.median(calls)


def measure(limit: int = 32, workers: int = 2) -> Figures:
    """The small suite on ``limit`` images, serial then on a fresh local Ray of ``workers`` CPUs
    (one actor each), into fresh stores; Ray is shut down afterwards."""
    if ray.is_initialized():
        raise RuntimeError("measure() starts its own local Ray: call ray.shutdown() first")
    folder = Path(tempfile.mkdtemp(prefix="ray-measure-"))
    quiet = lambda _line: None  # noqa: E731

    start = time.perf_counter()
    serial_store = ResultsStore(folder / "serial.sqlite")
    run_suite(small_suite(limit), serial_store, device="cpu", progress=False, log=quiet)
    serial = time.perf_counter() - start

    start = time.perf_counter()
    ray.init(num_cpus=workers, include_dashboard=False, runtime_env=local_runtime_env())
    try:
        started = time.perf_counter() - start
        executor = RayExecutor(device="cpu", workers=workers, log=quiet)
        start = time.perf_counter()
        ray_store = ResultsStore(folder / "ray.sqlite")
        suite = small_suite(limit)
        run_suite(suite, ray_store, device="cpu", progress=False, log=quiet, executor=executor)
        distributed = time.perf_counter() - start
        overhead = _overhead(suite.batch_size)
    finally:
        ray.shutdown()
    return Figures(
        serial_s=serial,
        ray_s=distributed,
        ray_init_s=started,
        workers=executor.workers,
        units_sent=executor.sent,
        imputation_tasks=executor.imputation_tasks,
        stores_equal=score_values(folder / "serial.sqlite") == score_values(folder / "ray.sqlite"),
        overhead_s=overhead,
        unit_work_s=statistics.fmean(executor.work_seconds),
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=32, help="images (default 32)")
    parser.add_argument("--workers", type=int, default=2, help="Ray actors / CPUs (default 2)")
    args = parser.parse_args(argv)
    print("\n".join(measure(args.limit, args.workers).lines()))


if __name__ == "__main__":
    main()
