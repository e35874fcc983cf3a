"""Catalogue, grids and numeric options: every value is checked before anything runs.

- Grid values are checked against the head's declared hyper-parameters (``DownstreamSpec.hparams``:
  type and range) and the trainer's (``lr``, ``weight_decay``): one ``error:`` line, exit 2,
  naming the entry and every valid name with its range, before any extraction. A third-party
  head without a declaration still works; its ``build`` keywords and their defaults' types are
  checked.
- Repeated grid values count once (``1e-3`` and ``0.001`` are one value), so a rerun resumes.
- Grid files are read with a size cap, a nesting cap and YAML without aliases.
- Numeric options (``--epochs``, ``--batch-seconds``, ``--memory-gb`` ...) refuse 0, negative,
  NaN and infinite values with one line.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from emobox.plugin.registry import set_registry
from emobox.plugin.specs import DownstreamSpec
from emobox.testing import InProcessPlugin, registry_with

from reliability_support import assert_user_error, run_args

VALID = ("its hyper-parameters: hidden (an integer from 1 to 16384), lr (a number > 0 and at "
         "most 10), weight_decay (a number from 0 to 1)")


POSITIVE = "{} must be positive (a finite number greater than 0), got "


def _no_features(home: Path) -> bool:
    return not (home / "features").exists() or not any((home / "features").rglob("meta.json"))


def _grid(args: list, grid: str) -> list:
    args = list(args)
    args[args.index("--grid") + 1] = grid
    return args


# -- values on the command line -------------------------------------------------------------------

BAD_VALUES = {
    "lr=abc": "--grid lr=abc: linear_probe's lr must be a number > 0 and at most 10",
    "lr=nan": "--grid lr=nan: linear_probe's lr must be a number > 0 and at most 10",
    "lr=inf": "--grid lr=inf: linear_probe's lr must be a number > 0 and at most 10",
    "lr=1e999": "--grid lr=inf: linear_probe's lr must be a number > 0 and at most 10 "
                "(a finite number)",
    "lr=0": "--grid lr=0: linear_probe's lr must be a number > 0",
    "lr=-1e-3": "--grid lr=-0.001: linear_probe's lr must be a number > 0",
    "hidden=-5": "--grid hidden=-5: linear_probe's hidden must be an integer from 1 to 16384",
    "hidden=0": "--grid hidden=0: linear_probe's hidden must be an integer from 1 to 16384",
    "hidden=1.5": "--grid hidden=1.5: linear_probe's hidden must be an integer from 1 to 16384 "
                  "(not a fraction)",
    "hidden=99999999": "--grid hidden=99999999: linear_probe's hidden must be an integer from "
                       "1 to 16384",
    "hidden=True": "--grid hidden=True: linear_probe's hidden must be an integer",
    "hidden=abc": "--grid hidden=abc: linear_probe's hidden must be an integer",
    "weight_decay=-1": "--grid weight_decay=-1: linear_probe's weight_decay must be a number "
                       "from 0 to 1",
    "foo=1": "--grid foo: linear_probe has no hyper-parameter 'foo'",
    "attention=8": "--grid attention: linear_probe has no hyper-parameter 'attention'",
}


@pytest.mark.parametrize("grid", list(BAD_VALUES))
def test_a_bad_grid_value_is_one_line_before_any_extraction(cli, tree, tmp_path, grid,
                                                            _isolated_home):
    res = cli(*_grid(run_args(tree, tmp_path / "run"), grid))
    assert_user_error(res, 2, BAD_VALUES[grid], VALID)
    assert _no_features(_isolated_home)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("grid", ["lr=", "lr=,", "=1e-3", "lr"])
def test_an_empty_grid_entry_is_one_line(cli, tree, tmp_path, grid):
    res = cli(*_grid(run_args(tree, tmp_path / "run"), grid))
    assert_user_error(res, 2, "--grid", "expected name=value")


def test_the_attentive_head_declares_its_attention_width(cli, tree, tmp_path):
    res = cli(*_grid(run_args(tree, tmp_path / "run"), "attention=0"), "-d", "attentive")
    assert_user_error(res, 2, "--grid attention=0: attentive's attention must be an integer "
                              "from 1 to 16384", "attention (an integer from 1 to 16384)")


def test_bench_checks_the_grid_before_any_extraction(cli, tree, tmp_path, _isolated_home):
    res = cli("bench", "-u", "fbank", "-c", "demo", "-d", "linear_probe,attentive", "-q",
              "--root-map", f"demo={tree}", "--out", tmp_path / "b", "--grid",
              "attention=16")
    assert_user_error(res, 2, "--grid attention: linear_probe has no hyper-parameter "
                              "'attention'")
    assert _no_features(_isolated_home)
    assert not (tmp_path / "b").exists()


def test_repeated_values_count_once_and_a_rerun_resumes(cli, tree, tmp_path, monkeypatch):
    """`lr=1e-3,0.001` is one configuration (before: two rows with one config id, and every
    rerun trained the fold again)."""
    import emobox.tracks.runner

    args = _grid(run_args(tree, tmp_path / "run"), "lr=1e-3,0.001,1e-3 hidden=8,8")
    res = cli(*args)
    assert res.code == 0, res
    rows = [json.loads(x) for x in (tmp_path / "run" / "results.jsonl").read_text().split("\n")
            if x]
    assert [r["config_id"] for r in rows] == ["hidden=8,lr=0.001"]
    assert json.loads((tmp_path / "run" / "config.json").read_text())["grid"] == {
        "lr": [0.001], "hidden": [8]}

    def refuse(*a, **k):
        raise AssertionError("the fold was trained again")

    monkeypatch.setattr(emobox.tracks.runner, "train_fold", refuse)
    for again in (args, _grid(args, "lr=0.001 hidden=8")):  # the same grid, written otherwise
        assert cli(*again).code == 0


# -- grid files -----------------------------------------------------------------------------------

def _run_with_file(cli, tree, tmp_path, name: str, content: bytes | str):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path, cli(*_grid(run_args(tree, tmp_path / "run"), str(path)))


BOMB = "\n".join(["a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
                 + [f"{c}: &{c} [{', '.join(['*' + p] * 10)}]"
                    for p, c in zip("abcdefgh", "bcdefghi")]) + "\nlr: *i\n"


@pytest.mark.parametrize("name,content,expected", [
    ("bomb.yaml", BOMB, "line 2: uses the alias *a; aliases are not allowed"),
    ("loop.yaml", "lr: &x [*x]\n", "line 1: uses the alias *x; aliases are not allowed"),
    ("deep.yaml", "lr: " + "[" * 100000 + "]" * 100000 + "\n", "nested deeper than 64 levels"),
    ("deep.json", '{"lr": ' + "[" * 100000 + "]" * 100000 + "}", "nested deeper than 64 levels"),
    ("big.yaml", "lr: [0.001]\n" + "#" * (2 << 20) + "\n", "larger than 1 MiB"),
    ("latin1.yaml", b"lr: [0.001] # caf\xe9\n", "not UTF-8 text"),
    ("list.yaml", "- 0.001\n- 0.0001\n", "expected a mapping name -> list of values"),
    ("keys.yaml", "1: [2]\n", "hyper-parameter names must be text"),
    ("types.json", '{"hidden": [8, "wide"]}', "--grid hidden=wide: linear_probe's hidden must "
                                              "be an integer from 1 to 16384"),
    ("nested.json", '{"lr": [[0.001]]}', "--grid lr=[0.001]: linear_probe's lr must be"),
    ("nan.json", '{"lr": [NaN]}', "--grid lr=nan: linear_probe's lr must be a number > 0 and "
                                  "at most 10 (a finite number)"),
    ("empty.yaml", "lr: []\n", "--grid lr: no value given"),
    ("null.yaml", "lr:\n", "--grid lr=None: linear_probe's lr must be"),
    ("twice.yaml", "lr: [0.001]\nlr: [0.1]\n", "line 2: the key 'lr' is given twice"),
])
def test_a_bad_grid_file_is_one_line(cli, tree, tmp_path, name, content, expected,
                                     _isolated_home):
    path, res = _run_with_file(cli, tree, tmp_path, name, content)
    assert_user_error(res, 2, expected)
    assert _no_features(_isolated_home)


def test_a_fifo_for_a_grid_file_is_refused_without_hanging(cli, tree, tmp_path):
    path = tmp_path / "grid.yaml"
    os.mkfifo(path)
    res = cli(*_grid(run_args(tree, tmp_path / "run"), str(path)))
    assert_user_error(res, 2, f"--grid file {path}: is a fifo, not a regular file")


def test_a_grid_file_the_user_links_to_is_read(cli, tree, tmp_path):
    real = tmp_path / "real.yaml"
    real.write_text("lr: [0.001]\nhidden: [8]\n")
    link = tmp_path / "grid.yaml"
    link.symlink_to(real)
    res = cli(*_grid(run_args(tree, tmp_path / "run"), str(link)))
    assert res.code == 0, res


def test_a_grid_of_too_many_configurations_is_refused(cli, tree, tmp_path):
    hidden = ",".join(str(h) for h in range(1, 101))
    lr = ",".join(f"{k}e-5" for k in range(1, 101))
    res = cli(*_grid(run_args(tree, tmp_path / "run"), f"hidden={hidden} lr={lr}"))
    assert_user_error(res, 2, "--grid: 10000 configurations; at most 4096 train together")


# -- heads from third parties ---------------------------------------------------------------------

def _plain_head(in_dim, n_classes, hidden=16):
    from emobox.downstreams.linear_probe import LinearProbe

    return LinearProbe(in_dim, n_classes, hidden=hidden)


def _open_head(in_dim, n_classes, **options):
    from emobox.downstreams.linear_probe import LinearProbe

    return LinearProbe(in_dim, n_classes, hidden=8)


@pytest.fixture
def third_party():
    from emobox.plugin.specs import HParam

    specs = [DownstreamSpec(name="plain_head", build=_plain_head, grid={"hidden": [8]}),
             DownstreamSpec(name="open_head", build=_open_head, grid={"lr": [1e-3]}),
             DownstreamSpec(name="broken_grid", build=_plain_head, grid={"hidden": [-1]},
                            hparams={"hidden": HParam(int, 1, 64)})]
    set_registry(registry_with(InProcessPlugin(downstreams=specs)))


@pytest.mark.parametrize("grid,expected", [
    ("foo=1", "--grid foo: plain_head has no hyper-parameter 'foo'; its hyper-parameters: "
              "hidden (an integer), lr"),
    ("hidden=1.5", "--grid hidden=1.5: plain_head's hidden must be an integer (not a fraction)"),
    ("lr=nan", "--grid lr=nan: plain_head's lr must be a number > 0"),
])
def test_an_undeclared_head_gets_its_build_keywords_checked(cli, tree, tmp_path, third_party,
                                                           grid, expected):
    res = cli(*_grid(run_args(tree, tmp_path / "run"), grid), "-d", "plain_head")
    assert_user_error(res, 2, expected)


def test_an_undeclared_head_still_runs(cli, tree, tmp_path, third_party):
    res = cli(*_grid(run_args(tree, tmp_path / "run"), "hidden=8 lr=1e-3"), "-d", "plain_head")
    assert res.code == 0, res


def test_a_head_taking_any_keyword_gets_type_sanity_checks(cli, tree, tmp_path, third_party):
    ok = cli(*_grid(run_args(tree, tmp_path / "a"), "depth=2 mode=fast"), "-d", "open_head")
    assert ok.code == 0, ok
    path = tmp_path / "grid.json"
    path.write_text('{"depth": [{"x": 1}]}')
    res = cli(*_grid(run_args(tree, tmp_path / "b"), str(path)), "-d", "open_head")
    assert_user_error(res, 2, "--grid depth={'x': 1}: open_head's depth must be a number, a "
                              "string or true/false")
    path.write_text('{"depth": [Infinity]}')
    res = cli(*_grid(run_args(tree, tmp_path / "c"), str(path)), "-d", "open_head")
    assert_user_error(res, 2, "--grid depth=inf: open_head's depth must be a finite number")


def test_a_head_whose_own_grid_breaks_its_declaration_is_a_plugin_error(cli, tree, tmp_path,
                                                                       third_party):
    args = [a for a in run_args(tree, tmp_path / "run")]
    i = args.index("--grid")
    del args[i:i + 2]
    res = cli(*args, "-d", "broken_grid")
    assert_user_error(res, 4, "the default grid of downstream 'broken_grid' hidden=-1: "
                              "broken_grid's hidden must be an integer from 1 to 64")


def test_hparam_says_what_it_takes():
    from emobox.plugin.specs import HParam

    assert HParam(int, 1, 16384).describe() == "an integer from 1 to 16384"
    assert HParam(float, 0.0, 10.0, low_open=True).describe() == "a number > 0 and at most 10"
    assert HParam(str, choices=("mean", "max")).describe() == "one of 'mean', 'max'"
    assert HParam(float, 0, 1).check(1) == 1.0 and isinstance(HParam(float).check(1), float)
    assert HParam(str, choices=("mean", "max")).check("max") == "max"
    for hp, value in ((HParam(int, 1, 8), 9), (HParam(int), True), (HParam(float), math.nan),
                      (HParam(str, choices=("mean",)), "sum"), (HParam(bool), 1)):
        with pytest.raises(ValueError):
            hp.check(value)


# -- numeric options ------------------------------------------------------------------------------

@pytest.mark.parametrize("flag,value,expected", [
    ("--epochs", "0", "--epochs must be at least 1, got 0"),
    ("--batch-size", "0", "--batch-size must be at least 1, got 0"),
    ("--warmup", "-1", "--warmup must be at least 0, got -1"),
    ("--batch-seconds", "nan", POSITIVE.format("--batch-seconds") + "nan"),
    ("--batch-seconds", "inf", POSITIVE.format("--batch-seconds") + "inf"),
    ("--batch-seconds", "0", POSITIVE.format("--batch-seconds") + "0.0"),
    ("--batch-seconds", "-3", POSITIVE.format("--batch-seconds") + "-3.0"),
])
@pytest.mark.parametrize("command", ["run", "bench"])
def test_bad_numbers_for_run_and_bench_are_one_line_before_extraction(
        cli, tree, tmp_path, flag, value, expected, command, _isolated_home):
    if command == "run":
        args = [*run_args(tree, tmp_path / "run"), flag, value]
    else:
        args = ["bench", "-u", "fbank", "-c", "demo", "-q", "--root-map", f"demo={tree}",
                "--out", tmp_path / "b", flag, value]
    assert_user_error(cli(*args), 2, expected)
    assert _no_features(_isolated_home)


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "0"])
def test_bad_memory_for_extract_is_one_line(cli, tree, value, _isolated_home):
    res = cli("extract", "-u", "fbank", "-c", "demo", "--root", tree, "-q", "--memory-gb", value)
    assert_user_error(res, 2, POSITIVE.format("--memory-gb") + repr(float(value)))
    assert _no_features(_isolated_home)


def test_bad_batch_seconds_for_extract_is_one_line(cli, tree, _isolated_home):
    res = cli("extract", "-u", "fbank", "-c", "demo", "--root", tree, "-q",
              "--batch-seconds", "nan")
    assert_user_error(res, 2, POSITIVE.format("--batch-seconds") + "nan")
    assert _no_features(_isolated_home)


def test_bench_refuses_bad_resource_numbers(cli, tree, tmp_path):
    res = cli("bench", "-u", "fbank", "-c", "demo", "-q", "--root-map", f"demo={tree}",
              "--out", tmp_path / "b", "--train-cpus", "nan")
    assert_user_error(res, 2, POSITIVE.format("--train-cpus") + "nan")


def test_the_reference_run_still_accepts_the_papers_grid(cli, tree, tmp_path):
    res = cli(*_grid(run_args(tree, tmp_path / "run"), "lr=1e-3,1e-4 hidden=128,256"))
    assert res.code == 0, res
    rows = [json.loads(x) for x in (tmp_path / "run" / "results.jsonl").read_text().split("\n")
            if x]
    assert sorted(r["config_id"] for r in rows) == [
        "hidden=128,lr=0.0001", "hidden=128,lr=0.001", "hidden=256,lr=0.0001",
        "hidden=256,lr=0.001"]


def test_plugins_doctor_names_a_grid_that_breaks_its_own_declaration():
    from emobox.validate.contracts import check_downstream_spec
    from emobox.plugin.specs import HParam

    spec = DownstreamSpec(name="narrow", build=_plain_head, grid={"hidden": [128]},
                          hparams={"hidden": HParam(int, 1, 64)})
    assert check_downstream_spec(spec) == [
        "grid hidden=128: narrow's hidden must be an integer from 1 to 64; its "
        "hyper-parameters: hidden (an integer from 1 to 64), lr (a number > 0 and at most 10), "
        "weight_decay (a number from 0 to 1)"]
    wrong = DownstreamSpec(name="wrong", build=_plain_head, grid={"hidden": [8]},
                           hparams={"hidden": "an int"})
    assert check_downstream_spec(wrong) == ["hparams entry 'hidden' is not an emobox.HParam"]


def test_bench_names_a_damaged_corpus_instead_of_calling_it_absent(cli, tree, tmp_path):
    """A corpus given with --root-map whose manifest is damaged is an error naming the file,
    not a corpus 'not on this machine' left out of an otherwise successful bench."""
    tsv = tmp_path / "m" / "mini.tsv"
    assert cli("corpora", "manifest", "-c", "demo", "--root", tree, "-o", tsv).code == 0
    tsv.write_bytes(tsv.read_bytes() + b"k\xff\tx\n")
    res = cli("bench", "-u", "fbank", "-c", "imported,demo", "-d", "linear_probe", "-q",
              "--root-map", f"imported={tsv}", "--root-map", f"demo={tree}",
              "--out", tmp_path / "b", "--dry-run")
    assert_user_error(res, 3, f"{tsv}:", "not UTF-8 text")


def test_a_corpus_mapped_to_two_folders_is_refused(cli, tree, tmp_path):
    res = cli("bench", "-u", "fbank", "-c", "demo", "-d", "linear_probe", "-q",
              "--root-map", f"demo={tree}", "--root-map", f"demo={tmp_path}",
              "--out", tmp_path / "b", "--dry-run")
    assert_user_error(res, 2, f"--root-map demo: given twice ({tree} and {tmp_path})")
