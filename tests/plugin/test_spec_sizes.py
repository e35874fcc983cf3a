"""Sizes are declared once, on the upstream spec: ``UpstreamSpec.load`` gives them to an object
that does not set them, and an object that does set them is checked against the spec."""

from __future__ import annotations

import pytest
import torch

from emobox import ContractError, Upstream, UpstreamOutput, UpstreamSpec
from emobox.testing import assert_upstream


class Energy(Upstream):
    """Frame energy over 10-ms frames: declares none of its sizes."""

    checkpoint_id = "energy-v1"

    def forward(self, wavs, layers):
        feats = [w[: len(w) // 160 * 160].reshape(-1, 160).pow(2).mean(1, keepdim=True)
                 for w in wavs]
        lengths = torch.tensor([len(f) for f in feats])
        return UpstreamOutput({0: torch.nn.utils.rnn.pad_sequence(feats, batch_first=True)},
                              lengths)


class WideEnergy(Energy):
    hidden_size = 2  # set by the object, and wrong


def _spec(cls, **sizes) -> UpstreamSpec:
    return UpstreamSpec(name="energy", build=lambda ckpt=None, device="cpu", **o: cls(),
                        **{"num_layers": 0, "hidden_size": 1, "frame_rate": 100.0, **sizes})


def test_an_object_that_sets_no_size_gets_the_specs():
    up = _spec(Energy).load()
    assert (up.name, up.num_layers, up.hidden_size, up.frame_rate, up.sample_rate) == (
        "energy", 0, 1, 100.0, 16000)
    assert up.frames_for(16000) == 100  # the base class computes with the spec's frame rate
    assert_upstream(_spec(Energy))  # forward's [B, T, 1] and frame counts agree with the spec


def test_build_alone_leaves_the_base_class_defaults():
    up = _spec(Energy).build()
    assert (up.name, up.hidden_size) == ("", 0)


def test_a_size_the_object_sets_is_kept_and_checked():
    up = _spec(WideEnergy).load()
    assert up.hidden_size == 2
    with pytest.raises(ContractError, match=r"expected hidden size 1 \(declared\), got 2"):
        assert_upstream(_spec(WideEnergy))


def test_a_size_left_to_the_build_options_is_not_copied():
    up = _spec(WideEnergy, hidden_size=0, frame_rate=0.0).load()
    assert (up.hidden_size, up.frame_rate) == (2, 100.0)  # the object's own and the base default
