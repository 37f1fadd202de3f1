"""What a result depends on besides its inputs: code version, packages, machine, date."""

from __future__ import annotations

import importlib.metadata
import platform
import re
import subprocess
import time
import tomllib
from pathlib import Path
from typing import Any

import torch

DISTRIBUTION = "explainer-benchmark"
REPO = Path(__file__).resolve().parent.parent


def git_state() -> dict[str, Any]:
    def git(*args: str) -> str:
        command = ["git", "-C", str(REPO), *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=10, check=True)
        return done.stdout.strip()

    try:
        # Dirty = the code differs from the commit; the boards the harness writes itself don't count.
        changes = git(
            "status", "--porcelain", "--", ".", ":(exclude)leaderboards", ":(exclude)gallery"
        )
        return {"commit": git("rev-parse", "HEAD"), "dirty": bool(changes)}
    except (OSError, subprocess.SubprocessError):
        return {"commit": "unknown (not a git checkout)", "dirty": None}


def declared_packages() -> list[str]:
    """The project's runtime dependencies (no extras), by name: from the installed package's
    metadata, else from ``pyproject.toml`` (a source checkout that was never installed)."""
    try:
        requirements = importlib.metadata.requires(DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError:
        try:
            with open(REPO / "pyproject.toml", "rb") as f:
                requirements = tomllib.load(f)["project"]["dependencies"]
        except (OSError, KeyError, tomllib.TOMLDecodeError):
            requirements = []
    names = []
    for requirement in requirements:
        spec, _, marker = requirement.partition(";")
        name = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", spec)
        if name and not re.search(r"\bextra\s*==", marker):  # extras: optional (test) packages
            names.append(name.group(1))
    return names


def package_versions() -> dict[str, str]:
    """Installed version of each declared dependency ('not installed' where it is missing)."""
    versions = {}
    for name in declared_packages():
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def cpu_model() -> str:
    """The processor's model name (trained weights and runtimes differ between CPU models)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({cpu_model()}, {torch.get_num_threads()} threads)"


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
