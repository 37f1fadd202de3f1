"""Command line: ``python -m benchmark {run,ls,leaderboard,gallery,train}``.

Each subcommand is one function taking the parsed arguments; ``COMMANDS`` maps names to
(function, argument-adder, help).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from benchmark.registry import Entry, Registry
from benchmark.training import add_train_arguments, cmd_train


def _print_entries(registry: Registry, pattern: str) -> None:
    entries: list[Entry] = [registry.entry(n) for n in registry.list(pattern)]
    width = max((len(e.name) for e in entries), default=0)
    for e in entries:
        tags = f"[{', '.join(e.tags)}]" if e.tags else ""
        missing = e.missing_requirements()
        note = f"  (needs: pip install {' '.join(missing)})" if missing else ""
        print(f"{e.name:<{width}}  {tags:<28} {e.description}{note}")


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
        from benchmark import suites

        for name in suites.list_suites(args.pattern):
            print(f"{name:<20} {suites.describe(name)}")
    return 0


def add_ls(p: argparse.ArgumentParser) -> None:
    p.add_argument("what", choices=["explainers", "metrics", "models", "suites"])
    p.add_argument("pattern", nargs="?", default="*", help="shell wildcards, comma-separated")


COMMANDS: dict[str, tuple[Callable[[argparse.Namespace], int], Callable, str]] = {
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
