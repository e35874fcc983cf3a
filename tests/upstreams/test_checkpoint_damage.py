"""Damaged, inconsistent or hostile checkpoints: one error naming the file, nothing loaded.

Every case below starts from a checkpoint that loads (checked first, so that a refusal is the
damage's doing) and changes one thing in it.
"""

from __future__ import annotations

import json
import os
import shutil
import struct

import numpy as np
import pytest
import torch

from emobox.errors import DataError, EmoboxUsageError
from emobox.extraction.checkpoints import checkpoint_id
from emobox.upstreams.data2vec2.ckpt import convert_checkpoint, load_encoder
from emobox.upstreams.data2vec2.net import D2v2Config
from emobox.upstreams.safe_load import CheckpointFormatError, read_pickle
from emobox.upstreams.whisper import WhisperVariant, convert as whisper_convert
from emobox.upstreams.whisper import load as whisper_load
from emobox.upstreams.whisper.formats import save_encoder, transformers_to_openai

from test_upstream_data2vec2 import fairseq_checkpoint
from test_upstream_data2vec2 import tiny_encoder as tiny_d2v2
from test_upstreams_ssl import tiny_model, tiny_spec
from test_upstreams_whisper import tiny_encoder as tiny_whisper_encoder

TINY_WHISPER = WhisperVariant("whisper_test", "openai/whisper-test", 3, 32, 2, 80, 0, "English")
INDEX = "model.safetensors.index.json"


def whisper_config(encoder) -> dict:
    cfg = encoder.config
    return {"d_model": cfg.d_model, "encoder_layers": cfg.encoder_layers,
            "encoder_attention_heads": cfg.encoder_attention_heads,
            "encoder_ffn_dim": cfg.encoder_ffn_dim, "num_mel_bins": cfg.num_mel_bins,
            "max_source_positions": cfg.max_source_positions}


@pytest.fixture(scope="module")
def whisper_good(tmp_path_factory):
    enc = tiny_whisper_encoder()
    folder = tmp_path_factory.mktemp("whisper") / "good"
    save_encoder(whisper_config(enc), enc.state_dict(), folder)
    assert whisper_load(TINY_WHISPER, folder).num_layers == 3  # the undamaged folder loads
    return folder


@pytest.fixture
def whisper_copy(tmp_path, whisper_good):
    def copy(name: str = "ckpt"):
        return shutil.copytree(whisper_good, tmp_path / name)
    return copy


def edit_json(path, **changes):
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


# -- 1. the shard index names files inside the folder only ------------------------------------

@pytest.mark.parametrize("target", ["../outside/model.safetensors", "ABSOLUTE", "/dev/zero",
                                    "sub/model.safetensors", "..\\outside\\model.safetensors",
                                    "model.bin"])
def test_index_naming_a_file_outside_the_folder_is_refused(whisper_copy, tmp_path, target):
    folder = whisper_copy()
    outside = shutil.copytree(folder, tmp_path / "outside")
    if target == "ABSOLUTE":
        target = str(outside / "model.safetensors")
    (folder / INDEX).write_text(json.dumps({"weight_map": {"conv1.weight": target}}))
    with pytest.raises(DataError) as err:
        whisper_load(TINY_WHISPER, folder)
    assert str(err.value).startswith(f"{folder / INDEX}: weight_map names {target!r}; ")


def test_outside_weights_never_reach_the_checkpoint_id(whisper_copy, tmp_path, cli):
    folder = whisper_copy()
    shutil.copytree(folder, tmp_path / "outside")
    (folder / "model.safetensors").unlink()
    (folder / INDEX).write_text(json.dumps(
        {"weight_map": {"conv1.weight": "../outside/model.safetensors"}}))
    out = tmp_path / "converted"
    res = cli("upstreams", "convert", "whisper_tiny_en", "--source", folder, "--out", out)
    assert res.code == 3
    assert res.err.strip().splitlines() == [
        f"error: {folder / INDEX}: weight_map names '../outside/model.safetensors'; shards "
        f"must be plain file names inside {folder}"]
    assert not out.exists()


@pytest.mark.parametrize("content, message", [
    ("[1]", "expected a JSON object, found an array"),
    ("{", "not valid JSON (Expecting property name enclosed in double quotes, line 1)"),
    ('{"weight_map": [1]}', "expected a non-empty 'weight_map' object"),
    ('{"weight_map": {"x": 5}}', "weight_map['x'] is a number, not a file name"),
])
def test_an_unreadable_index_is_one_error_naming_it(whisper_copy, content, message):
    folder = whisper_copy()
    (folder / INDEX).write_text(content)
    with pytest.raises(DataError) as err:
        whisper_load(TINY_WHISPER, folder)
    assert str(err.value).startswith(f"{folder / INDEX}: {message}")


def test_a_sound_index_loads_and_its_shards_are_hashed(whisper_copy):
    folder = whisper_copy()
    (folder / "model.safetensors").rename(folder / "model-00001-of-00001.safetensors")
    (folder / INDEX).write_text(json.dumps(
        {"weight_map": {"conv1.weight": "model-00001-of-00001.safetensors"}}))
    before = whisper_load(TINY_WHISPER, folder).checkpoint_id
    shard = folder / "model-00001-of-00001.safetensors"
    data = bytearray(shard.read_bytes())
    data[-1] ^= 1
    shard.write_bytes(bytes(data))
    assert checkpoint_id(folder) != before


def test_the_hf_loaders_check_the_index_the_same_way(tmp_path):
    folder = tmp_path / "hubert"
    tiny_model("hubert_base").save_pretrained(folder)
    shutil.copytree(folder, tmp_path / "outside")
    (folder / "model.safetensors").unlink()
    (folder / INDEX).write_text(json.dumps(
        {"weight_map": {"x": "../outside/model.safetensors"}}))
    with pytest.raises(DataError) as err:
        tiny_spec("hubert_base").build(ckpt=str(folder))
    assert str(err.value).startswith(f"{folder / INDEX}: weight_map names "
                                     f"'../outside/model.safetensors'; ")


# -- 2, 7. damaged Whisper checkpoints ---------------------------------------------------------

def safetensors_header_length(path, length: int):
    data = path.read_bytes()
    path.write_bytes(struct.pack("<Q", length) + data[8:])


@pytest.mark.parametrize("damage, message", [
    (lambda f: edit_json(f / "config.json", d_model="32"),
     "config.json: d_model must be a whole number, not '32'"),
    (lambda f: edit_json(f / "config.json", encoder_attention_heads=7),
     "config.json: encoder_attention_heads 7 does not divide d_model 32"),
    (lambda f: edit_json(f / "config.json", max_source_positions=300_000_000),
     "config.json: max_source_positions is 300000000; it must be between 1500 and 100000"),
    (lambda f: (f / "config.json").write_text('["d_model"]'),
     "config.json: expected a JSON object, found an array"),
    (lambda f: (f / "config.json").write_text("[" * 100_000 + "]" * 100_000),
     "config.json: not valid JSON (nested too deeply)"),
    (lambda f: safetensors_header_length(f / "model.safetensors", 2 ** 63),
     ": cannot load it as a Whisper checkpoint (SafetensorError: "),
    (lambda f: (f / "model.safetensors").write_bytes(b""),
     ": cannot load it as a Whisper checkpoint (SafetensorError: "),
    (lambda f: (f / "model.safetensors").write_bytes(
        (f / "model.safetensors").read_bytes()[:-100]),
     ": cannot load it as a Whisper checkpoint (SafetensorError: "),
])
def test_damaged_whisper_folder_is_one_error_naming_it(whisper_copy, damage, message):
    folder = whisper_copy()
    damage(folder)
    with pytest.raises(DataError) as err:
        whisper_load(TINY_WHISPER, folder)
    assert str(err.value).startswith(str(folder)) and message in str(err.value)


def test_unexpected_or_misshapen_whisper_weights_name_the_folder(whisper_copy):
    from safetensors.torch import load_file, save_file

    folder = whisper_copy()
    sd = load_file(folder / "model.safetensors")
    save_file(dict(sd, bogus=torch.zeros(1)), folder / "model.safetensors")
    with pytest.raises(DataError) as err:
        whisper_load(TINY_WHISPER, folder)
    assert str(err.value) == (f"{folder}: Whisper encoder weights do not fit the architecture: "
                              f"0 missing (e.g. []), 1 unexpected (e.g. ['bogus'])")
    save_file(dict(sd, **{"conv1.bias": torch.zeros(5)}), folder / "model.safetensors")
    with pytest.raises(DataError) as err:
        whisper_load(TINY_WHISPER, folder)
    assert str(err.value) == (f"{folder}: 1 Whisper encoder weight(s) of the wrong shape (e.g. "
                              f"conv1.bias (5,), expected (32,))")


def openai_dims() -> dict:
    return {"n_mels": 80, "n_audio_ctx": 1500, "n_audio_state": 32, "n_audio_head": 2,
            "n_audio_layer": 3}


def openai_state() -> dict:
    return {"encoder." + transformers_to_openai(k): v
            for k, v in tiny_whisper_encoder().state_dict().items()}


@pytest.mark.parametrize("ckpt, message", [
    ({"dims": [1]}, "'dims' must be a dict of the model's sizes, found list"),
    ({"dims": "abc"}, "'dims' must be a dict of the model's sizes, found str"),
    ({"dims": {"n_mels": 80}}, "dims['n_audio_state'] must be a whole number, not None"),
    ({"dims": dict(openai_dims(), n_audio_ctx=300_000_000)},
     "dims['n_audio_ctx'] is 300000000; it must be between 1500 and 100000"),
    ({"model_state_dict": [1]}, "'model_state_dict' must map weight names to tensors, found "
                                "list"),
    ({"model_state_dict": {1: torch.zeros(1)}},
     "'model_state_dict' must map weight names to tensors, found 1 -> Tensor"),
    ({"model_state_dict": {"encoder.conv1.weight": "x"}},
     "'model_state_dict' must map weight names to tensors, found 'encoder.conv1.weight' -> str"),
    ({"model_state_dict": dict(openai_state(), **{"encoder.conv1.bias": torch.zeros(3)})},
     "1 Whisper encoder weight(s) of the wrong shape (e.g. conv1.bias (3,), expected (32,))"),
])
def test_damaged_openai_file_is_one_error_naming_it(tmp_path, ckpt, message):
    good = tmp_path / "good.pt"
    torch.save({"dims": openai_dims(), "model_state_dict": openai_state()}, good)
    assert whisper_load(TINY_WHISPER, good).num_layers == 3
    bad = tmp_path / "bad.pt"
    torch.save({"dims": openai_dims(), "model_state_dict": openai_state(), **ckpt}, bad)
    with pytest.raises(DataError) as err:
        whisper_load(TINY_WHISPER, bad)
    assert str(err.value) == f"{bad}: {message}"


def write_ct2(folder, variables: dict, aliases=()):
    """A CTranslate2 Whisper folder (binary version 6) holding ``variables`` (float32)."""
    def string(s: str) -> bytes:
        raw = s.encode() + b"\0"
        return struct.pack("<H", len(raw)) + raw

    out = struct.pack("<I", 6) + string("WhisperSpec") + struct.pack("<I", 3)
    out += struct.pack("<I", len(variables))
    for name, value in variables.items():
        value = np.array(value, dtype=np.float32)
        out += string(name) + struct.pack("<B", value.ndim)
        out += b"".join(struct.pack("<I", n) for n in value.shape)
        out += struct.pack("<BI", 0, value.nbytes) + value.tobytes()
    out += struct.pack("<I", len(aliases))
    for alias, target in aliases:
        out += string(alias) + string(target)
    folder.mkdir()
    (folder / "model.bin").write_bytes(out)
    (folder / "config.json").write_text("{}")
    return folder


@pytest.mark.parametrize("variables, aliases, message", [
    ({}, [("decoder/projection/weight", "decoder/embeddings/weight")],
     "alias 'decoder/projection/weight' names no variable ('decoder/embeddings/weight')"),
    ({"encoder/conv1/weight": np.float32(1), "encoder/layer_0/x": np.zeros(1)}, [],
     "encoder/conv1/weight has shape (), not (width, mel bins, kernel)"),
])
def test_damaged_ctranslate2_model_is_one_cli_error(cli, tmp_path, variables, aliases,
                                                    message):
    folder = write_ct2(tmp_path / "ct2", variables, aliases)
    out = tmp_path / "converted"
    res = cli("upstreams", "convert", "whisper_tiny_en", "--source", folder, "--out", out)
    assert res.code == 3
    lines = res.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {folder / 'model.bin'}: ")
    assert message in lines[0]
    assert not out.exists()


# -- 2, 7. damaged transformers folders of the wav2vec 2.0 family -------------------------------

@pytest.fixture(scope="module")
def hubert_good(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hubert") / "good"
    tiny_model("hubert_base").save_pretrained(folder)
    assert tiny_spec("hubert_base").build(ckpt=str(folder)).num_layers == 3
    return folder


def nan_eps(folder):
    text = (folder / "config.json").read_text()
    assert '"layer_norm_eps": 1e-05' in text
    (folder / "config.json").write_text(text.replace('"layer_norm_eps": 1e-05',
                                                     '"layer_norm_eps": NaN'))


@pytest.mark.parametrize("damage, where, message", [
    (lambda f: edit_json(f / "config.json", hidden_size="32"), "config.json",
     "hidden_size must be a whole number, not '32'"),
    (lambda f: edit_json(f / "config.json", num_attention_heads=7), "config.json",
     "num_attention_heads 7 does not divide hidden_size 32"),
    (lambda f: edit_json(f / "config.json", conv_stride=[0] * 7), "config.json",
     "conv_stride holds 0; each must be a whole number between 1 and 1024"),
    (lambda f: edit_json(f / "config.json", intermediate_size=10 ** 9), "config.json",
     "intermediate_size is 1000000000; it must be between 1 and 65536"),
    (lambda f: edit_json(f / "config.json", intermediate_size=60000), "config.json",
     "describes at least 11,536,544 parameters, but the weight files hold "),
    (lambda f: edit_json(f / "config.json", quantization_config={"quant_method": "x"}),
     "config.json", "quantization_config is set; only unquantised checkpoints are read"),
    (nan_eps, "config.json",
     "layer_norm_eps is nan; it must be a finite number above 0 and at most 1"),
    (lambda f: (f / "config.json").write_text('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}"),
     "config.json", "not valid JSON (nested too deeply)"),
    (lambda f: (f / "model.safetensors").unlink(), "",
     "no model.safetensors or pytorch_model.bin"),
    (lambda f: safetensors_header_length(f / "model.safetensors", 2 ** 63), "",
     "cannot load it as a hubert_base checkpoint (SafetensorError: "),
    (lambda f: (f / "model.safetensors").write_bytes(
        (f / "model.safetensors").read_bytes()[:-100]), "",
     "cannot load it as a hubert_base checkpoint (SafetensorError: "),
])
def test_damaged_hf_folder_is_one_error_naming_it(tmp_path, hubert_good, damage, where,
                                                  message):
    folder = shutil.copytree(hubert_good, tmp_path / "ckpt")
    damage(folder)
    with pytest.raises(DataError) as err:
        tiny_spec("hubert_base").build(ckpt=str(folder))
    named = folder / where if where else folder
    assert str(err.value).startswith(f"{named}: {message}")


def test_adapter_checkpoints_are_refused_naming_the_file(tmp_path, hubert_good):
    folder = shutil.copytree(hubert_good, tmp_path / "ckpt")
    edit_json(folder / "config.json", add_adapter=True)
    with pytest.raises(EmoboxUsageError) as err:
        tiny_spec("hubert_base").build(ckpt=str(folder))
    assert str(err.value) == (f"{folder / 'config.json'}: hubert_base: checkpoints with an "
                              f"adapter after the encoder (add_adapter) are not supported")


def test_damaged_hf_folder_through_the_cli_is_one_line(cli, tmp_path, hubert_good):
    folder = shutil.copytree(hubert_good, tmp_path / "ckpt")
    edit_json(folder / "config.json", hidden_size="768")
    res = cli("extract", "-u", "hubert_base", "-c", "demo", "--upstream-ckpt", folder)
    assert res.code == 3
    assert res.err.strip().splitlines() == [
        f"error: {folder / 'config.json'}: hidden_size must be a whole number, not '768'"]


def test_a_fifo_for_a_checkpoints_config_is_named_without_waiting(cli, tmp_path, hubert_good):
    folder = shutil.copytree(hubert_good, tmp_path / "ckpt")
    (folder / "config.json").unlink()
    os.mkfifo(folder / "config.json")
    res = cli("extract", "-u", "hubert_base", "-c", "demo", "--upstream-ckpt", folder)
    assert res.code == 3
    assert res.err.strip().splitlines() == [
        f"error: {folder / 'config.json'}: is a fifo, not a regular file; remove it"]


# -- 2, 3. data2vec 2.0 / emotion2vec ----------------------------------------------------------

def d2v2_file(tmp_path, change=None, name="ckpt.pt"):
    ckpt = fairseq_checkpoint(tiny_d2v2())
    if change:
        change(ckpt)
    torch.save(ckpt, tmp_path / name)
    return tmp_path / name


def set_audio(key, value):
    def change(ckpt):
        ckpt["cfg"]["model"]["modalities"]["audio"][key] = value
    return change


def modalities(value):
    def change(ckpt):
        ckpt["cfg"]["model"]["modalities"] = value
    return change


def int_key(ckpt):
    ckpt["model"][7] = torch.zeros(1)


def zero_d_proj(ckpt):
    ckpt["model"]["modality_encoders.AUDIO.project_features.2.weight"] = torch.tensor(1.0)


@pytest.mark.parametrize("change, message", [
    (modalities("x"), "cfg.model.modalities must be a mapping, found str"),
    (int_key, "the state dict names a tensor 7; weight names must be strings"),
    (zero_d_proj, "modality_encoders.AUDIO.project_features.2.weight has shape (); expected 2 "
                  "dimensions"),
    (set_audio("feature_encoder_spec", "[(512,10,5)] * 300000000"),
     "cannot read feature_encoder_spec '[(512,10,5)] * 300000000' (more than 64 layers)"),
    (set_audio("feature_encoder_spec", "[(0, 10, 5)]"),
     "cannot read feature_encoder_spec '[(0, 10, 5)]' (layer (0, 10, 5) is not (channels "
     "1..65536, kernel 1..1024, stride 1..1024))"),
    (lambda c: c["cfg"]["model"].update(num_heads=5), "num_heads 5 does not divide the width 24"),
    (lambda c: c["cfg"]["model"].update(norm_eps=float("nan")),
     "norm_eps is nan; it must be a finite number above 0 and at most 1"),
])
def test_damaged_data2vec2_checkpoint_is_one_error_naming_it(tmp_path, change, message):
    assert load_encoder(d2v2_file(tmp_path, name="good.pt"), D2v2Config())[0] is not None
    path = d2v2_file(tmp_path, change)
    with pytest.raises((DataError, EmoboxUsageError)) as err:
        load_encoder(path, D2v2Config())
    assert str(err.value) == f"{path}: {message}"


def test_damaged_converted_data2vec2_folder_is_one_error(tmp_path):
    folder = convert_checkpoint(d2v2_file(tmp_path), tmp_path / "conv")
    assert load_encoder(folder, D2v2Config())[0].cfg.embed_dim == 24
    meta = json.loads((folder / "config.json").read_text())
    meta["config"]["mlp_dim"] = 60000
    (folder / "config.json").write_text(json.dumps(meta))
    with pytest.raises(DataError) as err:
        load_encoder(folder, D2v2Config())
    assert str(err.value).startswith(f"{folder / 'config.json'}: describes at least ")
    meta["config"]["embed_dim"] = "24"
    (folder / "config.json").write_text(json.dumps(meta))
    with pytest.raises(DataError) as err:
        load_encoder(folder, D2v2Config())
    assert str(err.value) == (f"{folder / 'config.json'}: embed_dim is '24'; it must be a whole "
                              f"number between 1 and 65536")


def test_damaged_data2vec2_checkpoint_through_the_cli_is_one_line(cli, tmp_path):
    path = d2v2_file(tmp_path, set_audio("feature_encoder_spec", "[(512,10,5)] * 300000000"),
                     name="emotion2vec_base.pt")
    out = tmp_path / "conv"
    res = cli("upstreams", "convert", "emotion2vec_base", "--source", path, "--out", out)
    assert res.code == 2
    assert res.err.strip().splitlines() == [
        f"error: {path}: cannot read feature_encoder_spec '[(512,10,5)] * 300000000' (more "
        f"than 64 layers)"]
    assert not out.exists()


# -- 4, 5. the pickle reader ------------------------------------------------------------------

def object_array_payload(n: int) -> bytes:
    """Protocol 2: ``numpy.core.multiarray._reconstruct(ndarray, (n,), dtype('O8'))``, an
    object array of ``n`` elements allocated by the call itself."""
    return (b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nJ"
            + struct.pack("<i", n) + b"\x85cnumpy\ndtype\nU\x02O8\x89\x88\x87R\x87R.")


def test_payload_is_live_under_plain_pickle():
    import pickle

    assert pickle.loads(object_array_payload(5)).shape == (5,)


def test_an_array_larger_than_its_file_is_never_allocated(tmp_path):
    path = tmp_path / "tiny.pt"
    path.write_bytes(object_array_payload(2 ** 31 - 1))
    assert os.path.getsize(path) < 100
    with pytest.raises(CheckpointFormatError) as err:
        read_pickle(path)
    assert str(err.value) == (f"{path}: not a readable PyTorch checkpoint (a numpy array built "
                              f"other than numpy pickles arrays)")


def test_object_arrays_are_refused_and_number_arrays_still_load(tmp_path):
    torch.save({"o": np.array([1, None], dtype=object)}, tmp_path / "obj.pt")
    with pytest.raises(CheckpointFormatError, match=r"obj\.pt: not a readable PyTorch "):
        read_pickle(tmp_path / "obj.pt")
    torch.save({"a": np.arange(6, dtype=np.float32).reshape(2, 3), "s": np.int64(3)},
               tmp_path / "ok.pt")
    raw = read_pickle(tmp_path / "ok.pt")
    assert raw["a"].tolist() == [[0, 1, 2], [3, 4, 5]] and raw["s"] == 3


def test_a_blocked_module_names_the_global_and_never_suggests_weights_only_false(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pt"
    path.write_bytes(b"\x80\x02cposix\nsystem\nX" + struct.pack("<I", len(f"touch {marker}"))
                     + f"touch {marker}".encode() + b"\x85R.")
    with pytest.raises(CheckpointFormatError) as err:
        read_pickle(path)
    assert str(err.value).startswith(f"{path}: refers to posix.system, which is not loaded")
    assert "weights_only" not in str(err.value)
    assert not marker.exists()


# -- 6. the checkpoint id cache ----------------------------------------------------------------

@pytest.mark.parametrize("content", ["[]", "5", "{", '{"k": 5}'])
def test_a_damaged_id_cache_is_ignored_with_a_warning(tmp_path, whisper_good, monkeypatch,
                                                      content):
    home = tmp_path / "home"
    monkeypatch.setenv("EMOBOX_HOME", str(home))
    fresh = checkpoint_id(whisper_good)
    cache = home / "checkpoint_ids.json"
    cache.write_text(content)
    with pytest.warns(UserWarning, match=f"{cache}: .*damaged"):
        assert checkpoint_id(whisper_good) == fresh


def test_a_forged_cache_entry_is_not_used_as_an_id(tmp_path, whisper_good, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("EMOBOX_HOME", str(home))
    fresh = checkpoint_id(whisper_good)
    cache = home / "checkpoint_ids.json"
    entries = json.loads(cache.read_text())
    cache.write_text(json.dumps({k: "../../etc" for k in entries}))
    with pytest.warns(UserWarning, match="1 damaged entries"):
        assert checkpoint_id(whisper_good) == fresh


# -- 8. --overwrite replaces only a converter's own folder --------------------------------------

def test_overwrite_never_deletes_a_foreign_folder(cli, tmp_path, whisper_good):
    out = tmp_path / "thesis"
    out.mkdir()
    (out / "thesis.tex").write_text("chapter 1")
    with pytest.raises(EmoboxUsageError) as err:
        whisper_convert(TINY_WHISPER, None, source=whisper_good, out=out, overwrite=True)
    assert str(err.value).startswith(f"--out {out}: holds thesis.tex, which `emobox upstreams "
                                     f"convert` did not write; ")
    assert (out / "thesis.tex").read_text() == "chapter 1"
    own = whisper_convert(TINY_WHISPER, None, source=whisper_good, out=tmp_path / "conv")
    assert whisper_convert(TINY_WHISPER, None, source=whisper_good, out=own,
                           overwrite=True) == own
    res = cli("upstreams", "convert", "emotion2vec_base", "--source",
              d2v2_file(tmp_path, name="e.pt"), "--out", out, "--overwrite")
    assert res.code == 2 and res.err.startswith(f"error: --out {out}: holds thesis.tex")
    assert sorted(p.name for p in out.iterdir()) == ["thesis.tex"]
