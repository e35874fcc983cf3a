"""The file-name corpora's quirks: what real copies look like beyond EmoBox's own tree."""

from __future__ import annotations

import unicodedata

import pytest

from emobox import DataError
from emobox.corpora._emobox import reference_rows
from emobox.corpora.cafe import Cafe
from emobox.corpora.casia import Casia
from emobox.corpora.cremad import CremaD
from emobox.corpora.enterface import Enterface
from emobox.corpora.jlcorpus import JlCorpus
from emobox.corpora.oreau import Oreau
from emobox.corpora.ravdess import Ravdess
from emobox.corpora.savee import Savee
from emobox.corpora.tess import Tess
from emobox.corpora.asvpesd import AsvpEsd
from emobox.testing import populate_tree


def rows(name, n=None, **match):
    out = [r for r in reference_rows(name) if all(r[k] == v for k, v in match.items())]
    return out[:n] if n else out


def test_unknown_raw_label_names_the_file_and_the_label(tmp_path):
    populate_tree(tmp_path, ["AudioWAV/1001_DFA_ANG_XX.wav", "AudioWAV/1001_DFA_BOR_XX.wav"])
    with pytest.raises(DataError) as err:
        CremaD(tmp_path).scan()
    assert "1001_DFA_BOR_XX.wav" in str(err.value) and "'BOR'" in str(err.value)
    populate_tree(tmp_path / "r", ["Actor_01/03-01-09-01-01-01-01.wav"])
    with pytest.raises(DataError, match=r"unknown emotion label '09' in .*03-01-09-01-01-01-01"):
        Ravdess(tmp_path / "r").scan()
    populate_tree(tmp_path / "c", ["wangzhe/bored/201.wav"])
    with pytest.raises(DataError, match="'bored'"):
        Casia(tmp_path / "c").scan()


def test_ravdess_song_files_are_skipped_not_scanned(tmp_path):
    speech = [r["path"] for r in rows("ravdess", speaker="01")]
    song = [p.replace("Audio_Speech", "Audio_Song").replace("/03-01-", "/03-02-") for p in speech]
    populate_tree(tmp_path, speech + song)
    corpus = Ravdess(tmp_path)
    assert len(corpus.manifest) == 60
    assert {u.label for u in corpus.manifest} >= {"Neutral", "Surprise", "Fear"}
    reasons = {why for _, why in corpus.skipped}
    assert len(corpus.skipped) == 60 and reasons == {
        "song (vocal channel 02): EmoBox's RAVDESS is the speech part only"}


def test_ravdess_zip_layout_without_the_audio_folder(tmp_path):
    ref = rows("ravdess", speaker="07")
    populate_tree(tmp_path, [r["path"].split("/", 2)[2] for r in ref])  # Actor_07/...
    corpus = Ravdess(tmp_path)
    assert sorted(corpus.manifest.keys) == sorted(r["key"] for r in ref)
    assert corpus.manifest[ref[0]["key"]].path == ref[0]["path"].split("/", 2)[2]


def test_tess_kaggle_copy_holds_the_tree_twice(tmp_path):
    ref = rows("tess")[:20]
    top = "TESS Toronto emotional speech set data"
    nested = [f"{top}/{r['speaker']}_{r['emotion_raw']}/{r['path']}" for r in ref]
    twice = [f"tess toronto emotional speech set data/{p}" for p in nested]
    populate_tree(tmp_path, nested + twice)
    corpus = Tess(tmp_path)
    assert sorted(corpus.manifest.keys) == sorted(r["key"] for r in ref)
    assert all(u.path.startswith(top) for u in corpus.manifest)  # the copy nearest the root
    assert len(corpus.skipped) == 20
    assert all(why.startswith("another copy of tess-") for _, why in corpus.skipped)


def test_two_files_with_one_key_are_an_error_naming_both(tmp_path):
    populate_tree(tmp_path, ["AudioWAV/1001_DFA_ANG_XX.wav", "old/1001_DFA_ANG_XX.wav"])
    with pytest.raises(DataError, match=r"AudioWAV/1001_DFA_ANG_XX.wav and .*old/1001_DFA_ANG_XX"
                                        r".wav give the same utterance key 'cremad-1001-DFA-ANG-XX'"):
        CremaD(tmp_path).scan()


def test_files_named_otherwise_are_recorded_as_skipped(tmp_path):
    populate_tree(tmp_path, ["AudioWAV/1001_DFA_ANG_XX.wav", "AudioWAV/test tone.wav"])
    corpus = CremaD(tmp_path)
    assert corpus.manifest.keys == ["cremad-1001-DFA-ANG-XX"]
    assert corpus.skipped == [("AudioWAV/test tone.wav", "name does not follow the layout "
                               + CremaD.expected_top_level)]


def test_cafe_proper_folder_names_and_the_192k_copy(tmp_path):
    ref = rows("cafe", speaker="03")
    fixed = [r["path"].replace("ColŠre", "Colère").replace("D‚go–t", "Dégoût") for r in ref]
    populate_tree(tmp_path, fixed + [p.replace("CaFE_48k", "CaFE_192k") for p in fixed])
    corpus = Cafe(tmp_path)
    assert sorted(corpus.manifest.keys) == sorted(r["key"] for r in ref)
    assert all(u.path.startswith("CaFE_48k/") for u in corpus.manifest)
    assert len(corpus.skipped) == len(ref)
    assert corpus.manifest["cafe-03-C-1-1"].label == "Angry"


@pytest.mark.parametrize("form", ["NFC", "NFD"])
def test_oreau_accented_folder_in_either_normal_form(tmp_path, form):
    ref = rows("oreau", n=30)
    populate_tree(tmp_path, [unicodedata.normalize(form, r["path"]) for r in ref])
    corpus = Oreau(tmp_path)
    assert sorted(corpus.manifest.keys) == sorted(r["key"] for r in ref)
    u = corpus.manifest[ref[0]["key"]]
    assert (corpus.root / u.path).is_file()  # the path as it is on disk


def test_enterface_real_speakers_and_emobox_speakers(tmp_path):
    ref = [r for r in rows("enterface")
           if r["path"].split("/")[0] in ("subject 3", "subject 11", "subject 6")]
    populate_tree(tmp_path, [r["path"] for r in ref])
    m = Enterface(tmp_path).manifest
    assert {u.speaker for u in m} == {"s3", "s6", "s11"}
    bogus = m["enterface-s_3_fe_5.avi"]
    assert (bogus.speaker, bogus.custom["emobox_speaker"], bogus.label) == ("s3", "s", "Fear")
    misnamed = m["enterface-s12_an_1.avi"]
    assert (misnamed.speaker, misnamed.custom["emobox_speaker"]) == ("s11", "s12")
    assert m["enterface-s6_an.avi"].speaker == "s6"
    assert "emobox_speaker" not in m["enterface-s6_an.avi"].custom


def test_jlcorpus_real_speaker_and_other_parts_skipped(tmp_path):
    ref = rows("jlcorpus", n=12)
    other = [f"Emotional speech set/{r['path'].rsplit('/', 1)[1]}" for r in ref]
    populate_tree(tmp_path, [r["path"] for r in ref] + other)
    corpus = JlCorpus(tmp_path)
    u = corpus.manifest[ref[0]["key"]]
    assert u.speaker == "female1"
    assert u.custom["emobox_speaker"] == ref[0]["speaker"]
    assert len(corpus.skipped) == 12
    assert all("the part EmoBox used" in why for _, why in corpus.skipped)


def test_savee_official_audiodata_layout_gives_emobox_keys(tmp_path):
    ref = rows("savee", speaker="JK")
    populate_tree(tmp_path, [f"AudioData/JK/{r['path'].split('_', 1)[1]}" for r in ref])
    m = Savee(tmp_path).manifest
    assert sorted(m.keys) == sorted(r["key"] for r in ref)
    assert {u.speaker for u in m} == {"JK"}
    assert m["savee-JK-sa01"].label == "Sad"


def test_asvpesd_speaker_is_the_actor_field_not_the_folder(tmp_path):
    ref = [r for r in rows("asvpesd") if r["path"].startswith(("Audio/actor_/", "Audio/actor_119/"))]
    populate_tree(tmp_path, [r["path"] for r in ref])
    m = AsvpEsd(tmp_path).manifest
    assert {u.key: u.speaker for u in m} == {r["key"]: r["speaker"] for r in ref}
    assert "109" in {u.speaker for u in m if u.path.startswith("Audio/actor_119/")}


def test_links_are_never_followed_out_of_the_root(tmp_path):
    outside = tmp_path / "outside"
    populate_tree(outside, ["AudioWAV/1001_DFA_HAP_XX.wav"])
    root = tmp_path / "CREMA-D"
    populate_tree(root, ["AudioWAV/1001_DFA_ANG_XX.wav"])
    (root / "AudioWAV" / "1001_DFA_HAP_XX.wav").symlink_to(outside / "AudioWAV" /
                                                          "1001_DFA_HAP_XX.wav")
    (root / "more").symlink_to(outside / "AudioWAV", target_is_directory=True)
    (root / "AudioWAV" / "1001_DFA_SAD_XX.wav").symlink_to("gone/1001_DFA_SAD_XX.wav")
    corpus = CremaD(root)
    assert corpus.manifest.keys == ["cremad-1001-DFA-ANG-XX"]
    assert sorted(corpus.skipped) == [
        ("AudioWAV/1001_DFA_HAP_XX.wav", "link leads outside the corpus root"),
        ("AudioWAV/1001_DFA_SAD_XX.wav", "broken symbolic link"),
        ("more", "link leads outside the corpus root")]
