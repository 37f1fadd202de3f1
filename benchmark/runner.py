"""The runner: a suite's datasets x models x explainers x metrics, cached per image, resumable.

The pipeline, one module per stage::

    runner (this module)    for each grid entry and model: build the model, load the dataset,
                            open its Table (benchmark.table), then batch by batch:
    explain  (explain.py)   saliency maps, from the store's cache or computed now
    evaluate (evaluate.py)  every metric's per-image scores of those maps
    store    (store.py)     maps, scores, failures and provenance in one SQLite file
    render   (leaderboard.py, gallery.py)   boards and heatmap grids, from the store alone

Every result is keyed by everything that changes it, so a rerun computes only what is missing, a
run killed at any moment resumes, and a failure (a crashing explainer, a NaN map, a corrupt image)
is recorded for its cell while the run goes on. A model or dataset that cannot be had here (no
weights offline, missing files) is skipped with the reason; so is a method that does not apply.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable

import torch
from tqdm.auto import tqdm

from benchmark.config import GridEntry, ModelSpec, Suite
from benchmark.evaluate import evaluate_batch
from benchmark.explain import explain_batch
from benchmark.models import Classifier, load_model
from benchmark.provenance import provenance
from benchmark.store import ResultsStore, key_of
from benchmark.table import RunSummary, Table

__all__ = [
    "RunSummary",
    "build_model",
    "model_identity",
    "open_table",
    "resolve_device",
    "run_suite",
]


def resolve_device(device: str) -> torch.device:
    """``auto`` is CUDA where there is one, else the CPU; an unavailable CUDA is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"--device {device}: no CUDA device is available here; use --device cpu")
    return torch.device(device)


def run_suite(
    suite: Suite,
    store: ResultsStore,
    *,
    device: str = "auto",
    progress: bool = True,
    log: Callable[[str], None] = print,
    timeout: float | None = None,
    executor="local",
    address: str | None = None,
) -> RunSummary:
    """Run every (dataset, model) table of ``suite`` into ``store``; returns what was done.
    ``timeout``: seconds one explain or metric call may take before it is a failure (a run
    setting: results and cache keys do not depend on it). ``executor``: ``"local"`` (this
    process), ``"ray"`` (actors on the Ray cluster at ``address``, default a local one; needs the
    ``ray`` extra; the store is still written here only: benchmark/executors/ray.py) or an
    executor object with ``fill(table, device, progress)``, ``driver_device`` and ``close()``."""
    start = time.perf_counter()
    fill = _fill
    if executor == "ray":
        from benchmark.executors import ray_executor

        executor = ray_executor(address=address, device=device, log=log)
    elif isinstance(executor, str) and executor != "local":
        raise ValueError(f"unknown executor {executor!r}: use local or ray")
    try:
        if isinstance(executor, str):
            dev = resolve_device(device)
        else:
            dev, fill = executor.driver_device, executor.fill
        torch.manual_seed(suite.seed)
        summary = RunSummary()
        info = provenance(suite.to_dict(), dev, suite.seed)
        if not isinstance(executor, str):
            info["executor"] = executor.describe()
        summary.run_id = store.start_run(suite.name, info)
        for entry in suite.grid:
            for spec in entry.models:
                table = open_table(
                    suite, entry, spec, store, summary, dev, log=log, progress=progress
                )
                if table is not None:
                    table.timeout = timeout
                    fill(table, dev, progress)
    finally:
        if not isinstance(executor, str):
            executor.close()
    store.finish_run(summary.run_id, summary.skipped)
    summary.seconds = time.perf_counter() - start
    return summary


def build_model(spec: ModelSpec, dataset: str, seed: int, progress: bool = True) -> Classifier:
    """The model a spec names: trained by the harness (cached), pretrained, or random-init."""
    if spec.train:
        from benchmark.training import trained_model

        return trained_model(spec.name, dataset, seed=seed, progress=progress)
    torch.manual_seed(seed)  # random-init models (no weights) are reproducible
    return load_model(
        spec.name, pretrained=spec.pretrained, weights=spec.weights, sha256=spec.sha256
    )


def model_identity(spec: ModelSpec, model: Classifier, seed: int) -> str:
    """Cache key of a model: its spec and weights (random-init models: the seed that built them)."""
    init = None if model.weights_sha256 else f"init-seed{seed}"
    spec_dict = dataclasses.asdict(spec)
    return key_of(spec.name, spec_dict, model.weights_sha256, model.num_classes, init)


def open_table(
    suite: Suite,
    entry: GridEntry,
    spec: ModelSpec,
    store: ResultsStore,
    summary: RunSummary,
    device: torch.device,
    *,
    limit: int | None = None,
    log: Callable[[str], None] = print,
    progress: bool = True,
) -> Table | None:
    """The model on ``device`` and its dataset (the first ``limit`` images, default the entry's) as
    a :class:`Table`, its model recorded in the store; None (with a skip line) if either cannot be
    had here."""
    from benchmark.data import load_dataset

    where = f"{entry.dataset} / {spec.name}"
    try:
        model = build_model(spec, entry.dataset, suite.seed, progress).to(device)
    except Exception as e:  # a missing weight file, no internet for pretrained weights, ...
        summary.skip(f"{where}: model not available: {e}")
        log(f"skipped {where}: {e}")
        return None
    channels, height, width = model.input_size or (None, None, None)
    try:
        dataset = load_dataset(
            entry.dataset,
            split=entry.split,
            limit=entry.limit if limit is None else limit,
            image_size=(height, width) if height else None,
            channels=channels,
            seed=suite.seed,
        )
    except Exception as e:
        summary.skip(f"{where}: dataset not available: {e}")
        log(f"skipped {where}: {e}")
        return None
    model_key = model_identity(spec, model, suite.seed)
    label = getattr(dataset, "name", None) or entry.dataset  # as Table.dataset_label
    info = {"name": spec.name, "dataset": label, "spec": dataclasses.asdict(spec)}
    store.put_model(model_key, {**info, "weights_sha256": model.weights_sha256, **model.info})
    store.claim(summary.run_id, [model_key])
    return Table(suite, entry, spec.name, model, model_key, dataset, store, summary)


def _fill(table: Table, device: torch.device, progress: bool) -> None:
    """Every batch of the table's dataset through the explain and evaluate stages."""
    batch_size = table.suite.batch_size
    total = math.ceil(len(table.dataset) / batch_size)
    batches = table.dataset.batches(batch_size)
    for batch in tqdm(batches, total=total, desc=table.where, disable=not progress, unit="batch"):
        fill_batch(table, batch, device)
    record_data_problems(table)


def fill_batch(table: Table, batch, device: torch.device, names=None) -> None:
    """One batch through the explain and evaluate stages (every explainer, or those of ``names``),
    writing through ``table.store``: the same code runs here and on a distributed worker, whose
    ``table.store`` records the writes for the driver (benchmark.executors)."""
    images = table.model.normalize(batch.pixels.to(device))
    targets = table.targets(batch, images)
    for name, (keys, maps) in explain_batch(table, batch, images, targets, names).items():
        evaluate_batch(table, name, keys, maps, batch, images, targets)


def record_data_problems(table: Table) -> None:
    """A failure for each image the dataset could not read while it was iterated."""
    from benchmark.data import portable

    for image, message in table.dataset.problems:
        key = key_of("data", table.entry.dataset, image)
        table.fail(key, "*", None, image, "data", portable(message))
