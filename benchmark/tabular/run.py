"""Running a tabular suite into the results store: ``run_tabular("seed-fetal-health", store)``.

A tabular suite (``benchmark/tabular/suites/NAME.toml`` or a path) names one table, its models,
explainer and metric patterns over the tabular registries, the number of test rows and their
parameters (see ``seed-fetal-health.toml``); a ``[synthetic]`` table (``features``, ``classes``)
adds the seeded linear model of :func:`~benchmark.tabular.synthetic.synthetic_table` on as many
rows, whose closed-form Shapley values the ground-truth metric scores against. For each model: fit
it (seeded, :func:`train_model`), record its provenance with ``ResultsStore.put_model``, explain the first ``rows`` test rows with
every explainer (timed; a method that does not apply is a skipped line, "n/a: reason"), score them
with every metric (``agreement`` against the explainer its ``reference`` names) and write one score
per row with ``put_scores`` under ``Cell(suite, dataset, model, explainer, metric, row id)``, plus
the explain runtime per row as the pseudo-metric ``runtime``. Cell keys hash everything that changes
a score, so a rerun recomputes only cells the store lacks. The existing leaderboard renders the
suite (``python -m benchmark.tabular.run --suite NAME --board FILE``).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import sys
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.registry import match_strictly
from benchmark.store import RUNTIME, Cell, ResultsStore, key_of
from benchmark.tabular.data import load_table
from benchmark.tabular.explainers import NotApplicable
from benchmark.tabular.explainers import registry as explainer_registry
from benchmark.tabular.metrics import registry as metric_registry
from benchmark.tabular.models import MODELS, train_model
from benchmark.tabular.synthetic import synthetic_table

SUITES_DIR = Path(__file__).resolve().parent / "suites"
_KEYS = {
    "description": str,
    "seed": int,
    "dataset": str,
    "rows": int,
    "target": str,
    "models": list,
    "explainers": list,
    "metrics": list,
    "explainer_params": dict,
    "metric_params": dict,
    "synthetic": dict,
}
SYNTHETIC_KEYS = {"features": int, "classes": int}


@dataclass
class TabularSuite:
    name: str
    dataset: str
    models: list[str]
    description: str = ""
    seed: int = 0
    rows: int = 60
    target: str = "predicted"  # or "label"
    explainers: list[str] = field(default_factory=lambda: ["*"])
    metrics: list[str] = field(default_factory=lambda: ["*"])
    explainer_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    metric_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    synthetic: dict[str, int] = field(default_factory=dict)  # {} = no synthetic table


def load_tabular_suite(name_or_path: str) -> TabularSuite:
    """A tabular suite by name (``benchmark/tabular/suites/``) or path; unknown keys, wrong types,
    unknown models and patterns that match no plugin are errors naming the file."""
    path = Path(name_or_path)
    if not path.suffix == ".toml":
        path = SUITES_DIR / f"{name_or_path}.toml"
    if not path.is_file():
        known = sorted(p.stem for p in SUITES_DIR.glob("*.toml"))
        raise KeyError(f"no tabular suite {name_or_path!r}; known: {', '.join(known)}")
    data = tomllib.loads(path.read_text())
    where = str(path)
    for key, value in data.items():
        if key not in _KEYS:
            raise ValueError(f"{where}: unknown key {key!r}; known: {', '.join(_KEYS)}")
        if not isinstance(value, _KEYS[key]) or isinstance(value, bool):
            raise ValueError(f"{where}: {key} must be {_KEYS[key].__name__}, not {value!r}")
    for key in ("dataset", "models"):
        if key not in data:
            raise ValueError(f"{where}: no {key}")
    for key, value in data.get("synthetic", {}).items():
        if key not in SYNTHETIC_KEYS:
            raise ValueError(f"{where}: [synthetic] has no key {key!r}; known: features, classes")
        if not isinstance(value, int) or isinstance(value, bool) or value < 2:
            raise ValueError(f"{where}: [synthetic] {key} must be an integer >= 2, not {value!r}")
    suite = TabularSuite(name=path.stem, **data)
    if suite.rows < 1 or suite.target not in ("predicted", "label"):
        raise ValueError(f"{where}: rows must be >= 1 and target 'predicted' or 'label'")
    for model in suite.models:
        if model not in MODELS:
            raise ValueError(f"{where}: unknown model {model!r}; known: {', '.join(MODELS)}")
    match_strictly(explainer_registry.names(), suite.explainers, "tabular explainer", where)
    match_strictly(metric_registry.names(), suite.metrics, "tabular metric", where)
    for registry, params in (
        (explainer_registry, suite.explainer_params),
        (metric_registry, suite.metric_params),
    ):
        for plugin, values in params.items():
            fields = {f.name for f in dataclasses.fields(registry.get(plugin))}
            unknown = set(values) - fields
            if unknown:
                raise ValueError(f"{where}: {plugin} has no parameter(s) {sorted(unknown)}")
    return suite


@dataclass
class Track:
    """One table of a suite: the rows explained and the models explained on them."""

    dataset: str
    rows: np.ndarray  # [N, F]
    labels: np.ndarray  # [N]
    ids: list[str]
    feature_names: tuple[str, ...]
    class_names: tuple[str, ...]
    models: dict[str, Callable[[], Any]]  # name -> the fitted model (memoised fits)
    spec: dict[str, Any]  # how its models are obtained, for the board's model line


def tracks(suite: TabularSuite, n_rows: int, data_dir: str | None = None) -> list[Track]:
    """The suite's table (its first ``n_rows`` test rows) and, if it has one, its synthetic table."""
    table = load_table(suite.dataset, data_dir)
    x, y, ids = table.split(suite.seed).part("test")
    fits = {
        m: functools.partial(train_model, m, suite.dataset, suite.seed, data_dir)
        for m in suite.models
    }
    out = [
        Track(
            table.name,
            x[:n_rows],
            y[:n_rows],
            ids[:n_rows],
            table.feature_names,
            table.class_names,
            fits,
            {"train": True},
        )
    ]
    if suite.synthetic:
        synthetic = synthetic_table(
            n_rows,
            suite.synthetic.get("features", 8),
            suite.synthetic.get("classes", 3),
            seed=suite.seed,
        )
        out.append(
            Track(
                synthetic.name,
                synthetic.rows,
                synthetic.labels,
                synthetic.row_ids,
                synthetic.feature_names,
                synthetic.class_names,
                {synthetic.model.name: lambda: synthetic.model},
                {"weights": "the seeded generator"},
            )
        )
    return out


def _metric_identity(metric, suite: TabularSuite) -> tuple:
    """What changes a metric's scores: its version and parameters, and for agreement the
    reference explainer's version and parameters."""
    parts = (metric.version, metric.params())
    if metric.needs_reference:
        reference = _create(
            explainer_registry, metric.reference, suite.explainer_params, suite.seed
        )
        parts += (metric.reference, reference.version, reference.params())
    return parts


def _create(registry, name: str, params: dict[str, Any], seed: int):
    values = dict(params.get(name, {}))
    if "seed" in {f.name for f in dataclasses.fields(registry.get(name))}:
        values.setdefault("seed", seed)
    return registry.create(name, **values)


@dataclass
class Summary:
    run_id: int = 0
    scores: int = 0  # cells computed and written
    cached: int = 0  # cells already in the store, claimed
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0


def run_tabular(
    suite_name: str,
    store: ResultsStore,
    *,
    rows: int | None = None,
    data_dir: str | None = None,
    log=lambda message: print(message, file=sys.stderr),
) -> Summary:
    """Run the tabular suite into ``store`` (see the module docstring); ``rows`` overrides the
    suite's number of test rows (a smoke run)."""
    import torch

    from benchmark.provenance import provenance

    start = time.perf_counter()
    suite = load_tabular_suite(suite_name)
    n_rows = rows or suite.rows
    config = {**dataclasses.asdict(suite), "rows": n_rows, "source": suite_name, "kind": "tabular"}
    summary = Summary(
        run_id=store.start_run(suite.name, provenance(config, torch.device("cpu"), suite.seed))
    )
    explainers = {
        n: _create(explainer_registry, n, suite.explainer_params, suite.seed)
        for n in explainer_registry.list(suite.explainers)
    }
    metrics = {
        n: _create(metric_registry, n, suite.metric_params, suite.seed)
        for n in metric_registry.list(suite.metrics)
    }
    for track, model_name in ((t, m) for t in tracks(suite, n_rows, data_dir) for m in t.models):
        x, ids = track.rows, track.ids
        model = track.models[model_name]()
        model_key = key_of("tabular-model", model.key)
        spec = {"name": model_name, **track.spec}
        store.put_model(model_key, {**model.info, "dataset": track.dataset, "spec": spec})
        store.claim(summary.run_id, [model_key])
        targets = track.labels if suite.target == "label" else model.outputs(x).argmax(1)
        accuracy = model.info.get("test_accuracy")
        log(
            f"{track.dataset}/{model_name}"
            + (f": test accuracy {accuracy:.4f}" if accuracy else "")
        )
        attributions: dict[str, tuple[np.ndarray, float] | str] = {}

        def attribute(name: str, model=model, x=x, targets=targets, attributions=attributions):
            if name not in attributions:
                explainer = explainers.get(name) or _create(
                    explainer_registry, name, suite.explainer_params, suite.seed
                )
                try:
                    explainer.explain(model, x[:1], targets[:1])  # warm-up (JIT, caches): untimed
                    began = time.perf_counter()
                    values = explainer.explain(model, x, targets)
                    attributions[name] = (values, (time.perf_counter() - began) / len(x))
                except NotApplicable as e:
                    attributions[name] = str(e)
            return attributions[name]

        applicable = {}
        for metric_name, metric in metrics.items():
            reason = metric.supports(model)
            if reason:
                summary.skipped.append(f"{track.dataset}/{model_name}: {metric_name}: {reason}")
            else:
                applicable[metric_name] = metric
        for name, explainer in explainers.items():
            identity = (model_key, name, explainer.version, explainer.params())
            keys = {
                metric_name: [
                    key_of(
                        "score", *identity, row_id, int(t), metric_name, *_metric_identity(m, suite)
                    )
                    for row_id, t in zip(ids, targets, strict=True)
                ]
                for metric_name, m in applicable.items()
            }
            keys[RUNTIME] = [
                key_of(RUNTIME, *identity, row_id, int(t))
                for row_id, t in zip(ids, targets, strict=True)
            ]
            wanted = [k for ks in keys.values() for k in ks]
            done = store.done_cells(suite.name, wanted)
            if len(done) == len(wanted):  # every cell in the store already: claim, compute nothing
                store.claim(summary.run_id, done)
                summary.cached += len(done)
                continue
            result = attribute(name)
            if isinstance(result, str):
                summary.skipped.append(f"{track.dataset}/{model_name}: {result}")
                continue
            values, seconds = result
            cell = functools.partial(Cell, suite.name, track.dataset, model_name, name)
            rows_out = [
                (key, cell(RUNTIME, row_id), {"seconds": seconds})
                for key, row_id in zip(keys[RUNTIME], ids, strict=True)
            ]
            for metric_name, metric in applicable.items():
                reference = None
                if metric.needs_reference:
                    ref = attribute(metric.reference)
                    if isinstance(ref, str):
                        summary.skipped.append(
                            f"{track.dataset}/{model_name}: {metric_name} vs {metric.reference}: {ref}"
                        )
                        continue
                    reference = ref[0]
                scores = metric(
                    model=model, rows=x, targets=targets, attributions=values, reference=reference
                )
                for i, (key, row_id) in enumerate(zip(keys[metric_name], ids, strict=True)):
                    finite = {
                        k: (None if np.isnan(v[i]) else float(v[i])) for k, v in scores.items()
                    }
                    rows_out.append((key, cell(metric_name, row_id), finite))
            store.put_scores(rows_out, summary.run_id)
            summary.scores += len(rows_out)
            log(f"  {name}: {seconds * 1000:.1f} ms per row")
    store.finish_run(summary.run_id, summary.skipped)
    summary.seconds = time.perf_counter() - start
    return summary


@dataclass
class Plots:
    """The beeswarm and summary plots of one (table, model, explainer), or why there are none."""

    dataset: str
    model: str
    explainer: str
    class_name: str
    paths: list[Path] = field(default_factory=list)
    not_applicable: str = ""


def plot_suite(
    suite_name: str,
    out_dir: str | Path,
    *,
    class_name: str | None = None,
    rows: int | None = None,
    data_dir: str | None = None,
) -> list[Plots]:
    """The seed study's beeswarm and summary plots of every (table, model, explainer) of the
    suite, every row explained for one class (``class_name``, on the suite's table; default and
    on a synthetic table: the table's last class, pathological for fetal-health), so a plot never
    mixes classes. A method that does not apply gets a :class:`Plots` with its reason."""
    from benchmark.tabular.plots import plot_attributions

    suite = load_tabular_suite(suite_name)
    out = []
    for k, track in enumerate(tracks(suite, rows or suite.rows, data_dir)):
        name = class_name if class_name and k == 0 else track.class_names[-1]
        if name not in track.class_names:
            raise ValueError(f"no class {name!r}; classes: {', '.join(track.class_names)}")
        targets = np.full(len(track.rows), track.class_names.index(name))
        for model_name, fit in track.models.items():
            model = fit()
            for explainer_name in explainer_registry.list(suite.explainers):
                explainer = _create(
                    explainer_registry, explainer_name, suite.explainer_params, suite.seed
                )
                plots = Plots(track.dataset, model_name, explainer_name, name)
                plots.not_applicable = explainer.supports(model) or ""
                if not plots.not_applicable:
                    values = explainer.explain(model, track.rows, targets)
                    plots.paths = plot_attributions(
                        out_dir,
                        model_name,
                        explainer_name,
                        track.rows,
                        values,
                        track.feature_names,
                        name,
                        seed=suite.seed,
                    )
                out.append(plots)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmark.tabular.run", description=__doc__)
    parser.add_argument("--suite", default="seed-fetal-health")
    parser.add_argument("--store", default="results/benchmark.sqlite")
    parser.add_argument("--rows", type=int, default=None, help="test rows (default: the suite's)")
    parser.add_argument("--board", default=None, help="write the rendered board to this file")
    parser.add_argument("--plots", default=None, help="write beeswarm and summary plots here")
    parser.add_argument("--plot-class", default=None, help="the class the plots explain")
    args = parser.parse_args(argv)
    from benchmark import leaderboard

    store = ResultsStore(args.store)
    summary = run_tabular(args.suite, store, rows=args.rows)
    print(
        f"run {summary.run_id}: {summary.scores} cells computed, {summary.cached} from the "
        f"store, in {summary.seconds:.1f} s"
    )
    for line in summary.skipped:
        print(f"  n/a: {line}")
    if args.board:
        Path(args.board).write_text(leaderboard.render(store, load_tabular_suite(args.suite).name))
    if args.plots:
        plots = plot_suite(args.suite, args.plots, class_name=args.plot_class, rows=args.rows)
        print(f"{sum(len(p.paths) for p in plots)} plots in {args.plots}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
