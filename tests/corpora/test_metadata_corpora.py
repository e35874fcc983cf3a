"""Corpus by corpus: what EmoBox got wrong and how it is fixed, official splits, layout variants,
and the errors a user sees for bad metadata (each names the file and what is wrong)."""

from __future__ import annotations

import json
import shutil

import pytest

from emobox import DataError
from emobox.corpora._emobox import reference_rows
from emobox.plugin.registry import get_registry
from emobox.datasets.splits import leakage
from corpus_writers import write_fixture


def build(tmp_path, name, keep=lambda r: True, every=1, clutter=False):
    """A fixture of corpus ``name`` from every ``every``-th reference row that ``keep`` accepts."""
    cls = get_registry().corpus(name).build
    rows = [r for i, r in enumerate(reference_rows(name)) if i % every == 0 and keep(r)]
    extras = write_fixture(cls, tmp_path, rows, clutter=clutter)
    return cls, rows, extras


# -- IEMOCAP ------------------------------------------------------------------------------------
def test_iemocap_speaker_is_the_talking_actor(tmp_path):
    cls, rows, _ = build(tmp_path, "iemocap", lambda r: r["path"].startswith("Session5/"))
    m = cls(tmp_path).manifest
    utt = m["iemocap-Ses05M_impro07_F035"]  # a female turn in a dialog named after the actor
    assert utt.speaker == "Ses05F" and utt.custom["emobox_speaker"] == "Ses05M"
    assert m.speakers() == ["Ses05F", "Ses05M"]
    moved = sum(u.speaker != u.custom["emobox_speaker"] for u in m)
    assert 0.3 < moved / len(rows) < 0.7  # about half of EmoBox's speakers are the other actor


def test_iemocap_excluded_labels_are_reported_and_unknown_ones_fail(tmp_path):
    cls, _, _ = build(tmp_path, "iemocap", lambda r: r["path"].startswith("Session1/"), every=20)
    corpus = cls(tmp_path)
    assert {u.raw_label for u in corpus.manifest} <= {"neu", "hap", "exc", "ang", "sad"}
    assert any(reason == "label 'fru' is not one of EmoBox's classes (excluded)"
               for _, reason in corpus.skipped)
    evaluation = sorted((tmp_path / "Session1/dialog/EmoEvaluation").glob("*.txt"))[0]
    evaluation.write_text(evaluation.read_text().replace("\tneu\t", "\tcalm\t", 1)
                          .replace("\tang\t", "\tcalm\t", 1).replace("\tsad\t", "\tcalm\t", 1)
                          .replace("\thap\t", "\tcalm\t", 1).replace("\texc\t", "\tcalm\t", 1))
    with pytest.raises(DataError, match=rf"unknown emotion label 'calm' in .*{evaluation.name}"):
        cls(tmp_path).manifest


def test_iemocap_missing_evaluation_folder_is_named(tmp_path):
    cls, _, _ = build(tmp_path, "iemocap", lambda r: r["path"].startswith(("Session1/",
                                                                           "Session2/")), every=20)
    shutil.rmtree(tmp_path / "Session2/dialog")
    with pytest.raises(DataError, match=r"evaluation folder not found: .*Session2/dialog/EmoEval"):
        cls(tmp_path).manifest


# -- MELD ---------------------------------------------------------------------------------------
def test_meld_channels_speakers_and_official_dev(tmp_path):
    cls, rows, _ = build(tmp_path, "meld", lambda r: r["key"].startswith(("meld-dia0_", "meld-dia1_"))
                         or "-" in r["speaker"])
    corpus = cls(tmp_path)
    m = corpus.manifest
    assert m["meld-dia0_utt0-dev"].channel == 3 and m["meld-dia0_utt0-train"].channel == 1
    assert m["meld-dia0_utt0-dev"].speaker == "Phoebe"
    with_space = next(r for r in rows if "-" in r["speaker"])
    assert m[with_space["key"]].speaker == with_space["speaker"]  # 'A B' in the sheet -> 'A-B'
    (fold,) = corpus.folds()
    assert fold.valid_rule == "official"
    assert {m[k].custom["split"] for k in fold.valid} == {"dev"}
    assert {m[k].custom["split"] for k in fold.test} == {"test"}


def test_meld_flat_release_layout_is_accepted(tmp_path):
    cls, rows, _ = build(tmp_path, "meld", every=40)
    (tmp_path / "train/train_splits").rename(tmp_path / "train_splits")
    (tmp_path / "train/train_sent_emo.csv").rename(tmp_path / "train_sent_emo.csv")
    sheet = tmp_path / "train_sent_emo.csv"  # Windows-1252 text, as some copies have
    sheet.write_bytes(sheet.read_bytes().replace("’".encode(), b"\x92"))
    assert set(cls(tmp_path).manifest.keys) == {r["key"] for r in rows}


def test_meld_unknown_emotion_and_missing_sheet(tmp_path):
    cls, _, _ = build(tmp_path, "meld", every=40)
    sheet = tmp_path / "dev_sent_emo.csv"
    sheet.write_text(sheet.read_text().replace(",neutral,", ",bored,", 1))
    with pytest.raises(DataError, match=r"unknown emotion label 'bored' in .*dev_sent_emo\.csv"):
        cls(tmp_path).manifest
    sheet.unlink()
    with pytest.raises(DataError, match=r"MELD dev label sheet not found: looked for "
                                        r".*dev_sent_emo\.csv or .*dev/dev_sent_emo\.csv"):
        cls(tmp_path).manifest


# -- M3ED ---------------------------------------------------------------------------------------
def test_m3ed_utterances_emobox_did_not_list_are_in_no_split(tmp_path):
    cls, rows, _ = build(tmp_path, "m3ed", every=30)
    ann_path = tmp_path / "annotation.json"
    ann = json.loads(ann_path.read_text())
    split_movies = {s: (tmp_path / f"splitInfo/movie_list_{s}.txt").read_text().split()
                    for s in ("train", "val", "test")}
    added = {}
    for split in ("train", "val", "test"):
        movie = split_movies[split][0]
        clip = next(iter(ann[movie].values()))
        letter = next(iter(clip["SpeakerInfo"]))
        uid = f"{movie}_77_1"
        clip["Dialog"][uid] = {"Speaker": letter, "EmoAnnotation": {"final_main_emo": "Sad"}}
        shutil.copy(tmp_path / rows[0]["path"], tmp_path / f"modality_speech/{letter}_{uid}.wav")
        added[split] = f"m3ed-{uid}"
    ann_path.write_text(json.dumps(ann, ensure_ascii=False))
    corpus = cls(tmp_path)
    (fold,) = corpus.folds()
    for key in added.values():  # EmoBox's table lists its train, validation and test keys
        assert fold.role_of(key) is None
        assert "not in the corpus's published fold table" in corpus.out_of_scheme()[key]
    assert len(fold.train) + len(fold.valid) + len(fold.test) == len(corpus.manifest) - 3


def test_m3ed_unknown_emotion_and_missing_split_list(tmp_path):
    cls, _, _ = build(tmp_path, "m3ed", every=100)
    ann_path = tmp_path / "annotation.json"
    ann_path.write_text(ann_path.read_text().replace('"final_main_emo": "Neutral"',
                                                     '"final_main_emo": "Calm"', 1))
    with pytest.raises(DataError, match=r"unknown emotion label 'Calm' in .*annotation\.json"):
        cls(tmp_path).manifest
    (tmp_path / "splitInfo/movie_list_val.txt").unlink()
    with pytest.raises(DataError, match=r"M3ED split list not found: .*movie_list_val\.txt"):
        cls(tmp_path).manifest


# -- MSP-Podcast --------------------------------------------------------------------------------
def test_msppodcast_release_csv_unknown_speakers_and_train_rows(tmp_path):
    cls, rows, extras = build(tmp_path, "msppodcast", every=50)
    labels = json.loads((tmp_path / "label/labels_concensus.json").read_text())
    shutil.rmtree(tmp_path / "label")
    lines = ["FileName,EmoClass,EmoAct,EmoVal,EmoDom,SpkrID,Gender,Split_Set"]
    lines += [f"{n},{f['EmoClass']},3.0,4.0,4.0,{f['SpkrID']},{f['Gender']},"
              f"{f['Split_Set'].replace('Validation', 'Development')}" for n, f in labels.items()]
    (tmp_path / "Labels").mkdir()
    (tmp_path / "Labels/labels_consensus.csv").write_text("\n".join(lines) + "\n")
    corpus = cls(tmp_path)
    m = corpus.manifest
    assert len(m) == len(rows) + len(extras)
    unknown = {f"msppodcast-{n[:-4]}" for n, f in labels.items() if f["SpkrID"] == "Unknown"}
    assert unknown and all(m[k].speaker == "Unknown" for k in unknown)
    (fold,) = corpus.folds()
    trains = [k for k, row in extras.items() if row.test_fold == 0]
    assert trains and set(trains) <= set(fold.train)
    assert len(fold.valid) == sum(r["valid"] == "1" for r in rows)
    si = corpus.folds("speaker-independent")
    assert all(not spk for spk in leakage(m, si).values())
    for f in si:  # unidentified turns stay together: all tested in one fold, trained in others
        assert len(unknown & set(f.test)) in (0, len(unknown))


def test_msppodcast_unknown_class_and_missing_labels(tmp_path):
    cls, _, _ = build(tmp_path, "msppodcast", every=500)
    path = tmp_path / "label/labels_concensus.json"
    path.write_text(path.read_text().replace('"EmoClass": "N"', '"EmoClass": "Q"', 1))
    with pytest.raises(DataError, match=r"unknown emotion label 'Q' in .*labels_concensus\.json"):
        cls(tmp_path).manifest
    path.unlink()
    with pytest.raises(DataError, match=r"consensus label file not found: looked for "
                                        r".*label/labels_concensus\.json or .*Labels/labels_cons"):
        cls(tmp_path).manifest


# -- ESD ----------------------------------------------------------------------------------------
def test_esd_chinese_labels_nested_layout_and_bad_lines(tmp_path):
    cls, rows, _ = build(tmp_path, "esd", lambda r: r["speaker"] in ("0001", "0011"), every=25)
    txt = tmp_path / "0001/0001.txt"
    assert "中立" in txt.read_text(encoding="utf-8")
    for emo_dir in (tmp_path / "0001").iterdir():  # the train/evaluation/test copies
        if emo_dir.is_dir():
            (emo_dir / "evaluation").mkdir()
            for f in emo_dir.glob("*.wav"):
                f.rename(emo_dir / "evaluation" / f.name)
    txt.write_text(txt.read_text(encoding="utf-8") + "0001_099999 no tabs here\n",
                   encoding="utf-8")
    corpus = cls(tmp_path)
    m = corpus.manifest
    assert set(m.keys) == {r["key"] for r in rows}
    utt = m["esd-0001-000001"]
    assert (utt.label, utt.raw_label, utt.speaker) == ("Neutral", "中立", "0001")
    assert utt.path == "0001/Neutral/evaluation/0001_000001.wav"
    n = len(txt.read_text(encoding="utf-8").splitlines())
    assert ("0001/0001.txt:%d" % n, "not three tab-separated fields (id, transcript, emotion)"
            ) in corpus.skipped


def test_esd_unknown_label_and_missing_label_file(tmp_path):
    cls, _, _ = build(tmp_path, "esd", lambda r: r["speaker"] in ("0002", "0012"), every=50)
    txt = tmp_path / "0002/0002.txt"
    txt.write_text(txt.read_text(encoding="utf-8").replace("伤心", "难过", 1), encoding="utf-8")
    with pytest.raises(DataError, match=r"unknown emotion label '难过' in .*0002/0002\.txt"):
        cls(tmp_path).manifest
    txt.unlink()
    with pytest.raises(DataError, match=r"label file of speaker 0002 not found: .*0002/0002\.txt"):
        cls(tmp_path).manifest


# -- EMNS, Emozionalmente, ShEMO, RESD ----------------------------------------------------------
def test_emns_sheet_rows_and_audio_mismatches_are_reported(tmp_path):
    cls, rows, _ = build(tmp_path, "emns", every=40)
    (tmp_path / rows[0]["path"]).unlink()
    shutil.copy(tmp_path / rows[1]["path"], tmp_path / "cleaned_webm/recorded_audio_zzz.webm")
    corpus = cls(tmp_path)
    assert rows[0]["key"] not in corpus.manifest
    reasons = dict(corpus.skipped)
    assert reasons[rows[0]["path"]] == "listed in metadata.csv:2 but the audio file is missing"
    assert reasons["cleaned_webm/recorded_audio_zzz.webm"] == "audio file has no entry in metadata.csv"
    surprised = [r for r in rows if r["emotion"] == "Surprise"]
    assert surprised and corpus.manifest[surprised[0]["key"]].raw_label == "Surprised"
    sheet = tmp_path / "metadata.csv"
    sheet.write_text(sheet.read_text().replace("|Sad|", "|Gloomy|", 1))
    with pytest.raises(DataError, match=r"unknown emotion label 'Gloomy' in .*metadata\.csv"):
        cls(tmp_path).manifest


def test_emozionalmente_unknown_label_and_missing_sheet(tmp_path):
    cls, rows, _ = build(tmp_path, "emozionalmente", every=100)
    assert cls(tmp_path).manifest[rows[0]["key"]].speaker == rows[0]["speaker"]
    sheet = tmp_path / "metadata/samples.csv"
    sheet.write_text(sheet.read_text().replace(",joy", ",gioia", 1))
    with pytest.raises(DataError, match=r"unknown emotion label 'gioia' in .*samples\.csv"):
        cls(tmp_path).manifest
    sheet.unlink()
    with pytest.raises(DataError, match=r"sample sheet not found: looked for .*metadata/samples"):
        cls(tmp_path).manifest


def test_shemo_list_form_json_and_unknown_label(tmp_path):
    cls, rows, _ = build(tmp_path, "shemo", every=30)
    path = tmp_path / "shemo.json"
    data = json.loads(path.read_text())
    listed = [{"id": k, "gender": v["gender"], "emotion": v["emotion"]} for k, v in data.items()]
    path.write_text(json.dumps(listed))
    m = cls(tmp_path).manifest
    assert {(u.key, u.speaker, u.label) for u in m} == {(r["key"], r["speaker"], r["emotion"])
                                                       for r in rows}
    listed[0]["emotion"] = "bored"
    path.write_text(json.dumps(listed))
    with pytest.raises(DataError, match=r"unknown emotion label 'bored' in .*shemo\.json"):
        cls(tmp_path).manifest


def test_resd_keys_keep_the_file_name_and_missing_sheet(tmp_path):
    cls, rows, _ = build(tmp_path, "resd", every=5)
    spaced = next(r for r in rows if " " in r["key"])
    m = cls(tmp_path).manifest
    assert m[spaced["key"]].speaker == spaced["key"][len("resd-"):]
    (tmp_path / "test.csv").unlink()
    with pytest.raises(DataError, match=r"test sheet not found: looked for .*test\.csv"):
        cls(tmp_path).manifest


# -- MER2023 ------------------------------------------------------------------------------------
def test_mer2023_test2_and_test3_never_train_validate_or_test(tmp_path):
    cls, rows, _ = build(tmp_path, "mer2023", every=10)
    corpus = cls(tmp_path)
    (fold,) = corpus.folds()
    unassigned = {r["key"] for r in rows if r["path"].startswith(("test2/", "mer2023train/test3/"))}
    assert unassigned and unassigned <= set(corpus.manifest.keys)
    assert not unassigned & set(fold.train + fold.valid + fold.test)
    assert {corpus.manifest[k].custom["split"] for k in fold.test} == {"test1"}
    mp4 = next(k for k in corpus.manifest.keys if k.endswith(".mp4"))
    assert corpus.manifest[mp4].speaker == mp4[len("mer2023-"):]


def test_mer2023_unknown_label_and_missing_sheet(tmp_path):
    cls, _, _ = build(tmp_path, "mer2023", every=50)
    sheet = tmp_path / "test-labels/test1-label.csv"
    sheet.write_text(sheet.read_text().replace(",neutral,", ",calm,", 1))
    with pytest.raises(DataError, match=r"unknown emotion label 'calm' in .*test1-label\.csv"):
        cls(tmp_path).manifest
    sheet.unlink()
    with pytest.raises(DataError, match=r"test1 label sheet not found: .*test1-label\.csv"):
        cls(tmp_path).manifest


# -- PAVOQUE ------------------------------------------------------------------------------------
def test_pavoque_segments_mixed_outtakes_and_overlong_segments(tmp_path):
    cls, rows, _ = build(tmp_path, "pavoque", every=20)
    m = cls(tmp_path).manifest
    first = m["pavoque-a0001-neutral"]
    assert (first.path, first.start, first.end) == ("pavoque-neutral.flac", 0.0, 4.04)
    outtakes = {u.label for u in m if u.path == "pavoque-outtakes.flac"}
    assert len(outtakes) == 5  # every style, from each segment's own style
    import yaml

    table = tmp_path / "pavoque-sad.yaml"
    segments = yaml.safe_load(table.read_text())
    segments[0]["end"] = 99999.0
    table.write_text(yaml.safe_dump(segments))
    corpus = cls(tmp_path)
    key = f"pavoque-{segments[0]['prompt']}-sad"
    assert key not in corpus.manifest
    assert any("ends after the recording" in reason for _, reason in corpus.skipped)
    segments[0]["style"] = "bored"
    table.write_text(yaml.safe_dump(segments))
    with pytest.raises(DataError, match=r"unknown emotion label 'bored' in .*pavoque-sad\.yaml"):
        cls(tmp_path).manifest
    del segments[0]["end"]
    table.write_text(yaml.safe_dump(segments))
    with pytest.raises(DataError, match=r"pavoque-sad\.yaml: segment 1 lacks end"):
        cls(tmp_path).manifest
