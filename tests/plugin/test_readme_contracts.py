"""The README's plugin contracts ("The three contracts") say what the code does."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

import emobox
from emobox import Corpus, DataError, Manifest, Upstream, Utterance
from emobox.plugin.registry import set_registry
from emobox.testing import InProcessPlugin, registry_with, write_folder_corpus

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
GUIDE = README[README.index("\n### The three contracts\n"):README.index("\n### Test it with")]
GUIDE = " ".join(GUIDE.split())  # the prose as one line, however it is wrapped


def test_manifest_and_utterance_fields_are_as_written():
    assert "`emobox.Manifest(corpus, root, utterances, labels)`" in GUIDE
    assert [f.name for f in dataclasses.fields(Manifest)] == ["corpus", "root", "utterances",
                                                               "labels"]
    assert ("`emobox.Utterance(key, path, label, speaker=None, raw_label=None, channel=None, "
            "start=None, end=None)`") in GUIDE
    fields = dataclasses.fields(Utterance)[:8]
    assert [(f.name, f.default) for f in fields] == [
        ("key", dataclasses.MISSING), ("path", dataclasses.MISSING),
        ("label", dataclasses.MISSING), ("speaker", None), ("raw_label", None),
        ("channel", None), ("start", None), ("end", None)]


class Lab(Corpus):
    """A folder-per-label corpus whose ``-C folds=N`` is a keyword of ``__init__``."""

    name = "lab"
    labels = ("angry", "happy", "neutral", "sad")
    label_map = {k: k for k in labels}
    dropped_labels = frozenset({"other"})

    def __init__(self, root, *, folds: int = 4):
        super().__init__(root)
        self.n_folds = folds

    def scan(self) -> Manifest:
        utts = []
        for rel in self.iter_files((".wav",)):
            label = self.map_label(rel.split("/")[0], rel)
            if label is None:
                self.skipped.append((rel, "label left out"))
                continue
            speaker = rel.split("/")[-1].split("_")[0]
            utts.append(Utterance(f"lab-{rel}", rel, label, speaker))
        return Manifest(self.name, self.root, utts, self.labels)


def test_iter_files_yields_relative_posix_strings_and_paths_stay_relative(tmp_path):
    write_folder_corpus(tmp_path, speakers=5, per_speaker=1)
    corpus = Lab(tmp_path)
    files = list(corpus.iter_files((".wav",)))
    assert files[0] == "angry/spk01_01.wav"
    assert all(isinstance(f, str) and not Path(f).is_absolute() for f in files)
    assert corpus.manifest["lab-angry/spk01_01.wav"].path == "angry/spk01_01.wav"
    assert "`self.iter_files(suffixes, under=\"\")`" in GUIDE and "sorted POSIX strings" in GUIDE


def test_map_label_drops_or_refuses(tmp_path):
    write_folder_corpus(tmp_path, labels=("angry", "other"), speakers=4, per_speaker=1)
    corpus = Lab(tmp_path)
    assert corpus.map_label("other", "other/spk01_01.wav") is None
    assert {u.label for u in corpus.manifest} == {"angry"}
    assert ("other/spk01_01.wav", "label left out") in corpus.skipped
    with pytest.raises(DataError, match="unknown emotion label 'joy'"):
        corpus.map_label("joy", "joy/x.wav")
    assert "None for a label in `dropped_labels`" in GUIDE


def test_without_a_fold_table_folds_are_speaker_independent(tmp_path):
    write_folder_corpus(tmp_path / "five", speakers=5, per_speaker=1)
    folds = Lab(tmp_path / "five").folds()
    assert len(folds) == 5  # leave one speaker out for 4 to 6 speakers
    for f in folds:
        test_speakers = {k.split("/")[-1].split("_")[0] for k in f.test}
        assert len(test_speakers) == 1
        assert f.valid_rule == "held-out-speakers"
    write_folder_corpus(tmp_path / "twelve", speakers=12, per_speaker=1)
    assert len(Lab(tmp_path / "twelve").folds()) == 3  # max(2, min(12 // 4, 6))
    write_folder_corpus(tmp_path / "three", speakers=3, per_speaker=1)
    with pytest.raises(emobox.EmoboxUsageError) as err:
        Lab(tmp_path / "three").folds()
    assert str(err.value) == (
        "corpus 'lab' publishes no fold table, so scheme emobox builds speaker-independent "
        "folds, which it cannot give: it has 3 speakers and they need at least 4 (its adapter "
        "must define its folds: override fold_table() or folds())")
    assert "leave one speaker out for 4 to 6 speakers" in GUIDE
    assert "`max(2, min(speakers // 4, max_folds))`" in GUIDE


def test_a_corpus_option_reaches_init_as_a_literal_and_unknown_ones_are_refused(cli, tmp_path):
    write_folder_corpus(tmp_path / "data", speakers=4, per_speaker=1)
    got = {}

    def build(root, *, folds: int = 4):
        got["folds"] = folds
        return Lab(root, folds=folds)

    set_registry(registry_with(InProcessPlugin(corpora=[emobox.CorpusSpec(name="lab",
                                                                          build=build)])))
    res = cli("corpora", "manifest", "-c", "lab", "--root", tmp_path / "data", "-C", "folds=3",
              "-o", tmp_path / "m.tsv")
    assert res.code == 0, res
    assert got == {"folds": 3}
    res = cli("run", "-u", "fbank", "-c", "lab", "--root", tmp_path / "data", "-C", "fold=3",
              "--out", tmp_path / "run")
    assert res.code == 2
    assert "corpus 'lab' has no option 'fold'; its options: folds" in res.err
    assert "`-C folds=5` gives the integer 5" in GUIDE


def test_upstream_defaults_are_as_written():
    assert (Upstream.max_seconds, Upstream.padding_sensitive, dict(Upstream.store_options),
            Upstream.feature_version, dict(Upstream.provenance)) == (None, False, {}, "", {})
    for text in ("`max_seconds=None`", "`padding_sensitive=False`", "`store_options={}`",
                 "`feature_version=\"\"`", "`provenance={}`",
                 "`max(1, int(num_samples * frame_rate / sample_rate))`"):
        assert text in GUIDE, text

    class Bare(Upstream):
        frame_rate = 50.0

    assert Bare().frames_for(16000) == 50 and Bare().flops(16000) is None
