import pytest

from benchmark.registry import Registry, match_patterns, natural_key


def make_registry():
    reg = Registry("widget")
    for name in ["resnet101", "resnet18", "grad_cam", "grad_cam_pp", "lime"]:
        reg.register(name, tags=("t",))(type(name, (), {"__doc__": f"{name} doc"}))
    return reg


def test_list_uses_wildcards_and_natural_sort():
    reg = make_registry()
    assert reg.list() == ["grad_cam", "grad_cam_pp", "lime", "resnet18", "resnet101"]
    assert reg.list("resnet*") == ["resnet18", "resnet101"]
    assert reg.list("grad*,lime") == ["grad_cam", "grad_cam_pp", "lime"]
    assert reg.list("nothing*") == []
    assert sorted(["a10", "a2", "a1"], key=natural_key) == ["a1", "a2", "a10"]
    assert match_patterns(["x", "y"], "") == ["x", "y"]


def test_duplicate_names_raise():
    reg = make_registry()
    with pytest.raises(ValueError, match="duplicate widget name 'lime'"):
        reg.register("lime")(type("Other", (), {}))


def test_unknown_names_suggest_close_matches():
    reg = make_registry()
    with pytest.raises(KeyError, match="Did you mean: grad_cam"):
        reg.create("gradcam")


def test_missing_optional_dependency_is_reported_at_creation_not_listing():
    reg = Registry("widget")
    reg.register("needs_pkg", requires=("surely_not_installed_pkg",))(type("W", (), {}))
    assert reg.list() == ["needs_pkg"]
    assert reg.entry("needs_pkg").missing_requirements() == ["surely_not_installed_pkg"]
    with pytest.raises(ImportError, match="pip install surely_not_installed_pkg"):
        reg.create("needs_pkg")


def test_public_entry_points():
    import explainers
    import metrics

    assert set(explainers.list_explainers("*")) >= {
        "cam",
        "grad_cam",
        "gradient_pixel",
        "random",
        "center",
    }
    assert explainers.list_explainers("grad_*,gradient_pixel") == ["grad_cam", "gradient_pixel"]
    assert explainers.create_explainer("center", sigma=0.1).params() == {"sigma": 0.1}
    assert isinstance(metrics.list_metrics(), list)
    with pytest.raises(KeyError, match="Did you mean"):
        explainers.create_explainer("grad_kam")


def test_run_settings_are_not_parameters_so_cached_results_stay_valid():
    from metrics import create_metric

    fast = create_metric("road", workers=2, batch_size=8, fractions=(0.5,))
    assert fast.params() == create_metric("road", fractions=(0.5,)).params()
    assert "workers" not in fast.params() and fast.params()["fractions"] == (0.5,)
