"""Running a tabular suite into the results store: ``run_tabular("seed-fetal-health", store)``.

A tabular suite (``benchmark/tabular/suites/NAME.toml`` or a path) names one table, its models,
explainer and metric patterns over the tabular registries, the number of test rows and their
parameters (see ``seed-fetal-health.toml``). For each model: fit it (seeded, :func:`train_model`),
record its provenance with ``ResultsStore.put_model``, explain the first ``rows`` test rows with
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
}


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
    table = load_table(suite.dataset, data_dir)
    x_test, y_test, ids = table.split(suite.seed).part("test")
    x, labels, ids = x_test[:n_rows], y_test[:n_rows], ids[:n_rows]
    explainers = {
        n: _create(explainer_registry, n, suite.explainer_params, suite.seed)
        for n in explainer_registry.list(suite.explainers)
    }
    metrics = {
        n: _create(metric_registry, n, suite.metric_params, suite.seed)
        for n in metric_registry.list(suite.metrics)
    }
    for model_name in suite.models:
        model = train_model(model_name, suite.dataset, suite.seed, data_dir)
        model_key = key_of("tabular-model", model.key)
        spec = {"name": model_name, "train": True}
        store.put_model(model_key, {**model.info, "dataset": table.name, "spec": spec})
        store.claim(summary.run_id, [model_key])
        targets = labels if suite.target == "label" else model.outputs(x).argmax(1)
        log(f"{table.name}/{model_name}: test accuracy {model.info['test_accuracy']:.4f}")
        attributions: dict[str, tuple[np.ndarray, float] | str] = {}

        def attribute(name: str, model=model, targets=targets, attributions=attributions):
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
                summary.skipped.append(f"{table.name}/{model_name}: {metric_name}: {reason}")
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
                summary.skipped.append(f"{table.name}/{model_name}: {result}")
                continue
            values, seconds = result
            cell = functools.partial(Cell, suite.name, table.name, model_name, name)
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
                            f"{table.name}/{model_name}: {metric_name} vs {metric.reference}: {ref}"
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


def plot_suite(
    suite_name: str,
    out_dir: str | Path,
    *,
    class_name: str | None = None,
    rows: int | None = None,
    data_dir: str | None = None,
) -> list[Path]:
    """The seed study's beeswarm and summary plots of every applicable (model, explainer) of the
    suite, every row explained for one class (``class_name``; default: the table's last class,
    pathological for fetal-health), so a plot never mixes classes."""
    from benchmark.tabular.plots import plot_attributions

    suite = load_tabular_suite(suite_name)
    table = load_table(suite.dataset, data_dir)
    x = table.split(suite.seed).part("test")[0][: rows or suite.rows]
    name = class_name or table.class_names[-1]
    if name not in table.class_names:
        raise ValueError(f"no class {name!r}; classes: {', '.join(table.class_names)}")
    targets = np.full(len(x), table.class_names.index(name))
    paths = []
    for model_name in suite.models:
        model = train_model(model_name, suite.dataset, suite.seed, data_dir)
        for explainer_name in explainer_registry.list(suite.explainers):
            explainer = _create(
                explainer_registry, explainer_name, suite.explainer_params, suite.seed
            )
            if explainer.supports(model):
                continue
            values = explainer.explain(model, x, targets)
            paths += plot_attributions(
                out_dir,
                model_name,
                explainer_name,
                x,
                values,
                table.feature_names,
                name,
                seed=suite.seed,
            )
    return paths


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
        paths = plot_suite(args.suite, args.plots, class_name=args.plot_class, rows=args.rows)
        print(f"{len(paths)} plots in {args.plots}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
