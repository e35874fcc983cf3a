"""The grid trainer: packed pooling, fused heads, warm-up, validation selection, determinism."""

from __future__ import annotations

import pytest
import torch

from emobox.downstream import masked_mean, segment_ids, segment_mean, unpack
from emobox.plugins import get_registry
from emobox.sweep import Split, TrainConfig, expand_grid, lr_at, train_sweep


def test_packed_pooling_equals_padded_masked_pooling():
    torch.manual_seed(0)
    lengths = torch.tensor([3, 1, 5])
    frames = torch.randn(int(lengths.sum()), 4)
    seg = segment_ids(lengths)
    padded = unpack(frames, seg, lengths)
    assert padded.shape == (3, 5, 4)
    torch.testing.assert_close(segment_mean(frames, seg, lengths), masked_mean(padded, lengths))
    torch.testing.assert_close(padded[1, 1:], torch.zeros(4, 4))


def test_linear_probe_utterance_alone_or_in_batch_gives_same_logits():
    spec = get_registry().downstream("linear_probe")
    torch.manual_seed(0)
    head = spec.build(8, 3, hidden=16)
    lengths = torch.tensor([4, 7, 2])
    frames = torch.randn(13, 8)
    batch = head.forward_packed(frames, segment_ids(lengths), lengths)
    alone = head.forward_packed(frames[4:11], segment_ids(lengths[1:2]), lengths[1:2])
    torch.testing.assert_close(batch[1:2], alone)
    torch.testing.assert_close(batch, head(unpack(frames, segment_ids(lengths), lengths), lengths))


def test_fused_heads_equal_separate_heads():
    spec = get_registry().downstream("linear_probe")
    torch.manual_seed(1)
    heads = [spec.build(8, 3, hidden=h) for h in (4, 16, 8)]
    fused = type(heads[0]).fuse(heads)
    lengths = torch.tensor([5, 2])
    frames, seg = torch.randn(7, 8), segment_ids(lengths)
    out = fused.forward_packed(frames, seg, lengths)
    assert out.shape == (3, 2, 3)
    for k, head in enumerate(heads):
        torch.testing.assert_close(out[k], head.forward_packed(frames, seg, lengths))


def test_warmup_schedule_values():
    peak = 1e-3  # 100 epochs, 10 of warm-up, then EmoBox's linear decay
    assert lr_at(0, peak, 10, 100) == pytest.approx(1e-4)
    assert lr_at(5, peak, 10, 100) == pytest.approx(6e-4)
    assert lr_at(9, peak, 10, 100) == pytest.approx(1e-3)
    assert lr_at(10, peak, 10, 100) == pytest.approx(1e-3)
    assert lr_at(55, peak, 10, 100) == pytest.approx(5e-4)
    assert lr_at(99, peak, 10, 100) == pytest.approx(1e-3 / 90)
    # constant after warm-up, and no warm-up at all
    assert lr_at(5, peak, 10, 100, "constant") == pytest.approx(6e-4)
    assert lr_at(10, peak, 10, 100, "constant") == pytest.approx(1e-3)
    assert lr_at(99, peak, 10, 100, "constant") == pytest.approx(1e-3)
    assert lr_at(0, peak, 0, 100, "constant") == pytest.approx(1e-3)


def test_expand_grid_is_the_cartesian_product():
    grid = expand_grid({"lr": [1e-3, 1e-4], "hidden": [128, 256]})
    assert grid == [{"lr": 1e-3, "hidden": 128}, {"lr": 1e-3, "hidden": 256},
                    {"lr": 1e-4, "hidden": 128}, {"lr": 1e-4, "hidden": 256}]


class MemorySource:
    def __init__(self, frames_per_utt):
        self.items = frames_per_utt
        self.lengths = torch.tensor([len(f) for f in frames_per_utt])

    def __len__(self):
        return len(self.items)

    def gather(self, idx):
        return torch.cat([self.items[int(i)] for i in idx]), self.lengths[idx]


def toy_split(n, seed, shift=0.0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 3
    items = []
    for lab in labels.tolist():
        t = int(torch.randint(3, 9, (1,), generator=g))
        x = torch.randn(t, 6, generator=g)
        x[:, lab] += 2.0 + shift
        items.append(x)
    return Split(MemorySource(items), labels, [f"u{i}" for i in range(n)])


def test_sweep_learns_selects_on_valid_and_is_deterministic():
    spec = get_registry().downstream("linear_probe")
    configs = expand_grid({"lr": [1e-2, 1e-5], "hidden": [8]})
    train, valid, test = toy_split(60, 1), toy_split(30, 2), toy_split(30, 3)
    cfg = TrainConfig(epochs=15, warmup_epochs=3, batch_size=8, seed=0)
    res = train_sweep(spec, configs, 6, 3, train, valid, test, cfg)
    lr_of = [c.hp["lr"] for c in res.configs]
    assert lr_of[res.selected] == 1e-2  # the learning rate that learns wins on validation
    sel = res.configs[res.selected]
    assert sel.test["ua"] > 0.9
    assert sel.valid_ua == max(h["valid_ua"] for h in sel.history)
    assert len(sel.history) == 15 and sel.history[sel.best_epoch]["valid_ua"] == sel.valid_ua
    again = train_sweep(spec, configs, 6, 3, train, valid, test, cfg)
    assert [c.test for c in again.configs] == [c.test for c in res.configs]
    assert [c.history for c in again.configs] == [c.history for c in res.configs]


def test_select_test_mode_is_reported():
    spec = get_registry().downstream("linear_probe")
    configs = expand_grid({"lr": [1e-2], "hidden": [8]})
    cfg = TrainConfig(epochs=4, warmup_epochs=1, batch_size=8, select="test")
    res = train_sweep(spec, configs, 6, 3, toy_split(30, 1), toy_split(12, 2), toy_split(12, 3),
                      cfg)
    assert res.selection == "test"
    assert "test_ua" in res.configs[0].history[0]
