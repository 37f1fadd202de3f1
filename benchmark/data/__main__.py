"""``python -m benchmark.data {list,fetch,verify} [NAME ...]``: list, download or check datasets."""

from __future__ import annotations

import argparse
import sys

from . import DataError, list_datasets, load_dataset, locate, read_card
from ._loaders import fetch_voc, voc_root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmark.data", description=__doc__)
    parser.add_argument("action", choices=["list", "fetch", "verify"])
    parser.add_argument(
        "names", nargs="*", help="dataset names (default: all but those whose card says opt_in)"
    )
    args = parser.parse_args(argv)
    names = args.names or [n for n in list_datasets() if not read_card(n).get("opt_in", False)]
    status = 0
    for name in names:
        card = read_card(name)
        try:
            if args.action == "list":
                print(f"{name:<14} {card.get('description', '')}")
            elif card.get("format") == "voc":
                if args.action == "fetch":
                    print(f"{name}: extracted to {fetch_voc(card)}")
                else:
                    print(f"{name}: found at {voc_root(card, None)}")
            elif card.get("files"):
                roles = list(dict.fromkeys(f["role"] for f in card["files"]))
                for role in roles:
                    locate(card, role, fetch=args.action == "fetch")
                print(f"{name}: ok ({len(roles)} files present and verified)")
            else:
                print(f"{name}: {len(load_dataset(name))} test images (nothing to download)")
        except DataError as e:
            print(f"{name}: {e}", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    raise SystemExit(main())
