"""``emobox plugins doctor``: import every plugin, check every spec against its contract, report.

The checks, in order, each isolated so that one broken plugin never hides another:

1. every entry point of group ``emobox`` imports, its hooks run and return specs of the right type
   (recorded by the registry while loading);
2. names are unique per kind, and hook functions carry real hook names (``emobox_upstream`` is a
   typo that pluggy would silently ignore);
3. every spec's declared attributes are present and typed and ``build`` can be called with the
   contract's arguments (:func:`emobox.contracts.check_spec`);
4. ``build="cheap"`` (the default) also builds what needs no download: every downstream head
   (run on random features), every upstream that declares no checkpoint (run on two short
   waveforms, declared vs actual sizes), every embedded corpus and every corpus given a root
   (scanned and split). ``build="all"`` tries every upstream (those without local weights are
   noted, not failed); ``build="none"`` stops after step 3.

The result is a :class:`DoctorReport`; problems make ``emobox plugins doctor`` exit with
:attr:`ExitCode.CHECK_FAILED`. Notes (an upstream whose weights are not on this machine, an optional
dependency that is not installed) do not.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Mapping

from emobox.validate import contracts
from emobox.plugin import hookspecs
from emobox.errors import CheckpointNotFoundError, EmoboxUsageError, close_names
from emobox.plugin.registry import KINDS, PluginInfo, Registry, _traceback_summary, describe_plugin, get_registry
from emobox.progress import Reporter

BUILD_MODES = ("none", "cheap", "all")
HOOK_NAMES = tuple(hook for hook, _ in KINDS.values())
IMPL_MARKER = hookspecs.PROJECT + "_impl"


@dataclass
class Finding:
    """One problem (or note) about one plugin, or about one spec of a plugin."""

    plugin: str
    distribution: str
    version: str
    subject: str  # "upstream 'name'", "corpus 'name'", ... or "" for the plugin itself
    message: str
    severity: str = "problem"  # problem | note
    detail: str = ""  # traceback summary

    def line(self) -> str:
        who = describe_plugin(self.plugin, self.distribution, self.version)
        if self.subject:
            who = f"{self.subject} of {who}"
        return f"{who}: {self.message}"


@dataclass
class PluginStatus:
    """One plugin (entry point) and what the doctor made of it."""

    name: str
    distribution: str = ""
    version: str = ""
    path: str = ""
    loaded: bool = True
    provides: dict[str, list[str]] = field(default_factory=dict)  # kind -> names
    checked: list[str] = field(default_factory=list)  # subjects built and checked
    problems: int = 0

    @property
    def status(self) -> str:
        if not self.loaded:
            return "broken"
        return "ok" if self.problems == 0 else f"{self.problems} problem" + (
            "s" if self.problems > 1 else "")


@dataclass
class DoctorReport:
    plugins: list[PluginStatus]
    findings: list[Finding]
    build: str

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "problem"]

    @property
    def notes(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "note"]

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        return {"kind": "emobox.doctor", "schema_version": 1, "build": self.build,
                "ok": self.ok, "plugins": [asdict(p) for p in self.plugins],
                "findings": [asdict(f) for f in self.findings]}


def doctor(registry: Registry | None = None, build: str = "cheap",
           roots: Mapping[str, str] | None = None,
           reporter: Reporter | None = None) -> DoctorReport:
    """Check every registered plugin; see the module docstring. ``roots``: corpus name -> root."""
    if build not in BUILD_MODES:
        raise EmoboxUsageError(f"--build must be one of {', '.join(BUILD_MODES)}, not {build!r}")
    registry = registry or get_registry()
    reporter = reporter or Reporter()
    roots = dict(roots or {})
    findings: list[Finding] = []
    statuses: dict[str, PluginStatus] = {
        name: PluginStatus(name, info.distribution, info.version, info.path)
        for name, info in registry.plugins.items()}

    for p in registry.all_problems():
        status = statuses.get(p.plugin)
        if status is None:
            status = statuses[p.plugin] = PluginStatus(p.plugin, p.distribution, p.version,
                                                       loaded=False)
        if p.kind == "import":
            status.loaded = False
        findings.append(Finding(p.plugin, p.distribution, p.version or status.version, "",
                                f"{p.kind}: {p.message}", detail=p.detail))
    for name, info in registry.plugins.items():
        findings += _hook_name_problems(registry.pm.get_plugin(name), info)

    unknown_roots = sorted(set(roots) - set(registry.names("corpus")))
    if unknown_roots:
        raise EmoboxUsageError(f"--root {unknown_roots[0]}=...: no corpus of that name is "
                               f"registered")
    work: list[tuple[str, Any, PluginInfo]] = [
        (kind, spec, info) for kind in KINDS for spec, info in registry.entries(kind)]
    for kind, spec, info in work:
        status = statuses.setdefault(info.name, PluginStatus(info.name, info.distribution,
                                                             info.version, info.path))
        status.provides.setdefault(kind, []).append(spec.name)
    with reporter.task(f"doctor ({build})", len(work), "spec") as task:
        for kind, spec, info in work:
            subject = f"{kind} {spec.name!r}"

            def add(message: str, severity: str = "problem", detail: str = "") -> None:
                findings.append(Finding(info.name, info.distribution, info.version, subject,
                                        message, severity, detail))

            spec_problems = _guard(lambda: contracts.check_spec(spec), add)
            for problem in spec_problems or ():
                add(problem)
            if spec_problems or build == "none":
                task.advance(1)
                continue
            checked = _guard(lambda: _build_and_check(kind, spec, build, roots, add), add)
            if checked:
                statuses[info.name].checked.append(subject)
            task.advance(1)

    for f in findings:
        if f.severity == "problem" and f.plugin in statuses:
            statuses[f.plugin].problems += 1
    ordered = sorted(statuses.values(), key=lambda s: (s.distribution != "emobox",
                                                       s.distribution, s.name))
    return DoctorReport(ordered, findings, build)


def _guard(fn: Callable[[], Any], add: Callable[..., None]) -> Any:
    """Run one check; an exception becomes a problem of that spec instead of stopping the doctor."""
    try:
        return fn()
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - a plugin may raise anything, even SystemExit
        add(f"check raised {type(exc).__name__}: {exc}", detail=_traceback_summary(exc))
        return None


def _build_and_check(kind: str, spec: Any, build: str, roots: Mapping[str, str],
                     add: Callable[..., None]) -> bool:
    """Build ``spec``'s object where ``build`` allows and check it; True when it was checked."""
    if kind == "downstream":
        for problem in contracts.check_downstream(spec):
            add(problem)
        return True
    if kind == "upstream":
        if spec.checkpoint and build != "all":
            add(f"not built: it needs the checkpoint {spec.checkpoint} (`--build all` builds it "
                f"when its weights are on this machine)", "note")
            return False
        if not spec.hidden_size:
            add(f"not built: what it builds depends on its options "
                f"({', '.join(f'-U {k}=...' for k in spec.options)})", "note")
            return False
        try:
            obj = spec.load(ckpt=None, device="cpu")
        except CheckpointNotFoundError as exc:
            add(f"not built: {exc}", "note")
            return False
        except ImportError as exc:
            if spec.requires:
                add(f"not built: needs `pip install {spec.requires}` ({exc})", "note")
                return False
            add(f"build raised {type(exc).__name__}: {exc}", detail=_traceback_summary(exc))
            return False
        except Exception as exc:
            add(f"build raised {type(exc).__name__}: {exc}", detail=_traceback_summary(exc))
            return False
        for problem in contracts.check_upstream(obj, spec):
            add(problem)
        return True
    if not spec.embedded and spec.name not in roots:
        return False
    root = roots.get(spec.name)
    try:
        corpus = spec.build(os.path.expanduser(root) if root else None)
    except Exception as exc:
        add(f"build({root!r}) raised {type(exc).__name__}: {exc}",
            detail=_traceback_summary(exc))
        return False
    for problem in contracts.check_corpus(corpus, spec):
        add(problem)
    return True


def _hook_name_problems(obj: Any, info: PluginInfo) -> list[Finding]:
    """Functions marked as emobox hooks whose names are not hooks (pluggy ignores them)."""
    out = []
    for attr in sorted(dir(obj)):
        if attr in HOOK_NAMES:
            continue
        try:
            value = getattr(obj, attr)
        except Exception:  # a property that raises is not a hook
            continue
        if not hasattr(value, IMPL_MARKER) and not (attr.startswith("emobox_") and callable(value)):
            continue
        close = close_names(attr, HOOK_NAMES, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; hooks are {', '.join(HOOK_NAMES)}"
        out.append(Finding(info.name, info.distribution, info.version, "",
                           f"{attr}() is not an emobox hook and is never called{hint}"))
    return out


__all__ = ["doctor", "DoctorReport", "Finding", "PluginStatus", "BUILD_MODES"]
