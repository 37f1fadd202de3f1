"""The Ray executor: a suite's tables filled by Ray actors, the store written by the driver alone.

``python -m benchmark run --executor ray [--address ADDR]`` (or ``run_suite(..., executor="ray")``).
Per (dataset, model) table the driver (this process) opens the table as a local run does (model,
dataset, plugins, the model recorded in the store), then starts actors that each open the same
table themselves (the model built and its weights checked against the driver's, the dataset
loaded, the plugins created), with a :class:`~benchmark.executors.RecordingStore` as their store:

* GPUs: an actor per :data:`GPU_SHARE` of a GPU (four small CNNs share one), one CPU each; else
  one actor per CPU of the cluster (``workers`` overrides the count, the CPUs split among the
  actors as torch threads); a CPU actor holds no CPU once placed (Ray's default for actors), as
  it waits for the CPU tasks below, and Ray keeps an actor's resources while it blocks: actors
  holding every CPU would deadlock;
* ROAD's noisy linear imputation (CPU-bound sparse solves) leaves the actor as Ray CPU tasks,
  one per cluster CPU per call (:func:`impute_on_ray` through
  :func:`metrics._imputation.imputation_map`); each system is seeded by its task, so the values
  are those of a local run. On a GPU actor ROAD imputes on the device, as a local GPU run does;
* the unit of work is (batch of images, explainer): for each, the driver computes the saliency
  keys and score cells as the stages would, looks them up in the store, and a unit whose maps and
  scores are all there is never sent out (the driver claims it, as a local run would, without
  calling any plugin); the others go to an idle actor with the batch and what the store holds for
  it, and the actor runs :func:`benchmark.runner.fill_batch` on it, the local stage code;
* results come back in the order the units were made (a bounded window keeps memory flat) and
  the driver replays each unit's recorded writes into the store, then merges its summary (counts,
  failures, skip lines): the store ends as a local run's, cell for cell, runtimes aside.

Determinism: every random draw of a plugin is seeded from the suite's seed and the image (its
content or cache key), never from a worker's state; each actor seeds torch with the suite's seed
as the runner does, and builds random-init models from it. Faults: an actor whose process dies
(killed, out of memory) is restarted by Ray (``max_restarts``) and its task retried
(``max_task_retries``); a task has no side effects, so a retry loses and duplicates nothing. A
plugin failing deterministically is caught by the stage code and recorded, as locally. A driver
killed mid-run resumes from the store like a local run. See docs/RAY.md.
"""

from __future__ import annotations

import collections
import hashlib
import math
import os
import time
from collections.abc import Callable
from pathlib import Path

import ray
import torch
from ray.util import ActorPool
from tqdm.auto import tqdm

from benchmark.evaluate import evaluate_batch, runtime_key, score_key
from benchmark.executors.recording import RecordingStore, replay
from benchmark.explain import explain_batch, saliency_keys
from benchmark.table import RunSummary, Table
from metrics._imputation import Task, imputation_map, impute_here

GPU_SHARE = 0.25  # of a GPU per actor: small CNNs share one
MAX_RESTARTS = 3  # an actor whose process dies is restarted this often ...
MAX_TASK_RETRIES = 3  # ... and its task retried; tasks have no side effects


@ray.remote(num_cpus=1, max_retries=MAX_TASK_RETRIES)
def _impute_chunk(tasks: list[Task]) -> list:
    return impute_here(tasks, workers=1)


def impute_on_ray(tasks: list[Task], chunks: int) -> list:
    """ROAD's imputation ``tasks`` solved as at most ``chunks`` Ray CPU tasks of about equal work
    (removed pixels), results in the tasks' order: a ``metrics._imputation`` systems map."""
    chunks = max(1, min(chunks, len(tasks)))
    parts: list[list[int]] = [[] for _ in range(chunks)]
    work = [0] * chunks
    for i in sorted(range(len(tasks)), key=lambda i: -int(tasks[i][1].sum())):
        lightest = work.index(min(work))
        parts[lightest].append(i)
        work[lightest] += int(tasks[i][1].sum())
    solved = ray.get([_impute_chunk.remote([tasks[i] for i in part]) for part in parts])
    out: list = [None] * len(tasks)
    for part, images in zip(parts, solved, strict=True):
        for i, image in zip(part, images, strict=True):
            out[i] = image
    return out


def model_fingerprint(model) -> str:
    """A hash of the model's parameters and buffers: the driver's and a worker's must agree."""
    digest = hashlib.sha256()
    for name, tensor in model.net.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


@ray.remote
class TableWorker:
    """One table opened on a Ray worker, filling the units it is sent."""

    def __init__(
        self,
        suite,
        entry,
        spec,
        run_id,
        model_key,
        fingerprint,
        device,
        timeout,
        env,
        die_once,
        threads,
        cpus,
    ):
        from benchmark.runner import open_table

        os.environ.update(env)
        torch.set_num_threads(threads)
        torch.manual_seed(suite.seed)  # as run_suite does, before any table is opened
        self.cpus = cpus  # of the cluster: the imputation's Ray tasks per call
        self.imputation_tasks = 0
        self.die_once = die_once
        self.device = torch.device(device)
        self.store = RecordingStore()
        self.run_id = run_id
        summary = RunSummary(run_id=run_id)
        lines: list[str] = []
        table = open_table(
            suite, entry, spec, self.store, summary, self.device, log=lines.append, progress=False
        )
        if table is None:
            raise RuntimeError(f"worker on {os.uname().nodename}: {'; '.join(lines)}")
        if table.model_key != model_key or model_fingerprint(table.model) != fingerprint:
            raise RuntimeError(
                f"worker on {os.uname().nodename} built another {spec.name} than the driver "
                "(weights or code differ): give every node the same weights and harness"
            )
        table.timeout = timeout
        self.table = table

    def impute(self, tasks: list[Task]) -> list:
        self.imputation_tasks += min(self.cpus, len(tasks))
        return impute_on_ray(tasks, self.cpus)

    def fill(self, unit: dict) -> dict:
        """One (batch, explainers) unit through the stages; its recorded store writes, summary
        and the explainers found not to apply."""
        from benchmark.data._base import Batch
        from benchmark.runner import fill_batch

        if self.die_once and not Path(self.die_once).exists():  # test hook: a dying process
            Path(self.die_once).touch()
            os._exit(1)
        start = time.perf_counter()
        self.store.load(unit["maps"], unit["done"])
        self.table.summary = RunSummary(run_id=self.run_id)
        self.imputation_tasks = 0
        batch = Batch(unit["ids"], unit["pixels"], unit["labels"], unit["masks"])
        with imputation_map(self.impute):
            fill_batch(self.table, batch, self.device, names=unit["names"])
        return {
            "records": self.store.records,
            "summary": self.table.summary,
            "not_applicable": set(self.table.not_applicable),
            "seconds": time.perf_counter() - start,
            "imputation_tasks": self.imputation_tasks,
        }


class RayExecutor:
    """Fills tables on a Ray cluster (``address``: an existing one, e.g. ``ray://head:10001`` or
    ``auto``; None: the one this process is connected to, else a new local one). ``device``:
    ``auto`` (GPUs where the cluster has them), ``cpu`` or ``cuda``; ``workers``: actors per
    table (default: as many as the cluster's resources hold; on CPUs they share the cluster's
    CPUs as torch threads, at least one each). ``die_once``: test hook, a file
    path: the first task of the run kills its worker process (and creates the file)."""

    def __init__(
        self,
        *,
        address: str | None = None,
        device: str = "auto",
        workers: int | None = None,
        log: Callable[[str], None] = print,
        die_once: str | None = None,
    ) -> None:
        if workers is not None and workers < 1:
            raise ValueError(f"workers must be at least 1 (Ray actors per table), got {workers}")
        self.started = not ray.is_initialized()
        if self.started:
            runtime_env = local_runtime_env() if address is None else None
            context = ray.init(address=address, runtime_env=runtime_env, log_to_driver=False)
            url = getattr(context, "dashboard_url", None)
        else:
            url = _dashboard_url()
        if url:
            log(f"Ray dashboard: {url if '://' in url else 'http://' + url}")
        resources = ray.cluster_resources()
        gpus, cpus = resources.get("GPU", 0), max(1, int(resources.get("CPU", 1)))
        if device.startswith("cuda") and not gpus:
            raise RuntimeError(f"--device {device}: the Ray cluster has no GPU; use --device cpu")
        self.use_gpu = device != "cpu" and gpus > 0
        if self.use_gpu:
            self.options = {"num_gpus": GPU_SHARE, "num_cpus": 1}
            self.worker_device = "cuda"
            capacity = min(int(gpus / GPU_SHARE), cpus)
        else:
            self.options = {}  # Ray's default: 1 CPU to place the actor, none held after
            self.worker_device = "cpu"
            capacity = cpus
        self.workers = workers or capacity
        self.cpus = cpus
        self.threads = 1 if self.use_gpu else max(1, cpus // self.workers)  # torch, per actor
        # the driver computes targets and keys with its own copy of the model
        here = torch.cuda.is_available() and device != "cpu"
        self.driver_device = torch.device("cuda" if here and self.use_gpu else "cpu")
        self.die_once = die_once
        self.address = address
        self.sent = 0  # units sent out to workers (the rest were in the store)
        self.units = 0
        self.task_seconds: list[float] = []  # per unit sent: from submission to its result
        self.work_seconds: list[float] = []  # per unit sent: its time inside the actor
        self.imputation_tasks = 0  # Ray CPU tasks the actors sent ROAD's imputations to

    def describe(self) -> dict:
        """The executor's part of the run's provenance."""
        return {
            "name": "ray",
            "ray": ray.__version__,
            "workers": self.workers,
            "threads_per_worker": self.threads,
            "worker_device": self.worker_device,
        }

    def close(self) -> None:
        if self.started and ray.is_initialized():
            ray.shutdown()

    def _env(self) -> dict[str, str]:
        """What a worker needs from the driver's environment (the data folder, made absolute)."""
        from benchmark.data._files import DATA_ENV

        env = {}
        value = os.environ.get(DATA_ENV)
        if value:
            env[DATA_ENV] = (
                str(Path(value).expanduser().resolve()) if Path(value).is_dir() else value
            )
        return env

    def _actors(self, table: Table) -> list:
        options = {
            **self.options,
            "max_restarts": MAX_RESTARTS,
            "max_task_retries": MAX_TASK_RETRIES,
        }
        suite, entry = table.suite, table.entry
        spec = next(m for m in entry.models if m.name == table.model_name)
        fingerprint = model_fingerprint(table.model)
        args = (
            suite,
            entry,
            spec,
            table.summary.run_id,
            table.model_key,
            fingerprint,
            self.worker_device,
            table.timeout,
            self._env(),
            self.die_once,
            self.threads,
            self.cpus,
        )
        return [TableWorker.options(**options).remote(*args) for _ in range(self.workers)]

    def fill(self, table: Table, device: torch.device, progress: bool) -> None:
        """Every batch of the table: units the store lacks filled by actors (started at the
        first such unit), the others claimed here; all replayed in a local run's order."""
        from benchmark.runner import record_data_problems

        batch_size = table.suite.batch_size
        total = math.ceil(len(table.dataset) / batch_size)
        bar = tqdm(total=total, desc=table.where, disable=not progress, unit="batch")
        run = _TableRun(self, table, bar)
        try:
            for batch in table.dataset.batches(batch_size):
                images = table.model.normalize(batch.pixels.to(device))
                targets = table.targets(batch, images)
                names = list(table.explainers)
                for position, name in enumerate(names):
                    run.add(batch, images, targets, name, last=position == len(names) - 1)
            run.drain()
        finally:
            bar.close()
            run.stop()
        record_data_problems(table)


class _TableRun:
    """The units of one table in the order a local run makes them: sent to actors or claimed
    here, finished (replayed) oldest first, at most ``2 x workers`` in flight."""

    def __init__(self, executor: RayExecutor, table: Table, bar) -> None:
        self.executor, self.table, self.bar = executor, table, bar
        self.actors: list = []
        self.pool: ActorPool | None = None
        self.pending: collections.deque = collections.deque()
        self.in_flight = 0

    def add(self, batch, images, targets, name: str, last: bool) -> None:
        """The unit (batch, explainer ``name``): sent out unless the store holds all its cells."""
        table, executor = self.table, self.executor
        keys = saliency_keys(table, name, batch.ids, images, targets)
        maps = table.store.get_maps(keys)
        cells = [runtime_key(k) for k in keys] + [
            score_key(k, metric_name, metric)
            for k in keys
            for metric_name, metric in table.metrics.items()
        ]
        done = table.store.done_cells(table.suite.name, cells)
        executor.units += 1
        unit = {"names": [name], "last": last, "batch": batch, "images": images}
        unit["targets"] = targets
        held = len(maps) == len(keys) and len(done) == len(cells)
        if held or name in table.not_applicable:
            unit["remote"] = False
        else:
            if self.pool is None:
                self.actors = executor._actors(table)
                self.pool = ActorPool(self.actors)
            payload = {
                "ids": list(batch.ids),
                "pixels": batch.pixels,
                "labels": batch.labels,
                "masks": batch.masks,
                "names": [name],
                "maps": maps,
                "done": done,
            }
            unit.update(remote=True, sent=time.perf_counter(), images=None, targets=None)
            self.pool.submit(lambda actor, value: actor.fill.remote(value), payload)
            self.in_flight += 1
            executor.sent += 1
        self.pending.append(unit)
        window = 2 * max(1, len(self.actors))
        while self.pending and (self.in_flight > window or not self.pending[0]["remote"]):
            self.finish_oldest()

    def drain(self) -> None:
        while self.pending:
            self.finish_oldest()

    def finish_oldest(self) -> None:
        table, executor = self.table, self.executor
        unit = self.pending.popleft()
        if unit["remote"]:
            try:
                result = self.pool.get_next()
            except ray.exceptions.RayError as e:
                raise RuntimeError(
                    f"{table.where}: a Ray worker failed past its retries ({e}); what was done "
                    "is in the store: rerun the same command to resume"
                ) from e
            self.in_flight -= 1
            executor.task_seconds.append(time.perf_counter() - unit["sent"])
            executor.work_seconds.append(result["seconds"])
            executor.imputation_tasks += result["imputation_tasks"]
            replay(result["records"], table.store)
            _merge(table.summary, result["summary"])
            table.not_applicable |= result["not_applicable"]
        else:  # all in the store: the stages only claim it, calling no plugin
            batch, images, targets = unit["batch"], unit["images"], unit["targets"]
            found = explain_batch(table, batch, images, targets, unit["names"])
            for name, (keys, maps) in found.items():
                evaluate_batch(table, name, keys, maps, batch, images, targets)
        if unit["last"]:
            self.bar.update(1)
            self.bar.set_postfix(sent=executor.sent, refresh=False)

    def stop(self) -> None:
        for actor in self.actors:
            ray.kill(actor, no_restart=True)


def local_runtime_env() -> dict:
    """For a local cluster: its workers import this very harness (first on their path, before
    any other package named ``benchmark``, such as the stray one the ``lime`` wheel installs)."""
    root = str(Path(__file__).resolve().parents[2])
    paths = [root, *filter(None, [os.environ.get("PYTHONPATH")])]
    return {"env_vars": {"PYTHONPATH": os.pathsep.join(paths)}}


def _merge(summary: RunSummary, part: RunSummary) -> None:
    """Add a unit's summary (from a worker) to the run's."""
    summary.explained += part.explained
    summary.evaluated += part.evaluated
    summary.cached += part.cached
    summary.failures += part.failures
    for line in part.skipped:
        summary.skip(line)


def _dashboard_url() -> str | None:
    """The dashboard of the cluster this process is already connected to, if it runs one."""
    try:
        from ray._private.worker import get_dashboard_url

        return get_dashboard_url() or None
    except Exception:
        return None
