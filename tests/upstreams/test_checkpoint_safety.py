"""Loading a checkpoint never runs code from it.

Each payload below runs a command under Python's own unpickler (checked first, so the test
cannot pass on a dud); emobox's reader must refuse it, in every container torch reads
(zip, legacy, bare pickle) and through every command that reads a checkpoint.
"""

from __future__ import annotations

import argparse
import io
import pickle
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch

from emobox.upstreams.data2vec2.ckpt import load_encoder
from emobox.upstreams.data2vec2.net import D2v2Config
from emobox.upstreams.safe_load import CheckpointFormatError, plain, read_pickle

from test_upstream_data2vec2 import fairseq_checkpoint, tiny_encoder


def _str(s: str) -> bytes:
    b = s.encode()
    return b"\x8c" + bytes([len(b)]) + b  # SHORT_BINUNICODE


def dotted_name_payload(marker) -> bytes:
    """Protocol 4: ``numpy.dtypes`` / ``__builtins__.get`` resolves to ``dict.get`` of the
    builtins, which hands out ``exec``."""
    code = f"open({str(marker)!r}, 'w').write('ran')"
    return (b"\x80\x04" + _str("numpy.dtypes") + _str("__builtins__.get") + b"\x93"
            + _str("exec") + b"\x85R" + _str(code) + b"\x85R.")


class _Reduce:
    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def classic_payload(marker) -> bytes:
    """Protocol 2: ``builtins.exec`` called by REDUCE."""
    return pickle.dumps(_Reduce(exec, (f"open({str(marker)!r}, 'w').write('ran')",)), protocol=2)


PAYLOADS = {"dotted-name": dotted_name_payload, "classic": classic_payload}


def as_zip(payload: bytes, path):
    """A torch zip checkpoint whose data.pkl is the payload."""
    torch.save({"w": torch.zeros(2)}, path)
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, payload if name.endswith("data.pkl") else data)


def as_legacy(payload: bytes, path):
    """torch's legacy (non-zip) format: magic, protocol, sys info, then the object."""
    from torch.serialization import MAGIC_NUMBER, PROTOCOL_VERSION

    buf = io.BytesIO()
    pickle.dump(MAGIC_NUMBER, buf, protocol=2)
    pickle.dump(PROTOCOL_VERSION, buf, protocol=2)
    pickle.dump({"protocol_version": PROTOCOL_VERSION, "little_endian": True,
                 "type_sizes": {"short": 2, "int": 4, "long": 4}}, buf, protocol=2)
    path.write_bytes(buf.getvalue() + payload)


def as_bare(payload: bytes, path):
    path.write_bytes(payload)


CONTAINERS = {"zip": as_zip, "legacy": as_legacy, "bare": as_bare}


@pytest.mark.parametrize("payload", sorted(PAYLOADS))
def test_payloads_are_live_under_plain_pickle(tmp_path, payload):
    marker = tmp_path / "ran"
    pickle.loads(PAYLOADS[payload](marker))
    assert marker.read_text() == "ran"


@pytest.mark.parametrize("container", sorted(CONTAINERS))
@pytest.mark.parametrize("payload", sorted(PAYLOADS))
def test_reader_refuses_payloads_in_every_container(tmp_path, payload, container):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pt"
    CONTAINERS[container](PAYLOADS[payload](marker), path)
    with pytest.raises(CheckpointFormatError, match=r"evil\.pt: "):
        read_pickle(path)
    assert not marker.exists()


def test_unknown_class_is_named_and_never_built(tmp_path):
    marker = tmp_path / "ran"
    ckpt = fairseq_checkpoint(tiny_encoder())
    ckpt["extra_state"] = {"trap": _Reduce(exec, (f"open({str(marker)!r}, 'w')",))}
    torch.save(ckpt, tmp_path / "trained.pt")
    with pytest.raises(CheckpointFormatError) as err:
        read_pickle(tmp_path / "trained.pt")
    assert "refers to builtins.exec" in str(err.value) and "trained.pt" in str(err.value)
    assert not marker.exists()


@pytest.fixture
def evil_ckpt(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "data2vec2_base.pt"
    as_zip(dotted_name_payload(marker), path)
    return path, marker


def test_run_with_upstream_ckpt_never_runs_the_payload(cli, tmp_path, evil_ckpt):
    path, marker = evil_ckpt
    res = cli("run", "-u", "data2vec2_base", "-c", "demo", "-d", "linear_probe",
              "--upstream-ckpt", path, "--out", tmp_path / "run", "--epochs", "1", "--warmup", "0")
    assert res.code != 0 and res.err.startswith(f"error: {path}: ")
    assert not marker.exists()


def test_convert_and_module_main_never_run_the_payload(cli, tmp_path, evil_ckpt):
    path, marker = evil_ckpt
    res = cli("upstreams", "convert", "emotion2vec_base", "--source", path,
              "--out", tmp_path / "conv")
    assert res.code != 0 and "error:" in res.err and str(path) in res.err
    proc = subprocess.run([sys.executable, "-m", "emobox.upstreams.data2vec2.ckpt", str(path),
                           str(tmp_path / "conv2")], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.startswith(f"error: {path}: ")
    assert not marker.exists()


def test_dropped_model_file_and_doctor_build_never_run_the_payload(cli, tmp_path, evil_ckpt,
                                                                    monkeypatch):
    path, marker = evil_ckpt
    models = tmp_path / "models"
    models.mkdir()
    path.rename(models / "data2vec2_base.pt")
    monkeypatch.setenv("EMOBOX_MODELS", str(models))
    res = cli("plugins", "doctor", "--build", "all")
    assert "data2vec2_base.pt" in res.out + res.err
    assert not marker.exists()


# -- the real formats still load ----------------------------------------------------------------
def test_fairseq_training_state_with_numpy_and_namespace_loads(tmp_path):
    enc = tiny_encoder()
    ckpt = fairseq_checkpoint(enc)
    ckpt["args"] = argparse.Namespace(normalize=True, lr=[5e-4])
    ckpt["extra_state"] = {"best": np.float64(0.25), "epoch": np.int64(3),
                           "curve": np.arange(4, dtype=np.float32), "flag": np.bool_(True)}
    ckpt["optimizer_history"] = [{"lr_scheduler_state": {"best": np.float32(1.5)},
                                  "num_updates": 400000}]
    torch.save(ckpt, tmp_path / "trained.pt")
    raw = read_pickle(tmp_path / "trained.pt")
    assert raw["extra_state"]["best"] == 0.25 and raw["extra_state"]["epoch"] == 3
    assert raw["extra_state"]["curve"].tolist() == [0.0, 1.0, 2.0, 3.0]
    assert plain(raw["args"]) == {"normalize": True, "lr": [5e-4]}
    assert set(raw["model"]) == set(ckpt["model"])
    loaded, _ = load_encoder(tmp_path / "trained.pt", D2v2Config())
    assert loaded.cfg == enc.cfg


def test_omegaconf_config_is_read_as_plain_values(tmp_path):
    omegaconf = pytest.importorskip("omegaconf")
    enc = tiny_encoder()
    ckpt = fairseq_checkpoint(enc)
    ckpt["cfg"] = omegaconf.OmegaConf.create(ckpt["cfg"])
    torch.save(ckpt, tmp_path / "omega.pt")
    raw = read_pickle(tmp_path / "omega.pt")
    cfg = plain(raw["cfg"])
    assert cfg["model"]["depth"] == enc.cfg.depth
    assert cfg["model"]["modalities"]["audio"]["num_extra_tokens"] == enc.cfg.num_extra_tokens
    assert cfg["task"]["normalize"] == enc.cfg.normalize
    loaded, _ = load_encoder(tmp_path / "omega.pt", D2v2Config())
    assert loaded.cfg == enc.cfg


def test_a_self_referencing_config_does_not_recurse_forever(tmp_path):
    loop: dict = {"depth": 2}
    loop["self"] = loop
    torch.save({"cfg": loop, "w": torch.zeros(1)}, tmp_path / "loop.pt")
    cfg = plain(read_pickle(tmp_path / "loop.pt")["cfg"])
    assert cfg["depth"] == 2 and cfg["self"]["depth"] == 2


def test_torch_env_override_does_not_reopen_the_hole(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    marker = tmp_path / "ran"
    as_zip(classic_payload(marker), tmp_path / "evil.pt")
    with pytest.raises(CheckpointFormatError):
        read_pickle(tmp_path / "evil.pt")
    assert not marker.exists()

