"""HEAR modules in: ``-u hear -U module=NAME`` wraps any module with the HEAR 2021 API."""

from __future__ import annotations

import re
import sys
import textwrap

import pytest

# A HEAR module as published ones are written: the model load_model returns carries sample_rate
# and the embedding sizes; 22.05 kHz input (so emobox resamples), frames of 1024 samples every 512
# centred on their timestamps, 8 log band energies per frame.
TOY = '''
import math
import torch

sample_rate = 22050
HOP = 512

def load_model(model_file_path=""):
    m = torch.nn.Module()
    m.loaded_from = model_file_path
    m.sample_rate = sample_rate
    m.timestamp_embedding_size = m.scene_embedding_size = 8
    return m

def get_timestamp_embeddings(audio, model):
    x = torch.nn.functional.pad(audio, (512, 512))
    frames = x.unfold(1, 1024, HOP)  # [B, T, 1024]
    power = torch.fft.rfft(frames * torch.hann_window(1024), dim=-1).abs() ** 2
    bands = torch.stack([b.sum(-1) for b in power[..., 1:].chunk(8, dim=-1)], dim=-1)
    emb = torch.log(bands + 1e-6)
    t = torch.arange(emb.shape[1], dtype=torch.float64) * HOP / sample_rate * 1000.0
    return emb, t.expand(audio.shape[0], -1)

def get_scene_embeddings(audio, model):
    return get_timestamp_embeddings(audio, model)[0].mean(1)
'''


@pytest.fixture
def toy_hear(tmp_path, monkeypatch):
    (tmp_path / "toyhear.py").write_text(textwrap.dedent(TOY))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "toyhear"
    sys.modules.pop("toyhear", None)


def test_hear_module_frame_rate_and_sizes_come_from_the_module(toy_hear):
    from emobox.upstreams.hear_upstream import HearUpstream

    up = HearUpstream(toy_hear)
    assert up.sample_rate == 22050 and up.hidden_size == 8 and up.num_layers == 0
    assert up.frame_rate == pytest.approx(22050 / 512)
    assert up.padding_sensitive
    assert up.store_options == {"module": "toyhear"}


def test_hear_attributes_on_the_module_are_read_when_the_model_lacks_them(toy_hear, tmp_path):
    from emobox.upstreams.hear_upstream import HearUpstream

    (tmp_path / "toyhear_module_attrs.py").write_text(
        "from toyhear import get_timestamp_embeddings, get_scene_embeddings\n"
        "sample_rate = 22050\ntimestamp_embedding_size = scene_embedding_size = 8\n"
        "def load_model(model_file_path=''):\n    return object()\n")
    up = HearUpstream("toyhear_module_attrs")
    assert (up.sample_rate, up.hidden_size) == (22050, 8)
    assert up.frame_rate == pytest.approx(22050 / 512)
    sys.modules.pop("toyhear_module_attrs", None)


def test_a_model_without_sample_rate_is_one_error_line(cli, toy_hear, tmp_path):
    (tmp_path / "toyhear_no_rate.py").write_text(
        "from toyhear import get_timestamp_embeddings\n"
        "def load_model(model_file_path=''):\n    return object()\n")
    res = cli("run", "-u", "hear", "-U", "module=toyhear_no_rate", "-c", "demo",
              "-o", tmp_path / "run", "--features-dir", tmp_path / "store")
    sys.modules.pop("toyhear_no_rate", None)
    assert res.code == 2, res.out + res.err
    assert res.err.strip().splitlines()[-1] == (
        "error: 'toyhear_no_rate' is not a HEAR module: its model has no sample_rate "
        "(a positive integer; got None)"), res.err
    assert "Traceback" not in res.err


def test_hear_valid_frames_are_those_centred_inside_the_item(toy_hear):
    import torch

    from emobox.upstreams.hear_upstream import HearUpstream

    up = HearUpstream(toy_hear)
    out = up([torch.randn(22050), torch.randn(11025)], [0])
    # frames at 0, 512, ... centred inside 1 s: 0..22016 -> 44 frames; 0.5 s: 0..10752 -> 22
    assert out.lengths.tolist() == [44, 22]
    alone = up([torch.randn(11025)], [0])
    assert alone.lengths.tolist() == [22]


def test_model_file_hash_is_part_of_the_checkpoint_id(toy_hear, tmp_path):
    from emobox.upstreams.hear_upstream import HearUpstream

    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(b"one")
    b.write_bytes(b"two")
    ids = {HearUpstream(toy_hear, str(a)).checkpoint_id, HearUpstream(toy_hear, str(b)).checkpoint_id,
           HearUpstream(toy_hear).checkpoint_id}
    assert len(ids) == 3


def test_demo_run_through_a_hear_module_prints_a_results_table(cli, toy_hear, tmp_path):
    res = cli("run", "-u", "hear", "-U", f"module={toy_hear}", "-c", "demo", "-d", "linear_probe",
              "--seed", "0", "-q", "-o", tmp_path / "run", "--features-dir", tmp_path / "store")
    assert res.code == 0, res.err
    mean = next(ln for ln in res.out.splitlines() if "mean" in ln and "±" in ln)
    ua = float(re.findall(r"(\d+\.\d+)\s*±", mean)[0])
    assert ua > 30.0  # four classes: chance is 25


@pytest.mark.parametrize("option, message", [
    ((), "-u hear needs the module to load: -U module=NAME"),
    (("-U", "module=not_a_hear_module_xyz"), "HEAR module 'not_a_hear_module_xyz' is not installed"),
    (("-U", "module=json"), "'json' is not a HEAR module: it lacks load_model"),
    (("-U", "module=os;rm"), "is not a Python module name"),
])
def test_bad_hear_module_is_one_error_line(cli, tmp_path, option, message):
    res = cli("run", "-u", "hear", *option, "-c", "demo", "-o", tmp_path / "run",
              "--features-dir", tmp_path / "store")
    assert res.code == 2, res.out + res.err
    errors = [ln for ln in res.err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], res.err
    assert "Traceback" not in res.err


def test_emobox_hear_extra_is_declared():
    import importlib.metadata

    # pip install "emobox[hear]" installs without "emobox does not provide the extra 'hear'"
    assert "hear" in importlib.metadata.metadata("emobox").get_all("Provides-Extra")


# -- emobox upstreams out, as HEAR modules ---------------------------------------------------------
def test_emobox_upstream_is_a_hear_module():
    import importlib

    import torch

    hear = importlib.import_module("emobox.hear.fbank")
    model = hear.load_model()
    assert (model.sample_rate, model.timestamp_embedding_size, model.scene_embedding_size) == \
        (16000, 80, 80)
    audio = torch.randn(2, 16000)
    emb, ts = hear.get_timestamp_embeddings(audio, model)
    assert emb.shape[0] == 2 and emb.shape[2] == 80 and ts.shape == emb.shape[:2]
    # frame centres in milliseconds: 10 ms hop, first centre at 5 ms
    assert ts[0, :3].tolist() == pytest.approx([5.0, 15.0, 25.0])
    scene = hear.get_scene_embeddings(audio, model)
    assert scene.shape == (2, 80)
    assert torch.allclose(scene, emb.mean(1))
    # an item's embedding does not depend on the other sounds of the batch
    one, _ = hear.get_timestamp_embeddings(audio[:1], model)
    assert torch.allclose(one[0], emb[0], atol=1e-5)


def test_unknown_upstream_is_not_a_hear_module():
    with pytest.raises(ModuleNotFoundError, match="no upstream named 'nope_xyz'"):
        __import__("emobox.hear.nope_xyz")
