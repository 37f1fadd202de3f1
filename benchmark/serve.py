"""``python -m benchmark serve``: a local web page to upload an image (or pick one from a dataset),
choose a model and explainers, and compare the explanations.

The page shows the model's top-5 classes, each explainer's map over the image side by side (the
gallery's display scaling), its runtime, and, on request, per-image faithfulness scores of every
map (the metrics tagged ``faithfulness`` that need no masks or labels; computed while the page says
so). Maps go through the same store and caches as ``run``: an image is identified by the sha256 of
its pixels at the model's input size, its maps are keyed like any other (suite ``serve``, dataset
``upload`` or the dataset picked), so a map shown here is the map a board would score.

Built on Flask: a small synchronous WSGI app with file uploads, a request size limit and a test
client built in; explaining is CPU- or GPU-bound work done one request at a time, so an async
framework would buy nothing, and Gradio would bring a front end fetched from the network. The
server binds to localhost unless ``--host`` says otherwise.

Bad input never takes the server down and never reaches the file system: an upload is decoded in
memory, with a size limit (``MAX_UPLOAD_BYTES``) and a pixel limit against decompression bombs
(``MAX_PIXELS``); models are the ones offered on the page (``--model NAME=WEIGHTS`` adds a timm
model with a local checkpoint at start-up, never from a request); unknown names, truncated or
non-image files and failing explainers each get a clear message.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

import explainers as explainer_plugins
import metrics as metric_plugins
from benchmark.config import ModelSpec, parse_suite
from benchmark.data._base import ArrayDataset
from benchmark.evaluate import score_images
from benchmark.explain import explain_batch
from benchmark.gallery import class_name, display_range
from benchmark.registry import did_you_mean
from benchmark.runner import build_model, model_identity, resolve_device
from benchmark.store import ResultsStore
from benchmark.table import RunSummary, Table

MAX_UPLOAD_BYTES = 16 * 1024 * 1024
MAX_PIXELS = 40_000_000  # about 6300 x 6300: more is refused as a decompression bomb
RECENT = 32  # images kept in memory for the "faithfulness" request that follows a page
MAX_PAGE_COST = 1000  # forwards per image a metric may take to be offered on the page


class InputError(ValueError):
    """Something in the request the user can fix; shown on the page with status 400."""


@dataclass(frozen=True)
class ModelChoice:
    """A model the page offers: a spec as in a suite, and the dataset a trained one learnt on."""

    label: str
    spec: ModelSpec
    dataset: str = "upload"


def default_models() -> list[ModelChoice]:
    """The pretrained ImageNet models that work offline and the harness-trained CNNs with a
    recipe (trained on first use, cached like ``run``'s)."""
    from benchmark import models, training

    choices = [
        ModelChoice(name, ModelSpec(name, pretrained=True))
        for name in models.registry.names()
        if "imagenet" in models.registry.entry(name).tags
    ]
    for model, dataset in sorted(training.RECIPES):
        spec = ModelSpec(model, train=True)
        choices.append(ModelChoice(f"{model} trained on {dataset}", spec, dataset))
    return choices


class Explorer:
    """The server's state: the store, the models loaded so far, the recent images."""

    def __init__(self, store: ResultsStore, device: str = "auto", choices=None, seed: int = 0):
        self.store, self.device, self.seed = store, resolve_device(device), seed
        self.choices = {c.label: c for c in (choices or default_models())}
        self.models: dict[str, tuple] = {}
        self.recent: OrderedDict[str, tuple] = OrderedDict()
        self.lock = threading.Lock()  # one explanation at a time: torch work is not re-entrant
        self.summary = RunSummary(run_id=store.start_run("serve", {"serve": True}))

    # -- what the page offers ----------------------------------------------------------------

    def explainer_names(self) -> list[str]:
        return explainer_plugins.list_explainers()

    def metric_names(self) -> list[str]:
        """The faithfulness metrics the page offers: those that need no mask or label and answer
        while the user waits (at most ``MAX_PAGE_COST`` forwards per image at their defaults)."""
        names = []
        for n in metric_plugins.list_metrics():
            cls = metric_plugins.registry.get(n)
            if (
                "faithfulness" in metric_plugins.registry.entry(n).tags
                and not (cls.needs_masks or cls.needs_labels)
                and metric_plugins.create_metric(n).cost() <= MAX_PAGE_COST
            ):
                names.append(n)
        return names

    def _choice(self, label: str) -> ModelChoice:
        if label not in self.choices:
            hint = did_you_mean(label, self.choices)
            raise InputError(f"unknown model {label!r}.{hint} Choose one of the page's models.")
        return self.choices[label]

    def _model(self, choice: ModelChoice):
        if choice.label not in self.models:
            model = build_model(choice.spec, choice.dataset, self.seed).to(self.device)
            self.models[choice.label] = (model, model_identity(choice.spec, model, self.seed))
        return self.models[choice.label]

    # -- one request ---------------------------------------------------------------------------

    def explain(self, label: str, image: np.ndarray, names: list[str], source: str) -> dict:
        """Top-5 and one map per explainer of ``image`` (uint8 [H,W] or [H,W,3])."""
        unknown = [n for n in names if n not in explainer_plugins.registry]
        if unknown:
            hint = did_you_mean(unknown[0], self.explainer_names())
            raise InputError(f"unknown explainer {unknown[0]!r}.{hint}")
        if not names:
            raise InputError("choose at least one explainer")
        choice = self._choice(label)
        with self.lock:
            model, model_key = self._model(choice)
            table, batch = self._table(choice, model, model_key, image, names, source)
            x = model.normalize(batch.pixels.to(self.device))
            probs = model.probabilities(x)[0]
            targets = probs.argmax().view(1)
            top = probs.topk(min(5, len(probs)))
            maps = explain_batch(table, batch, x, targets)
            self.recent[batch.ids[0]] = (table, batch, x, targets, maps)
            while len(self.recent) > RECENT:
                self.recent.popitem(last=False)
        results = []
        for name, (keys, found) in maps.items():
            entry = found.get(keys[0])
            if entry is None:
                results.append(
                    {"explainer": name, "error": self._why_not(table, name, batch.ids[0])}
                )
            else:
                results.append(
                    {"explainer": name, "png": _overlay(batch, entry[0]), "seconds": entry[1]}
                )
        return {
            "image": batch.ids[0],
            "model": label,
            "top5": [(class_name(table, int(i)), float(p)) for p, i in zip(*top, strict=True)],
            "maps": results,
        }

    def _why_not(self, table: Table, explainer: str, image_id: str) -> str:
        """Why ``explainer`` has no map of the image: its recorded failure, or why it does not
        apply to the model."""
        with self.lock:
            failures = self.store.failures("serve")
        for _, _, name, _, image, _, message in failures:
            if name == explainer and image == image_id:
                return message
        for line in self.summary.skipped:
            if f": {explainer} does not apply: " in line:
                return "does not apply: " + line.split(" does not apply: ", 1)[1]
        return "no map (see the server log)"

    def _class_names(self, choice: ModelChoice) -> list[str]:
        if choice.dataset == "upload":
            return []
        from benchmark.data import load_dataset

        return load_dataset(choice.dataset, limit=1, seed=self.seed).class_names

    def scores(self, image_id: str, names: list[str]) -> dict[str, dict[str, dict]]:
        """Per explainer, per metric: the image's scores of its map (computed now, not stored:
        the page's metric parameters are the metrics' defaults)."""
        if image_id not in self.recent:
            raise InputError("that image is no longer in memory: explain it again")
        unknown = [n for n in names if n not in self.metric_names()]
        if unknown:
            raise InputError(
                f"unknown metric {unknown[0]!r}.{did_you_mean(unknown[0], self.metric_names())}"
            )
        table, batch, x, targets, maps = self.recent[image_id]
        out: dict[str, dict[str, dict]] = {}
        with self.lock:
            for explainer, (keys, found) in maps.items():
                if keys[0] not in found:
                    continue
                saliency = torch.from_numpy(found[keys[0]][0].copy())[None].to(x.device)
                for metric_name in names:
                    metric = metric_plugins.create_metric(metric_name)
                    (values,) = score_images(
                        metric,
                        table.model,
                        x,
                        targets,
                        saliency,
                        None,
                        explainer=table.explainers[explainer],
                    )
                    out.setdefault(explainer, {})[metric_name] = (
                        {"error": values} if isinstance(values, str) else values
                    )
        return out

    def _table(self, choice, model, model_key, image: np.ndarray, names, source):
        """The image as a one-image dataset at the model's input (the datasets' own resize and
        channel conversion) inside a Table of suite ``serve``; its id hashes its pixels."""
        channels, height, width = model.input_size
        digest = hashlib.sha256(image.tobytes() + str(image.shape).encode()).hexdigest()[:24]
        image_id = f"{source}:{digest}"
        dataset = ArrayDataset(
            "upload",
            "test",
            [image_id],
            self._class_names(choice),
            image[None],
            np.array([-1]),
            image_size=(height, width),
            channels=channels,
        )
        spec = {"name": choice.spec.name, "train": choice.spec.train}
        grid = [{"dataset": "upload", "models": [spec]}]
        suite = parse_suite("serve", {"explainers": names, "metrics": [], "grid": grid})
        table = Table(
            suite,
            suite.grid[0],
            choice.spec.name,
            model,
            model_key,
            dataset,
            self.store,
            self.summary,
        )
        batch = next(dataset.batches(1))
        return table, batch


def decode_image(data: bytes) -> np.ndarray:
    """An uploaded file as uint8 pixels, or an InputError saying what is wrong with it."""
    if not data:
        raise InputError("the upload is empty: choose a PNG or JPEG file")
    previous = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                if im.format not in ("PNG", "JPEG"):
                    raise InputError(f"a {im.format} file: upload a PNG or JPEG image")
                im.load()
                return np.array(im.convert("L" if im.mode in ("1", "L", "I;16", "I") else "RGB"))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise InputError(
            f"the image is too large to decode ({e}); the limit is {MAX_PIXELS:,} pixels"
        ) from e
    except UnidentifiedImageError as e:
        raise InputError("not an image (PIL cannot identify it): upload a PNG or JPEG file") from e
    except (OSError, SyntaxError, ValueError) as e:
        raise InputError(f"the image is damaged or truncated ({e}): upload a complete file") from e
    finally:
        Image.MAX_IMAGE_PIXELS = previous


def image_datasets() -> list[str]:
    """The dataset cards the page offers: image sets only (a tabular card has no pictures)."""
    from benchmark.data import list_datasets, read_card

    return [d for d in list_datasets() if read_card(d).get("kind") != "tabular"]


def dataset_image(name: str, index: int) -> np.ndarray:
    """Image ``index`` of a built-in dataset's test split, as uint8 pixels."""
    from benchmark.data import DataError, load_dataset

    known = image_datasets()
    if name not in known:
        raise InputError(f"unknown image dataset {name!r}.{did_you_mean(name, known)}")
    if not 0 <= index < 10_000:
        raise InputError(f"image index {index} is out of range")
    try:
        dataset = load_dataset(name, limit=index + 1)
        if index >= len(dataset):
            raise InputError(f"{name} has {len(dataset)} test images; index {index} is too large")
        batch = dataset.load(dataset.ids[index])
    except DataError as e:
        raise InputError(str(e)) from e
    pixels = (batch.pixels[0].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
    return pixels[..., 0] if pixels.shape[-1] == 1 else pixels


def _overlay(batch, saliency: np.ndarray) -> str:
    """The map over the image as a PNG data URI (the gallery's display scaling)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    image = batch.pixels[0].permute(1, 2, 0).numpy()
    image = image[..., 0] if image.shape[-1] == 1 else image
    fig, ax = plt.subplots(figsize=(2.6, 2.6))
    ax.imshow(image, cmap="gray" if image.ndim == 2 else None)
    shown, cmap, vmin, vmax = display_range(saliency)
    im = ax.imshow(shown, cmap=cmap, vmin=vmin, vmax=vmax, alpha=0.6)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02).ax.tick_params(labelsize=6)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


# -- the web app -----------------------------------------------------------------------------------

STYLE = """body { font: 14px/1.4 system-ui, sans-serif; margin: 2em auto; max-width: 80em; }
.maps { display: flex; flex-wrap: wrap; gap: 1em; } .map { width: 270px; }
.error { color: #b00; } #progress { color: #555; }"""


def create_app(explorer: Explorer):
    """The Flask app over ``explorer``: ``/`` (the form), ``/explain`` (POST), ``/scores`` (POST)."""
    from flask import Flask, jsonify, request
    from werkzeug.exceptions import RequestEntityTooLarge

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_UPLOAD_BYTES

    @app.get("/")
    def index():
        return _page("Compare explanations", _form(explorer))

    @app.post("/explain")
    def explain():
        try:
            names = request.form.getlist("explainer")
            upload = request.files.get("image")
            if upload is not None and upload.filename:
                image, source = decode_image(upload.read()), "upload"
            elif request.form.get("dataset"):
                index = request.form.get("index", "0")
                if not index.isdigit():
                    raise InputError(f"image index {index!r} is not a number")
                image, source = (
                    dataset_image(request.form["dataset"], int(index)),
                    request.form["dataset"],
                )
            else:
                raise InputError("upload an image or choose one from a dataset")
            result = explorer.explain(request.form.get("model", ""), image, names, source)
        except InputError as e:
            return _page(
                "Cannot explain that",
                f'<p class="error">{html.escape(str(e))}</p>' + _form(explorer),
            ), 400
        return _page(
            f"Explanations: {result['model']}", _results(result, explorer) + _form(explorer)
        )

    @app.post("/scores")
    def scores():
        payload = request.get_json(silent=True) or {}
        try:
            return jsonify(
                explorer.scores(str(payload.get("image", "")), list(payload.get("metrics", [])))
            )
        except InputError as e:
            return jsonify({"error": str(e)}), 400

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(_error):
        limit = f"{MAX_UPLOAD_BYTES // (1024 * 1024)} MB"
        return _page(
            "Upload too large",
            f'<p class="error">the upload is over {limit}: send a smaller image</p>',
        ), 413

    @app.errorhandler(Exception)
    def failed(error):
        if hasattr(error, "code") and hasattr(error, "description"):  # an HTTP error (404, 405)
            return _page(
                "Error", f'<p class="error">{html.escape(error.description)}</p>'
            ), error.code
        app.logger.exception("request failed")
        message = f"{type(error).__name__}: {error}"
        return _page(
            "Error", f'<p class="error">the server could not do that: {html.escape(message)}</p>'
        ), 500

    return app


def _form(explorer: Explorer) -> str:
    models = "".join(f"<option>{html.escape(m)}</option>" for m in explorer.choices)
    boxes = "".join(
        f'<label><input type="checkbox" name="explainer" value="{n}"{" checked" if n in ("grad_cam", "center") else ""}> {n}</label> '
        for n in explorer.explainer_names()
    )
    datasets = "".join(f"<option>{html.escape(d)}</option>" for d in ["", *image_datasets()])
    return f"""<form method="post" action="/explain" enctype="multipart/form-data">
<p><label>Image (PNG or JPEG): <input type="file" name="image" accept="image/png,image/jpeg"></label>
or from a dataset: <select name="dataset">{datasets}</select> image <input name="index" value="0" size="4"></p>
<p><label>Model: <select name="model">{models}</select></label></p>
<p>Explainers: {boxes}</p>
<p><button type="submit">Explain</button></p></form>"""


def _results(result: dict, explorer: Explorer) -> str:
    top = "".join(f"<li>{html.escape(name)}: {p:.3f}</li>" for name, p in result["top5"])
    cards = []
    for m in result["maps"]:
        name = html.escape(m["explainer"])
        if "error" in m:
            body = f'<p class="error">failed: {html.escape(m["error"])}</p>'
        else:
            body = (
                f'<img alt="{name}" src="{m["png"]}" width="260"><br>{m["seconds"]:.3g} s per image'
            )
        cards.append(
            f'<div class="map" data-explainer="{name}"><b>{name}</b><br>{body}<div class="scores"></div></div>'
        )
    metrics = " ".join(
        f'<label><input type="checkbox" class="metric" value="{n}"{" checked" if n == "road" else ""}>'
        f" {n}</label>"
        for n in explorer.metric_names()
    )
    return f"""<h2>Top-5 of {html.escape(result["model"])}</h2><ol id="top5">{top}</ol>
<h2>Explanations of the top-1 class</h2><div class="maps">{"".join(cards)}</div>
<p>Faithfulness of each map: {metrics}
<button id="score" data-image="{html.escape(result["image"])}">Score</button>
<span id="progress"></span></p>
<script>
document.getElementById("score").addEventListener("click", function () {{
  var button = this, progress = document.getElementById("progress");
  button.disabled = true; progress.textContent = "computing… (a few seconds per map)";
  fetch("/scores", {{method: "POST", headers: {{"Content-Type": "application/json"}},
    body: JSON.stringify({{image: button.dataset.image, metrics: Array.from(
      document.querySelectorAll("input.metric:checked")).map(function (b) {{ return b.value; }})}})}})
  .then(function (r) {{ return r.json(); }}).then(function (data) {{
    if (data.error) {{ progress.textContent = data.error; return; }}
    document.querySelectorAll(".map").forEach(function (card) {{
      var per = data[card.dataset.explainer] || {{}}, lines = [];
      Object.keys(per).forEach(function (metric) {{
        var v = per[metric]; if (v.error) {{ lines.push(metric + ": " + v.error); return; }}
        Object.keys(v).forEach(function (s) {{ lines.push(metric + " " + s + " " + (v[s] === null ? "n/a" : v[s].toFixed(3))); }});
      }});
      card.querySelector(".scores").textContent = lines.join(" · ");
    }});
    progress.textContent = "done";
  }}).catch(function (e) {{ progress.textContent = "failed: " + e; }})
  .finally(function () {{ button.disabled = false; }});
}});
</script>"""


def _page(title: str, body: str) -> str:
    return (
        f'<!doctype html><html lang="en"><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{STYLE}</style><body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )


def serve(store_path: str, host: str, port: int, device: str, extra_models: list[str]) -> None:
    """Run the app until Ctrl-C (werkzeug's server: one user, on this machine by default)."""
    choices = default_models()
    for item in extra_models:
        name, _, weights = item.partition("=")
        if not weights:
            raise ValueError(
                f"--model {item!r}: give NAME=WEIGHTS (a timm name and a local checkpoint)"
            )
        choices.append(ModelChoice(name, ModelSpec(name, weights=weights)))
    explorer = Explorer(ResultsStore(store_path), device, choices)
    print(f"serving on http://{host}:{port}/ (Ctrl-C stops)")
    create_app(explorer).run(host=host, port=port, threaded=False)
