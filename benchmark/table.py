"""One leaderboard table being filled: a (dataset, model) pair of a suite, with its plugins.

A :class:`Table` is what the explain and evaluate stages share: the model and its cache identity,
the dataset, the suite's explainers and metrics created with their parameters for this dataset, and
where results go (the store, the run's summary). It writes failures; the stages write results.
"""

from __future__ import annotations

import dataclasses
import traceback
from dataclasses import dataclass, field
from typing import Any

import torch

import explainers as explainer_plugins
import metrics as metric_plugins
from benchmark.config import GridEntry, Suite
from benchmark.models import Classifier
from benchmark.store import Cell, ResultsStore


@dataclass
class RunSummary:
    """What a run did, for the command line and the board's provenance."""

    run_id: int = 0
    explained: int = 0  # maps computed in this run (the rest came from the cache)
    evaluated: int = 0  # metric cells computed in this run
    cached: int = 0  # metric cells already in the store
    failures: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # what could not run here, and why
    seconds: float = 0.0

    def skip(self, line: str) -> None:
        if line not in self.skipped:
            self.skipped.append(line)


@dataclass
class Table:
    """The (dataset, model) pair ``entry`` x ``model_name`` of ``suite``, being filled."""

    suite: Suite
    entry: GridEntry
    model_name: str
    model: Classifier
    model_key: str  # the model's cache identity (spec and weights)
    dataset: Any
    store: ResultsStore
    summary: RunSummary
    prepared: set[str] = field(default_factory=set)  # explainers asked supports() and prepared
    warm: set[str] = field(default_factory=set)  # explainers that had their warm-up call
    not_applicable: set[str] = field(default_factory=set)
    timeout: float | None = None  # seconds per explain / metric call; None: no limit

    def __post_init__(self) -> None:
        # Ground-truth labels mean something to the model only in its own class space: a model
        # trained on this dataset (voc-masks' VOC classes are not ImageNet's).
        self.labels_fit_model = any(
            m.train and m.name == self.model_name for m in self.entry.models
        )
        explainers = {n: self._create(explainer_plugins, n) for n in self.suite.explainer_names()}
        metrics = {n: self._create(metric_plugins, n) for n in self.suite.metric_names()}
        self.explainers = self._runnable(explainers, lambda e: None)
        self.metrics = self._runnable(metrics, self._metric_problem)

    @property
    def where(self) -> str:
        return f"{self.dataset_label} / {self.model_name}"

    def _runnable(self, plugins: dict[str, Any], problem) -> dict[str, Any]:
        """The plugins that can run on this table; a skip line for each of the others."""
        runnable = {}
        for name, plugin in plugins.items():
            reason = problem(plugin)
            budget = self.suite.max_cost
            if reason is None and budget is not None and plugin.cost() > budget:
                reason = f"costs {plugin.cost()} evaluations per image, over max_cost = {budget}"
            if reason:
                self.summary.skip(f"{self.where}: {name} not run: {reason}")
            else:
                runnable[name] = plugin
        return runnable

    def over_budget(self, metric_name: str, metric, explainer_name: str) -> bool:
        """Whether an explainer-aware metric's re-explanations with this explainer cost more
        evaluations per image than the suite's ``max_cost`` (a skip line if so): the metric's
        own ``cost()``, checked for the whole table, counts one evaluation per map."""
        budget = self.suite.max_cost
        if budget is None:
            return False
        cost = metric.cost(self.explainers[explainer_name], self.model)
        if cost <= budget:
            return False
        self.summary.skip(
            f"{self.where}: {metric_name} not run on {explainer_name}: it re-explains at "
            f"{cost} evaluations per image, over max_cost = {budget}"
        )
        return True

    def _metric_problem(self, metric) -> str | None:
        if metric.needs_masks and not self.dataset.has_masks:
            return "needs ground-truth masks, which this dataset has not"
        if metric.needs_labels and not self.labels_fit_model:
            return (
                "needs ground-truth labels in the model's classes (a model trained on this dataset)"
            )
        if self.model.input_size is not None:
            return metric.supports(tuple(self.model.input_size))
        return None

    def _create(self, plugins, name: str):
        """The plugin with the suite's parameters for this dataset; a ``seed`` field defaults to
        the suite's seed (documented in the plugin packages)."""
        values = self.suite.params_for(self.entry, plugins.registry.kind, name)
        cls = plugins.registry.get(name)
        if "seed" in {f.name for f in dataclasses.fields(cls)}:
            values.setdefault("seed", self.suite.seed)
        return plugins.registry.create(name, **values)

    @property
    def dataset_label(self) -> str:
        """The dataset's name on the board: its card's name, or for a folder given by path a
        stable, path-free name (so anchors never embed a machine's absolute path)."""
        return getattr(self.dataset, "name", None) or self.entry.dataset

    def cell(self, explainer: str, metric: str | None, image: str) -> Cell:
        return Cell(self.suite.name, self.dataset_label, self.model_name, explainer, metric, image)

    def fail(self, key: str, explainer: str, metric: str | None, image: str, stage: str, message):
        """Record that one cell could not be computed; the run goes on without it."""
        self.store.put_failure(
            key, self.cell(explainer, metric, image), stage, message, self.summary.run_id
        )
        self.summary.failures.append(f"{self.where}/{explainer}/{metric or '-'}/{image}: {message}")

    def targets(self, batch, images: torch.Tensor) -> torch.Tensor:
        """The explained class of each image: its label, or the model's top-1 prediction."""
        if self.entry.target == "label":
            if (batch.labels < 0).any():
                raise ValueError(
                    f"dataset {self.entry.dataset!r} has no labels: use target = 'predicted'"
                )
            return batch.labels.to(images.device)
        return self.model.probabilities(images).argmax(dim=1)


def describe_error(e: BaseException) -> str:
    """``Type: message (at file:line)`` of the innermost frame, for the failures table."""
    frame = traceback.extract_tb(e.__traceback__)[-1] if e.__traceback__ else None
    where = f" (at {frame.filename.rsplit('/', 1)[-1]}:{frame.lineno})" if frame else ""
    return f"{type(e).__name__}: {e}{where}"
