"""The figures of docs/RAY.md: one small suite, serial (local executor) versus Ray.

``python -m benchmark.executors.measure [--limit 32] [--workers 2]`` (needs the ``ray`` extra and
the offline data, ``BENCHMARK_DATA_DIR``). Prints the wall times, the speed-up, and Ray's overhead
per task: a no-op actor call carrying one batch, against the mean time a unit of work spends in its
actor. Each run writes a fresh store in a temporary folder; both stores are checked equal.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

import ray
import torch

from benchmark.config import parse_suite
from benchmark.executors.ray import RayExecutor, local_runtime_env
from benchmark.runner import run_suite
from benchmark.store import ResultsStore


def small_suite(limit: int):
    return parse_suite(
        "ray-measure",
        {
            "seed": 0,
            "batch_size": 4,
            "explainers": ["grad_cam", "gradient_pixel", "random", "center"],
            "metrics": ["pointing_game", "energy_pointing_game", "sparseness", "deletion"],
            "grid": [{"dataset": "synthetic", "limit": limit, "models": [{"name": "cnn_gap"}]}],
        },
    )


@ray.remote(num_cpus=1)
class _Echo:
    def call(self, payload):
        return len(payload["ids"])


def _scores(path: Path) -> list[tuple]:
    with sqlite3.connect(path) as db:
        sql = "SELECT cell, score, value FROM scores WHERE metric != 'runtime' ORDER BY cell, score"
        return db.execute(sql).fetchall()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=32, help="images (default 32)")
    parser.add_argument("--workers", type=int, default=2, help="Ray actors / CPUs (default 2)")
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="ray-measure-"))
    quiet = lambda _line: None  # noqa: E731

    start = time.perf_counter()
    serial_store = ResultsStore(folder / "serial.sqlite")
    run_suite(small_suite(args.limit), serial_store, device="cpu", progress=False, log=quiet)
    serial = time.perf_counter() - start
    print(f"serial (local executor, {torch.get_num_threads()} torch threads): {serial:.1f} s")

    start = time.perf_counter()
    ray.init(num_cpus=args.workers, include_dashboard=False, runtime_env=local_runtime_env())
    started = time.perf_counter() - start
    executor = RayExecutor(device="cpu", workers=args.workers, log=quiet)
    start = time.perf_counter()
    ray_store = ResultsStore(folder / "ray.sqlite")
    suite = small_suite(args.limit)
    run_suite(suite, ray_store, device="cpu", progress=False, log=quiet, executor=executor)
    distributed = time.perf_counter() - start
    same = _scores(folder / "serial.sqlite") == _scores(folder / "ray.sqlite")
    print(
        f"ray ({args.workers} actors, 1 CPU each): {distributed:.1f} s "
        f"(+{started:.1f} s ray.init); {executor.sent} units sent; stores equal: {same}"
    )
    print(f"speed-up serial / ray: {serial / distributed:.2f}x")

    echo = _Echo.remote()
    payload = {"ids": ["x"] * 4, "pixels": torch.rand(4, 1, 28, 28), "names": ["center"]}
    ray.get(echo.call.remote(payload))
    calls = []
    for _ in range(200):
        t = time.perf_counter()
        ray.get(echo.call.remote(payload))
        calls.append(time.perf_counter() - t)
    overhead = statistics.median(calls)
    work = statistics.fmean(executor.work_seconds)
    print(
        f"ray overhead per task (no-op call with one batch, median of 200): {overhead * 1e3:.2f} ms"
        f"; a unit's work in its actor: {work * 1e3:.0f} ms mean; overhead / work: "
        f"{overhead / work:.4f}"
    )
    ray.shutdown()


if __name__ == "__main__":
    main()
