"""The plugin manager: entry points of group ``emobox`` -> specs by kind and name.

Built-in plugins register through the same entry points as third-party packages. A plugin that
fails to import, or whose hook raises, is recorded as a :class:`PluginProblem` and skipped; every
other plugin keeps working. Two plugins claiming one name make that name unusable (the error names
both distributions) without affecting any other name.

A distribution may also declare named upstreams without code, through entry points of group
``emobox.upstreams``: each points at a small declarative spec (a ``.toml`` or ``.json`` file in the
package, ``name = package:spec.toml``, or a dict, ``name = package.module:SPEC``) that presets a
registered upstream (``upstream = "hear"``) with fixed ``options`` (e.g. the HEAR ``module``) and
an optional ``model_file`` shipped in the package; see :func:`read_declared_upstream`.

Environment:
    EMOBOX_DISABLE_PLUGIN_AUTOLOAD=1   load no entry points (tests, debugging)
    EMOBOX_DISABLE_PLUGINS=a,b         skip the entry points (or distributions) named a and b
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import re
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any, Iterable

import pluggy

from emobox.plugin import hookspecs
from emobox.errors import EmoboxUsageError, PluginError, unknown_name_message
from emobox.plugin.specs import CorpusSpec, DownstreamSpec, UpstreamSpec

ENTRY_POINT_GROUP = "emobox"
DECLARED_UPSTREAMS_GROUP = "emobox.upstreams"
DECLARED_KEYS = ("upstream", "options", "model_file", "name", "description", "paper", "license")
DECLARED_MAX_BYTES = 64 << 10
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
    _declared: dict[str, "_DeclaredUpstream"] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        if self.autoload:
            self.load_entrypoints()
            self.load_declared_upstreams()

    # -- loading ---------------------------------------------------------------------------
    def _entry_points(self, group: str):
        """``(entry point, distribution, version)`` of ``group`` that are neither disabled nor a
        name already taken (a duplicate is recorded as a problem and skipped)."""
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
            yield ep, dist_name, version

    def _import_failed(self, ep: Any, dist_name: str, version: str, exc: BaseException) -> None:
        if isinstance(exc, KeyboardInterrupt):
            raise exc
        self.problems.append(PluginProblem(
            ep.name, dist_name, "import",
            f"failed to import {ep.value!r}: {type(exc).__name__}: {exc}",
            _traceback_summary(exc), version))

    def load_entrypoints(self, group: str = ENTRY_POINT_GROUP) -> None:
        for ep, dist_name, version in self._entry_points(group):
            try:
                obj = ep.load()
            except BaseException as exc:  # a broken plugin must not take the others down
                self._import_failed(ep, dist_name, version, exc)
                continue
            self.register(obj, name=ep.name, distribution=dist_name, version=version)

    def load_declared_upstreams(self, group: str = DECLARED_UPSTREAMS_GROUP) -> None:
        """Named upstreams declared by data (entry points of group ``emobox.upstreams``)."""
        for ep, dist_name, version in self._entry_points(group):
            try:
                declared = read_declared_upstream(ep)
            except DeclaredSpecError as exc:
                self.problems.append(PluginProblem(ep.name, dist_name, "contract", str(exc),
                                                   version=version))
                continue
            except BaseException as exc:  # importing the module that holds a dict spec
                self._import_failed(ep, dist_name, version, exc)
                continue
            self.register_declared(declared, ep.name, dist_name, version)

    def register_declared(self, declared: "_DeclaredUpstream", name: str, distribution: str = "",
                          version: str = "") -> None:
        declared.registry = self
        self.register(declared, name=name, distribution=distribution, version=version)
        if name in self.plugins:
            self.plugins[name].module = ""
            self.plugins[name].path = declared.source
            self._declared[name] = declared

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
        self._complete_declared(specs["upstream"])
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

    def _complete_declared(self, by_name: dict[str, list[_Entry]]) -> None:
        """A declared upstream takes its shape from the upstream it presets; the options that
        upstream declares and the preset leaves open stay open (``-U``)."""
        for name, entries in list(by_name.items()):
            kept = []
            for entry in entries:
                declared = self._declared.get(entry.info.name)
                if declared is None:
                    kept.append(entry)
                    continue
                bases = [e for e in by_name.get(declared.upstream, ())
                         if e.info.name not in self._declared]
                problem = ""
                if not bases:
                    problem = (f"{declared.source}: presets upstream {declared.upstream!r}, "
                               f"which no installed plugin provides")
                else:
                    base = bases[0].spec
                    unknown = sorted(set(declared.options) - set(base.options))
                    if unknown:
                        problem = (f"{declared.source}: options {', '.join(unknown)} are not "
                                   f"options of upstream {declared.upstream!r} (it declares: "
                                   f"{', '.join(base.options) or 'none'})")
                if problem:
                    self.problems.append(PluginProblem(entry.info.name, entry.info.distribution,
                                                       "contract", problem,
                                                       version=entry.info.version))
                    continue
                entry.spec = replace(
                    entry.spec, sample_rate=base.sample_rate, num_layers=base.num_layers,
                    hidden_size=base.hidden_size, frame_rate=base.frame_rate,
                    family=base.family or declared.upstream, requires=base.requires,
                    trained_on=base.trained_on,
                    options={k: v for k, v in base.options.items() if k not in declared.options})
                kept.append(entry)
            if kept:
                by_name[name] = kept
            else:
                del by_name[name]

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


class DeclaredSpecError(ValueError):
    """A declarative upstream spec that cannot be used (the message names its file)."""


@dataclass
class _DeclaredUpstream:
    """A registered upstream preset by data: ``upstream`` with fixed ``options`` and, where the
    package ships one, its ``model_file`` as the checkpoint."""

    name: str
    upstream: str
    options: dict[str, str]
    source: str  # the spec file (or module) it was read from
    model_file: Path | None = None
    description: str = ""
    paper: str = ""
    license: str = ""
    registry: Registry | None = None

    @hookspecs.hookimpl
    def emobox_upstreams(self) -> list[UpstreamSpec]:
        return [UpstreamSpec(
            name=self.name, build=self.build, description=self.description, paper=self.paper,
            license=self.license, family=self.upstream, hidden_size=0, frame_rate=0.0,
            options={})]

    def build(self, ckpt=None, device="cpu", **options):
        if ckpt is None and self.model_file is not None:
            if not self.model_file.exists():
                raise EmoboxUsageError(f"{self.model_file}: the model file of upstream "
                                       f"{self.name!r} ({self.source}) is not installed")
            ckpt = str(self.model_file)
        base = (self.registry or get_registry()).get("upstream", self.upstream)
        return base.build(ckpt=ckpt, device=device, **{**options, **self.options})


def read_declared_upstream(ep: metadata.EntryPoint) -> _DeclaredUpstream:
    """The declarative spec an entry point of group ``emobox.upstreams`` names.

    ``package:file.toml`` / ``package:file.json``: a file in the package's folder, read as data
    (at most 64 KiB); ``package.module:NAME``: a dict in that module. Keys: ``upstream`` (the
    registered upstream it presets, required), ``options`` (its ``-U`` options, strings),
    ``model_file`` (a file or folder in the package, relative to the spec, passed as the
    checkpoint), ``name`` (default: the entry point's name), ``description``, ``paper``,
    ``license``. Raises :class:`DeclaredSpecError` naming the file for anything else.
    """
    attr = ep.attr or ""
    if attr.endswith((".toml", ".json")):
        folder = _package_folder(ep.module)
        path = (folder / attr).resolve()
        source = str(path)
        if not path.is_relative_to(folder.resolve()) or not path.is_file():
            raise DeclaredSpecError(f"{folder / attr}: no such file in package {ep.module!r}")
        with open(path, "rb") as fh:
            data = fh.read(DECLARED_MAX_BYTES + 1)
        if len(data) > DECLARED_MAX_BYTES:
            raise DeclaredSpecError(f"{source}: larger than {DECLARED_MAX_BYTES >> 10} KiB; "
                                    f"not a declarative upstream spec")
        try:
            text = data.decode("utf-8")
            if attr.endswith(".json"):
                raw = json.loads(text)
            else:
                import tomllib

                raw = tomllib.loads(text)
        except ImportError:
            raise DeclaredSpecError(f"{source}: reading TOML needs Python 3.11 or later; "
                                    f"write the spec as JSON") from None
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            kind = "JSON" if attr.endswith(".json") else "TOML"
            raise DeclaredSpecError(f"{source}: not valid {kind}: {exc}") from None
    else:
        raw = ep.load()
        module = importlib.import_module(ep.module)
        source = f"{ep.module}:{attr}" if attr else ep.module
        folder = Path(getattr(module, "__file__", "") or ".").parent
    return _declared_from(raw, ep.name, source, folder)


def _package_folder(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None:
        raise DeclaredSpecError(f"package {module!r} is not installed")
    if spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0])
    if spec.origin:
        return Path(spec.origin).parent
    raise DeclaredSpecError(f"package {module!r} has no folder to read a spec from")


def _declared_from(raw: Any, ep_name: str, source: str, folder: Path) -> _DeclaredUpstream:
    if not isinstance(raw, Mapping):
        raise DeclaredSpecError(f"{source}: a declarative upstream spec is a table of keys "
                                f"({', '.join(DECLARED_KEYS)}), got {type(raw).__name__}")
    unknown = sorted(str(k) for k in raw if k not in DECLARED_KEYS)
    if unknown:
        raise DeclaredSpecError(f"{source}: unknown keys {', '.join(map(repr, unknown))} "
                                f"(known: {', '.join(DECLARED_KEYS)})")
    for key in DECLARED_KEYS:
        if key != "options" and key in raw and not isinstance(raw[key], str):
            raise DeclaredSpecError(f"{source}: {key} must be a string, got "
                                    f"{type(raw[key]).__name__}")
    if "upstream" not in raw:
        raise DeclaredSpecError(f"{source}: no 'upstream' (the registered upstream it presets, "
                                f"e.g. upstream = \"hear\")")
    name = raw.get("name", ep_name)
    for key, value in (("name", name), ("upstream", raw["upstream"])):
        if not NAME_RE.match(value):
            raise DeclaredSpecError(f"{source}: {key} {value!r} is not a valid name "
                                    f"(letters, digits, '_', '.', '-')")
    options = raw.get("options", {})
    if not isinstance(options, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in options.items()):
        raise DeclaredSpecError(f"{source}: options must be a table of strings "
                                f"(e.g. module = \"mypackage.hear_model\")")
    model_file = None
    if raw.get("model_file"):
        relative = Path(raw["model_file"])
        model_file = (folder / relative).resolve()
        if relative.is_absolute() or not model_file.is_relative_to(folder.resolve()):
            raise DeclaredSpecError(f"{source}: model_file {raw['model_file']!r} is outside "
                                    f"the package folder {folder}")
    return _DeclaredUpstream(
        name=name, upstream=raw["upstream"], options=dict(options), source=source,
        model_file=model_file, description=raw.get("description", ""),
        paper=raw.get("paper", ""), license=raw.get("license", ""))


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
           "describe_plugin", "ENTRY_POINT_GROUP", "DECLARED_UPSTREAMS_GROUP",
           "DeclaredSpecError", "read_declared_upstream"]
