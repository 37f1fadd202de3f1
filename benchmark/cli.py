"""Command line: ``python -m benchmark {run,ls,leaderboard,gallery,train}``.

Each subcommand is one function taking the parsed arguments; ``COMMANDS`` maps names to
(function, argument-adder, help).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

from benchmark.registry import Entry, Registry
from benchmark.training import add_train_arguments, cmd_train


def _print_entries(registry: Registry, pattern: str) -> None:
    entries: list[Entry] = [registry.entry(n) for n in registry.list(pattern)]
    tags = {e.name: f"[{', '.join(e.tags)}]" if e.tags else "" for e in entries}
    width = max((len(e.name) for e in entries), default=0)
    tag_width = max((len(t) for t in tags.values()), default=0)
    for e in entries:
        missing = e.missing_requirements()
        note = f"  (needs: pip install {' '.join(missing)})" if missing else ""
        print(f"{e.name:<{width}}  {tags[e.name]:<{tag_width}}  {e.description}{note}")


def cmd_ls(args: argparse.Namespace) -> int:
    """List registered explainers, metrics, models (or suites) with tags and descriptions."""
    if args.what == "explainers":
        import explainers

        _print_entries(explainers.registry, args.pattern)
    elif args.what == "metrics":
        import metrics

        _print_entries(metrics.registry, args.pattern)
    elif args.what == "models":
        from benchmark import models

        _print_entries(models.registry, args.pattern)
        timm_names = [n for n in models.list_models(args.pattern) if n not in models.registry]
        if args.pattern == "*":
            print(
                f"... and {len(timm_names)} timm architectures (`ls models 'resnet*'` to list them)"
            )
        else:
            for name in timm_names:
                print(f"{name}  [timm]")
    else:
        from benchmark import config

        for name in config.list_suites(args.pattern):
            print(f"{name:<18} {config.describe(name)}")
    return 0


def add_ls(p: argparse.ArgumentParser) -> None:
    p.add_argument("what", choices=["explainers", "metrics", "models", "suites"])
    p.add_argument("pattern", nargs="?", default="*", help="shell wildcards, comma-separated")


def _add_suite_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--suite", default="default", help="built-in suite name or a .toml path (default: default)"
    )
    p.add_argument("--store", default="results/benchmark.sqlite", help="SQLite results store")
    p.add_argument(
        "--data-dir",
        default=None,
        help="local data folder holding one folder per dataset (sets $BENCHMARK_DATA_DIR; "
        "default: that variable, else download)",
    )
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 or auto (default)")
    p.add_argument("--datasets", help="comma-separated wildcards selecting datasets of the suite")
    p.add_argument("--models", help="comma-separated wildcards selecting models, e.g. 'cnn_*'")
    p.add_argument("--explainers", help="comma-separated wildcards, e.g. 'grad*,lime'")


def _suite(args: argparse.Namespace):
    """The suite the arguments name, narrowed; ``--data-dir`` is applied to the environment here, so
    every dataset, training and worker process of the command finds the data the same way."""
    from benchmark import config
    from benchmark.data._files import DATA_ENV

    if getattr(args, "data_dir", None):
        os.environ[DATA_ENV] = str(Path(args.data_dir).expanduser().resolve())

    suite = config.load_suite(args.suite)
    return config.narrow(suite, datasets=getattr(args, "datasets", None), models=getattr(args, "models", None),
                         explainers=getattr(args, "explainers", None), metrics=getattr(args, "metrics", None),
                         limit=getattr(args, "limit", None))  # fmt: skip


def cmd_run(args: argparse.Namespace) -> int:
    """Run a suite (default: the offline default suite), then render its leaderboard."""
    from benchmark import leaderboard
    from benchmark.runner import run_suite
    from benchmark.store import ResultsStore

    suite = _suite(args)
    if args.batch_size:
        suite.batch_size = args.batch_size
    store = ResultsStore(args.store)
    summary = run_suite(suite, store, device=args.device, progress=not args.quiet)
    path = leaderboard.write(store, suite.name, args.leaderboard_dir)
    print(f"\n{suite.name}: {summary.explained} maps and {summary.evaluated} scores computed, "
          f"{summary.cached} scores from the cache, {len(summary.failures)} failures, "
          f"{summary.seconds:.1f} s. Store: {args.store}. Leaderboard: {path}")  # fmt: skip
    for line in summary.failures[:20]:
        print(f"  failed: {line}")
    if len(summary.failures) > 20:
        print(
            f"  ... and {len(summary.failures) - 20} more (see the leaderboard's Failures section)"
        )
    for line in summary.skipped:
        print(f"  skipped: {line}")
    return 0


def add_run(p: argparse.ArgumentParser) -> None:
    _add_suite_arguments(p)
    p.add_argument("--metrics", help="comma-separated wildcards, e.g. 'road,miou'")
    p.add_argument("--limit", type=int, help="at most N images per dataset")
    p.add_argument("--batch-size", type=int, help="images per batch (default: the suite's)")
    p.add_argument("--leaderboard-dir", default="leaderboards", help="where the board is written")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def cmd_leaderboard(args: argparse.Namespace) -> int:
    """Render leaderboards/<suite>.md from the results store (deterministic)."""
    from benchmark import leaderboard
    from benchmark.store import ResultsStore

    if not Path(args.store).is_file():
        raise FileNotFoundError(
            f"no results store at {args.store}: run `python -m benchmark run` first"
        )
    name = Path(args.suite).stem
    print(leaderboard.write(ResultsStore(args.store), name, args.leaderboard_dir))
    return 0


def add_leaderboard(p: argparse.ArgumentParser) -> None:
    p.add_argument("--suite", default="default", help="suite name (default: default)")
    p.add_argument("--store", default="results/benchmark.sqlite", help="SQLite results store")
    p.add_argument("--leaderboard-dir", default="leaderboards", help="output folder")


def cmd_gallery(args: argparse.Namespace) -> int:
    """Write PNG grids of heatmaps (image, mask, one overlay per explainer) and an HTML index."""
    from benchmark.gallery import write_gallery
    from benchmark.store import ResultsStore

    suite = _suite(args)
    print(write_gallery(suite, ResultsStore(args.store), args.out, images=args.images,
                        device=args.device))  # fmt: skip
    return 0


def add_gallery(p: argparse.ArgumentParser) -> None:
    _add_suite_arguments(p)
    p.add_argument("--images", type=int, default=6, help="images per grid (default 6)")
    p.add_argument("--out", default="gallery", help="output folder (default gallery/)")


COMMANDS: dict[str, tuple[Callable[[argparse.Namespace], int], Callable, str]] = {
    "run": (cmd_run, add_run, "run a suite and render its leaderboard"),
    "leaderboard": (
        cmd_leaderboard,
        add_leaderboard,
        "render leaderboards/<suite>.md from the store",
    ),
    "gallery": (cmd_gallery, add_gallery, "write heatmap grids and an HTML page"),
    "ls": (cmd_ls, add_ls, "list explainers, metrics, models or suites"),
    "train": (cmd_train, add_train_arguments, "train a small CNN on a dataset (cached)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmark", description=__doc__.splitlines()[0]
    )
    sub = parser.add_subparsers(dest="command")
    for name, (_, add_arguments, help_text) in COMMANDS.items():
        add_arguments(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv or ["run"])
    function = COMMANDS[args.command][0]
    try:
        return function(args)
    except (KeyError, ValueError, ImportError, FileNotFoundError, RuntimeError) as e:
        message = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"error: {message}", file=sys.stderr)
        return 2
