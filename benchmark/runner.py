"""The runner: datasets x models x explainers x metrics, cached per image, resumable.

Stages for each (dataset, model), batch by batch: targets -> explain (saliency cache in the store)
-> evaluate each metric on the cached maps -> store per-image scores. Every result is keyed by
everything that changes it, so a rerun computes only what is missing, and a failure (a crashing
explainer, a NaN map, a corrupt image) is recorded for its cell while the run goes on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

import explainers as explainer_plugins
import metrics as metric_plugins
from benchmark.config import GridEntry, ModelSpec, Suite
from benchmark.models import Classifier, FeatureLayerError, load_model
from benchmark.provenance import provenance
from benchmark.store import RUNTIME, Cell, ResultsStore, key_of
from benchmark.timing import timed


@dataclass
class RunSummary:
    run_id: int = 0
    explained: int = 0  # maps computed in this run (the rest came from the cache)
    evaluated: int = 0  # metric cells computed in this run
    cached: int = 0  # metric cells already in the store
    failures: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # whole datasets / models that could not run
    seconds: float = 0.0


def resolve_device(device: str) -> torch.device:
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
) -> RunSummary:
    start = time.perf_counter()
    dev = resolve_device(device)
    torch.manual_seed(suite.seed)
    summary = RunSummary()
    summary.run_id = store.start_run(suite.name, provenance(suite.to_dict(), dev, suite.seed))
    for entry in suite.grid:
        for spec in entry.models:
            _run_model(suite, entry, spec, store, dev, summary, progress, log)
    store.finish_run(summary.run_id, summary.skipped)
    summary.seconds = time.perf_counter() - start
    return summary


def build_model(spec: ModelSpec, dataset: str, seed: int, progress: bool = True) -> Classifier:
    if spec.train:
        from benchmark.training import trained_model

        return trained_model(spec.name, dataset, seed=seed, progress=progress)
    torch.manual_seed(seed)  # random-init models (no weights) are reproducible
    return load_model(
        spec.name, pretrained=spec.pretrained, weights=spec.weights, sha256=spec.sha256
    )


def model_identity(spec: ModelSpec, model: Classifier, seed: int) -> str:
    """Cache key of a model: its spec and weights (random-init models: the seed that built them)."""
    return key_of(spec.name, dataclasses.asdict(spec), model.weights_sha256, model.num_classes,
                  None if model.weights_sha256 else f"init-seed{seed}")  # fmt: skip


def _run_model(suite, entry: GridEntry, spec: ModelSpec, store, dev, summary, progress, log):
    from benchmark.data import load_dataset

    where = f"{entry.dataset} / {spec.name}"
    try:
        model = build_model(spec, entry.dataset, suite.seed, progress).to(dev)
    except Exception as e:  # a missing weight file, no internet for pretrained weights, ...
        summary.skipped.append(f"{where}: model not available: {e}")
        log(f"skipped {where}: {e}")
        return
    channels, height, width = model.input_size or (None, None, None)
    try:
        dataset = load_dataset(entry.dataset, split=entry.split, limit=entry.limit,
                               image_size=(height, width) if height else None, channels=channels,
                               seed=suite.seed)  # fmt: skip
    except Exception as e:
        summary.skipped.append(f"{where}: dataset not available: {e}")
        log(f"skipped {where}: {e}")
        return
    model_key = model_identity(spec, model, suite.seed)
    store.put_model(model_key, {"name": spec.name, "dataset": entry.dataset, "spec": dataclasses.asdict(spec),
                                "weights_sha256": model.weights_sha256, **model.info})  # fmt: skip
    table = _Table(suite, entry, spec.name, model, model_key, dataset, store, summary)
    batches = dataset.batches(suite.batch_size)
    total = math.ceil(len(dataset) / suite.batch_size)
    for batch in tqdm(batches, total=total, desc=where, disable=not progress, unit="batch"):
        table.process(batch, dev)
    for image, message in dataset.problems:
        table.fail(key_of("data", entry.dataset, image), "*", None, image, "data", message)


@dataclass
class _Table:
    """One (dataset, model) leaderboard table being filled."""

    suite: Suite
    entry: GridEntry
    model_name: str
    model: Classifier
    model_key: str
    dataset: Any
    store: ResultsStore
    summary: RunSummary
    prepared: set[str] = field(default_factory=set)
    warm: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        # Ground-truth labels mean something to the model only in its own class space: a model
        # trained on this dataset (voc-masks' VOC classes are not ImageNet's).
        self.labels_fit_model = any(
            m.train and m.name == self.model_name for m in self.entry.models
        )
        self.not_applicable: set[str] = set()
        self.explainers = {
            n: self._create(explainer_plugins, n) for n in self.suite.explainer_names()
        }
        self.metrics = {n: self._create(metric_plugins, n) for n in self.suite.metric_names()}
        self.metrics = {n: m for n, m in self.metrics.items()
                        if not (m.needs_masks and not self.dataset.has_masks)}  # fmt: skip

    def _create(self, plugins, name: str):
        values = self.suite.params_for(self.entry, plugins.registry.kind, name)
        cls = plugins.registry.get(name)
        if "seed" in {f.name for f in dataclasses.fields(cls)}:
            values.setdefault("seed", self.suite.seed)
        return plugins.registry.create(name, **values)

    def cell(self, explainer: str, metric: str | None, image: str) -> Cell:
        return Cell(self.suite.name, self.entry.dataset, self.model_name, explainer, metric, image)

    def fail(
        self, key: str, explainer: str, metric: str | None, image: str, stage: str, message: str
    ):
        self.store.put_failure(
            key, self.cell(explainer, metric, image), stage, message, self.summary.run_id
        )
        self.summary.failures.append(
            f"{self.entry.dataset}/{self.model_name}/{explainer}/{metric or '-'}/{image}: {message}"
        )

    # -- one batch through every stage ------------------------------------------------------------

    def process(self, batch, dev: torch.device) -> None:
        images = self.model.normalize(batch.pixels.to(dev))
        targets = self.targets(batch, images)
        for name, (keys, maps) in self.explain_all(batch, images, targets).items():
            self._evaluate(name, keys, maps, batch, images, targets)

    def explain_all(self, batch, images, targets) -> dict[str, tuple[list[str], dict[str, tuple]]]:
        """Per explainer: the saliency keys of the batch and the maps found or computed for them."""
        out = {}
        for name, explainer in self.explainers.items():
            keys = [key_of("saliency", name, explainer.version, explainer.params(), self.model_key,
                           self.entry.dataset, self.entry.split, image, tuple(images.shape[1:]), int(t))
                    for image, t in zip(batch.ids, targets.tolist(), strict=True)]  # fmt: skip
            out[name] = (keys, self._explain(name, explainer, keys, batch.ids, images, targets))
        return out

    def targets(self, batch, images: torch.Tensor) -> torch.Tensor:
        if self.entry.target == "label":
            if (batch.labels < 0).any():
                raise ValueError(
                    f"dataset {self.entry.dataset!r} has no labels: use target = 'predicted'"
                )
            return batch.labels.to(images.device)
        return self.model.probabilities(images).argmax(dim=1)

    def _explain(self, name, explainer, keys, ids, images, targets) -> dict[str, tuple]:
        cached = self.store.get_maps(keys)
        missing = [i for i, k in enumerate(keys) if k not in cached]
        if not missing:
            return cached
        if name not in self.prepared:
            self.prepared.add(name)
            sample = self.dataset.sample(64, self.suite.seed).to(images.device)
            explainer.prepare(model=self.model, background=self.model.normalize(sample))
        sub_images, sub_targets = images[missing], targets[missing]
        rows = []
        if name not in self.warm:  # warm-up call on one image, not timed (lazy init, caches, JIT)
            self.warm.add(name)
            with contextlib.suppress(Exception):  # a failure shows up, per image, just below
                explainer.explain(self.model, sub_images[:1], sub_targets[:1])
        if name in self.not_applicable:
            return cached
        try:
            maps, seconds = timed(
                explainer.explain, self.model, sub_images, sub_targets, device=images.device
            )
            results = [(i, maps[j], seconds / len(missing)) for j, i in enumerate(missing)]
        except FeatureLayerError as e:  # e.g. CAM on a head that is not GAP + linear
            self.not_applicable.add(name)
            where = f"{self.entry.dataset} / {self.model_name}"
            self.summary.skipped.append(f"{where}: {name} does not apply: {e}")
            return cached
        except Exception:  # find the image(s) it fails on; the others still get their maps
            results = []
            for i in missing:
                try:
                    single, seconds = timed(explainer.explain, self.model, images[i : i + 1],
                                            targets[i : i + 1], device=images.device)  # fmt: skip
                    results.append((i, single[0], seconds))
                except Exception as e:
                    self.fail(keys[i], name, None, ids[i], "explain", _describe(e))
        for i, saliency, seconds in results:
            problem = _map_problem(saliency, images.shape[-2:])
            if problem:
                self.fail(keys[i], name, None, ids[i], "explain", f"{name} returned {problem}")
                continue
            rows.append((keys[i], saliency.detach().float().cpu().numpy(), seconds))
        self.store.put_maps(rows, self.summary.run_id)
        self.summary.explained += len(rows)
        cached.update({k: (m, s) for k, m, s in rows})
        return cached

    def _evaluate(self, name, keys, maps, batch, images, targets) -> None:
        available = [i for i, k in enumerate(keys) if k in maps]
        runtime_cells = {i: key_of(RUNTIME, keys[i]) for i in available}
        rows = [(runtime_cells[i], self.cell(name, RUNTIME, batch.ids[i]), {"seconds": maps[keys[i]][1]})
                for i in available]  # fmt: skip
        done = self.store.done_cells(self.suite.name, runtime_cells.values())
        self.store.put_scores([r for r in rows if r[0] not in done], self.summary.run_id)
        for metric_name, metric in self.metrics.items():
            cells = {i: key_of("score", keys[i], metric_name, metric.version, metric.params())
                     for i in available}  # fmt: skip
            done = self.store.done_cells(self.suite.name, cells.values())
            todo = [i for i in available if cells[i] not in done]
            self.summary.cached += len(available) - len(todo)
            if not todo:
                continue
            scored = targets[todo]
            if metric.needs_labels:  # e.g. ROAD accuracy: scored against the ground truth
                if not self.labels_fit_model:
                    continue
                scored = batch.labels[todo].to(images.device)
                if (scored < 0).any():  # a dataset without labels (imagenet50)
                    continue
            stacked = np.stack([maps[keys[i]][0] for i in todo])
            saliency = torch.from_numpy(stacked).to(images.device)
            masks = batch.masks[todo].to(images.device) if batch.masks is not None else None
            results = self._score(metric, images[todo], scored, saliency, masks)
            out = []
            for j, i in enumerate(todo):
                values = results[j]
                if isinstance(values, str):
                    self.fail(cells[i], name, metric_name, batch.ids[i], "evaluate", values)
                else:
                    out.append((cells[i], self.cell(name, metric_name, batch.ids[i]), values))
            self.store.put_scores(out, self.summary.run_id)
            self.summary.evaluated += len(out)

    def _score(
        self, metric, images, targets, saliency, masks
    ) -> list[dict[str, float | None] | str]:
        """Per image: {score: value} or the error message; a failing image spares the others."""

        def call(sl: slice) -> list[dict[str, float | None]]:
            values = metric(model=self.model, images=images[sl], targets=targets[sl],
                            saliency=saliency[sl], masks=None if masks is None else masks[sl])  # fmt: skip
            n = images[sl].shape[0]
            return [{s: _number(v[j]) for s, v in values.items()} for j in range(n)]

        try:
            return call(slice(None))
        except Exception:
            out: list[dict[str, float | None] | str] = []
            for i in range(images.shape[0]):
                try:
                    out += call(slice(i, i + 1))
                except Exception as e:
                    out.append(_describe(e))
            return out


def _number(value: torch.Tensor) -> float | None:
    x = float(value)
    return None if math.isnan(x) else x


def _map_problem(saliency: torch.Tensor, size) -> str | None:
    if tuple(saliency.shape) != tuple(size):
        return f"a map of shape {tuple(saliency.shape)} for an image of size {tuple(size)}"
    if not torch.isfinite(saliency).all():
        return "a map with NaN or infinite values"
    return None


def _describe(e: Exception) -> str:
    frame = traceback.extract_tb(e.__traceback__)[-1] if e.__traceback__ else None
    where = f" (at {frame.filename.rsplit('/', 2)[-2:][-1]}:{frame.lineno})" if frame else ""
    return f"{type(e).__name__}: {e}{where}"
