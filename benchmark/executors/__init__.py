"""Executors: where a run's explain and evaluate stages execute.

``local`` (the default, :func:`benchmark.runner.run_suite`) runs them in this process. ``ray``
(:mod:`benchmark.executors.ray`, the ``ray`` extra; imported only for ``--executor ray``) runs the
same stage code (:func:`benchmark.runner.fill_batch`) on Ray actors. The seam between the two is
``table.store``: the stages read and write the results store only through it, and on a worker it
is a :class:`RecordingStore`, which answers the reads from what the driver sent and records the
writes, which the driver replays into the real store in the order a local run makes them. So the
driver is the store's only writer and a distributed run's store equals a local run's.
"""

from benchmark.executors.recording import RecordingStore, replay


def ray_executor(**options):
    """A :class:`benchmark.executors.ray.RayExecutor` (``options``: its keyword arguments), with
    an error saying how to install Ray where it is missing."""
    try:
        from benchmark.executors.ray import RayExecutor
    except ModuleNotFoundError as e:
        if e.name != "ray":
            raise
        raise ImportError(
            "--executor ray needs Ray: pip install 'explainer-benchmark[ray]' (ray>=2.9)"
        ) from e
    return RayExecutor(**options)


__all__ = ["RecordingStore", "ray_executor", "replay"]
