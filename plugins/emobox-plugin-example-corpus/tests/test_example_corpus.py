"""The example corpus: labels through the map, speakers from file names, its own folds."""

from __future__ import annotations

import pytest

import emobox
from emobox.testing import assert_corpus, registered_spec, write_audio, write_folder_corpus

DIST = "emobox-plugin-example-corpus"
CODES = {"ang": "angry", "hap": "happy", "neu": "neutral", "sad": "sad", "oth": "-"}


@pytest.fixture(scope="module")
def spec():
    return registered_spec("corpus", "example_corpus", distribution=DIST)


@pytest.fixture
def root(tmp_path):
    write_folder_corpus(tmp_path / "mylab", labels=list(CODES), speakers=6, per_speaker=1,
                        seconds=0.1)
    (tmp_path / "mylab" / "labels.tsv").write_text(
        "# code\tclass\n" + "".join(f"{k}\t{v}\n" for k, v in CODES.items()))
    return tmp_path / "mylab"


def test_scan_maps_codes_and_drops_what_the_map_leaves_out(spec, root):
    corpus = assert_corpus(spec, root)  # manifest, files, first file decoded, folds consistent
    m = corpus.manifest
    assert m.labels == ("angry", "happy", "neutral", "sad")
    assert len(m) == 4 * 6  # the 'oth' folder is left out
    utt = m["ang/spk03_01"]
    assert (utt.label, utt.raw_label, utt.speaker, utt.path) == (
        "angry", "ang", "spk03", "ang/spk03_01.wav")


def test_folds_deal_speakers_round_robin_with_held_out_validation_speakers(spec, root):
    corpus = spec.build(root)
    folds = corpus.folds()
    assert len(folds) == 4
    speakers = {role: sorted({corpus.manifest[k].speaker for k in getattr(folds[0], role)})
                for role in ("train", "valid", "test")}
    assert speakers == {"test": ["spk01", "spk05"], "valid": ["spk02", "spk06"],
                        "train": ["spk03", "spk04"]}
    assert folds[3].valid_rule == "next-speaker-group"
    assert {corpus.manifest[k].speaker for k in folds[3].valid} == {"spk01", "spk05"}


def test_label_map_from_the_command_line(spec, root):
    (root / "labels.tsv").unlink()
    with pytest.raises(emobox.EmoboxUsageError, match="no label map: put labels.tsv in"):
        spec.build(root)
    corpus = spec.build(root, label_map="ang:angry,hap:happy,neu:neutral,sad:neutral,oth:-",
                        folds=3)
    assert corpus.manifest.labels == ("angry", "happy", "neutral")
    assert len(corpus.folds()) == 3


def test_bad_data_is_an_error_naming_the_file(spec, root):
    write_audio(root / "xyz" / "spk01_01.wav")
    with pytest.raises(emobox.DataError, match=r"unknown emotion label 'xyz' in .*xyz/spk01_01.wav"):
        spec.build(root).manifest
    (root / "xyz" / "spk01_01.wav").unlink()
    write_audio(root / "hap" / "nospeaker.wav")
    with pytest.raises(emobox.DataError, match="'hap/nospeaker.wav' does not start with"):
        spec.build(root).manifest
    with pytest.raises(emobox.EmoboxUsageError, match="unknown option 'fold'"):
        spec.build(root, fold=3)
