"""`emobox plugins doctor` and the contract checks behind it (emobox/doctor.py, contracts.py)."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import pytest
import torch

from emobox import CorpusSpec, DownstreamSpec, UpstreamSpec, hookimpl
from emobox.validate.plugins_doctor import doctor
from emobox.plugin.registry import Registry, get_registry, set_registry
from emobox.testing import InProcessPlugin, TinyUpstream, registry_with, tiny_upstream_spec


def _findings(report, plugin=None):
    return [f.line() for f in report.problems if plugin is None or f.plugin == plugin]


def test_installed_builtins_pass_and_cheap_objects_are_built():
    report = doctor(get_registry())
    assert report.ok, _findings(report)
    by_name = {p.name: p for p in report.plugins}
    assert by_name["baselines"].checked == ["upstream 'fbank'", "upstream 'mfcc'"]
    assert by_name["demo"].checked == ["corpus 'demo'"]  # embedded: scanned and split
    heads = by_name["heads"]
    assert "linear_probe" in heads.provides["downstream"]
    assert heads.checked == [f"downstream {n!r}" for n in heads.provides["downstream"]]
    assert by_name["folder"].checked == []  # needs a root
    assert by_name["baselines"].distribution == "emobox"


def _hidden_liar():
    """Declares 1024 features, builds 768."""
    spec = tiny_upstream_spec("liar", hidden_size=768, num_layers=1)
    return replace(spec, hidden_size=1024)


def test_declared_and_actual_sizes_are_compared():
    reg = registry_with(InProcessPlugin(upstreams=[_hidden_liar()]), autoload=False)
    report = doctor(reg)
    (line,) = _findings(report)
    assert line == ("upstream 'liar' of plugin 'test_plugin_1': expected hidden size 1024 "
                    "(declared), got 768")


def test_spec_attributes_must_be_present_and_typed():
    bad = UpstreamSpec(name="typed", build=lambda **kw: None, hidden_size="64",  # type: ignore
                       frame_rate=0, trained_on="iemocap")  # type: ignore[arg-type]
    no_kwargs = UpstreamSpec(name="positional", build=lambda path: None, hidden_size=4)
    grid = DownstreamSpec(name="gridded", build=lambda in_dim, n_classes, hidden=8: None,
                          grid={"lr": [1e-3], "hidden": [8], "dropout": [0.1]})
    empty = DownstreamSpec(name="empty_grid", build=lambda i, n: None, grid={"lr": []})
    corpus = CorpusSpec(name="langs", build=lambda root: None, languages="English")  # type: ignore
    reg = registry_with(InProcessPlugin([bad, no_kwargs], [corpus], [grid, empty]),
                        autoload=False)
    lines = _findings(doctor(reg))
    assert "upstream 'typed' of plugin 'test_plugin_1': hidden_size must be a positive integer " \
           "(the feature size), got '64'" in lines
    assert any("frame_rate must be a positive number, got 0" in x for x in lines)
    assert any("trained_on must be a tuple of corpus names, got 'iemocap'" in x for x in lines)
    assert any("upstream 'positional'" in x and "cannot be called as build(ckpt=None, "
               "device='cpu')" in x for x in lines)
    assert any("downstream 'gridded'" in x and "unexpected keyword argument 'dropout'" in x
               for x in lines)
    assert any("grid entry 'lr' must be a non-empty list of values, got []" in x for x in lines)
    assert any("corpus 'langs'" in x and "languages must be a tuple" in x for x in lines)


class _BatchNormalised(TinyUpstream):
    """Subtracts the mean over the padded batch's time axis, yet claims padding does not matter."""

    def forward(self, wavs, layers=None):
        out = super().forward(wavs, layers)
        out.hidden = {k: v - v.mean(dim=1, keepdim=True) for k, v in out.hidden.items()}
        return out


class _Unmasked(torch.nn.Module):
    """Averages every frame, padding included."""

    def __init__(self, in_dim, n_classes):
        super().__init__()
        self.out = torch.nn.Linear(in_dim, n_classes)

    def forward(self, features, lengths):
        return self.out(features.mean(dim=1))


def test_padding_and_masking_lies_are_caught():
    up = UpstreamSpec(name="tiny", build=lambda ckpt=None, device="cpu": _BatchNormalised(),
                      hidden_size=8, num_layers=2, frame_rate=100.0)
    down = DownstreamSpec(name="unmasked", build=_Unmasked, grid={"lr": [1e-3]})
    lines = _findings(doctor(registry_with(InProcessPlugin([up], [], [down]), autoload=False)))
    assert any("item 1 of a padded batch differs from the item run alone" in x and
               "declare padding_sensitive = True" in x for x in lines)
    assert "downstream 'unmasked' of plugin 'test_plugin_1': [default] frames past lengths[b] " \
           "change the logits: mask the padding" in lines


def test_a_failing_check_never_stops_the_others():
    def explode(**kw):
        raise SystemExit("plugin called exit()")

    class Haunted:
        @hookimpl
        def emobox_corpora(self):
            return [CorpusSpec(name="haunted", build=lambda root: 1 / 0, embedded=True)]

        @hookimpl
        def emobox_upstream(self):  # misspelt: pluggy would ignore it silently
            return []

    reg = registry_with(InProcessPlugin(upstreams=[UpstreamSpec(name="exits", build=explode,
                                                                hidden_size=2)]),
                        Haunted(), InProcessPlugin(upstreams=[tiny_upstream_spec()]),
                        autoload=False)
    report = doctor(reg)
    lines = _findings(report)
    assert any("upstream 'exits'" in x and "SystemExit: plugin called exit()" in x for x in lines)
    assert any("corpus 'haunted'" in x and "ZeroDivisionError" in x for x in lines)
    assert ("plugin 'test_plugin_2': emobox_upstream() is not an emobox hook and is never "
            "called; did you mean 'emobox_upstreams'?") in lines
    status = {p.name: p for p in report.plugins}
    assert status["test_plugin_3"].checked == ["upstream 'tiny'"]
    assert status["test_plugin_3"].status == "ok"
    assert status["test_plugin_2"].status == "2 problems"


def test_upstreams_without_local_weights_are_notes_not_problems(tmp_path, monkeypatch):
    from emobox.extraction.checkpoints import find_checkpoint

    monkeypatch.setenv("EMOBOX_MODELS", str(tmp_path / "models"))

    def build(ckpt=None, device="cpu"):
        find_checkpoint("hub_model", ckpt, hub_id="org/hub-model")

    spec = UpstreamSpec(name="hub_model", build=build, checkpoint="org/hub-model",
                        hidden_size=768, num_layers=12)
    reg = registry_with(InProcessPlugin([spec]), autoload=False)
    cheap = doctor(reg)
    assert cheap.ok and "needs the checkpoint org/hub-model" in cheap.notes[0].line()
    full = doctor(reg, build="all")
    assert full.ok and "no checkpoint for upstream 'hub_model' on this machine" in \
        full.notes[0].message


def test_cli_report_json_and_exit_codes(cli, tmp_path):
    from emobox.testing import write_folder_corpus

    set_registry(registry_with(InProcessPlugin(upstreams=[_hidden_liar()])))
    res = cli("plugins", "doctor", "-q")
    assert res.code == 5, res
    assert "expected hidden size 1024 (declared), got 768" in res.out
    assert re.search(r"\b1 of \d+ plugins have problems", res.out)

    res = cli("plugins", "doctor", "--json")
    report = json.loads(res.out)
    assert report["ok"] is False and report["kind"] == "emobox.doctor"
    assert [f["subject"] for f in report["findings"] if f["severity"] == "problem"] == [
        "upstream 'liar'"]

    res = cli("plugins", "doctor", "--build", "none", "-q")
    assert res.code == 0 and "all plugins pass" in res.out  # sizes are only seen when built

    set_registry(None)
    write_folder_corpus(tmp_path / "mine", speakers=4, per_speaker=1, seconds=0.1)
    res = cli("plugins", "doctor", "-q", "--root", f"folder={tmp_path / 'mine'}")
    assert res.code == 0, res
    report = json.loads(cli("plugins", "doctor", "--json", "--root",
                            f"folder={tmp_path / 'mine'}").out)
    folder = next(p for p in report["plugins"] if p["name"] == "folder")
    assert folder["checked"] == ["corpus 'folder'"] and folder["problems"] == 0

    res = cli("plugins", "doctor", "--root", "nosuch=/x")
    assert res.code == 2 and "--root nosuch=...: no corpus of that name" in res.err
    res = cli("plugins", "doctor", "--build", "some")
    assert res.code == 2 and "--build must be one of none, cheap, all" in res.err


def test_import_failures_are_listed_as_broken_plugins(tmp_path, monkeypatch):
    from test_plugins import make_dist

    site = tmp_path / "site"
    make_dist(site, "emobox-plugin-fragile", "1.2.3", {"fragile_mod": "import no_such_dep\n"},
              {"fragile": "fragile_mod"})
    monkeypatch.syspath_prepend(str(site))
    report = doctor(Registry())
    status = {p.name: p for p in report.plugins}
    assert status["fragile"].status == "broken"
    assert status["fragile"].distribution == "emobox-plugin-fragile"
    (line,) = _findings(report)
    assert line.startswith("plugin 'fragile' (distribution emobox-plugin-fragile 1.2.3): import: "
                           "failed to import 'fragile_mod': ModuleNotFoundError")
    assert status["baselines"].status == "ok" and len(status["baselines"].checked) == 2


def _installed(kind: str) -> list[str]:
    from emobox.plugin.registry import Registry

    return Registry().names(kind)


_KINDS = ("upstream", "corpus", "downstream")


@pytest.mark.parametrize("kind,name", [(k, n) for k in _KINDS for n in _installed(k)])
def test_every_registered_spec_keeps_its_contract(kind, name):
    """Spec-level contract of every installed plugin, one test per name as timm does, so one
    broken plugin never hides the others."""
    from emobox.validate.contracts import check_spec

    assert check_spec(get_registry().get(kind, name)) == []


@pytest.mark.parametrize("kind", _KINDS)
def test_the_builtin_plugins_are_all_collected(kind):
    names = _installed(kind)
    expected = {"upstream": {"fbank", "whisper_tiny_en", "hear"},
                "corpus": {"demo", "ravdess", "iemocap", "folder", "lhotse"},
                "downstream": {"linear_probe", "weighted_sum"}}[kind]
    assert expected <= set(names)


def test_an_exception_in_scan_is_reported_as_raised_by_scan(tmp_path):
    from emobox import Corpus

    class Buggy(Corpus):
        name = "buggy"
        languages = ("English",)
        labels = ("angry", "happy")

        def scan(self):
            raise AttributeError("boom")

    spec = CorpusSpec(name="buggy", build=lambda root: Buggy(root))
    reg = registry_with(InProcessPlugin(corpora=[spec]), autoload=False)
    (line,) = _findings(doctor(reg, roots={"buggy": str(tmp_path)}))
    assert line.startswith("corpus 'buggy' of plugin 'test_plugin_1': Buggy.scan() raised "
                           "AttributeError: boom (at ")
    assert re.search(r"test_doctor\.py:\d+\)$", line)
