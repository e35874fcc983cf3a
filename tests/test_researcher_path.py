"""What a researcher sees: shell completion, upstream search by part of a name, and the
learned layer weights a weighted_sum head may record in a result row."""

from __future__ import annotations

import pytest

from emobox.reporting.results import RowError, check_row


def test_shell_completion_options_are_offered(cli):
    res = cli("--help")
    assert res.code == 0
    assert "--install-completion" in res.out and "--show-completion" in res.out


def test_upstreams_list_matches_part_of_a_name_and_globs(cli):
    res = cli("upstreams", "list", "bank")  # part of "fbank"
    assert res.code == 0 and "fbank" in res.out
    res = cli("upstreams", "list", "fb*")
    assert res.code == 0 and "fbank" in res.out
    res = cli("upstreams", "list", "zz_nothing_like_this")
    assert res.code == 0
    assert "no upstream matches 'zz_nothing_like_this'" in res.out
    assert "fbank" not in res.out


def _row(**extra):
    row = {"upstream": "u", "corpus": "c", "downstream": "weighted_sum", "scheme": "s",
           "fold": 1, "config_id": "a", "config": {}, "selected": True, "best_epoch": 1,
           "ua": 0.5, "wa": 0.5, "f1": 0.5, "valid_ua": 0.5, "valid_loss": 1.0,
           "confusion": [[1, 0], [0, 1]], "per_class_recall": [1.0, 1.0], "labels": ["a", "b"],
           "seed": 0, "emobox_version": "0"}
    row.update(extra)
    return row


def test_row_checker_accepts_layer_weights_and_refuses_bad_ones():
    assert check_row(_row(layer_weights=[0.25, 0.75]))["layer_weights"] == [0.25, 0.75]
    with pytest.raises(RowError, match="'layer_weights' is .* not a list of numbers from 0 to 1"):
        check_row(_row(layer_weights=[0.5, "x"]))
    with pytest.raises(RowError, match="layer_weights"):
        check_row(_row(layer_weights=[1.5]))
