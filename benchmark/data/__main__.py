"""``python -m benchmark.data {list,fetch,verify} [NAME | FOLDER ...]``: list, download or check
datasets.

A NAME is a dataset card (``datasets/NAME.toml``); without names, every card but those whose card
says ``opt_in``. A FOLDER (a path that exists or holds a ``/``) is your own folder of images plus a
COCO json: ``list FOLDER`` shows its size, classes and the problems its annotation file has,
``verify FOLDER`` also reads every image and mask, and reports each problem per image. ``coco-folder``
is that folder at ``$BENCHMARK_DATA_DIR/coco-folder`` (see ``benchmark.data``). The exit status is
1 if any dataset is missing, corrupt or has a problem, 0 otherwise; no traceback either way.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from . import DataError, list_datasets, load_dataset, locate, read_card
from ._files import DATA_ENV
from ._loaders import default_coco_folder, fetch_voc, voc_root

OWN_DATA = "python -m benchmark.data verify FOLDER"


def _is_folder(name: str) -> bool:
    return name not in list_datasets() and ("/" in name or Path(name).expanduser().is_dir())


def _report(label: str, dataset, read: bool) -> int:
    """Print a COCO dataset's problems (reading every image when ``read``); 1 if it has any."""
    if read:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for _ in dataset.batches(64):
                pass
        problems = dataset.problems
    else:
        problems = dataset.known_problems() if hasattr(dataset, "known_problems") else []
    classes = ", ".join(dataset.class_names) or "none"
    print(f"{label}: {len(dataset)} images, {dataset.num_classes} classes ({classes})")
    for where, message in problems:
        print(f"  {where}: {message}")
    if problems:
        print(
            f"{label}: {len(problems)} problem(s); the rest of the images are fine", file=sys.stderr
        )
        return 1
    print(f"{label}: ok ({'every image and mask read' if read else 'annotation file checked'})")
    return 0


def _folder(action: str, name: str) -> int:
    folder = Path(name).expanduser()
    dataset = load_dataset(name)
    label = f"{dataset.name} (coco-folder at {folder})"
    return _report(label, dataset, read=action != "list")


def _card(action: str, name: str, explicit: bool) -> int:
    card = read_card(name)
    if action == "list":
        if card.get("bring_your_own"):
            print(f"{name:<14} {card.get('description', '')} [bring your own data: {OWN_DATA}]")
        else:
            print(f"{name:<14} {card.get('description', '')}")
        return 0
    if card.get("bring_your_own"):
        if default_coco_folder() is None and not explicit:
            print(
                f"{name}: your own data (none at ${DATA_ENV}/coco-folder); check a folder: {OWN_DATA}"
            )
            return 0
        dataset = load_dataset(name)
        return _report(f"{name} ({dataset.name})", dataset, read=True)
    if card.get("format") == "voc":
        if action == "fetch":
            print(f"{name}: extracted to {fetch_voc(card)}")
        else:
            print(f"{name}: found at {voc_root(card, None)}")
        return 0
    if card.get("files"):
        roles = list(dict.fromkeys(f["role"] for f in card["files"]))
        for role in roles:
            locate(card, role, fetch=action == "fetch")
        checked = ""
        if card.get("format") == "coco":  # and every record of its annotation file
            problems = load_dataset(name).known_problems()
            for where, message in problems:
                print(f"  {where}: {message}")
            if problems:
                print(f"{name}: {len(problems)} problem(s) in its annotation file", file=sys.stderr)
                return 1
            checked = ", every annotation record checked"
        print(f"{name}: ok ({len(roles)} files present and verified{checked})")
        return 0
    print(f"{name}: {len(load_dataset(name))} test images (nothing to download)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmark.data",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("action", choices=["list", "fetch", "verify"])
    parser.add_argument(
        "names",
        nargs="*",
        help="dataset names or folders (default: every card but those whose card says opt_in)",
    )
    args = parser.parse_args(argv)
    names = args.names or [n for n in list_datasets() if not read_card(n).get("opt_in", False)]
    status = 0
    for name in names:
        try:
            if _is_folder(name):
                status |= _folder(args.action, name)
            else:
                status |= _card(args.action, name, explicit=bool(args.names))
        except KeyError as e:  # an unknown name: the message lists the known ones
            print(f"{name}: {e.args[0] if e.args else e}", file=sys.stderr)
            status = 1
        except (DataError, ValueError, OSError) as e:
            print(f"{name}: {e}", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    raise SystemExit(main())
