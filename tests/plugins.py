"""Loading a plugin template as a new user's plugin, for the contract tests."""

from __future__ import annotations

import contextlib
import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType


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
