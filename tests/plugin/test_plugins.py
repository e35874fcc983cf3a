"""Plugin discovery and the errors a user can act on."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from emobox import DownstreamSpec, EmoboxUsageError, PluginError, UpstreamSpec, hookimpl
from emobox.plugin.registry import Registry, get_registry


def make_dist(site: Path, dist: str, version: str, modules: dict[str, str],
              entry_points: dict[str, str]) -> None:
    """Lay out an installed distribution (dist-info + modules) under ``site``."""
    site.mkdir(parents=True, exist_ok=True)
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(
        "[emobox]\n" + "".join(f"{k} = {v}\n" for k, v in entry_points.items()))
    for name, source in modules.items():
        (site / f"{name}.py").write_text(textwrap.dedent(source))


def test_builtins_are_listed_with_their_distribution(cli):
    res = cli("plugins")
    assert res.code == 0, res
    for name in ("fbank", "mfcc", "demo", "linear_probe"):
        line = next(line for line in res.out.splitlines() if f" {name} " in line)
        assert "emobox" in line
    reg = get_registry()
    assert reg.upstream("fbank").distribution == "emobox"
    assert reg.corpus("demo").plugin == "demo"
    assert reg.downstream("linear_probe").grid == {"lr": [1e-3, 1e-4], "hidden": [128, 256]}


def test_unknown_name_suggests_close_names(cli):
    res = cli("run", "-u", "fbnk", "-c", "demo", "-d", "linear_probe")
    assert res.code == 2
    assert "no upstream named 'fbnk'; did you mean 'fbank'?" in res.err
    assert "Traceback" not in res.err

    res = cli("run", "-u", "nosuch", "-c", "demo", "-d", "linear_probe")
    assert res.code == 2
    assert "no upstream named 'nosuch'" in res.err
    assert "fbank" in res.err and "mfcc" in res.err


def test_unknown_downstream_and_corpus(cli):
    res = cli("run", "-u", "fbank", "-c", "dmo", "-d", "linear_prob")
    assert res.code == 2
    assert "no corpus named 'dmo'; did you mean 'demo'" in res.err  # the closest name first


class _Fake:
    def __init__(self, upstreams=(), downstreams=()):
        self._up, self._down = list(upstreams), list(downstreams)

    @hookimpl
    def emobox_upstreams(self):
        return self._up

    @hookimpl
    def emobox_downstreams(self):
        return self._down


def _spec(name):
    return UpstreamSpec(name=name, build=lambda **kw: None, description=name)


def test_two_plugins_claiming_one_name_names_both_distributions():
    reg = Registry(autoload=False)
    reg.register(_Fake([_spec("shared_name"), _spec("only_a")]), name="plug_a",
                 distribution="emobox-plugin-a")
    reg.register(_Fake([_spec("shared_name")]), name="plug_b", distribution="emobox-plugin-b")
    with pytest.raises(PluginError) as info:
        reg.upstream("shared_name")
    msg = str(info.value)
    assert "emobox-plugin-a" in msg and "emobox-plugin-b" in msg and "'shared_name'" in msg
    assert reg.upstream("only_a").distribution == "emobox-plugin-a"  # other names still work
    assert any(p.kind == "duplicate" for p in reg.all_problems())


def test_invalid_spec_is_reported_and_skipped():
    reg = Registry(autoload=False)
    bad = UpstreamSpec(name="no_build", build=None)  # type: ignore[arg-type]
    reg.register(_Fake([bad, _spec("good")]), name="plug", distribution="emobox-plugin-x")
    assert reg.names("upstream") == ["good"]
    problems = reg.all_problems()
    assert len(problems) == 1 and problems[0].kind == "contract"
    assert "build is not callable" in problems[0].message
    assert "emobox-plugin-x" in problems[0].line()


def test_hook_that_raises_is_reported_with_traceback_summary():
    class Raising:
        @hookimpl
        def emobox_downstreams(self):
            raise RuntimeError("grid file missing")

    reg = Registry(autoload=False)
    reg.register(Raising(), name="raiser", distribution="emobox-plugin-raiser")
    reg.register(_Fake(downstreams=[DownstreamSpec(name="ok_head", build=lambda *a, **k: None)]),
                 name="fine")
    assert reg.names("downstream") == ["ok_head"]
    (problem,) = reg.all_problems()
    assert problem.kind == "hook" and "grid file missing" in problem.message
    assert "test_plugins.py" in problem.detail


def test_broken_import_is_reported_while_everything_else_works(tmp_path, monkeypatch, cli):
    site = tmp_path / "site"
    make_dist(site, "emobox-plugin-broken", "0.3.1",
              {"broken_plugin_mod": "import this_dependency_does_not_exist\n"},
              {"broken": "broken_plugin_mod"})
    monkeypatch.syspath_prepend(str(site))
    reg = get_registry(refresh=True)
    problems = reg.all_problems()
    assert [p.kind for p in problems] == ["import"]
    assert problems[0].distribution == "emobox-plugin-broken"
    assert "this_dependency_does_not_exist" in problems[0].message
    assert "fbank" in reg.names("upstream")  # the built-ins still load

    res = cli("plugins")
    assert res.code == 0
    assert "emobox-plugin-broken" in res.err and "ModuleNotFoundError" in res.err
    assert "fbank" in res.out


def test_unknown_name_mentions_broken_plugins(tmp_path, monkeypatch):
    site = tmp_path / "site"
    make_dist(site, "emobox-plugin-models", "1.0",
              {"models_plugin_mod": "raise ImportError('needs libfoo')\n"},
              {"models": "models_plugin_mod"})
    monkeypatch.syspath_prepend(str(site))
    reg = get_registry(refresh=True)
    with pytest.raises(EmoboxUsageError) as info:
        reg.upstream("fancy_model")
    assert "emobox-plugin-models" in str(info.value) and "needs libfoo" in str(info.value)


def test_disable_plugins_by_name(monkeypatch):
    monkeypatch.setenv("EMOBOX_DISABLE_PLUGINS", "baselines")
    reg = get_registry(refresh=True)
    assert "fbank" not in reg.names("upstream")
    assert "demo" in reg.names("corpus")


PLUGIN_PACKAGE = {
    "pyproject.toml": """
        [build-system]
        requires = ["setuptools>=64"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "emobox-testplugin"
        version = "2.5.0"
        dependencies = []

        [project.entry-points.emobox]
        toy = "emobox_testplugin"
    """,
    "emobox_testplugin.py": '''
        import emobox


        def _build(ckpt=None, device="cpu", **options):
            import torch
            from emobox.extraction.upstream import Upstream, UpstreamOutput

            class Toy(Upstream):
                name = "toy_energy"
                num_layers = 0
                hidden_size = 2
                frame_rate = 100.0
                checkpoint_id = "toy-energy-v1"

                def forward(self, wavs, layers):
                    feats = []
                    for w in wavs:
                        frames = w[: len(w) // 160 * 160].reshape(-1, 160)
                        feats.append(torch.stack([frames.pow(2).mean(1).log1p(),
                                                  frames.abs().max(1).values], dim=1))
                    lengths = torch.tensor([f.shape[0] for f in feats])
                    out = torch.zeros(len(feats), int(lengths.max()), 2)
                    for i, f in enumerate(feats):
                        out[i, : len(f)] = f
                    return UpstreamOutput({0: out}, lengths)

            return Toy()


        @emobox.hookimpl
        def emobox_upstreams():
            return [emobox.UpstreamSpec(name="toy_energy", build=_build,
                                        description="frame energy and peak", hidden_size=2,
                                        frame_rate=100.0)]
    ''',
}


@pytest.mark.slow
def test_separately_installed_package_is_discovered_and_runs(tmp_path, cli_subprocess):
    src = tmp_path / "src"
    src.mkdir()
    for name, text in PLUGIN_PACKAGE.items():
        (src / name).write_text(textwrap.dedent(text))
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                    "--no-build-isolation", "--target", str(target), str(src)], check=True)
    env = {"PYTHONPATH": str(target)}
    res = cli_subprocess("plugins", env=env)
    assert res.code == 0, res
    line = next(line for line in res.out.splitlines() if "toy_energy" in line)
    assert "emobox-testplugin" in line and "2.5.0" in line

    res = cli_subprocess("run", "-u", "toy_energy", "-c", "demo", "-d", "linear_probe",
                         "--epochs", "3", "--warmup", "1", "--fold", "1", "-q",
                         "--out", tmp_path / "run", env=env)
    assert res.code == 0, res
    config = (tmp_path / "run" / "config.json").read_text()
    assert '"emobox-testplugin": "2.5.0"' in config


def test_plugins_table_shows_each_plugins_distribution_version_and_path(cli):
    from emobox import __version__

    res = cli("plugins")
    assert res.code == 0, res
    line = next(x for x in res.out.splitlines() if " baselines " in x and "baselines.py" in x)
    assert " emobox " in line and f" {__version__} " in line
    assert get_registry().plugins["folder"].path.endswith("folder.py")
