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
