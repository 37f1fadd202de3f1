"""Wall-clock timing for the runner and the speed benchmarks: synchronised, warm-up discarded.

On an accelerator, kernels run asynchronously: a timer read without synchronising measures the
launch, not the work. :func:`timed` synchronises the device before starting and before stopping the
clock. :func:`summarize` drops the first measurement (warm-up: lazy initialisation, caches,
autotuning) and reports the median and quartiles, which are robust to the odd slow batch on a shared
machine::

    maps, seconds = timed(explainer, model, images, targets, device=images.device)
    summarize(per_batch_seconds)  # {"n": 9, "median": ..., "q1": ..., "q3": ..., ...}
"""

from __future__ import annotations

import contextlib
import signal
import statistics
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import torch

T = TypeVar("T")


def synchronize(device: torch.device | str | None) -> None:
    """Wait for all queued work on ``device`` (CUDA or MPS); a no-op on CPU or None."""
    if device is None:
        return
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def timed(
    fn: Callable[..., T], *args: Any, device: torch.device | str | None = None, **kwargs: Any
) -> tuple[T, float]:
    """``(fn(*args, **kwargs), seconds)``, synchronising ``device`` before and after the call."""
    synchronize(device)
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    synchronize(device)
    return result, time.perf_counter() - start


def median_seconds(fn: Callable[[], Any], repeats: int = 3, device=None) -> float:
    """The median of ``repeats`` :func:`timed` calls of ``fn()`` (robust to a shared machine)."""
    return statistics.median(timed(fn, device=device)[1] for _ in range(repeats))


class CellTimeout(TimeoutError):
    """A plugin call ran past the run's per-cell time limit."""


@contextlib.contextmanager
def deadline(seconds: float | None) -> Iterator[None]:
    """Raise :class:`CellTimeout` inside the block once ``seconds`` have passed (None: no limit).

    Uses SIGALRM, so it works in the main thread of a POSIX process and interrupts Python code
    (a C call returns first); elsewhere the block runs without a limit.
    """
    usable = seconds and hasattr(signal, "setitimer")
    if not usable or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(_signum, _frame):
        raise CellTimeout(f"took longer than the run's --timeout of {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def summarize(seconds: Sequence[float], discard_first: bool = True) -> dict[str, float]:
    """Median, quartiles, mean, min, max and count of ``seconds``.

    ``discard_first`` drops the first value as warm-up when there is more than one (with a single
    value there is nothing else to report; ``n`` tells the reader). Quartiles use the inclusive
    method (linear interpolation between order statistics, as ``numpy.percentile``).
    """
    values = [float(s) for s in seconds]
    if not values:
        raise ValueError("no timings to summarize: time at least one call")
    if discard_first and len(values) > 1:
        values = values[1:]
    if len(values) > 1:
        q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive")
    else:
        q1 = median = q3 = values[0]
    return {
        "n": len(values),
        "median": median,
        "q1": q1,
        "q3": q3,
        "mean": statistics.fmean(values),
        "min": min(values),
        "max": max(values),
    }


__all__ = ["CellTimeout", "deadline", "summarize", "synchronize", "timed"]
