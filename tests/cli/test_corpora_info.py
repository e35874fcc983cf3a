"""``emobox corpora info NAME``, and missing-data errors that point to it."""

from __future__ import annotations

import json

from emobox import CheckpointNotFoundError, CorpusSpec, UpstreamSpec
from emobox.corpora._reference import reference_rows
from emobox.plugin.registry import set_registry
from emobox.testing import InProcessPlugin, registry_with, tiny_upstream_spec


def test_info_prints_where_to_get_it_its_licence_layout_and_reference_counts(cli, tmp_path,
                                                                              monkeypatch):
    monkeypatch.setenv("EMOBOX_DATA", str(tmp_path))
    res = cli("corpora", "info", "ravdess")
    assert res.code == 0, res
    lines = res.out.splitlines()
    rows = reference_rows("ravdess")
    speakers = {r["speaker"] for r in rows}
    assert "homepage (download): https://zenodo.org/records/1188976" in lines
    assert "license: CC BY-NC-SA 4.0" in lines
    assert f"root: {tmp_path / 'ravdess'} ($EMOBOX_DATA/ravdess; not there), or --root DIR" in lines
    layout = lines.index("expected layout:")
    assert "Actor_<NN>/03-01-<EE>-<II>-<SS>-<RR>-<NN>.wav" in lines[layout + 2]
    assert (f"reference: {len(rows):,} utterances, {len(speakers)} speakers, 8 labels, 6 folds, "
            in res.out)
    neutral = sum(r["emotion"] == "Neutral" for r in rows)
    assert f"Neutral {neutral}," in res.out


def test_info_counts_classes_as_the_adapter_yields_them(cli):
    # EmoBox's EmoDB table keeps its unmapped "neutral"; the adapter yields "Neutral"
    res = cli("corpora", "info", "emodb", "--json")
    labels = json.loads(res.out)["reference"]["labels"]
    assert labels["Neutral"] == sum(r["emotion"] == "neutral" for r in reference_rows("emodb"))
    assert "neutral" not in labels


def test_a_third_party_corpus_may_omit_homepage_and_licence(cli):
    spec = CorpusSpec(name="labdata", build=lambda root=None, **o: None,
                      expected_top_level="one folder per label")
    set_registry(registry_with(InProcessPlugin(corpora=[spec])))
    res = cli("corpora", "info", "labdata")
    assert res.code == 0 and "Traceback" not in res.err
    assert "homepage (download): - (not stated by the plugin)" in res.out
    assert "license: - (not stated by the plugin)" in res.out
    assert "expected layout:\n    one folder per label\n" in res.out
    assert "reference: none published" in res.out


def test_an_unknown_name_is_one_error_line(cli):
    res = cli("corpora", "info", "ravdes")
    assert res.code == 2
    assert res.err.startswith("error: no corpus named 'ravdes'; did you mean 'ravdess'")


def test_the_missing_corpus_error_points_to_info(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("EMOBOX_DATA", str(tmp_path))
    res = cli("run", "-u", "fbank", "-c", "emodb", "-d", "linear_probe", "--out", tmp_path / "r")
    assert res.code == 2
    assert res.err.count("error:") == 1
    assert "see: emobox corpora info emodb)" in res.err


def _needs_weights() -> UpstreamSpec:
    def locate(ckpt=None):
        raise CheckpointNotFoundError("no checkpoint for upstream 'heavy' on this machine; "
                                      "looked in: /nowhere")

    tiny = tiny_upstream_spec("heavy")
    return UpstreamSpec(name="heavy", build=tiny.build, num_layers=tiny.num_layers,
                        hidden_size=tiny.hidden_size, frame_rate=tiny.frame_rate, locate=locate)


def test_a_missing_corpus_and_a_missing_checkpoint_are_both_reported(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("EMOBOX_DATA", str(tmp_path))
    set_registry(registry_with(InProcessPlugin(upstreams=[_needs_weights()])))
    res = cli("run", "-u", "heavy", "-c", "emodb", "-d", "linear_probe", "--out", tmp_path / "r")
    assert res.code == 2
    errors = [line for line in res.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 2, res
    assert errors[0].startswith(f"error: corpus 'emodb': root {tmp_path / 'emodb'} does not exist")
    assert errors[1] == ("error: no checkpoint for upstream 'heavy' on this machine; "
                         "looked in: /nowhere")
    assert not (tmp_path / "r").exists()


def test_only_the_corpus_is_reported_when_the_checkpoint_is_there(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("EMOBOX_DATA", str(tmp_path))
    set_registry(registry_with(InProcessPlugin(upstreams=[tiny_upstream_spec("light")])))
    res = cli("run", "-u", "light", "-c", "emodb", "-d", "linear_probe", "--out", tmp_path / "r")
    assert res.code == 2 and res.err.count("error:") == 1
