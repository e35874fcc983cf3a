"""``emobox doctor``: what this machine offers emobox, in one report.

:func:`environment_report` gathers, each in its own section so that one failing part never hides
the others (a section that fails reports its error):

- ``system``: Python, platform, CPU count, the emobox version;
- ``torch``: version, CUDA build, CUDA and MPS availability, GPUs (name, memory, bfloat16), whether
  the CPU has native bfloat16, threads;
- ``packages``: the installed versions of the libraries emobox relies on (read from package
  metadata, nothing is imported);
- ``paths``: ``EMOBOX_HOME``, ``EMOBOX_DATA``, ``EMOBOX_MODELS`` and the feature and run folders:
  where they are, whether they exist and whether emobox can write there;
- ``plugins``: upstreams, corpora and downstreams per distribution, and every broken plugin or
  spec with its error (:func:`emobox.doctor.doctor` without building anything);
- ``checkpoints``: per upstream, whether its weights are on this machine (the spec's ``locate``,
  never loading them) or whether it needs none;
- ``corpora``: per corpus, whether a copy is at ``$EMOBOX_DATA/<name>`` (or the root given for it)
  and looks like that corpus (its root is recognised; nothing is scanned unless ``scan=True``);
- ``storage``: feature stores (complete, partial, damaged; their size) and run directories.
"""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Mapping

from emobox import __version__, paths
from emobox.errors import EmoboxError, EmoboxUsageError
from emobox.plugin.registry import Registry, get_registry
from emobox.validate.plugins_doctor import doctor
from emobox.extraction.upstream_catalog import weights_status

PACKAGES = ("torch", "transformers", "soundfile", "soxr", "numpy", "pluggy", "typer", "rich",
            "av", "ctranslate2")
SECTIONS = ("system", "torch", "packages", "paths", "plugins", "checkpoints", "corpora",
            "storage")


@dataclass
class Section:
    name: str
    data: Any = None
    error: str = ""  # what went wrong when the section could not be gathered


@dataclass
class EnvReport:
    sections: list[Section] = field(default_factory=list)

    def __getitem__(self, name: str) -> Section:
        return next(s for s in self.sections if s.name == name)

    @property
    def errors(self) -> list[Section]:
        return [s for s in self.sections if s.error]

    def to_dict(self) -> dict:
        return {"kind": "emobox.envreport", "schema_version": 1, "emobox": __version__,
                "sections": {s.name: ({"error": s.error} if s.error else s.data)
                             for s in self.sections}}


def environment_report(registry: Registry | None = None,
                       roots: Mapping[str, str] | None = None, scan: bool = False,
                       sections: tuple[str, ...] = SECTIONS) -> EnvReport:
    """The report; ``roots``: corpus name -> folder (instead of ``$EMOBOX_DATA/<name>``);
    ``scan``: also read the manifests of the corpora found (counts utterances; slower)."""
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown:
        raise EmoboxUsageError(f"unknown section {unknown[0]!r}; sections are "
                               f"{', '.join(SECTIONS)}")
    roots = dict(roots or {})
    holder: dict[str, Registry] = {}

    def reg() -> Registry:
        if "registry" not in holder:
            holder["registry"] = registry or get_registry()
        return holder["registry"]

    if roots and "corpora" in sections:
        known = _guarded(lambda: reg().names("corpus"))
        if isinstance(known, list):
            missing = sorted(set(roots) - set(known))
            if missing:
                raise EmoboxUsageError(f"--root-map {missing[0]}=...: no corpus of that name is "
                                       f"registered")
    gather: dict[str, Callable[[], Any]] = {
        "system": system_info, "torch": torch_info, "packages": package_versions,
        "paths": path_info, "plugins": lambda: plugin_info(reg()),
        "checkpoints": lambda: checkpoint_info(reg()),
        "corpora": lambda: corpus_info(reg(), roots, scan), "storage": storage_info}
    report = EnvReport()
    for name in sections:
        try:
            report.sections.append(Section(name, gather[name]()))
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # noqa: BLE001 - a report section must never stop the rest
            report.sections.append(Section(name, error=_describe(exc)))
    return report


def _describe(exc: BaseException) -> str:
    if isinstance(exc, EmoboxError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _guarded(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001
        return _describe(exc)


# -- sections ----------------------------------------------------------------------------------

def system_info() -> dict:
    return {"emobox": __version__, "python": platform.python_version(),
            "implementation": platform.python_implementation(), "executable": sys.executable,
            "platform": platform.platform(), "machine": platform.machine(),
            "cpus": os.cpu_count()}


def torch_info() -> dict:
    import torch

    from emobox.extraction.precision import cpu_native_bf16

    info: dict[str, Any] = {"version": torch.__version__, "cuda_build": torch.version.cuda,
                            "threads": torch.get_num_threads(),
                            "cpu_native_bf16": cpu_native_bf16()}
    cuda = torch.cuda.is_available()
    info["cuda_available"] = cuda
    devices = []
    if cuda:
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            devices.append({"index": i, "name": props.name,
                            "memory_gib": round(props.total_memory / 2 ** 30, 1),
                            "capability": f"{props.major}.{props.minor}"})
        info["cuda_bf16"] = bool(torch.cuda.is_bf16_supported())
    info["cuda_devices"] = devices
    mps = getattr(torch.backends, "mps", None)
    info["mps_available"] = bool(mps is not None and mps.is_available())
    return info


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """``{package: version}``; None when it is not installed."""
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def path_info() -> list[dict]:
    rows = []
    for name, env, path in (("EMOBOX_HOME", "EMOBOX_HOME", paths.home()),
                            ("EMOBOX_DATA", "EMOBOX_DATA", paths.data_dir()),
                            ("EMOBOX_MODELS", "EMOBOX_MODELS", paths.models_dir()),
                            ("features", "", paths.features_dir()),
                            ("runs", "", paths.runs_dir())):
        rows.append({"name": name, "path": str(path),
                     "source": "environment" if env and os.environ.get(env) else "default",
                     "exists": path.is_dir(), "writable": _writable(path)})
    return rows


def _writable(path: Path) -> bool:
    """Whether emobox can write in ``path``, or create it (its nearest existing parent)."""
    probe = Path(path)
    while not probe.exists():
        if probe.parent == probe:
            return False
        probe = probe.parent
    return probe.is_dir() and os.access(probe, os.W_OK | os.X_OK)


def plugin_info(registry: Registry) -> dict:
    report = doctor(registry, build="none")
    dists: dict[str, dict] = {}
    for p in report.plugins:
        d = dists.setdefault(p.distribution or "-", {
            "distribution": p.distribution or "-", "version": p.version or "",
            "plugins": [], "upstreams": 0, "corpora": 0, "downstreams": 0, "broken": 0})
        d["plugins"].append(p.name)
        d["upstreams"] += len(p.provides.get("upstream", []))
        d["corpora"] += len(p.provides.get("corpus", []))
        d["downstreams"] += len(p.provides.get("downstream", []))
        d["broken"] += p.status != "ok"
    problems = [{"plugin": f.plugin, "distribution": f.distribution, "version": f.version,
                 "subject": f.subject, "message": f.message, "detail": f.detail,
                 "line": f.line()} for f in report.problems]
    return {"distributions": list(dists.values()), "problems": problems}


def checkpoint_info(registry: Registry) -> list[dict]:
    rows = []
    for spec in registry.specs("upstream"):
        status = _guarded(lambda: weights_status(spec))
        row = {"upstream": spec.name, "checkpoint": spec.checkpoint,
               "distribution": spec.distribution}
        if isinstance(status, str):  # the plugin's locate raised something unexpected
            row.update(state="error", path="", message=status)
        else:
            row.update(state=status.state, path=status.path, message=status.message)
        rows.append(row)
    return rows


def corpus_info(registry: Registry, roots: Mapping[str, str], scan: bool = False
                ) -> list[dict]:
    rows = []
    for spec in registry.specs("corpus"):
        row: dict[str, Any] = {"corpus": spec.name, "distribution": spec.distribution,
                               "root": "", "message": ""}
        given = roots.get(spec.name)
        if spec.embedded and not given:
            row["state"] = "embedded"
        elif spec.reader and not given:
            row.update(state="reader", message="reads the data you name with --root")
        else:
            root = Path(given).expanduser() if given else paths.data_dir() / spec.name
            row["root"] = str(root)
            if not root.exists():
                row["state"] = "absent"
            else:
                row.update(_check_corpus(spec, root, scan))
        rows.append(row)
    return rows


def _check_corpus(spec: Any, root: Path, scan: bool) -> dict:
    try:
        corpus = spec.build(str(root))
    except EmoboxError as exc:
        return {"state": "unrecognised", "message": str(exc)}
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - a plugin may raise anything
        return {"state": "error", "message": _describe(exc)}
    out: dict[str, Any] = {"state": "present", "root": str(getattr(corpus, "root", root))}
    if scan:
        try:
            manifest = corpus.manifest
            out.update(utterances=len(manifest), speakers=len(manifest.speakers()),
                       skipped=len(getattr(corpus, "skipped", []) or []))
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # noqa: BLE001
            out.update(state="error", message=f"scan failed: {_describe(exc)}")
    return out


def storage_info() -> dict:
    from emobox.extraction.store import list_stores

    features = paths.features_dir()
    stores = list_stores(features) if features.is_dir() else []
    counts = {"complete": 0, "partial": 0, "corrupt": 0}
    size = 0
    for entry in stores:
        counts[entry.status] = counts.get(entry.status, 0) + 1
        size += sum(p.stat().st_size for p in entry.path.rglob("*") if p.is_file())
    runs_dir = paths.runs_dir()
    runs = sorted(p for p in runs_dir.iterdir() if (p / "config.json").is_file()) \
        if runs_dir.is_dir() else []
    bench_dir = paths.home() / "bench"
    benches = sorted(p for p in bench_dir.iterdir() if (p / "bench.json").is_file()) \
        if bench_dir.is_dir() else []
    return {"features_dir": str(features), "stores": counts, "store_bytes": size,
            "damaged": [{"path": str(e.path), "problem": e.problem} for e in stores
                        if e.status == "corrupt"],
            "runs_dir": str(runs_dir), "runs": len(runs), "bench_dirs": len(benches)}


__all__ = ["environment_report", "EnvReport", "Section", "SECTIONS", "PACKAGES"]
