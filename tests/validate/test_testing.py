"""Helpers emobox exports for plugin authors (emobox/testing.py)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from emobox import ContractError, DownstreamSpec
from emobox.testing import (InProcessPlugin, TinyUpstream, assert_corpus, assert_downstream,
                            assert_upstream, registered_spec, smoke_run, tiny_upstream_spec,
                            write_folder_corpus)


def test_folder_corpus_writer_gives_each_label_its_own_pitch(tmp_path):
    paths = write_folder_corpus(tmp_path, labels=("low", "high"), speakers=["ann", "bob"],
                                per_speaker=2, seconds=0.5)
    assert paths == ["high/ann_01.wav", "high/ann_02.wav", "high/bob_01.wav", "high/bob_02.wav",
                     "low/ann_01.wav", "low/ann_02.wav", "low/bob_01.wav", "low/bob_02.wav"]

    def pitch(rel):
        x, sr = sf.read(tmp_path / rel)
        assert sr == 16000 and len(x) == 8000
        return np.argmax(np.abs(np.fft.rfft(x))) * sr / len(x)

    # label k: 140 Hz * 2^(k/2); speakers detuned by -6%, -3%, 0, +3%, +6%
    assert pitch("low/ann_01.wav") == pytest.approx(140 * 0.94, abs=2)
    assert pitch("high/bob_01.wav") == pytest.approx(140 * 2 ** 0.5 * 0.97, abs=2)


def test_tiny_upstream_keeps_the_contract_and_needs_no_weights():
    spec = tiny_upstream_spec(hidden_size=6, num_layers=3)
    up = assert_upstream(spec)
    assert isinstance(up, TinyUpstream) and up.checkpoint_id == "tiny-h6-l3-seed0"
    out = up([torch.zeros(1600), torch.zeros(100)], "all")
    assert out.lengths.tolist() == [10, 1] and sorted(out.hidden) == [0, 1, 2, 3]
    assert out.hidden[3].shape == (2, 10, 6)
    other = assert_upstream(spec, seed=1)
    wav = [torch.randn(1600, generator=torch.Generator().manual_seed(0))]
    assert not torch.allclose(up(wav).hidden[3], other(wav).hidden[3])


def test_importing_emobox_testing_does_not_import_torch():
    code = "import sys, emobox.testing; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_assertions_list_every_broken_promise():
    class Wrong(TinyUpstream):
        def forward(self, wavs, layers=None):
            out = super().forward(wavs, layers)
            out.hidden = {k: v.double() for k, v in out.hidden.items() if k != 0}
            return out

    with pytest.raises(ContractError) as info:
        assert_upstream(Wrong())
    msg = str(info.value)
    assert msg.startswith("upstream 'tiny' breaks its contract:")
    assert "returned no layer 0" in msg and "expected float32 features, got torch.float64" in msg

    head = DownstreamSpec(name="sum_head", grid={"hidden": [4, 8]},
                          build=lambda i, n, hidden: torch.nn.Bilinear(i, i, n))
    with pytest.raises(ContractError, match=r"\[hidden=4\] forward\(features \[2, 6, 8\], "
                                            r"lengths \[6, 3\]\) raised"):
        assert_downstream(head)


def test_assert_corpus_checks_files_and_folds(tmp_path):
    from emobox.plugin.registry import get_registry

    write_folder_corpus(tmp_path / "c", speakers=4, per_speaker=1, seconds=0.05)
    corpus = assert_corpus(get_registry().corpus("folder"), tmp_path / "c")
    assert len(corpus.manifest) == 16
    (tmp_path / "c" / "sad" / "spk02_01.wav").write_bytes(b"RIFF junk")
    (tmp_path / "c" / "angry" / "spk01_01.wav").write_bytes(b"RIFF junk")
    with pytest.raises(ContractError, match=r"cannot read angry/spk01_01.wav"):
        assert_corpus(get_registry().corpus("folder"), tmp_path / "c")


def test_registered_spec_says_what_is_wrong():
    assert registered_spec("upstream", "fbank", distribution="emobox").hidden_size == 80
    with pytest.raises(ContractError, match="no upstream named 'fbnk'; did you mean 'fbank'"):
        registered_spec("upstream", "fbnk")
    with pytest.raises(ContractError, match="comes from distribution 'emobox', expected "
                                            "'emobox-plugin-mine'"):
        registered_spec("upstream", "fbank", distribution="emobox-plugin-mine")


def test_smoke_run_with_an_in_process_plugin(tmp_path):
    write_folder_corpus(tmp_path / "data", speakers=4, per_speaker=2, seconds=0.2)
    result = smoke_run("tiny", "folder", "linear_probe", root=tmp_path / "data",
                       out=tmp_path / "run", epochs=2,
                       plugins=[InProcessPlugin(upstreams=[tiny_upstream_spec()])])
    assert [f.fold for f in result.folds] == [1]
    assert result.config["grid"] == {"lr": [1e-3], "hidden": [128]}
    assert result.config["checkpoint_id"] == "tiny-h8-l2-seed0"
    assert (tmp_path / "run.features").is_dir()
    keys = [line.split("\t")[0] for line in
            (tmp_path / "run" / "predictions" / "fold1.tsv").read_text().splitlines()[1:]]
    assert len(keys) == 8 and all("spk01_" in k for k in keys)  # 4 speakers: LOSO, fold 1


class _BrokenScan:
    """A corpus plugin whose scan() trips over its own bug."""

    @staticmethod
    def corpus_class():
        from emobox import Corpus

        class Broken(Corpus):
            name = "broken_scan"
            languages = ("English",)
            labels = ("angry", "happy")

            def scan(self):
                raise AttributeError("boom")

        return Broken


def test_assert_corpus_reports_the_exception_raised_in_scan(tmp_path):
    corpus = _BrokenScan.corpus_class()(tmp_path)
    with pytest.raises(ContractError) as info:
        assert_corpus(corpus)
    msg = str(info.value)
    assert msg.startswith("corpus 'broken_scan' breaks its contract:")
    assert "Broken.scan() raised AttributeError: boom (at " in msg
    assert f"{__file__}:" in msg  # the frame that raised
    assert "manifest must be an emobox.Manifest" not in msg
