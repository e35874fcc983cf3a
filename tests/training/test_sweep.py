"""The grid trainer: packed pooling, fused heads, warm-up, validation selection, determinism."""

from __future__ import annotations

import copy

import pytest
import torch

from emobox.training.downstream import masked_mean, segment_ids, segment_mean, unpack
from emobox.plugin.registry import get_registry
from emobox.training.sweep import Split, TrainConfig, expand_grid, lr_at, train_sweep


def test_packed_pooling_equals_padded_masked_pooling():
    torch.manual_seed(0)
    lengths = torch.tensor([3, 1, 5])
    frames = torch.randn(int(lengths.sum()), 4)
    seg = segment_ids(lengths)
    padded = unpack(frames, seg, lengths)
    assert padded.shape == (3, 5, 4)
    torch.testing.assert_close(segment_mean(frames, seg, lengths), masked_mean(padded, lengths))
    torch.testing.assert_close(padded[1, 1:], torch.zeros(4, 4))


HEADS = ["linear_probe", "weighted_sum", "attentive"]
N_LAYERS = 3


def build_head(name, in_dim=8, n_classes=3, hidden=16, seed=0):
    spec = get_registry().downstream(name)
    extra = {"n_layers": N_LAYERS} if spec.layers == "all" else {}
    torch.manual_seed(seed)
    return spec, spec.build(in_dim, n_classes, hidden=hidden, **extra)


def packed_frames(spec, lengths, dim=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    shape = (int(lengths.sum()), dim)
    if spec.layers == "all":
        shape = (N_LAYERS,) + shape
    return torch.randn(*shape, generator=g)


def test_every_builtin_head_is_covered():
    builtin = [s.name for s in get_registry().specs("downstream") if s.distribution == "emobox"]
    assert sorted(builtin) == sorted(HEADS)


@pytest.mark.parametrize("name", HEADS)
def test_packed_forward_equals_padded_forward(name):
    spec, head = build_head(name)
    lengths = torch.tensor([4, 7, 1, 2])
    frames = packed_frames(spec, lengths)
    seg = segment_ids(lengths)
    padded = unpack(frames, seg, lengths, frame_dim=frames.dim() - 2)
    assert padded.shape[-3:-1] == (4, 7)
    torch.testing.assert_close(head.forward_packed(frames, seg, lengths), head(padded, lengths))


@pytest.mark.parametrize("name", HEADS)
def test_utterance_alone_or_in_a_batch_gives_the_same_logits(name):
    spec, head = build_head(name)
    lengths = torch.tensor([4, 7, 2])
    frames = packed_frames(spec, lengths)
    batch = head.forward_packed(frames, segment_ids(lengths), lengths)
    alone = head.forward_packed(frames[..., 4:11, :], segment_ids(lengths[1:2]), lengths[1:2])
    torch.testing.assert_close(batch[1:2], alone)
    # garbage beyond an utterance's length in a padded batch changes nothing either
    padded = unpack(frames, segment_ids(lengths), lengths, frame_dim=frames.dim() - 2)
    noisy = padded.clone()
    noisy[..., 2, 2:, :] = 1e3
    torch.testing.assert_close(head(noisy, lengths), batch)


@pytest.mark.parametrize("name", HEADS)
def test_fused_heads_equal_separate_heads_forward_and_gradients(name):
    spec = get_registry().downstream(name)
    separate = [build_head(name, hidden=h, seed=i)[1] for i, h in enumerate((4, 16, 8))]
    copies = [copy.deepcopy(h) for h in separate]
    fused = type(copies[0]).fuse(copies)
    assert fused is not None
    lengths = torch.tensor([5, 2, 3])
    frames, seg = packed_frames(spec, lengths), segment_ids(lengths)
    out = fused.forward_packed(frames, seg, lengths)
    assert out.shape == (3, 3, 3)
    weights = torch.randn(3, 3, 3, generator=torch.Generator().manual_seed(5))
    (out * weights).sum().backward()
    for k, head in enumerate(separate):
        alone = head.forward_packed(frames, seg, lengths)
        torch.testing.assert_close(out[k], alone)
        (alone * weights[k]).sum().backward()
        for (pname, p), q in zip(head.named_parameters(), copies[k].parameters()):
            torch.testing.assert_close(q.grad, p.grad, msg=f"{name} head {k} {pname}")


@pytest.mark.parametrize("name", HEADS)
def test_bf16_frames_give_logits_close_to_fp32(name):
    spec = get_registry().downstream(name)
    heads = [build_head(name, hidden=h, seed=i)[1] for i, h in enumerate((8, 16))]
    fused = type(heads[0]).fuse(heads)
    lengths = torch.tensor([30, 12, 50])
    frames, seg = packed_frames(spec, lengths), segment_ids(lengths)
    exact = fused.forward_packed(frames, seg, lengths)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = fused.forward_packed(frames.bfloat16(), seg, lengths).float()
    torch.testing.assert_close(low, exact, atol=0.05, rtol=0.05)


def test_fused_linear_probes_share_storage_and_survive_two_forwards_before_backward():
    _, a = build_head("linear_probe", hidden=4, seed=1)
    _, b = build_head("linear_probe", hidden=6, seed=2)
    ref_a, ref_b = copy.deepcopy(a), copy.deepcopy(b)
    fused = type(a).fuse([a, b])
    assert a.proj.weight.data_ptr() == fused.first.weight.data_ptr()  # no per-step concatenation
    lengths = torch.tensor([3, 4])
    x1 = torch.randn(7, 8, generator=torch.Generator().manual_seed(1))
    x2 = torch.randn(7, 8, generator=torch.Generator().manual_seed(2))
    out1 = fused.forward_packed(x1, segment_ids(lengths), lengths)
    out2 = fused.forward_packed(x2, segment_ids(lengths), lengths)  # must not clobber out1's
    (out1.sum() + 2 * out2.sum()).backward()
    for ref, got in ((ref_a, a), (ref_b, b)):
        (ref.forward_packed(x1, segment_ids(lengths), lengths).sum()
         + 2 * ref.forward_packed(x2, segment_ids(lengths), lengths).sum()).backward()
        for p, q in zip(ref.parameters(), got.parameters()):
            torch.testing.assert_close(q.grad, p.grad)
    # an optimiser step on one head's own parameters moves its rows of the fused weight only
    before = fused.first.weight.clone()
    torch.optim.SGD(a.parameters(), lr=1.0).step()
    assert not torch.equal(before[:4], fused.first.weight[:4])
    assert torch.equal(before[4:], fused.first.weight[4:])


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
    # epochs are counted from 1: the kept epoch is the history entry with that number
    assert [h["epoch"] for h in sel.history] == list(range(1, 16))
    assert sel.history[sel.best_epoch - 1]["valid_ua"] == sel.valid_ua
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


def test_vectorised_ua_equals_scikit_learn_for_every_config():
    from emobox.training.metrics import unweighted_accuracy
    from emobox.training.sweep import confusion_matrices, ua_of

    g = torch.Generator().manual_seed(3)
    gold = torch.randint(0, 4, (50,), generator=g)
    gold[gold == 2] = 1  # class 2 absent from gold: it must not count in UA
    pred = torch.randint(0, 5, (3, 50), generator=g)
    cms = confusion_matrices(pred, gold, 5)
    assert cms.shape == (3, 5, 5) and cms.sum().item() == 150
    for k in range(3):
        assert ua_of(cms)[k].item() == pytest.approx(unweighted_accuracy(gold, pred[k]))


def test_bf16_training_is_labelled_and_learns():
    spec = get_registry().downstream("linear_probe")
    configs = expand_grid({"lr": [1e-2], "hidden": [8, 16]})
    train, valid, test = toy_split(60, 1), toy_split(30, 2), toy_split(30, 3)
    cfg = TrainConfig(epochs=10, warmup_epochs=2, batch_size=8, seed=0, precision="bf16")
    res = train_sweep(spec, configs, 6, 3, train, valid, test, cfg)
    assert res.precision == "bf16"
    assert res.configs[res.selected].test["ua"] > 0.9


def test_class_weights_raise_minority_recall():
    spec = get_registry().downstream("linear_probe")
    configs = expand_grid({"lr": [1e-2], "hidden": [8]})

    def imbalanced(n, seed):
        g = torch.Generator().manual_seed(seed)
        labels = (torch.arange(n) % 10 == 0).long()  # class 1 is 10% of the data
        items = []
        for lab in labels.tolist():
            x = torch.randn(4, 6, generator=g) * 2.0
            x[:, 0] += 1.0 if lab else 0.0  # heavily overlapping classes
            items.append(x)
        return Split(MemorySource(items), labels, [f"u{i}" for i in range(n)])

    train, valid, test = imbalanced(200, 1), imbalanced(100, 2), imbalanced(200, 3)
    recall = {}
    for weighted in (False, True):
        cfg = TrainConfig(epochs=8, warmup_epochs=1, batch_size=16, seed=0,
                          class_weights=weighted, schedule="constant")
        res = train_sweep(spec, configs, 6, 2, train, valid, test, cfg)
        recall[weighted] = res.configs[0].test["per_class_recall"][1]
    assert recall[True] > recall[False] + 0.2, recall


def test_frame_source_stacks_layers_and_fills_a_reused_buffer():
    from emobox.extraction.extract import FrameSource

    lengths = torch.tensor([2, 3, 1])
    frames = torch.arange(3 * 6 * 4, dtype=torch.float32).reshape(3, 6, 4)
    src = FrameSource.from_frames(frames, lengths, ["a", "b", "c"])
    assert src.stacked and src.layers == [0, 1, 2] and src.dim == 4
    got, lens = src.gather(torch.tensor([2, 0]))
    assert lens.tolist() == [1, 2]
    torch.testing.assert_close(got, frames[:, [5, 0, 1], :])
    buf = torch.empty(1000)
    again, _ = src.gather(torch.tensor([2, 0]), out=buf)
    assert again.data_ptr() == buf.data_ptr()
    torch.testing.assert_close(again, got)
    bf = FrameSource.from_frames(frames[0], lengths, ["a", "b", "c"], dtype=torch.bfloat16)
    assert bf.gather(torch.tensor([1]))[0].dtype == torch.bfloat16


def test_a_cpu_without_the_bf16_fused_linear_falls_back_after_fp32_used_it(monkeypatch):
    # a CPU without bfloat16 instructions runs oneDNN's fused linear in float32 but cannot
    # create its bfloat16 primitive: bf16 training then takes addmm + relu, not a crash
    import emobox.training.fused as fused_mod

    def fake(frames, weight, bias, attr, scalars, algorithm):
        if frames.dtype == torch.bfloat16:
            raise RuntimeError("could not create a primitive descriptor for the inner product "
                               "forward propagation primitive")
        return torch.addmm(bias, frames, weight.t()).relu_()

    monkeypatch.setattr(torch.ops.mkldnn, "_linear_pointwise", fake)
    monkeypatch.setattr(fused_mod, "_ONEDNN", {})
    w, b = torch.randn(4, 6), torch.randn(4)
    x = torch.randn(5, 6)
    exact = fused_mod.linear_relu(x, w, b)
    low = fused_mod.linear_relu(x.bfloat16(), w.bfloat16(), b.bfloat16())
    assert fused_mod._ONEDNN == {torch.float32: True, torch.bfloat16: False}
    torch.testing.assert_close(low.float(), exact, atol=0.1, rtol=0.05)
