"""Plugin registries: one decorator to register, auto-discovery, wildcard listing, helpful errors.

A plugin package (``explainers``, ``metrics``) owns one :class:`Registry`. On first use the registry
imports every module of its package whose name does not start with ``_`` (so a new plugin is one new
file, with no list to edit) and every entry point of its group (third-party plugins). Optional
dependencies are declared on the decorator and checked only when a plugin is created, so listing
never fails because one optional package is missing.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import importlib
import importlib.metadata
import importlib.util
import pkgutil
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any


def natural_key(name: str) -> list[Any]:
    """Sort key that orders 'resnet18' before 'resnet101' (digits compare as numbers)."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name.lower())]


def did_you_mean(name: str, known: Iterable[str], n: int = 3, cutoff: float = 0.6) -> str:
    """`` Did you mean: a, b?`` for the known names closest to ``name`` ('' when none is close)."""
    close = difflib.get_close_matches(name, list(known), n=n, cutoff=cutoff)
    return f" Did you mean: {', '.join(close)}?" if close else ""


def match_patterns(names: Iterable[str], patterns: str | Iterable[str]) -> list[str]:
    """Names matching any shell wildcard; ``patterns`` may be a comma-separated string."""
    if isinstance(patterns, str):
        patterns = [p.strip() for p in patterns.split(",") if p.strip()]
    patterns = list(patterns) or ["*"]
    return sorted(
        {n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)}, key=natural_key
    )


def match_strictly(
    names: Iterable[str], patterns: str | Iterable[str], kind: str, where: str
) -> list[str]:
    """:func:`match_patterns`, but every pattern must match at least one name: a misspelt name or
    a wildcard that matches nothing is an error naming ``where`` and the closest names."""
    names = list(names)
    if isinstance(patterns, str):
        patterns = [p.strip() for p in patterns.split(",") if p.strip()]
    patterns = list(patterns)
    if not patterns:  # an explicitly empty list selects nothing (e.g. explain without metrics)
        return []
    for pattern in patterns:
        if not isinstance(pattern, str):
            raise ValueError(f"{where}: {kind} pattern {pattern!r} is not a string")
        if not any(fnmatch.fnmatchcase(n, pattern) for n in names):
            raise ValueError(
                f"{where}: {pattern!r} matches no {kind}.{did_you_mean(pattern, names, cutoff=0.5)} "
                f"Known: {', '.join(sorted(names, key=natural_key)) or '(none)'}"
            )
    return match_patterns(names, patterns)


def setting(default: Any) -> Any:
    """A plugin dataclass field that changes how it runs (batch size, worker threads), never its
    numbers: left out of :func:`plugin_params`, so changing it keeps every cached result valid."""
    return field(default=default, metadata={"affects_results": False})


def plugin_params(plugin: Any) -> dict[str, Any]:
    """A plugin dataclass's parameters as recorded with its results and in cache keys."""
    if not dataclasses.is_dataclass(plugin):
        return {}
    values = dataclasses.asdict(plugin)
    return {
        f.name: values[f.name]
        for f in dataclasses.fields(plugin)
        if f.metadata.get("affects_results", True)
    }


@dataclass(frozen=True)
class Entry:
    """One registered plugin: the class (or factory) and what the registry knows about it."""

    name: str
    obj: Callable[..., Any]
    tags: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()
    module: str = ""

    @property
    def description(self) -> str:
        doc = (self.obj.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""

    def missing_requirements(self) -> list[str]:
        return [r for r in self.requires if importlib.util.find_spec(r) is None]


@dataclass
class Registry:
    """Name -> plugin table for one kind of plugin (``kind`` is used in messages)."""

    kind: str
    package: str | None = None  # package whose modules are auto-discovered
    entry_point_group: str | None = None
    _entries: dict[str, Entry] = field(default_factory=dict)
    _discovered: bool = False

    def register(
        self, name: str, *, tags: Iterable[str] = (), requires: Iterable[str] = ()
    ) -> Callable[[Any], Any]:
        """Class decorator: ``@registry.register("grad_cam", tags=("cam",), requires=("shap",))``."""

        def decorator(obj: Any) -> Any:
            if name in self._entries and self._entries[name].obj is not obj:
                previous = self._entries[name]
                raise ValueError(
                    f"duplicate {self.kind} name {name!r}: defined in {previous.module} and "
                    f"{obj.__module__}; rename one of them"
                )
            if isinstance(obj, type):
                obj.name = name
                obj.tags = tuple(tags)
            self._entries[name] = Entry(name, obj, tuple(tags), tuple(requires), obj.__module__)
            return obj

        return decorator

    def unregister(self, name: str) -> None:
        """Forget a plugin (tests that register a temporary one)."""
        self._entries.pop(name, None)

    def discover(self) -> None:
        if self._discovered:
            return
        self._discovered = True
        if self.package:
            package = importlib.import_module(self.package)
            for info in pkgutil.iter_modules(package.__path__):
                if not info.name.startswith("_"):
                    importlib.import_module(f"{self.package}.{info.name}")
        if self.entry_point_group:
            for ep in importlib.metadata.entry_points(group=self.entry_point_group):
                ep.load()

    def names(self) -> list[str]:
        self.discover()
        return sorted(self._entries, key=natural_key)

    def list(self, pattern: str | Iterable[str] = "*") -> list[str]:
        """Registered names matching shell wildcards (comma-separated allowed), naturally sorted."""
        return match_patterns(self.names(), pattern)

    def entry(self, name: str) -> Entry:
        self.discover()
        if name not in self._entries:
            raise KeyError(
                f"unknown {self.kind} {name!r}.{did_you_mean(name, self._entries, cutoff=0.5)} "
                f"Known: {', '.join(self.names()) or '(none)'}; "
                f"see `python -m benchmark ls {self.kind}s`."
            )
        return self._entries[name]

    def get(self, name: str) -> Any:
        """The registered class (or factory) itself, without creating it."""
        return self.entry(name).obj

    def create(self, name: str, **params: Any) -> Any:
        entry = self.entry(name)
        missing = entry.missing_requirements()
        if missing:
            raise ImportError(
                f"{self.kind} {name!r} needs the package(s) {', '.join(missing)}: "
                f"pip install {' '.join(missing)}"
            )
        return entry.obj(**params)

    def __contains__(self, name: str) -> bool:
        self.discover()
        return name in self._entries
