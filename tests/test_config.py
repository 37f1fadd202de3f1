"""Suites are strict: every name must match something, every value has its type."""

from __future__ import annotations

import pytest

from benchmark.cli import main
from benchmark.config import load_suite, narrow, parse_suite

GRID = [{"dataset": "synthetic", "models": [{"name": "cnn_gap"}]}]


@pytest.mark.parametrize(
    "data, message",
    [
        ({"explainers": ["grad_cma"]}, "'grad_cma' matches no explainer. Did you mean: grad_cam"),
        ({"explainers": ["nothing*"]}, "'nothing\\*' matches no explainer"),
        ({"metrics": ["roads"]}, "'roads' matches no metric. Did you mean: road"),
        ({"explainers": "grad_cam"}, "explainers must be a list, not str"),
        ({"metrics": [1]}, "metrics must be a list of names"),
        ({"batch_size": 0}, "batch_size must be at least 1"),
        ({"seed": "0"}, "seed must be an integer"),
        ({"seed": True}, "seed must be an integer"),
        ({"max_cost": 1.5}, "max_cost must be an integer"),
        (
            {"grid": [{"dataset": "synthetic", "limit": 0, "models": []}]},
            "limit must be at least 1",
        ),
        ({"grid": [{"dataset": "synthetic", "limit": -3, "models": []}]}, "limit must be at least"),
        ({"grid": [{"dataset": "synthetic", "models": "cnn_gap"}]}, "models must be a list"),
        ({"grid": [{"models": []}]}, "no dataset"),
        ({"grid": ["synthetic"]}, "must be a table"),
        ({"grid": [{"dataset": "s", "models": [{"name": "m", "train": "yes"}]}]}, "train must be"),
    ],
)
def test_bad_suites_are_errors_that_say_what_and_where(data, message):
    with pytest.raises(ValueError, match=message):
        suite = parse_suite("bad", {"grid": GRID, **data})
        suite.explainer_names(), suite.metric_names()


@pytest.mark.parametrize(
    "flags, message",
    [
        ({"explainers": "gradcam"}, "--explainers .* 'gradcam' matches no explainer"),
        ({"explainers": "grad_cam,nope*"}, "'nope\\*' matches no explainer"),
        ({"metrics": "miuo"}, "'miuo' matches no metric. Did you mean: miou"),
        ({"datasets": "synthtic"}, "'synthtic' matches no dataset. Did you mean: synthetic"),
        ({"models": "resnet*"}, "'resnet\\*' matches no model"),
        ({"limit": 0}, "--limit must be at least 1"),
        ({"limit": -2}, "--limit must be at least 1"),
    ],
)
def test_command_line_filters_must_match_something(flags, message):
    with pytest.raises(ValueError, match=message):
        narrow(load_suite("default"), **flags)


def test_the_command_line_reports_a_bad_name_without_a_traceback(capsys):
    assert main(["run", "--explainers", "gradcam", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Did you mean: grad_cam" in err and "Traceback" not in err
    assert main(["run", "--batch-size", "0", "--quiet"]) == 2
    assert "--batch-size must be at least 1" in capsys.readouterr().err
