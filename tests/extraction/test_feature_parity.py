"""What features emobox extracts, checked against what EmoBox's extraction read and computed:
the channel of multi-channel files per partition scheme, and the feature store's key when an
upstream's features change (old stores are never reused for new features)."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import soundfile as sf
import torch

from emobox.corpora._emobox import reference_rows
from emobox.corpora.emodb import EmoDB
from emobox.extraction.extract import extract, store_request
from emobox.plugin.registry import get_registry
from emobox.tracks.runner import RunOptions, extract_features, plan_triple
from emobox.extraction.store import SCHEMA_VERSION, FeatureStore, StoreRequest

from extract_fakes import FrameUpstream, tone_corpus
from corpus_writers import write_fixture

STEREO_KEY, STEREO_FILE = "emodb-03a01Fa", "wav/03a01Fa.wav"


def frames_of(store_path, key: str, layer: int = 0) -> np.ndarray:
    store = FeatureStore(store_path)
    keys, offsets, lengths = store.index()
    i = keys.index(key)
    return np.asarray(store.layer(layer)[offsets[i]: offsets[i] + lengths[i]], np.float32)


@pytest.fixture()
def stereo_emodb(tmp_path):
    """A small EmoDB copy (4 speakers) whose file 03a01Fa.wav has two different channels."""
    rows = [r for r in reference_rows("emodb")
            if r["speaker"] in ("male_03", "female_08", "male_10", "female_09")][::3]
    assert any(r["key"] == STEREO_KEY for r in rows)
    root = tmp_path / "emodb"
    write_fixture(EmoDB, root, rows)
    path = root / STEREO_FILE
    path.unlink()  # a hard link to the fixture's one audio file: replace, never write through
    t = np.arange(16000) / 16000
    left = (0.4 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    right = (0.2 * np.sin(2 * np.pi * 2500 * t) + 0.05 * np.cos(2 * np.pi * 31 * t)
             ).astype(np.float32)
    sf.write(str(path), np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    return root, left, right


def test_scheme_emobox_reads_emoboxs_channel_other_schemes_the_mix(stereo_emodb, tmp_path):
    """EmoBox's extraction read ``wav[channel - 1]`` (channel 1 for EmoDB); scheme emobox does
    the same, speaker-independent mixes the channels down, and the two never share a store."""
    root, left, right = stereo_emodb
    fbank = get_registry().upstream("fbank").build()
    with torch.inference_mode():
        expected = {"emobox": fbank([torch.from_numpy(left)], [0]).hidden[0][0].numpy(),
                    "speaker-independent": fbank([torch.from_numpy((left + right) / 2)],
                                                 [0]).hidden[0][0].numpy()}
    assert np.abs(expected["emobox"] - expected["speaker-independent"]).max() > 1.0
    stores = {}
    for scheme, channel in (("emobox", 1), ("speaker-independent", None)):
        opts = RunOptions(upstream="fbank", corpus="emodb", downstream="linear_probe",
                          root=str(root), scheme=scheme, features_dir=str(tmp_path / "f"))
        plan = plan_triple(opts)
        assert plan.manifest[STEREO_KEY].channel == channel
        feats = extract_features(plan.up_spec, plan.manifest, opts, "cpu")
        stores[scheme] = feats.store_path
        got = frames_of(feats.store_path, STEREO_KEY)
        assert got.shape == expected[scheme].shape
        np.testing.assert_allclose(got, expected[scheme], atol=2e-2, rtol=2e-3)
    assert stores["emobox"] != stores["speaker-independent"]


def test_extract_command_reads_the_schemes_channel(stereo_emodb, tmp_path, cli):
    root, _, _ = stereo_emodb
    paths = {}
    for scheme in ("emobox", "speaker-independent"):
        res = cli("extract", "-u", "fbank", "-c", "emodb", "--root", root, "--scheme", scheme,
                  "--features-dir", tmp_path / "f", "-q")
        assert res.code == 0, res
        paths[scheme] = "".join(res.out.split("; store ")[-1].split())
    # emobox run's store for scheme emobox is the one `emobox extract` made by default
    opts = RunOptions(upstream="fbank", corpus="emodb", downstream="linear_probe",
                      root=str(root), features_dir=str(tmp_path / "f"))
    plan = plan_triple(opts)
    assert extract_features(plan.up_spec, plan.manifest, opts, "cpu").store_path == \
        paths["emobox"]
    assert paths["emobox"] != paths["speaker-independent"]
    bad = cli("extract", "-u", "fbank", "-c", "emodb", "--root", root, "--scheme", "random")
    assert bad.code == 2 and "unknown partition scheme 'random'" in bad.err


def test_corpora_that_emobox_did_not_prepare_mix_down_in_every_scheme(tmp_path):
    demo = get_registry().corpus("demo").build(None)
    assert demo.manifest_for("emobox") is demo.manifest
    assert {u.channel for u in demo.manifest_for("emobox")} == {None}


# -- the store key follows the features ----------------------------------------------------------

def old_digest(request: StoreRequest) -> str:
    """The store digest as emobox computes it for an upstream that declares no feature version
    (the store schema of this emobox: a new schema re-keys every store anyway)."""
    identity = {"format": "emobox.features", "schema_version": SCHEMA_VERSION, "upstream": request.upstream,
                "checkpoint_id": request.checkpoint_id, "corpus": request.corpus,
                "manifest_hash": request.manifest_hash, "precision": request.precision,
                "options": dict(sorted(request.options.items()))}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]


def test_unchanged_upstreams_keep_their_store_digest():
    request = StoreRequest("fbank", "ck", "demo", "m0", options={"mode": "x"})
    assert request.digest() == old_digest(request)
    assert "feature_version" not in request.identity()


def test_a_feature_version_changes_the_store_digest(tmp_path):
    from test_upstreams_ssl import tiny_upstream
    from test_upstreams_whisper import tiny_whisper

    manifest = tone_corpus(tmp_path / "audio", [0.5, 0.7])
    old_ssl = StoreRequest("wavlm_large", "test", manifest.corpus, manifest.content_hash(),
                           options={"normalize": True})  # what the old code keyed
    new_ssl = store_request(tiny_upstream("wavlm_large"), manifest)
    assert new_ssl.identity()["feature_version"] == "2"
    assert new_ssl.options == {"input_norm": "feature-extractor", "long_window_s": 60.0}
    assert new_ssl.digest() != old_digest(old_ssl)
    same_options = StoreRequest(**{**new_ssl.__dict__, "feature_version": ""})
    assert new_ssl.digest() != same_options.digest() == old_digest(same_options)
    whisper = store_request(tiny_whisper(), manifest)
    old_whisper = StoreRequest(whisper.upstream, whisper.checkpoint_id, whisper.corpus,
                               whisper.manifest_hash, options={"mode": "faithful"})
    assert whisper.identity()["feature_version"] == "2"
    assert whisper.digest() != old_digest(old_whisper)
    assert store_request(FrameUpstream(), manifest).digest() == \
        old_digest(store_request(FrameUpstream(), manifest))


def test_store_meta_records_the_feature_version_and_the_normalisation_source(tmp_path):
    from test_upstreams_ssl import tiny_upstream

    manifest = tone_corpus(tmp_path / "audio", [0.5, 0.7])
    up = tiny_upstream("data2vec_base")
    store = extract(up, manifest, [up.num_layers], store_dir=tmp_path / "features")
    meta = store.meta
    assert meta["feature_version"] == "2"
    assert meta["options"] == {"input_norm": "feature-extractor", "long_window_s": 60.0}
    assert meta["provenance"]["waveform_normalisation"] == (
        "zero mean, unit variance: (x - mean) / sqrt(var + 1e-07), as transformers' "
        "Wav2Vec2FeatureExtractor (do_normalize); setting: the model authors' setting (on; "
        "weights not found; a checkpoint folder's preprocessor_config.json sets it)")
    assert store.path == store_request(up, manifest).path(tmp_path / "features")
