"""Loading a plugin template as a new user's plugin, for the contract tests."""

from __future__ import annotations

import contextlib
import importlib.util
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import explainers

FAILING = "failing_test"


@contextlib.contextmanager
def load_template(package: ModuleType, name: str) -> Iterator[ModuleType]:
    """``package/_template.py`` imported as ``package.<name>`` (so it registers as a plugin would),
    unregistered again on exit."""
    path = Path(package.__file__).parent / "_template.py"
    module_name = f"{package.__name__}.{name}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    package.registry.discover()
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(module_name, None)
        package.registry.unregister(name)


def assert_named_after_module(package: ModuleType, name: str) -> ModuleType:
    """Plugin ``name`` of ``package`` is defined in ``package.<name>``, or in a library family's
    adapter module whose ``FAMILY_PREFIX`` the name starts with (``pgc_*``, ``captum_*``,
    ``quantus_*``); returns that module."""
    cls = package.registry.get(name)
    module = sys.modules[cls.__module__]
    prefix = getattr(module, "FAMILY_PREFIX", None)
    assert cls.__module__ == f"{package.__name__}.{name}" or (
        prefix and cls.__module__.startswith(f"{package.__name__}.") and name.startswith(prefix)
    ), f"{name} is defined in {cls.__module__}: name it after its module or FAMILY_PREFIX"
    return module


@dataclass
class FailsOnOneImage(explainers.Explainer):
    """Test plugin: crashes on the image whose normalised pixels sum to ``bad``, returns NaN on the
    one that sums to ``nan``."""

    version = "1"
    bad: float = 0.0
    nan: float = 0.0

    def cost(self) -> int:
        return 0  # no model evaluations: it reads the pixels

    def explain(self, model, images, targets):
        sums = images.flatten(1).sum(1)
        if any(abs(float(s) - self.bad) < 1e-3 for s in sums):
            raise RuntimeError("boom on purpose")
        maps = images.abs().sum(1)
        for i, s in enumerate(sums):
            if abs(float(s) - self.nan) < 1e-3:
                maps[i] = float("nan")
        return maps


def register_failing() -> None:
    """Registers ``failing_test`` (idempotent); also Ray's ``worker_process_setup_hook``, so the
    plugin exists in every worker process."""
    explainers.registry.unregister(FAILING)
    explainers.registry.register(FAILING)(FailsOnOneImage)


@contextlib.contextmanager
def failing_plugin() -> Iterator[dict]:
    """``failing_test`` registered, and its params for the first 8 synthetic images at cnn_gap's
    input: it crashes on image 1 and returns NaN on image 5."""
    from benchmark.data import load_dataset
    from benchmark.models import load_model

    model = load_model("cnn_gap")  # what the runner builds: 1 channel, 28x28
    data = load_dataset("synthetic", limit=8, image_size=(28, 28), channels=1)
    sums = [float(model.normalize(b.pixels).flatten(1).sum(1)[0]) for b in data.batches(1)]
    register_failing()
    try:
        yield {"bad": sums[1], "nan": sums[5]}
    finally:
        explainers.registry.unregister(FAILING)
