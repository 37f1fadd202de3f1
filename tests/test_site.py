"""The static site: built from the store alone, deterministic, offline, sortable, with curves."""

from __future__ import annotations

import re

from benchmark.cli import main
from benchmark.config import parse_suite
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
