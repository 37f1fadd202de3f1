"""What a result depends on besides its inputs: code version, packages, machine, date."""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

import torch

PACKAGES = ("torch", "torchvision", "timm", "grad-cam", "shap", "lime", "quantus", "pycocotools",
            "numpy", "scipy", "scikit-image", "scikit-learn")  # fmt: skip
REPO = Path(__file__).resolve().parent.parent


def git_state() -> dict[str, Any]:
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()  # fmt: skip

    try:
        # Dirty = the code differs from the commit; the boards the harness writes itself don't count.
        changes = git(
            "status", "--porcelain", "--", ".", ":(exclude)leaderboards", ":(exclude)gallery"
        )
        return {"commit": git("rev-parse", "HEAD"), "dirty": bool(changes)}
    except (OSError, subprocess.SubprocessError):
        return {"commit": "unknown (not a git checkout)", "dirty": None}


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def provenance(config: dict[str, Any], device: torch.device, seed: int) -> dict[str, Any]:
    from benchmark import __version__

    return {
        "harness": __version__,
        "git": git_state(),
        "packages": package_versions(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": device_name(device),
        "threads": torch.get_num_threads(),
        "seed": seed,
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "config": config,
    }
