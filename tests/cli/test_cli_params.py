"""The one ``NAME=VALUE`` parser (``emobox.cli.params.KeyValue``) behind -U, -C, --grid,
--root-map and ``plugins doctor --root``."""

from __future__ import annotations

import pytest

from emobox import EmoboxUsageError
from emobox.cli.bench_cmd import parse_keyed_options, parse_root_map
from emobox.cli.params import OPTION, ROOT_MAP, KeyValue, literal
from emobox.cli.run_cmd import parse_grid, parse_options


def test_values_are_literals_or_text():
    assert parse_options(["n=3", "rate=1e-3", "on=True", "mode=trimmed", "path=/data/x=1"],
                         "-U") == {"n": 3, "rate": 0.001, "on": True, "mode": "trimmed",
                                   "path": "/data/x=1"}
    assert literal("__import__('os').system('true')") == "__import__('os').system('true')"
    assert literal("[1, 2]") == [1, 2]


@pytest.mark.parametrize("item", ["novalue", "=3", " =3"])
def test_a_malformed_option_names_the_flag(item):
    with pytest.raises(EmoboxUsageError) as err:
        parse_options([item], "--corpus-option")
    assert str(err.value) == f"--corpus-option {item!r}: expected name=value"


def test_root_maps_strip_and_refuse_empty_sides():
    assert parse_root_map([" emodb = /data/EmoDB "]) == {"emodb": "/data/EmoDB"}
    for item in ("emodb", "emodb=", "=/data"):
        with pytest.raises(EmoboxUsageError, match=f"--root-map '{item}': expected corpus=DIR"):
            parse_root_map([item])


def test_keyed_options_go_to_their_owner_or_to_every_owner():
    got = parse_keyed_options(["mode=trimmed", "whisper_tiny_en:n=2"],
                              ("fbank", "whisper_tiny_en"), "--upstream-option", "UPSTREAM")
    assert got == {"fbank": {"mode": "trimmed"}, "whisper_tiny_en": {"mode": "trimmed", "n": 2}}
    with pytest.raises(EmoboxUsageError,
                       match="expected name=value or UPSTREAM:name=value"):
        parse_keyed_options(["fbank:num_mel_bins"], ("fbank",), "--upstream-option", "UPSTREAM")


def test_grid_items_share_the_parser():
    assert parse_grid(["lr=1e-3,1e-4 hidden=128"]) == {"lr": [0.001, 0.0001], "hidden": [128]}
    with pytest.raises(EmoboxUsageError, match=r"--grid 'lr': expected name=value\[,value...\]"):
        parse_grid(["lr"])


def test_as_a_click_type_the_flag_comes_from_the_option():
    import click

    @click.command()
    @click.option("-C", "--corpus-option", "options", multiple=True, type=OPTION)
    def show(options):
        click.echo(repr(dict(options)))

    assert show.main(["-C", "folds=5", "-C", "name=lab"], standalone_mode=False) is None
    with pytest.raises(EmoboxUsageError, match="--corpus-option 'folds': expected name=value"):
        show.main(["-C", "folds"], standalone_mode=False)
    assert ROOT_MAP.convert(("a", "b"), None, None) == ("a", "b")  # a default passes through
    assert KeyValue("NAME=DIR", flag="--root")("x=y") == ("x", "y")


def test_plugins_doctor_root_is_one_error_line(cli):
    res = cli("plugins", "doctor", "--root", "emodb", "--build", "none", "-q")
    assert res.code == 2
    assert res.err.strip() == "error: --root 'emodb': expected NAME=DIR"


def test_corpora_commands_take_corpus_options_through_the_type(cli, tmp_path):
    res = cli("corpora", "check", "-c", "demo", "-C", "folds")
    assert res.code == 2
    assert res.err.strip() == "error: --corpus-option 'folds': expected name=value"
