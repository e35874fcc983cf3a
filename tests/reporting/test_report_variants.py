"""`emobox report` over variants of one triple: labelled rows, or a refusal that says how."""

from __future__ import annotations

import shutil

import pytest
from bench_support import local_grid

from emobox.plugin.registry import set_registry


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    return local_grid(tmp_path_factory)


@pytest.fixture(scope="module")
def norm_runs(grid):
    """fbank_seen x tones fold 1, twice: feature_norm utterance and frame."""
    from emobox.tracks.runner import RunOptions, run

    set_registry(grid["registry"])
    outs = []
    for norm in ("utterance", "frame"):
        out = grid["base"] / f"norm_{norm}"
        run(RunOptions(upstream="fbank_seen", corpus="tones", downstream="linear_probe",
                       root=str(grid["roots"]["tones"]), out=str(out), folds=(1,),
                       feature_norm=norm, grid={"lr": [1e-2], "hidden": [16]}, epochs=2,
                       warmup_epochs=1, features_dir=str(grid["base"] / "features")))
        outs.append(out)
    return outs


@pytest.fixture(autouse=True)
def _registry(grid):
    set_registry(grid["registry"])


def test_variants_become_labelled_rows(norm_runs, tmp_path):
    from emobox.reporting.report import write_report

    report = write_report(norm_runs, tmp_path / "rep", plots=False)
    table = report.table
    assert table.upstreams == ["fbank_seen (norm frame)", "fbank_seen (norm utterance)"]
    md = report.files["table.md"].read_text()
    assert "fbank_seen (norm frame)" in md and "fbank_seen (norm utterance)" in md


def test_identical_runs_are_refused_saying_they_do_not_differ(norm_runs, tmp_path, cli):
    copy = tmp_path / "copy"
    shutil.copytree(norm_runs[0], copy)
    res = cli("report", norm_runs[0], copy, "--out", tmp_path / "rep")
    assert res.code == 2
    assert "two runs of fbank_seen x tones x linear_probe" in res.err
    assert "their configurations do not differ" in res.err


def test_labels_name_only_what_varies():
    from emobox.reporting.variants import differences, labels

    a = {"layer": 3, "precision": "fp32"}
    b = {"layer": 5, "precision": "fp32"}
    assert labels("whisper_tiny_en", [a, b]) == ["whisper_tiny_en (layer 3)",
                                                 "whisper_tiny_en (layer 5)"]
    assert labels("whisper_tiny_en", [a, {"layer": 3, "precision": "bf16"}])[1] == \
        "whisper_tiny_en (bf16)"
    assert differences(a, b) == ["layer: 3 vs 5"]


def test_published_numbers_note_is_plain_and_only_beside_an_emobox_corpus(grid, norm_runs,
                                                                          tmp_path):
    from emobox.reporting.report import write_report

    md = write_report(norm_runs, tmp_path / "tones", plots=False).files["table.md"].read_text()
    assert "not shipped" not in md  # tones is not an EmoBox corpus
    emodb = grid["dir"] / "runs" / "mfcc__emodb__linear_probe"
    md = write_report([emodb], tmp_path / "emodb", plots=False).files["table.md"].read_text()
    assert ("the EmoBox paper's published intra-corpus numbers (its Table 4) are not shipped "
            "with emobox, so no (paper) row is shown") in md
    assert "conversion" not in md and "supplied text" not in md
