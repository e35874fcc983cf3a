"""The example head keeps the downstream contract and trains inside `emobox run`."""

from __future__ import annotations

import pytest
import torch

from emobox import segment_ids
from emobox.testing import assert_downstream, registered_spec, smoke_run, write_folder_corpus

DIST = "emobox-plugin-example-downstream"


@pytest.fixture(scope="module")
def spec():
    return registered_spec("downstream", "example_head", distribution=DIST)


def test_contract_holds_for_every_configuration_of_the_grid(spec):
    assert spec.grid == {"lr": [1e-3, 3e-4], "hidden": [32, 64]}
    assert_downstream(spec, in_dim=12, n_classes=4)  # masking, packed path, batch == item


def test_padding_gets_no_attention(spec):
    torch.manual_seed(0)
    head = spec.build(5, 3, hidden=8).eval()
    x = torch.randn(2, 7, 5)
    lengths = torch.tensor([7, 2])
    x[1, 2:] = 100.0
    logits = head(x, lengths)
    assert torch.allclose(logits[1], head(x[1:2, :2], lengths[1:2])[0], atol=1e-5)
    frames = torch.cat([x[0], x[1, :2]])
    assert torch.allclose(head.forward_packed(frames, segment_ids(lengths), lengths), logits,
                          atol=1e-5)


def test_trains_inside_emobox_run(spec, tmp_path):
    write_folder_corpus(tmp_path / "data", speakers=4, per_speaker=2, seconds=0.3)
    result = smoke_run("fbank", "folder", "example_head", root=tmp_path / "data",
                       out=tmp_path / "run", epochs=3)
    assert result.config["grid"] == {"lr": [1e-3], "hidden": [32]}  # the grid's first point
    assert result.config["versions"]["plugins"][DIST] == "0.1.2"
    rows = [line.split("\t") for line in
            (tmp_path / "run" / "predictions" / "fold1.tsv").read_text().splitlines()[1:]]
    assert len(rows) == 8 and all(key.split("/")[1].startswith("spk01_") for key, _, _ in rows)
    assert {pred for _, _, pred in rows} <= {"Angry", "Happy", "Neutral", "Sad"}
    assert [f.fold for f in result.folds] == [1]
