"""The example upstream keeps the emobox contract (run after `pip install` of this package)."""

from __future__ import annotations

import pytest
import torch

import emobox
from emobox.testing import assert_upstream, registered_spec

DIST = "emobox-plugin-example-upstream"


@pytest.fixture(scope="module")
def spec():
    # found through the installed entry point, exactly as `emobox run` finds it
    return registered_spec("upstream", "example_upstream", distribution=DIST)


def test_contract_holds_for_the_defaults_and_for_other_options(spec):
    encoder = assert_upstream(spec)  # declared sizes, shapes, lengths, padding, determinism
    assert (encoder.num_layers, encoder.hidden_size, encoder.frame_rate) == (4, 64, 50.0)
    assert_upstream(spec, hidden=32, layers=2, kernel=3)


def test_frames_follow_the_convolution_arithmetic(spec):
    encoder = spec.build()
    assert [encoder.frames_for(n) for n in (0, 400, 720, 16000)] == [1, 1, 2, 49]
    out = encoder([torch.zeros(16000), torch.zeros(720)], [0])
    assert out.lengths.tolist() == [49, 2]


def test_weights_come_from_the_seed(spec):
    wav = [torch.sin(torch.arange(8000) * 0.05)]
    a, b, c = spec.build(seed=1), spec.build(seed=1), spec.build(seed=2)
    fa, fb, fc = (m(wav, "last").hidden[4] for m in (a, b, c))
    assert torch.equal(fa, fb)
    assert not torch.allclose(fa, fc)
    assert a.checkpoint_id == b.checkpoint_id != c.checkpoint_id


def test_checkpoint_round_trip_and_clear_errors(spec, tmp_path):
    from emobox_example_upstream.encoder import ConvEncoder

    original = ConvEncoder(hidden=16, layers=1, seed=7)
    path = original.save(tmp_path / "enc.pt")
    loaded = spec.build(ckpt=str(path))
    assert loaded.hidden_size == 16 and loaded.checkpoint_id.startswith("sha256:")
    wav = [torch.randn(4000, generator=torch.Generator().manual_seed(0))]
    assert torch.equal(loaded(wav, "all").hidden[1], original(wav, "all").hidden[1])

    with pytest.raises(emobox.CheckpointNotFoundError, match="does not exist"):
        spec.build(ckpt=str(tmp_path / "missing.pt"))
    with pytest.raises(emobox.EmoboxUsageError, match="contradicts the checkpoint"):
        spec.build(ckpt=str(path), hidden=32)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(emobox.EmoboxUsageError, match="junk.pt"):
        spec.build(ckpt=str(tmp_path / "junk.pt"))
    with pytest.raises(emobox.EmoboxUsageError, match="unknown option 'hiden'"):
        spec.build(hiden=3)


def test_flops_grow_with_the_input(spec):
    encoder = spec.build()
    assert 0 < encoder.flops(16000) < encoder.flops(32000) < 2.1 * encoder.flops(16000)
