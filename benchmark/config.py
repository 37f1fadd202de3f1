"""Suites: which datasets x models x explainers x metrics to run, with their parameters.

A suite is a TOML file in ``benchmark/suites/`` (or any path)::

    description = "..."
    extends = "default"           # optional: start from another suite, override what follows
    seed = 0
    batch_size = 16
    explainers = ["*"]            # shell wildcards over the registry (default: all)
    metrics = ["*"]               # (default: all; mask metrics run only where masks exist)
    max_cost = 1000               # optional: leave out plugins costing more evaluations per image

    [[grid]]                      # one block per dataset
    dataset = "synthetic"
    limit = 64                    # images (optional)
    metric_params = { pointing_game = { tolerance = 4 } }   # per-dataset, over the suite's
    target = "predicted"          # or "label": which class each explanation is for
    models = [{ name = "cnn_gap", train = true },           # trained by the harness on this dataset
              { name = "resnet50", pretrained = true },      # timm / the project's loaders
              { name = "resnet50", weights = "r50.pth" }]    # a local checkpoint

    [explainer_params.lime]       # parameters per explainer / metric
    num_samples = 300
    [metric_params.road]
    fractions = [0.1, 0.5, 0.9]

Unknown keys are errors; CLI flags narrow or override (see :func:`narrow`). Which suite a new
plugin joins: every suite that selects by wildcard (``full``: ``explainers = ["*"]``), never one that
names its plugins (``default``, whose committed board must only change when someone edits it).
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark.registry import match_patterns, match_strictly

SUITES_DIR = Path(__file__).parent / "suites"


@dataclass(frozen=True)
class ModelSpec:
    name: str
    train: bool = False  # trained by the harness on the grid's dataset (benchmark.training)
    pretrained: bool = False
    weights: str | None = None
    sha256: str | None = None


@dataclass(frozen=True)
class GridEntry:
    dataset: str
    models: tuple[ModelSpec, ...]
    limit: int | None = None
    split: str = "test"
    target: str = "predicted"  # "predicted" (the model's top-1) or "label"
    # per-dataset parameters, over the suite's (e.g. a pointing-game tolerance for 28 px images)
    explainer_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    metric_params: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class Suite:
    name: str
    description: str = ""
    extends: str | None = None  # the built-in suite this one starts from
    source: str = ""  # how it was named: a built-in suite's name or the path given (boards cite it)
    seed: int = 0
    batch_size: int = 16
    explainers: list[str] = field(default_factory=lambda: ["*"])
    metrics: list[str] = field(default_factory=lambda: ["*"])
    # Model evaluations per image (a plugin's cost() at the suite's parameters) above which an
    # explainer or metric is left out of a table, with a line on the board; None: no budget.
    max_cost: int | None = None
    grid: list[GridEntry] = field(default_factory=list)
    explainer_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    metric_params: dict[str, dict[str, Any]] = field(default_factory=dict)

    def explainer_names(self) -> list[str]:
        """The registered explainers the suite's patterns select (each must match one)."""
        import explainers

        names = explainers.registry.names()
        return match_strictly(names, self.explainers, "explainer", f"suite {self.name!r}")

    def metric_names(self) -> list[str]:
        """The registered metrics the suite's patterns select (each must match one)."""
        import metrics

        names = metrics.registry.names()
        return match_strictly(names, self.metrics, "metric", f"suite {self.name!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def params_for(self, entry: GridEntry, kind: str, name: str) -> dict[str, Any]:
        """Parameters of explainer / metric ``name`` on ``entry``'s dataset: suite's, then entry's."""
        suite_level = self.explainer_params if kind == "explainer" else self.metric_params
        entry_level = entry.explainer_params if kind == "explainer" else entry.metric_params
        return {**suite_level.get(name, {}), **entry_level.get(name, {})}


def _check_keys(table: dict, allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ValueError(
            f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
        )


def _fields(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


# The TOML type of every suite value (None: any table of tables, checked against the plugins).
_TYPES = {
    "description": str,
    "extends": str,
    "seed": int,
    "batch_size": int,
    "max_cost": int,
    "explainers": list,
    "metrics": list,
    "grid": list,
    "dataset": str,
    "models": list,
    "limit": int,
    "split": str,
    "target": str,
    "name": str,
    "train": bool,
    "pretrained": bool,
    "weights": str,
    "sha256": str,
    "explainer_params": dict,
    "metric_params": dict,
}
_POSITIVE = {"batch_size", "limit"}


def _check_types(table: dict, where: str) -> None:
    """Every known key holds its type (a string where a list belongs is an error, not a list of
    characters); counts are positive."""
    for key, value in table.items():
        expected = _TYPES.get(key)
        if expected is None:
            continue
        ok = isinstance(value, expected) and not (expected is int and isinstance(value, bool))
        if not ok:
            raise ValueError(
                f"{where}: {key} must be {_type_name(expected)}, not {type(value).__name__} "
                f"({value!r})"
            )
        if key in _POSITIVE and value < 1:
            raise ValueError(f"{where}: {key} must be at least 1, got {value}")
        if expected is list and key in ("explainers", "metrics"):
            if not all(isinstance(v, str) for v in value):
                raise ValueError(f"{where}: {key} must be a list of names or wildcards")


def _type_name(kind: type) -> str:
    return {
        str: "a string",
        int: "an integer",
        bool: "true or false",
        list: "a list",
        dict: "a table",
    }[kind]


def parse_suite(name: str, data: dict[str, Any], where: str = "suite") -> Suite:
    """Build a :class:`Suite` from a parsed TOML table, rejecting unknown keys."""
    _check_keys(data, _fields(Suite) - {"name", "source"}, where)
    _check_types(data, where)
    grid = []
    for i, block in enumerate(data.get("grid", [])):
        block_where = f"{where}: [[grid]] #{i + 1}"
        if not isinstance(block, dict):
            raise ValueError(f"{block_where} must be a table ([[grid]]), not {block!r}")
        _check_keys(block, _fields(GridEntry), block_where)
        _check_types(block, block_where)
        if "dataset" not in block:
            raise ValueError(f"{block_where}: no dataset")
        models = []
        for spec in block.get("models", []):
            spec = {"name": spec} if isinstance(spec, str) else spec
            if not isinstance(spec, dict) or "name" not in spec:
                raise ValueError(f"{block_where}: a model is a name or a table with a name")
            model_where = f"{where}: model {spec['name']!r}"
            _check_keys(spec, _fields(ModelSpec), model_where)
            _check_types(spec, model_where)
            models.append(ModelSpec(**spec))
        if block.get("target", "predicted") not in ("predicted", "label"):
            raise ValueError(f"{where}: target must be 'predicted' or 'label'")
        grid.append(GridEntry(**{**block, "models": tuple(models)}))
    values = {k: v for k, v in data.items() if k != "grid"}
    suite = Suite(name=name, grid=grid, **values)
    suite.seed, suite.batch_size = int(suite.seed), int(suite.batch_size)
    suite.explainers, suite.metrics = list(suite.explainers), list(suite.metrics)
    _check_plugin_params(suite)
    return suite


def _check_plugin_params(suite: Suite) -> None:
    import explainers
    import metrics

    levels = [(suite.explainer_params, suite.metric_params)]
    levels += [(entry.explainer_params, entry.metric_params) for entry in suite.grid]
    for registry, params in [(explainers.registry, e) for e, _ in levels] + [
        (metrics.registry, m) for _, m in levels
    ]:
        for plugin, values in params.items():
            cls = registry.get(plugin)  # unknown name: KeyError with suggestions
            if dataclasses.is_dataclass(cls):
                where = f"suite {suite.name!r}: [{registry.kind}_params.{plugin}]"
                _check_keys(values, _fields(cls), where)


def list_suites(pattern: str = "*") -> list[str]:
    return match_patterns([p.stem for p in SUITES_DIR.glob("*.toml")], pattern)


def describe(name: str) -> str:
    return load_suite(name).description


def load_suite(name_or_path: str | Path) -> Suite:
    """A built-in suite by name, or a TOML file by path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = SUITES_DIR / f"{name_or_path}.toml"
        if not path.is_file():
            raise KeyError(
                f"unknown suite {str(name_or_path)!r}; built-in suites: {', '.join(list_suites())} "
                "(or pass the path of a .toml file)"
            )
    suite = parse_suite(path.stem, _read_with_base(path), where=str(path))
    suite.source = str(name_or_path)
    return suite


def _read_with_base(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The suite file's table over the one it ``extends`` (top-level keys replace the base's)."""
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ValueError(f"cannot read suite file {path}: {e}") from e
    base = data.get("extends")
    if base is None:
        return data
    base_path = SUITES_DIR / f"{base}.toml"
    if not base_path.is_file() or base_path in seen:
        problem = "a cycle" if base_path in seen else "no such built-in suite"
        raise ValueError(
            f"{path}: extends = {base!r}: {problem}; built-in: {', '.join(list_suites())}"
        )
    return _read_with_base(base_path, (*seen, path)) | data


def narrow(
    suite: Suite,
    *,
    datasets: str | None = None,
    models: str | None = None,
    explainers: str | None = None,
    metrics: str | None = None,
    limit: int | None = None,
) -> Suite:
    """Apply CLI overrides: comma-separated wildcard lists select within the suite (each pattern
    must match something in it); ``limit`` (at least 1) caps images."""
    if limit is not None and limit < 1:
        raise ValueError(f"--limit must be at least 1, got {limit}")
    where = f"--%s on suite {suite.name!r}"
    if datasets:
        match_strictly({e.dataset for e in suite.grid}, datasets, "dataset", where % "datasets")
    if models:
        names = {m.name for e in suite.grid for m in e.models}
        match_strictly(names, models, "model", where % "models")
    grid = []
    for entry in suite.grid:
        if datasets and not match_patterns([entry.dataset], datasets):
            continue
        specs = tuple(m for m in entry.models if not models or match_patterns([m.name], models))
        if specs:
            capped = min(limit, entry.limit or limit) if limit else entry.limit
            grid.append(dataclasses.replace(entry, models=specs, limit=capped))
    if not grid:
        raise ValueError(f"the filters leave nothing to run in suite {suite.name!r}")
    narrowed = dataclasses.replace(suite, grid=grid)
    if explainers:
        selected = suite.explainer_names()
        narrowed.explainers = match_strictly(
            selected, explainers, "explainer", where % "explainers"
        )
    if metrics:
        selected = suite.metric_names()
        narrowed.metrics = match_strictly(selected, metrics, "metric", where % "metrics")
    for kind, names in (("explainers", narrowed.explainers), ("metrics", narrowed.metrics)):
        if not names:
            raise ValueError(f"no {kind} left in suite {suite.name!r} after the filters")
    return narrowed
