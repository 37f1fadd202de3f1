"""The upload-and-compare page: served for real, bad input answered clearly, the server stays up."""

from __future__ import annotations

import html
import io
import struct
import threading
import zlib
from dataclasses import dataclass

import numpy as np
import pytest
from PIL import Image

import explainers
from benchmark.config import ModelSpec
from benchmark.serve import Explorer, ModelChoice, create_app
from benchmark.store import ResultsStore

CHOICES = [
    ModelChoice("efficientnet_lite0", ModelSpec("efficientnet_lite0", pretrained=True)),
    ModelChoice("cnn_gap", ModelSpec("cnn_gap")),
]


@pytest.fixture(scope="module")
def explorer(tmp_path_factory):
    store = ResultsStore(tmp_path_factory.mktemp("serve") / "s.sqlite")
    return Explorer(store, "cpu", CHOICES)


@pytest.fixture
def client(explorer):
    return create_app(explorer).test_client()


@pytest.fixture(scope="module")
def samoyed(data_dir) -> bytes:
    return (data_dir / "voc-masks" / "images" / "pets_samoyed_36.png").read_bytes()


def _post(client, image: bytes | None, model="efficientnet_lite0", names=("grad_cam", "center")):
    data = {"model": model, "explainer": list(names)}
    if image is not None:
        data["image"] = (io.BytesIO(image), "x.png")
    return client.post("/explain", data=data, content_type="multipart/form-data")


def test_upload_shows_top5_and_a_map_per_explainer_through_the_store(client, explorer, samoyed):
    page = _post(client, samoyed).get_data(as_text=True)
    assert "Samoyed" in page.split("</ol>")[0], "top-5 of the real ImageNet model"
    assert page.count('src="data:image/png;base64,') == 2 and "s per image" in page
    keys = explorer.store.db.execute("SELECT count(*) FROM saliency").fetchone()[0]
    assert keys >= 2, "the maps are in the store, keyed like any run's"
    again = _post(client, samoyed)
    assert again.status_code == 200
    assert explorer.store.db.execute("SELECT count(*) FROM saliency").fetchone()[0] == keys


def test_grey_images_and_dataset_images_work(client, data_dir):
    grey = io.BytesIO()
    Image.fromarray((np.arange(64 * 64).reshape(64, 64) % 256).astype(np.uint8)).save(grey, "PNG")
    assert _post(client, grey.getvalue(), model="cnn_gap").status_code == 200
    data = {
        "model": "efficientnet_lite0",
        "explainer": ["center"],
        "dataset": "voc-masks",
        "index": "2",
    }
    assert client.post("/explain", data=data).status_code == 200


def test_the_page_offers_image_datasets_only(client):
    page = client.get("/").get_data(as_text=True)
    assert "<option>voc-masks</option>" in page and "fetal-health" not in page
    data = {"model": "cnn_gap", "explainer": ["center"], "dataset": "fetal-health", "index": "0"}
    response = client.post("/explain", data=data)
    assert response.status_code == 400
    assert "unknown image dataset 'fetal-health'" in html.unescape(response.get_data(as_text=True))


def test_the_page_offers_only_metrics_that_answer_while_the_user_waits(explorer):
    import metrics
    from benchmark.serve import MAX_PAGE_COST

    offered = explorer.metric_names()
    assert {"occlusion", "road", "deletion"} <= set(offered)
    assert all(metrics.create_metric(n).cost() <= MAX_PAGE_COST for n in offered)
    assert "quantus_monotonicity_correlation" not in offered, "15 million forwards per image"


def test_faithfulness_scores_on_request(client, explorer, samoyed):
    page = _post(client, samoyed).get_data(as_text=True)
    image_id = page.split('data-image="')[1].split('"')[0]
    assert "occlusion" in explorer.metric_names() and "road" in explorer.metric_names()
    scores = client.post("/scores", json={"image": image_id, "metrics": ["occlusion"]}).get_json()
    assert set(scores) == {"grad_cam", "center"}
    assert 0 <= scores["grad_cam"]["occlusion"]["drop_s"] <= 100
    bad = client.post("/scores", json={"image": "nope", "metrics": ["occlusion"]})
    assert bad.status_code == 400 and "explain it again" in bad.get_json()["error"]


def _bomb() -> bytes:
    """A valid small PNG whose header claims 100000 x 100000 pixels."""
    buffer = io.BytesIO()
    Image.new("L", (8, 8)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    ihdr = struct.pack(">II", 100_000, 100_000) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


@pytest.mark.parametrize(
    "image, model, names, message",
    [
        (b"just some text", "efficientnet_lite0", ["center"], "not an image"),
        (None, "efficientnet_lite0", ["center"], "upload an image or choose one"),
        ("truncated", "efficientnet_lite0", ["center"], "damaged or truncated"),
        ("bomb", "efficientnet_lite0", ["center"], "too large to decode"),
        ("ok", "resnet5o", ["center"], "unknown model 'resnet5o'"),
        ("ok", "efficientnet_lite0", ["grad_kam"], "Did you mean: grad_cam"),
        ("ok", "efficientnet_lite0", [], "choose at least one explainer"),
    ],
)
def test_bad_input_gets_a_clear_message_and_the_server_stays_up(
    client, samoyed, image, model, names, message
):
    image = {"truncated": samoyed[: len(samoyed) // 3], "bomb": _bomb(), "ok": samoyed}.get(
        image, image
    )
    response = _post(client, image, model=model, names=names)
    assert response.status_code == 400
    assert message in html.unescape(response.get_data(as_text=True))
    assert client.get("/").status_code == 200


def test_an_upload_over_the_limit_is_refused(explorer):
    app = create_app(explorer)
    app.config["MAX_CONTENT_LENGTH"] = 1000
    response = _post(app.test_client(), b"x" * 5000)
    assert response.status_code == 413 and "over" in response.get_data(as_text=True)


@dataclass
class _Fails(explainers.Explainer):
    """Test plugin: always fails."""

    def explain(self, model, images, targets):
        raise RuntimeError("this explainer fails on purpose")


def test_a_failing_explainer_is_reported_beside_the_others(client, samoyed):
    explainers.registry.register("fails_serve_test")(_Fails)
    try:
        page = _post(client, samoyed, names=["fails_serve_test", "center"]).get_data(as_text=True)
    finally:
        explainers.registry.unregister("fails_serve_test")
    assert "failed: RuntimeError: this explainer fails on purpose" in page
    assert page.count('src="data:image/png;base64,') == 1


def test_in_a_real_browser(explorer, data_dir, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import Select, WebDriverWait
    from werkzeug.serving import make_server

    from tests.browser import chromium

    driver = chromium()
    server = make_server("127.0.0.1", 0, create_app(explorer))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        driver.get(f"http://127.0.0.1:{server.server_port}/")
        upload = data_dir.resolve() / "voc-masks" / "images" / "pets_samoyed_36.png"
        driver.find_element(By.NAME, "image").send_keys(str(upload))
        Select(driver.find_element(By.NAME, "model")).select_by_visible_text("efficientnet_lite0")
        driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        WebDriverWait(driver, 120).until(EC.presence_of_element_located((By.ID, "top5")))
        assert "Samoyed" in driver.find_element(By.ID, "top5").text
        assert len(driver.find_elements(By.CSS_SELECTOR, ".map img")) == 2
        for box in driver.find_elements(By.CSS_SELECTOR, "input.metric"):
            if box.is_selected() != (box.get_attribute("value") == "occlusion"):
                box.click()  # occlusion only: three forwards per map
        driver.find_element(By.ID, "score").click()
        WebDriverWait(driver, 300).until(
            EC.text_to_be_present_in_element((By.ID, "progress"), "done")
        )
        assert "occlusion drop_s" in driver.find_element(By.CSS_SELECTOR, ".map .scores").text
        driver.save_screenshot(str(tmp_path / "serve.png"))

        fake = tmp_path / "notes.png"  # a text file named .png: an error, the server stays up
        fake.write_text("not a picture at all")
        driver.find_element(By.NAME, "image").send_keys(str(fake))
        driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        WebDriverWait(driver, 60).until(EC.presence_of_element_located((By.CSS_SELECTOR, ".error")))
        assert "not an image" in driver.find_element(By.CSS_SELECTOR, ".error").text
        driver.find_element(By.NAME, "image").send_keys(str(upload))  # the next upload works
        driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        WebDriverWait(driver, 120).until(EC.presence_of_element_located((By.ID, "top5")))
        assert len(driver.find_elements(By.CSS_SELECTOR, ".map img")) == 2
    finally:
        driver.quit()
        server.shutdown()
