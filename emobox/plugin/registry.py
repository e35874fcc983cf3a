"""The plugin manager: entry points of group ``emobox`` -> specs by kind and name.

Built-in plugins register through the same entry points as third-party packages. A plugin that
fails to import, or whose hook raises, is recorded as a :class:`PluginProblem` and skipped; every
other plugin keeps working. Two plugins claiming one name make that name unusable (the error names
both distributions) without affecting any other name.

Environment:
    EMOBOX_DISABLE_PLUGIN_AUTOLOAD=1   load no entry points (tests, debugging)
    EMOBOX_DISABLE_PLUGINS=a,b         skip the entry points (or distributions) named a and b
"""

from __future__ import annotations

import os
import re
import traceback
from dataclasses import dataclass, field, replace
from importlib import metadata
from types import ModuleType
from typing import Any, Iterable

import pluggy

from emobox.plugin import hookspecs
from emobox.errors import EmoboxUsageError, PluginError, unknown_name_message
from emobox.plugin.specs import CorpusSpec, DownstreamSpec, UpstreamSpec

ENTRY_POINT_GROUP = "emobox"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")

KINDS: dict[str, tuple[str, type]] = {
    "upstream": ("emobox_upstreams", UpstreamSpec),
    "corpus": ("emobox_corpora", CorpusSpec),
    "downstream": ("emobox_downstreams", DownstreamSpec),
}


@dataclass
class PluginInfo:
    """One registered plugin (usually one entry point)."""

    name: str
    distribution: str = ""
    version: str = ""
    module: str = ""
    path: str = ""


@dataclass
class PluginProblem:
    """Something wrong with a plugin, kept so that listing and doctor commands can show it."""

    plugin: str
    distribution: str
    kind: str  # import | hook | contract | duplicate
    message: str
    detail: str = ""  # traceback summary
    version: str = ""

    def line(self) -> str:
        return f"{describe_plugin(self.plugin, self.distribution, self.version)}: {self.message}"


def describe_plugin(name: str, distribution: str = "", version: str = "") -> str:
    """``plugin 'x' (distribution emobox-x 1.0)``: how messages name a plugin."""
    if not distribution:
        return f"plugin {name!r}"
    return f"plugin {name!r} (distribution {distribution}{' ' + version if version else ''})"


def _traceback_summary(exc: BaseException, limit: int = 3) -> str:
    frames = traceback.extract_tb(exc.__traceback__)[-limit:]
    where = "; ".join(f"{os.path.basename(f.filename)}:{f.lineno} in {f.name}" for f in frames)
    what = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return f"{what} [at {where}]" if where else what


@dataclass
class _Entry:
    spec: Any
    info: PluginInfo


@dataclass
class Registry:
    """Specs of every upstream, corpus and downstream that plugins provide."""

    autoload: bool = True
    disabled: tuple[str, ...] = ()
    pm: pluggy.PluginManager = field(init=False)
    plugins: dict[str, PluginInfo] = field(init=False, default_factory=dict)
    problems: list[PluginProblem] = field(init=False, default_factory=list)
    _specs: dict[str, dict[str, list[_Entry]]] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        if self.autoload:
            self.load_entrypoints()

    # -- loading ---------------------------------------------------------------------------
    def load_entrypoints(self, group: str = ENTRY_POINT_GROUP) -> None:
        for ep in sorted(metadata.entry_points(group=group), key=lambda e: e.name):
            dist = getattr(ep, "dist", None)
            dist_name = dist.name if dist is not None else ""
            version = dist.version if dist is not None else ""
            if ep.name in self.disabled or (dist_name and dist_name in self.disabled):
                continue
            if ep.name in self.plugins:
                other = self.plugins[ep.name]
                self.problems.append(PluginProblem(
                    ep.name, dist_name, "duplicate",
                    f"entry point name also used by distribution {other.distribution!r}; skipped",
                    version=version))
                continue
            try:
                obj = ep.load()
            except BaseException as exc:  # a broken plugin must not take the others down
                if isinstance(exc, KeyboardInterrupt):
                    raise
                self.problems.append(PluginProblem(
                    ep.name, dist_name, "import",
                    f"failed to import {ep.value!r}: {type(exc).__name__}: {exc}",
                    _traceback_summary(exc), version))
                continue
            self.register(obj, name=ep.name, distribution=dist_name, version=version)

    def register(self, obj: Any, name: str | None = None, distribution: str = "",
                 version: str = "") -> None:
        """Register a plugin object (a module or any object with hook implementations)."""
        name = name or getattr(obj, "__name__", None) or repr(obj)
        module = obj.__name__ if isinstance(obj, ModuleType) else type(obj).__module__
        path = getattr(obj, "__file__", "") or ""
        try:
            self.pm.register(obj, name=name)
        except Exception as exc:
            self.problems.append(PluginProblem(name, distribution, "contract",
                                               f"cannot be registered: {exc}", version=version))
            return
        self.plugins[name] = PluginInfo(name, distribution, version, module, path)
        self._specs = None

    # -- specs -----------------------------------------------------------------------------
    def _collect(self) -> dict[str, dict[str, list[_Entry]]]:
        if self._specs is not None:
            return self._specs
        specs: dict[str, dict[str, list[_Entry]]] = {k: {} for k in KINDS}
        for kind, (hook_name, spec_type) in KINDS.items():
            hook = getattr(self.pm.hook, hook_name)
            for impl in reversed(hook.get_hookimpls()):  # registration order
                info = self.plugins.get(impl.plugin_name, PluginInfo(impl.plugin_name))
                try:
                    result = impl.function()
                except BaseException as exc:
                    if isinstance(exc, KeyboardInterrupt):
                        raise
                    self.problems.append(PluginProblem(
                        info.name, info.distribution, "hook",
                        f"hook {hook_name}() raised {type(exc).__name__}: {exc}",
                        _traceback_summary(exc), info.version))
                    continue
                for spec in result or ():
                    problem = _check_spec(spec, spec_type)
                    if problem:
                        self.problems.append(PluginProblem(
                            info.name, info.distribution, "contract",
                            f"hook {hook_name}() returned an invalid spec: {problem}",
                            version=info.version))
                        continue
                    spec = replace(spec, plugin=info.name, distribution=info.distribution,
                                   version=info.version)
                    specs[kind].setdefault(spec.name, []).append(_Entry(spec, info))
        for kind, by_name in specs.items():
            for name, entries in by_name.items():
                if len(entries) > 1:
                    owners = ", ".join(_owner(e.info) for e in entries)
                    self.problems.append(PluginProblem(
                        entries[0].info.name, entries[0].info.distribution, "duplicate",
                        f"{kind} name {name!r} is claimed by several plugins: {owners}",
                        version=entries[0].info.version))
        self._specs = specs
        return specs

    def names(self, kind: str) -> list[str]:
        return sorted(self._collect()[kind])

    def specs(self, kind: str) -> list[Any]:
        """One spec per name (for duplicated names, the first registered), sorted by name."""
        return [entries[0].spec for _, entries in sorted(self._collect()[kind].items())]

    def entries(self, kind: str) -> list[tuple[Any, PluginInfo]]:
        """Every valid spec of ``kind`` with the plugin providing it, duplicates included."""
        return [(e.spec, e.info) for _, entries in sorted(self._collect()[kind].items())
                for e in entries]

    def get(self, kind: str, name: str) -> Any:
        by_name = self._collect()[kind]
        entries = by_name.get(name)
        if not entries:
            raise _unknown(kind, name, by_name, self.problems)
        if len(entries) > 1:
            owners = " and ".join(_owner(e.info) for e in entries)
            raise PluginError(f"{kind} name {name!r} is claimed by {owners}; uninstall one of "
                              f"them or disable one with EMOBOX_DISABLE_PLUGINS=<plugin name>")
        return entries[0].spec

    def upstream(self, name: str) -> UpstreamSpec:
        return self.get("upstream", name)

    def corpus(self, name: str) -> CorpusSpec:
        return self.get("corpus", name)

    def downstream(self, name: str) -> DownstreamSpec:
        return self.get("downstream", name)

    def all_problems(self) -> list[PluginProblem]:
        self._collect()
        return list(self.problems)


def _owner(info: PluginInfo) -> str:
    if info.distribution:
        return f"plugin {info.name!r} of distribution {info.distribution!r}"
    return f"plugin {info.name!r}"


def _unknown(kind: str, name: str, by_name: dict,
             problems: list[PluginProblem]) -> EmoboxUsageError:
    msg = unknown_name_message(kind, name, by_name)
    broken = [p for p in problems if p.kind in ("import", "hook")]
    if broken:
        msg += "; note: " + "; ".join(p.line() for p in broken)
    return EmoboxUsageError(msg)


def _check_spec(spec: Any, spec_type: type) -> str:
    if not isinstance(spec, spec_type):
        return f"expected {spec_type.__name__}, got {type(spec).__name__}"
    if not isinstance(spec.name, str) or not NAME_RE.match(spec.name):
        return f"name {spec.name!r} is not a valid name (letters, digits, '_', '.', '-')"
    if not callable(spec.build):
        return f"{spec.name}: build is not callable (got {type(spec.build).__name__})"
    return ""


_default: Registry | None = None


def _disabled_from_env() -> tuple[str, ...]:
    raw = os.environ.get("EMOBOX_DISABLE_PLUGINS", "")
    return tuple(x.strip() for x in raw.split(",") if x.strip())


def get_registry(refresh: bool = False) -> Registry:
    """The process-wide registry, loading entry points on first use."""
    global _default
    if _default is None or refresh:
        autoload = os.environ.get("EMOBOX_DISABLE_PLUGIN_AUTOLOAD", "") not in ("1", "true", "yes")
        _default = Registry(autoload=autoload, disabled=_disabled_from_env())
    return _default


def set_registry(registry: Registry | None) -> None:
    """Replace the process-wide registry (tests use this to inject fake plugins)."""
    global _default
    _default = registry


def distributions_of(specs: Iterable[Any]) -> dict[str, str]:
    """``{distribution: version}`` for the given specs (for provenance records)."""
    out: dict[str, str] = {}
    for spec in specs:
        if spec.distribution:
            out[spec.distribution] = spec.version
    return out


__all__ = ["Registry", "PluginInfo", "PluginProblem", "get_registry", "set_registry",
           "describe_plugin", "ENTRY_POINT_GROUP"]
