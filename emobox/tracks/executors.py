"""Executors of ``emobox bench`` tasks: in this process (``local``) or on a Ray cluster (``ray``).

Both run the same two task functions, :func:`extract_task` and :func:`train_task`, on plain
picklable data, and hand results back to the driver, which alone writes to the bench directory.
An executor offers ``submit_extract``, ``submit_train``, ``pending``, ``next_done`` (one
finished task: id, its metadata, result or error, and where and how long it ran) and ``close``.

The Ray executor joins a running Ray instance (``ray.init`` already called, or ``--address``),
else starts a local one. Extraction tasks ask for ``extract_gpus`` GPUs (default one) and
training tasks for ``train_cpus`` CPUs and ``train_gpus`` GPUs (default a quarter) when the
cluster has GPUs; without GPUs both run on CPUs. Tasks read audio and the feature store by the
absolute paths the driver planned with, so on a multi-node cluster the corpora and the feature
folder (``EMOBOX_HOME`` or ``--features-dir``) must be on a filesystem every node mounts.
"""

from __future__ import annotations

import socket
import time
import traceback
from collections import deque
from dataclasses import replace
from typing import Any

from emobox.errors import EmoboxError, EmoboxUsageError
from emobox.plugin.registry import Registry, get_registry
from emobox.progress import Reporter


def extract_task(upstream: Any, manifest: Any, opts: Any, down_layers: str, device: str,
                 reporter: Reporter | None = None) -> tuple[Any, dict]:
    """Extract the features of one (upstream, corpus); ``upstream`` is a spec or a name."""
    from emobox.tracks.runner import extract_features

    spec = get_registry().upstream(upstream) if isinstance(upstream, str) else upstream
    start = time.perf_counter()
    feats = extract_features(spec, manifest, opts, device, reporter, down_layers)
    return feats, _info(start, device)


def train_task(job: Any, downstream: Any, device: str,
               reporter: Reporter | None = None) -> tuple[Any, dict]:
    """Train one fold's grid; ``downstream`` is a spec or a name."""
    from emobox.tracks.runner import train_fold

    spec = get_registry().downstream(downstream) if isinstance(downstream, str) else downstream
    start = time.perf_counter()
    output = train_fold(replace(job, train=replace(job.train, device=device)), spec, reporter)
    return output, _info(start, device)


def _info(start: float, device: str) -> dict:
    return {"seconds": time.perf_counter() - start, "node": socket.gethostname(),
            "device": device}


def describe_error(exc: BaseException) -> BaseException:
    """Keep emobox errors as they are; give other exceptions their traceback's last frames."""
    if isinstance(exc, EmoboxError):
        return exc
    frames = traceback.extract_tb(exc.__traceback__)[-3:]
    where = "; ".join(f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno} in {f.name}" for f in frames)
    return RuntimeError(f"{type(exc).__name__}: {exc}" + (f" [at {where}]" if where else ""))


class LocalExecutor:
    """Runs tasks one at a time in this process; trainings go before further extractions, so
    each (upstream, corpus) is finished before the next one is extracted."""

    shows_progress = True

    def __init__(self, device: str, registry: Registry | None = None,
                 reporter: Reporter | None = None):
        from emobox.extraction.extract import resolve_device

        self.device = resolve_device(device)
        self.registry = registry or get_registry()
        self.reporter = reporter
        self.extractions: deque = deque()
        self.trainings: deque = deque()

    def submit_extract(self, task_id: str, tp: Any, meta: dict) -> None:
        self.extractions.append((task_id, meta, lambda: extract_task(
            tp.up_spec, tp.manifest, tp.opts, tp.down_spec.layers, self.device, self.reporter)))

    def submit_train(self, task_id: str, job: Any, downstream: str, meta: dict) -> None:
        spec = self.registry.downstream(downstream)
        self.trainings.append((task_id, meta, lambda: train_task(job, spec, self.device,
                                                                 self.reporter)))

    def pending(self) -> bool:
        return bool(self.extractions or self.trainings)

    def next_done(self) -> tuple[str, dict, Any, BaseException | None, dict]:
        task_id, meta, fn = (self.trainings or self.extractions).popleft()
        start = time.perf_counter()
        try:
            result, info = fn()
        except Exception as exc:  # one broken task must not stop the grid
            return task_id, meta, None, describe_error(exc), _info(start, self.device)
        return task_id, meta, result, None, info

    def close(self) -> None:
        pass


class RayExecutor:
    """Runs tasks on a Ray cluster; results come back to the driver as they finish."""

    def __init__(self, address: str | None, device: str, extract_gpus: float = 1.0,
                 train_cpus: float = 1.0, train_gpus: float = 0.25):
        try:
            import ray
        except ImportError:
            raise EmoboxUsageError("--executor ray needs Ray: pip install 'emobox[ray]'")
        self.ray = ray
        self.owns = not ray.is_initialized()
        if self.owns:
            try:
                ray.init(address=address, include_dashboard=False, log_to_driver=False)
            except (ConnectionError, ValueError, RuntimeError) as exc:
                raise EmoboxUsageError(f"cannot connect to the Ray cluster at "
                                       f"{address or 'a new local instance'}: {exc}")
        has_gpus = ray.cluster_resources().get("GPU", 0) > 0 and device != "cpu"
        if device.startswith("cuda") and not has_gpus:
            raise EmoboxUsageError(f"--device {device}: the Ray cluster has no GPU")
        self.extract_resources = {"num_cpus": 1, "num_gpus": extract_gpus if has_gpus else 0}
        self.train_resources = {"num_cpus": train_cpus, "num_gpus": train_gpus if has_gpus
                                else 0}
        self._extract = ray.remote(_ray_extract)
        self._train = ray.remote(_ray_train)
        self.refs: dict[Any, tuple[str, dict]] = {}

    def submit_extract(self, task_id: str, tp: Any, meta: dict) -> None:
        ref = self._extract.options(**self.extract_resources).remote(
            tp.opts.upstream, tp.manifest, tp.opts, tp.down_spec.layers)
        self.refs[ref] = (task_id, meta)

    def submit_train(self, task_id: str, job: Any, downstream: str, meta: dict) -> None:
        ref = self._train.options(**self.train_resources).remote(job, downstream)
        self.refs[ref] = (task_id, meta)

    def pending(self) -> bool:
        return bool(self.refs)

    def next_done(self) -> tuple[str, dict, Any, BaseException | None, dict]:
        ray = self.ray
        ready, _ = ray.wait(list(self.refs), num_returns=1)
        ref = ready[0]
        task_id, meta = self.refs.pop(ref)
        try:
            result, info = ray.get(ref)
        except ray.exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None) or exc
            return task_id, meta, None, describe_error(cause), {}
        except ray.exceptions.RayError as exc:  # worker died, task cancelled, ...
            return task_id, meta, None, RuntimeError(f"{type(exc).__name__}: {exc}"), {}
        return task_id, meta, result, None, info

    def close(self) -> None:
        for ref in list(self.refs):
            self.ray.cancel(ref)
        self.refs.clear()
        if self.owns:
            self.ray.shutdown()


def _device_in_task() -> str:
    import ray
    import torch

    return "cuda" if ray.get_gpu_ids() and torch.cuda.is_available() else "cpu"


def _ray_extract(upstream: str, manifest: Any, opts: Any, down_layers: str):
    return extract_task(upstream, manifest, opts, down_layers, _device_in_task())


def _ray_train(job: Any, downstream: str):
    return train_task(job, downstream, _device_in_task())


def make_executor(opts: Any, registry: Registry | None = None,
                  reporter: Reporter | None = None) -> Any:
    if opts.executor == "ray":
        return RayExecutor(opts.address, opts.device, opts.extract_gpus, opts.train_cpus,
                           opts.train_gpus)
    if opts.executor == "local":
        return LocalExecutor(opts.device, registry, reporter)
    raise EmoboxUsageError(f"--executor must be local or ray, not {opts.executor!r}")
