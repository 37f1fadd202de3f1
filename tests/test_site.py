"""The static site: built from the store alone, deterministic, offline, sortable, with curves."""

from __future__ import annotations

import re

import pytest

from benchmark.cli import main
from benchmark.config import parse_suite
from benchmark.leaderboard import render
from benchmark.runner import run_suite
from benchmark.site import _curves, render_page
from benchmark.store import Cell, ResultsStore


def _store(tmp_path):
    suite = parse_suite(
        "site",
        {
            "batch_size": 4,
            "explainers": ["grad_cam", "random", "center"],
            "metrics": ["pointing_game", "occlusion"],
            "grid": [{"dataset": "synthetic", "limit": 8, "models": [{"name": "cnn_gap"}]}],
        },
    )
    store = ResultsStore(tmp_path / "s.sqlite")
    run_suite(suite, store, device="cpu", progress=False, log=lambda _: None)
    return store


def test_site_pages_are_deterministic_offline_and_citable(tmp_path, data_dir):
    store = _store(tmp_path)
    page = render_page(store, "site")
    assert page == render_page(store, "site"), "same store, same bytes"
    assert 'id="site-synthetic-cnn_gap"' in page, "the markdown board's anchors"
    assert page.count('class="sortable"') >= 4 and "addEventListener" in page
    assert re.search(r'title="mean [^"]*95% CI', page), "CIs on hover"
    assert not re.search(r"(src|href)=\"(https?:)?//", page), "nothing from the network"
    assert "../gallery/site/index.html" in page
    board_anchors = set(re.findall(r'<a id="([^"]+)">', render(store, "site")))
    analysis = {a for a in board_anchors if a.endswith(("-ranks", "-families", "-agreement"))}
    assert analysis, "the board has analysis tables (ranks, families, metric agreement)"
    for anchor in analysis:
        assert f'<h3 id="{anchor}">' in page, f"the board's table {anchor} is on the site"
    assert (
        main(["site", "--store", str(tmp_path / "s.sqlite"), "--out", str(tmp_path / "web")]) == 0
    )
    assert (tmp_path / "web" / "site.html").read_text() == page
    assert 'href="site.html"' in (tmp_path / "web" / "index.html").read_text()


def test_curve_scores_become_an_svg_plot_with_a_line_per_explainer_and_order():
    scores = {
        f"{order}@{f}": {"a": {"i1": 10.0 * f, "i2": None}, "b": {"i1": 5.0}}
        for order in ("morf", "lerf")
        for f in (0.1, 0.5, 0.9)
    }
    scores["morf"] = {"a": {"i1": 1.0}}  # not a curve point
    (svg,) = _curves("road_accuracy", scores, ["a", "b"])
    assert svg.startswith("<svg") and svg.count("<polyline") == 4
    assert "a morf" in svg and "b lerf" in svg and 'stroke-dasharray="4 2"' in svg
    assert _curves("miou", {"top10": {"a": {"i1": 1.0}}}, ["a"]) == []


def test_sorting_in_a_real_browser(tmp_path, data_dir):
    from selenium.webdriver.common.by import By

    from tests.browser import chromium

    _store(tmp_path)
    assert (
        main(["site", "--store", str(tmp_path / "s.sqlite"), "--out", str(tmp_path / "web")]) == 0
    )
    driver = chromium()
    try:
        driver.get((tmp_path / "web" / "site.html").as_uri())
        table = driver.find_element(By.TAG_NAME, "table")
        headings = table.find_elements(By.CSS_SELECTOR, "th.sortable")

        def column(index):
            rows = table.find_elements(By.CSS_SELECTOR, "tbody tr")
            return [
                r.find_elements(By.TAG_NAME, "td")[index].get_attribute("data-value") for r in rows
            ]

        headings[0].click()  # by explainer name, descending
        names = column(0)
        assert names == sorted(names, reverse=True)
        runtime = len(headings) - 1
        headings[runtime].click()  # by runtime, descending
        seconds = [float(v) for v in column(runtime)]
        assert seconds == sorted(seconds, reverse=True)
        headings[runtime].click()  # again: ascending
        assert [float(v) for v in column(runtime)] == sorted(seconds)
        cell = table.find_elements(By.CSS_SELECTOR, "tbody td")[1]
        assert "95% CI" in cell.get_attribute("title")
        curves = tmp_path / "curves.sqlite"  # a curve metric's scores, for the plot
        store = ResultsStore(curves)
        cells = [
            (f"c{e}{f}", Cell("curves", "d", "m", e, "road_accuracy", "i1"), {f"morf@{f}": 100 * f})
            for e in ("a", "b")
            for f in (0.1, 0.5, 0.9)
        ]
        store.put_scores(cells, run_id=store.start_run("curves", {}))
        assert main(["site", "--store", str(curves), "--out", str(tmp_path / "web2")]) == 0
        driver.get((tmp_path / "web2" / "curves.html").as_uri())
        driver.find_element(By.TAG_NAME, "summary").click()  # open the metric's details
        svg = driver.find_element(By.CSS_SELECTOR, "svg[aria-label='road_accuracy curves']")
        assert svg.size["width"] > 300 and svg.is_displayed()
        assert len(svg.find_elements(By.TAG_NAME, "polyline")) == 2
        driver.save_screenshot(str(tmp_path / "site.png"))
    finally:
        driver.quit()


TABULAR_SUITE = """
dataset = "fetal-health"
rows = 6
models = ["random_forest"]
explainers = ["random", "shap_tree_path"]
metrics = ["feature_deletion", "feature_insertion"]
"""


@pytest.fixture(scope="module")
def tabular_site(tmp_path_factory, data_dir):
    """A tiny tabular suite run into a store, its site page and (through the CLI) its gallery."""
    import benchmark.tabular.run as tabular_run

    root = tmp_path_factory.mktemp("tabular")
    (root / "suites").mkdir()
    (root / "suites" / "tiny.toml").write_text(TABULAR_SUITE)
    with pytest.MonkeyPatch.context() as patch:  # "tiny" as a built-in tabular suite
        patch.setattr(tabular_run, "SUITES_DIR", root / "suites")
        store = ResultsStore(root / "s.sqlite")
        tabular_run.run_tabular("tiny", store, log=lambda _: None)
        assert main(["site", "--store", str(root / "s.sqlite"), "--out", str(root / "site")]) == 0
        assert main(["gallery", "--suite", "tiny", "--out", str(root / "gallery")]) == 0
    return root, store


def test_a_tabular_suite_gets_its_page_with_removal_curves_and_a_plot_gallery(tabular_site):
    root, store = tabular_site
    page = render_page(store, "tiny")
    assert page == render_page(store, "tiny") == (root / "site" / "tiny.html").read_text()
    anchor = "tiny-fetal-health-random_forest"
    assert f'id="{anchor}"' in page and f'id="{anchor}-feature_deletion"' in page
    assert "Mean over rows" in page and re.search(r'title="mean [^"]*95% CI', page)
    for metric, moved in (("feature_deletion", "removed"), ("feature_insertion", "inserted")):
        (svg,) = re.findall(rf'<svg [^>]*aria-label="{metric} curves".*?</svg>', page)
        assert svg.count("<polyline") == 2, "one curve per explainer"
        assert f"fraction {moved}" in svg and "shap_tree_path" in svg
    link = f"../gallery/tiny/index.html#{anchor}"
    assert f'<a href="{link}">beeswarm and summary plots</a>' in page
    gallery = (root / "gallery" / "tiny" / "index.html").read_text()
    assert f'<h2 id="{anchor}">' in gallery, "the site's link lands on the model's section"
    images = re.findall(r'<img src="([^"]+)"', gallery)
    assert sorted(images) == [
        f"random_forest--{e}--pathological--{k}.png"
        for e in ("random", "shap_tree_path")
        for k in ("beeswarm", "summary")
    ]
    assert all((root / "gallery" / "tiny" / name).stat().st_size > 5000 for name in images)


def test_the_tabular_page_sorts_and_plots_in_a_real_browser(tabular_site):
    from selenium.webdriver.common.by import By

    from tests.browser import chromium

    root, _ = tabular_site
    driver = chromium()
    try:
        driver.get((root / "site" / "tiny.html").as_uri())
        table = driver.find_element(By.TAG_NAME, "table")
        deletion = table.find_elements(By.CSS_SELECTOR, "th.sortable")[1]
        assert deletion.text.startswith("feature_deletion deletion_auc")
        deletion.click()  # descending: the random baseline deletes worst (highest AUC)
        rows = table.find_elements(By.CSS_SELECTOR, "tbody tr")
        values = [
            float(r.find_elements(By.TAG_NAME, "td")[1].get_attribute("data-value")) for r in rows
        ]
        assert values == sorted(values, reverse=True)
        assert rows[0].find_element(By.TAG_NAME, "td").text == "random"
        details = driver.find_element(By.ID, "tiny-fetal-health-random_forest-feature_deletion")
        details.find_element(By.TAG_NAME, "summary").click()
        svg = details.find_element(By.CSS_SELECTOR, "svg[aria-label='feature_deletion curves']")
        assert svg.is_displayed() and svg.size["width"] > 300
        assert len(svg.find_elements(By.TAG_NAME, "polyline")) == 2
        driver.find_element(By.LINK_TEXT, "beeswarm and summary plots").click()
        images = driver.find_elements(By.TAG_NAME, "img")
        assert len(images) == 4
        assert all(
            driver.execute_script("return arguments[0].naturalWidth", i) > 100 for i in images
        )
        driver.save_screenshot(str(root / "gallery.png"))
    finally:
        driver.quit()
