"""Data tests never touch the network and never write to the user's cache."""

from __future__ import annotations

import pytest

from benchmark.data import _files


def _no_network(url, *args, **kwargs):
    raise AssertionError(f"a test tried to download {url}")


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path_factory):
    monkeypatch.setattr(_files, "urlopen", _no_network)
    monkeypatch.setenv("BENCHMARK_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))
