"""Catalogue, plugins and names: a plugin that raises on import or in a hook, an upstream whose
weights are not on this machine, names and option values that do not exist. A broken plugin is
left out with a warning that names it and its distribution; everything else keeps working."""

from __future__ import annotations

import os
import sys

import pytest

from emobox.plugin.registry import set_registry

from reliability_support import RUN, assert_user_error, install_fake_distribution

RAISES_ON_IMPORT = """import emobox
raise RuntimeError("the vendored model code needs a newer torch")
"""

RAISES_IN_HOOK = """import emobox


@emobox.hookimpl
def emobox_upstreams():
    raise KeyError("checkpoint table")
"""


@pytest.fixture
def broken_site(tmp_path, monkeypatch):
    site = install_fake_distribution(tmp_path / "site", "emobox-boom", "emobox_boom",
                                     RAISES_ON_IMPORT, "boom")
    install_fake_distribution(site, "emobox-hooky", "emobox_hooky", RAISES_IN_HOOK, "hooky")
    monkeypatch.syspath_prepend(str(site))
    set_registry(None)
    return site


def test_plugin_raising_on_import_is_listed_not_fatal(cli, broken_site):
    res = cli("plugins")
    assert res.code == 0, res
    assert ("plugin 'boom' (distribution emobox-boom" in res.err
            and "failed to import 'emobox_boom': RuntimeError: the vendored model code needs a "
                "newer torch" in res.err)
    assert "hook emobox_upstreams() raised KeyError: 'checkpoint table'" in res.err
    assert "fbank" in res.out  # the built-ins are all there


def test_run_warns_about_broken_plugins_and_goes_on(cli, broken_site, tree, tmp_path):
    res = cli(*RUN, "--root", tree, "--out", tmp_path / "run")
    assert res.code == 0, res
    warnings = [line for line in res.err.splitlines() if line.startswith("warning:")]
    assert any("plugin 'boom' (distribution emobox-boom" in w and "it is left out" in w
               for w in warnings), res.err
    assert any("plugin 'hooky'" in w and "raised KeyError" in w for w in warnings), res.err
    assert (tmp_path / "run" / "results.jsonl").exists()


def test_asking_for_what_a_broken_plugin_would_provide(cli, broken_site):
    res = cli("run", "-u", "boom_encoder", "-c", "demo")
    assert_user_error(res, 2, "no upstream named 'boom_encoder'",
                      "note: plugin 'boom' (distribution emobox-boom",
                      "failed to import 'emobox_boom'")


def test_broken_plugin_in_a_real_process_prints_no_traceback(cli_subprocess, tmp_path):
    site = install_fake_distribution(tmp_path / "site", "emobox-boom", "emobox_boom",
                                     RAISES_ON_IMPORT, "boom")
    env = {"PYTHONPATH": os.pathsep.join([str(site), *sys.path[1:]])}
    res = cli_subprocess("run", "-u", "boom_encoder", "-c", "demo", env=env)
    assert_user_error(res, 2, "no upstream named 'boom_encoder'", "emobox-boom")
    res = cli_subprocess("plugins", env=env)
    assert res.code == 0 and "Traceback" not in res.err
    assert "broken plugin: plugin 'boom' (distribution emobox-boom" in res.err


# -- weights, names and option values ---------------------------------------------------------

def test_upstream_without_local_weights_says_where_it_looked(cli, tmp_path, monkeypatch):
    models = tmp_path / "models"
    monkeypatch.setenv("EMOBOX_MODELS", str(models))
    res = cli("run", "-u", "data2vec2_base", "-c", "demo", "-q")
    assert_user_error(res, 2, "no checkpoint for upstream 'data2vec2_base' on this machine",
                      f"looked in: {models / 'data2vec2_base'}", "--upstream-ckpt PATH")


def test_upstream_checkpoint_path_that_does_not_exist(cli, tmp_path):
    res = cli("run", "-u", "data2vec2_base", "-c", "demo", "--upstream-ckpt",
              tmp_path / "nope.pt")
    assert_user_error(res, 2, f"--upstream-ckpt {tmp_path / 'nope.pt'}: does not exist")


@pytest.mark.parametrize("args,fragments", [
    (("-u", "fbnak", "-c", "demo"), ("no upstream named 'fbnak'", "did you mean 'fbank'")),
    (("-u", "fbank", "-c", "demo", "-d", "linear_prob"),
     ("no downstream named 'linear_prob'", "did you mean 'linear_probe'")),
    (("-u", "fbank", "-c", "demo", "--on-bad-audio", "ignore"),
     ("--on-bad-audio must be one of fail, skip",)),
    (("-u", "fbank", "-c", "demo", "--scheme", "random"),
     ("unknown partition scheme 'random'",)),
    (("-u", "fbank", "-c", "demo", "--fold", "9"), ("no fold 9: this corpus has folds 1..3",)),
], ids=["upstream", "downstream", "on-bad-audio", "scheme", "fold"])
def test_unknown_names_and_values(cli, args, fragments):
    res = cli("run", *args, "-q")
    assert_user_error(res, 2, *fragments)


def test_emobox_traceback_adds_where_a_user_error_was_raised(cli, monkeypatch):
    res = cli("run", "-u", "fbnak", "-c", "demo", "-q")
    assert "Traceback" not in res.err
    monkeypatch.setenv("EMOBOX_TRACEBACK", "1")
    res = cli("run", "-u", "fbnak", "-c", "demo", "-q")
    assert res.code == 2
    assert res.err.startswith("error: no upstream named 'fbnak'")
    assert "Traceback (most recent call last)" in res.err and "EmoboxUsageError" in res.err
