"""The page's explain-and-score requests against the bare work they wrap, measured in the same run.

One 224 px photo, Grad-CAM on EfficientNet-Lite0, occlusion scores: the two requests the page makes
(``/explain`` with its overlay PNG, then ``/scores``), after a warm-up request, against calling
``explain`` and the metric directly on the same tensors. Target: the page within 2x of the bare work
(decoding, resizing, the store and the overlay plot on top). Run:
``BENCHMARK_DATA_DIR=../shared/data python -m pytest benchmarks/test_serve_speed.py --benchmark-enable -s``.

Measured on 2 CPU cores: page 0.198 s, bare 0.050 s: 3.99x, so the target is not met yet; the
overlay plot (matplotlib, PNG) takes 0.068 s of the 0.148 s on top, the rest is decoding and
resizing the 500 px upload, the store and Flask. The issue's own bound (well under a second
after warm-up) holds.
"""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import pytest
import torch

from benchmark.config import ModelSpec
from benchmark.serve import Explorer, ModelChoice, create_app, decode_image
from benchmark.store import ResultsStore
from explainers import create_explainer
from metrics import create_metric


def _request(client, photo: bytes) -> None:
    data = {"model": "efficientnet_lite0", "explainer": ["grad_cam"]}
    data["image"] = (io.BytesIO(photo), "x.png")
    page = client.post("/explain", data=data, content_type="multipart/form-data")
    image_id = page.get_data(as_text=True).split('data-image="')[1].split('"')[0]
    client.post("/scores", json={"image": image_id, "metrics": ["occlusion"]})


def test_explain_and_score_request(benchmark, tmp_path):
    root = os.environ.get("BENCHMARK_DATA_DIR")
    if not root:
        pytest.skip("needs BENCHMARK_DATA_DIR (the Samoyed photo of voc-masks)")
    photo = (Path(root) / "voc-masks" / "images" / "pets_samoyed_36.png").read_bytes()
    choice = ModelChoice("efficientnet_lite0", ModelSpec("efficientnet_lite0", pretrained=True))
    explorer = Explorer(ResultsStore(tmp_path / "s.sqlite"), "cpu", [choice])
    client = create_app(explorer).test_client()
    _request(client, photo)  # warm-up: the model, caches
    model = explorer.models["efficientnet_lite0"][0]
    pixels = torch.from_numpy(decode_image(photo)).permute(2, 0, 1)[None].float() / 255
    images = model.normalize(torch.nn.functional.interpolate(pixels, size=(224, 224)))
    targets = model.probabilities(images).argmax(1)

    def bare():
        maps = create_explainer("grad_cam").explain(model, images, targets)
        create_metric("occlusion")(model=model, images=images, targets=targets, saliency=maps)

    bare()
    start = time.perf_counter()
    bare()
    reference = time.perf_counter() - start
    start = time.perf_counter()
    benchmark.pedantic(_request, args=(client, photo), rounds=3, iterations=1)
    page = (time.perf_counter() - start) / 3
    benchmark.extra_info.update(page_s=page, bare_s=reference, ratio=page / reference)
    print(f"page {page:.3f} s, bare explain + score {reference:.3f} s: {page / reference:.2f}x")
    if benchmark.disabled:
        pytest.skip("timings only with --benchmark-enable")
    assert page / reference <= 2.0
