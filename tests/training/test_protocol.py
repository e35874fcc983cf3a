"""The training protocol against EmoBox's code: feature normalisation, gradient clipping, the
learning-rate schedule and ``--recipe paper``."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from emobox.training.downstream import segment_ids
from emobox.errors import EmoboxUsageError
from emobox.extraction.extract import FrameSource, normalise_frames
from emobox.io import read_jsonl
from emobox.plugin.registry import get_registry
from emobox.reporting.results import feature_norm_of
from emobox.tracks.runner import RunOptions
from emobox.training.sweep import Split, TrainConfig, clip_per_config, expand_grid, lr_at, train_sweep
from corpus_writers import write_fixture


# -- feature normalisation ------------------------------------------------------------------------

def test_utterance_normalisation_of_a_two_by_two_utterance_by_hand():
    # utterance a: frames [1, 2] and [3, 4]: mean 2.5, variance (2.25 + .25 + .25 + 2.25) / 4
    # = 1.25 over all four values; utterance b (one frame [10, 30]): mean 20, variance 100
    frames = torch.tensor([[1.0, 2.0], [3.0, 4.0], [10.0, 30.0]])
    got = normalise_frames(frames, torch.tensor([2, 1]), "utterance")
    sa, sb = math.sqrt(1.25 + 1e-5), math.sqrt(100 + 1e-5)
    want = torch.tensor([[-1.5 / sa, -0.5 / sa], [0.5 / sa, 1.5 / sa], [-10 / sb, 10 / sb]])
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    assert got[0, 0].item() == pytest.approx(-1.341635, abs=1e-6)
    # per frame, each frame alone: [-1, 1] for every frame (what emobox did before)
    per_frame = normalise_frames(frames, torch.tensor([2, 1]), "frame")
    torch.testing.assert_close(per_frame, torch.tensor([[-1.0, 1.0]] * 3), rtol=0, atol=1e-4)
    torch.testing.assert_close(normalise_frames(frames, torch.tensor([2, 1]), "none"), frames)
    assert frames[0, 0].item() == 1.0  # the caller's frames are left alone


def test_utterance_normalisation_is_emobox_layer_norm_over_each_utterance():
    g = torch.Generator().manual_seed(0)
    lengths = [3, 5, 1, 7]
    frames = torch.randn(2, sum(lengths), 6, generator=g) * 3 + 2  # two layers
    got = normalise_frames(frames, torch.tensor(lengths), "utterance")
    start = 0
    for n in lengths:
        for layer in range(2):  # EmoBox's all_layers: each layer over its own [T, D]
            utt = frames[layer, start:start + n][None]  # [1, T, D]
            want = torch.nn.functional.layer_norm(utt, utt.shape[1:])[0]
            torch.testing.assert_close(got[layer, start:start + n], want, rtol=0, atol=1e-5)
        start += n


def test_a_one_dimensional_feature_survives_utterance_normalisation_only():
    energy = torch.tensor([[0.1], [0.4], [0.2], [5.0], [1.0]])
    lengths = torch.tensor([3, 2])
    assert torch.count_nonzero(normalise_frames(energy, lengths, "frame")) == 0
    utt = normalise_frames(energy, lengths, "utterance")
    assert torch.count_nonzero(utt) == 5
    torch.testing.assert_close(utt[:3].mean(), torch.tensor(0.0), rtol=0, atol=1e-6)
    torch.testing.assert_close(utt[3:].squeeze(), torch.tensor([1.0, -1.0]), rtol=0, atol=1e-5)


class FakeStore:
    """What FrameSource reads from a feature store: the index, dimensions and raw fp16 rows."""

    path = "fake-store"

    def __init__(self, per_key: dict[str, np.ndarray]):
        self.keys = list(per_key)
        self.lengths = np.array([len(v) for v in per_key.values()], dtype=np.int64)
        self.offsets = np.cumsum(self.lengths) - self.lengths
        self.rows = np.concatenate(list(per_key.values())).astype(np.float16)

    def index(self):
        return self.keys, self.offsets, self.lengths

    def dim(self, layer):
        return self.rows.shape[1]

    def layer(self, layer):
        return self.rows

    def check_for_training(self, layers):
        pass  # no files to check


@pytest.mark.parametrize("memory_limit", [4 << 30, 0])  # held in memory, or read per batch
def test_frame_source_normalises_each_utterance_by_default(memory_limit):
    rng = np.random.default_rng(0)
    per_key = {k: rng.normal(3, 2, size=(n, 4)) for k, n in (("a", 2), ("b", 5), ("c", 3))}
    store = FakeStore(per_key)
    src = FrameSource(store, 0, ["c", "a"], memory_limit=memory_limit)
    assert src.norm == "utterance"
    frames, lengths = src.gather(torch.tensor([1, 0]))  # a, then c
    assert lengths.tolist() == [2, 3]
    for got, key in ((frames[:2], "a"), (frames[2:], "c")):
        x = torch.from_numpy(per_key[key].astype(np.float16).astype(np.float32))
        want = torch.nn.functional.layer_norm(x[None], x.shape)[0]
        torch.testing.assert_close(got, want, rtol=0, atol=1e-5)


def test_run_options_spell_the_old_layer_norm_flag_as_none():
    base = dict(upstream="fbank", corpus="demo", downstream="linear_probe")
    assert RunOptions(**base).feature_norm == "utterance"
    old = RunOptions(**base, layer_norm=False)
    assert (old.feature_norm, old.layer_norm) == ("none", False)
    assert RunOptions(**base, feature_norm="frame").layer_norm is True
    with pytest.raises(EmoboxUsageError, match="--feature-norm 'layer'"):
        RunOptions(**base, feature_norm="layer")
    with pytest.raises(EmoboxUsageError, match="contradicts --feature-norm frame"):
        RunOptions(**base, feature_norm="frame", layer_norm=False)
    # a config.json or row written before feature_norm existed still says what it did
    assert feature_norm_of({"layer_norm": True}) == "frame"
    assert feature_norm_of({"layer_norm": False}) == "none"
    assert feature_norm_of({"layer_norm": True, "feature_norm": "utterance"}) == "utterance"


# -- gradient clipping ----------------------------------------------------------------------------

def _fused_linear_probes(hidden=(4, 8)):
    spec = get_registry().downstream("linear_probe")
    heads = []
    for i, h in enumerate(hidden):
        torch.manual_seed(i)
        heads.append(spec.build(6, 3, hidden=h))
    return heads, type(heads[0]).fuse(heads)


def test_clipping_scales_each_configuration_by_its_own_norm_in_the_fused_trainer():
    heads, fused = _fused_linear_probes()
    # the configurations' first layers are views of one shared tensor
    assert heads[0].proj.weight.data_ptr() != heads[1].proj.weight.data_ptr()
    assert fused.first.weight.data_ptr() == heads[0].proj.weight.data_ptr()
    g = torch.Generator().manual_seed(1)
    lengths = torch.tensor([3, 4])
    frames = torch.randn(7, 6, generator=g) * 50
    logits = fused.forward_packed(frames, segment_ids(lengths), lengths)  # [K, B, C]
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 3), torch.tensor([0, 2] * 2),
                                             reduction="none").reshape(2, 2).mean(1)
    (1e4 * loss[0] + 1e-4 * loss[1]).backward()  # configuration 0: a huge gradient
    params = [list(h.parameters()) for h in heads]
    before = [[p.grad.clone() for p in ps] for ps in params]
    norms = [torch.linalg.vector_norm(torch.stack([g.norm() for g in gs])).item()
             for gs in before]
    assert norms[0] > 100 and norms[1] < 5
    flags = clip_per_config(params, 5.0)
    assert flags.tolist() == [1, 0]
    factor = 5.0 / (norms[0] + 1e-6)
    for p, g0 in zip(params[0], before[0]):
        torch.testing.assert_close(p.grad, g0 * factor)
    after = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params[0]])).item()
    assert after == pytest.approx(5.0, rel=1e-5)
    for p, g1 in zip(params[1], before[1]):  # the other configuration's gradient is untouched
        assert torch.equal(p.grad, g1)


class _StepSpy:
    """Records the gradient norm of every parameter group each time the optimiser steps."""

    def __init__(self, monkeypatch):
        import emobox.training.sweep as sweep

        self.norms: list[list[float]] = []
        self.grads: list[list[torch.Tensor]] = []
        real = sweep._adam

        def spy(groups, device):
            opt = real(groups, device)
            step = opt.step

            def recording_step(*args, **kwargs):
                self.norms.append([torch.linalg.vector_norm(torch.stack(
                    [p.grad.norm() for p in grp["params"]])).item() for grp in opt.param_groups])
                self.grads.append([p.grad.clone() for grp in opt.param_groups
                                   for p in grp["params"]])
                return step(*args, **kwargs)

            opt.step = recording_step
            return opt

        monkeypatch.setattr(sweep, "_adam", spy)


class _Source:
    def __init__(self, items):
        self.items = items
        self.lengths = torch.tensor([len(f) for f in items])

    def __len__(self):
        return len(self.items)

    def gather(self, idx):
        return torch.cat([self.items[int(i)] for i in idx]), self.lengths[idx]


def _split(n, seed, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 3
    items = [torch.randn(int(torch.randint(2, 6, (1,), generator=g)), 6, generator=g) * scale
             for _ in range(n)]
    return Split(_Source(items), labels, [f"u{i}" for i in range(n)])


def _sweep(configs, grad_clip, spy_patch, scale=300.0, epochs=1):
    spec = get_registry().downstream("linear_probe")
    spy = _StepSpy(spy_patch)
    cfg = TrainConfig(epochs=epochs, warmup_epochs=0, batch_size=8, grad_clip=grad_clip)
    res = train_sweep(spec, configs, 6, 3, _split(8, 1, scale), _split(6, 2), _split(6, 3), cfg)
    return spy, res


def test_the_trainer_hands_adam_the_clipped_gradient(monkeypatch):
    configs = expand_grid({"lr": [1e-3], "hidden": [16]})
    free, _ = _sweep(configs, 0.0, monkeypatch)
    clipped, res = _sweep(configs, 5.0, monkeypatch)
    norm = free.norms[0][0]
    assert norm > 50  # the crafted batch: frames scaled by 300
    assert clipped.norms[0][0] == pytest.approx(5.0, rel=1e-5)
    factor = 5.0 / (norm + 1e-6)
    for g_clip, g_free in zip(clipped.grads[0], free.grads[0]):
        torch.testing.assert_close(g_clip, g_free * factor)
    assert res.configs[0].history[0]["clipped_steps"] == 1


def test_one_configurations_huge_gradient_leaves_anothers_alone(monkeypatch):
    # a head whose gain multiplies its logits: gain 1000 gives a huge gradient, gain 1 a small
    # one; the two train together on the same batch
    from emobox.plugin.specs import DownstreamSpec

    base = get_registry().downstream("linear_probe")

    def build(in_dim, n_classes, gain=1.0, hidden=8):
        head = base.build(in_dim, n_classes, hidden=hidden)
        head.out.weight.data.mul_(gain)
        head.out.bias.data.mul_(gain)
        return head

    spec = DownstreamSpec(name="gained", build=build, grid={"gain": [1.0]})
    configs = expand_grid({"lr": [1e-3], "gain": [1000.0, 1.0]})
    runs = {}
    for clip in (0.0, 5.0):
        spy = _StepSpy(monkeypatch)
        cfg = TrainConfig(epochs=1, warmup_epochs=0, batch_size=8, grad_clip=clip)
        train_sweep(spec, configs, 6, 3, _split(8, 1, 1.0), _split(6, 2), _split(6, 3), cfg)
        runs[clip] = spy.norms[0]
    assert runs[0.0][0] > 50 and runs[0.0][1] < 5
    assert runs[5.0][0] == pytest.approx(5.0, rel=1e-5)
    assert runs[5.0][1] == runs[0.0][1]  # bit for bit: not shrunk by its neighbour's norm


def test_grad_clip_must_be_a_norm():
    with pytest.raises(EmoboxUsageError, match="--grad-clip"):
        TrainConfig(grad_clip=-1)
    with pytest.raises(EmoboxUsageError, match="--grad-clip"):
        RunOptions(upstream="fbank", corpus="demo", downstream="linear_probe",
                   grad_clip=float("nan"))
    assert TrainConfig().grad_clip == 5.0


# -- the options reach every output ---------------------------------------------------------------

def test_feature_norm_and_grad_clip_are_recorded_in_rows_config_and_summary(tmp_path, cli):
    out = tmp_path / "run"
    res = cli("run", "-u", "fbank", "-c", "demo", "-d", "linear_probe", "-q", "--out", out,
              "--fold", "1", "--epochs", "2", "--grid", "lr=1e-3 hidden=8",
              "--feature-norm", "frame", "--grad-clip", "2.5")
    assert res.code == 0, res
    config = json.loads((out / "config.json").read_text())
    assert (config["feature_norm"], config["grad_clip"], config["recipe"]) == ("frame", 2.5,
                                                                                "emobox")
    rows = read_jsonl(out / "results.jsonl")
    assert {(r["feature_norm"], r["grad_clip"], r["recipe"]) for r in rows} == {
        ("frame", 2.5, "emobox")}
    summary = (out / "summary.md").read_text()
    assert "normalised per frame" in summary and "clipped at 2.5" in summary
    old_flag = cli("run", "-u", "fbank", "-c", "demo", "-d", "linear_probe", "-q", "--out",
                   tmp_path / "raw", "--fold", "1", "--epochs", "1", "--grid",
                   "lr=1e-3 hidden=8", "--no-layer-norm", "--grad-clip", "0")
    assert old_flag.code == 0, old_flag
    raw = read_jsonl(tmp_path / "raw" / "results.jsonl")[0]
    assert (raw["feature_norm"], raw["layer_norm"], raw["grad_clip"]) == ("none", False, 0.0)
    assert "not clipped" in (tmp_path / "raw" / "summary.md").read_text()


# -- --recipe paper: EmoBox's code, bugs included -------------------------------------------------

class SpeechBrainLinearWarmup:
    """SpeechBrain 0.5.16's ``LinearWarmupScheduler`` as its code reads."""

    def __init__(self, initial_value, num_warmup_steps, num_training_steps):
        self.lr0, self.warm, self.total, self.current_step = (initial_value, num_warmup_steps,
                                                              num_training_steps, 0)

    def get_next_value(self):
        s = self.current_step
        if s < self.warm:
            value = float(s) / float(max(1, self.warm)) * self.lr0
        else:
            value = self.lr0 * max(0.0, float(self.total - s) / float(max(1, self.total -
                                                                            self.warm)))
        self.current_step += 1
        return value


def emobox_script_lrs(peak, warmup, epochs):
    """The learning rate of each epoch of EmoBox's train.py: Adam is made with lr=peak and
    on_stage_end(VALID) sets lr_annealing.get_next_value() for the next epoch."""
    sched, lr, out = SpeechBrainLinearWarmup(peak, warmup, epochs), peak, []
    for _ in range(epochs):
        out.append(lr)
        lr = sched.get_next_value()
    return out


def test_paper_schedule_is_emobox_s_scheduler_stepped_after_validation():
    peak = 1e-3
    script = emobox_script_lrs(peak, 10, 100)
    ours = [lr_at(e, peak, 10, 100, "paper") for e in range(100)]
    assert ours == pytest.approx(script, abs=1e-15)
    # epoch 1 at the peak, epoch 2 at 0, then the warm-up: 0.1, 0.2, ... the peak at epoch 12
    assert ours[:4] == pytest.approx([1e-3, 0.0, 1e-4, 2e-4], abs=1e-15)
    assert ours[11] == pytest.approx(1e-3) and ours[12] == pytest.approx(1e-3 * 89 / 90)
    assert ours[99] == pytest.approx(1e-3 * 2 / 90)
    # emobox's own schedule starts the warm-up at epoch 1 and never runs an epoch at 0
    assert [lr_at(e, peak, 10, 100) for e in range(3)] == pytest.approx([1e-4, 2e-4, 3e-4])


def test_the_second_epoch_of_the_paper_schedule_leaves_the_model_unchanged():
    spec = get_registry().downstream("linear_probe")
    configs = expand_grid({"lr": [1e-2], "hidden": [8]})
    cfg = TrainConfig(epochs=3, warmup_epochs=2, batch_size=4, schedule="paper", seed=0)
    res = train_sweep(spec, configs, 6, 3, _split(12, 1), _split(9, 2), _split(9, 3), cfg)
    h = res.configs[0].history
    assert [e["lr"] for e in h] == [1e-2, 0.0, 5e-3]
    assert (h[1]["valid_loss"], h[1]["valid_ua"]) == (h[0]["valid_loss"], h[0]["valid_ua"])
    assert h[2]["valid_loss"] != h[1]["valid_loss"]


def test_random_split_is_emobox_s_split_sets():
    import random

    keys = [f"k{i:02d}" for i in range(23)]
    # dataset_prepare.py: random.seed(seed); sample_idx = np.arange(n); random.shuffle(...);
    # the first int(n * 0.8) train, the rest validate
    random.seed(1234)
    idx = np.arange(len(keys))
    random.shuffle(idx)
    n_train = int(len(keys) * 0.8)
    from emobox.datasets.splits import random_split

    train, valid = random_split(keys, 1234)
    assert set(train) == {keys[i] for i in idx[:n_train]}
    assert set(valid) == {keys[i] for i in idx[n_train:]} and len(valid) == 5
    assert train == sorted(train)  # kept in the given order


def test_paper_recipe_on_emobox_folds_validates_on_a_random_20_percent(tmp_path):
    from emobox.corpora._emobox import reference_rows
    from emobox.corpora.emodb import EmoDB
    from emobox.tracks.runner import plan_triple

    write_fixture(EmoDB, tmp_path, reference_rows("emodb"))
    base = dict(upstream="fbank", corpus="emodb", downstream="linear_probe", root=str(tmp_path))
    ours = plan_triple(RunOptions(**base)).all_folds
    paper = plan_triple(RunOptions(**base, recipe="paper")).all_folds
    labels = {u.key: u.label for u in EmoDB(tmp_path).manifest}
    for mine, theirs in zip(ours, paper):
        assert (mine.valid_rule, theirs.valid_rule) == ("stratified-20%", "random-20%")
        assert theirs.test == mine.test
        side = set(mine.train) | set(mine.valid)
        assert set(theirs.train) | set(theirs.valid) == side
        assert len(theirs.valid) == len(side) - int(len(side) * 0.8)
    # random, not stratified: some fold's validation misses a class's 20% by more than one
    misses = []
    for f in paper:
        side = f.train + f.valid
        for c in set(labels.values()):
            want = 0.2 * sum(labels[k] == c for k in side)
            misses.append(abs(sum(labels[k] == c for k in f.valid) - want))
    assert max(misses) > 1.5


def test_paper_recipe_drops_utterances_over_30_s_and_is_marked_everywhere(tmp_path, cli):
    from emobox.reporting.submission import pack
    from emobox.testing import write_audio, write_folder_corpus

    root = tmp_path / "data"
    write_folder_corpus(root, speakers=4, per_speaker=3)
    write_audio(root / "angry" / "s1_long.wav", seconds=30.5, freq=300.0)
    write_audio(root / "sad" / "s1_just30.wav", seconds=30.0, freq=300.0)
    out = tmp_path / "run"
    args = ("run", "-u", "fbank", "-c", "folder", "--root", root, "-d", "linear_probe", "-q",
            "--fold", "1", "--epochs", "3", "--warmup", "1", "--grid", "lr=1e-3 hidden=8")
    res = cli(*args, "--recipe", "paper", "--out", out)
    assert res.code == 0, res
    assert "--recipe paper: SELECTED BY" in res.out
    assert "1 utterances over 30 s dropped from train, valid and test" in " ".join(res.err.split())
    skipped = (out / "skipped.tsv").read_text().splitlines()
    long_key = next(line.split("\t")[1] for line in skipped if "s1_long" in line)
    assert any(line.startswith(f"recipe\t{long_key}\tangry/s1_long.wav\t30.50 s is over 30 s")
               for line in skipped)
    assert not any("just30" in line for line in skipped)  # EmoBox: dur > 30 is skipped
    config = json.loads((out / "config.json").read_text())
    assert (config["recipe"], config["select"], config["selected_by_test"],
            config["schedule"]) == ("paper", "test", True, "paper")
    rows = read_jsonl(out / "results.jsonl")
    assert {(r["recipe"], r["selection"], r["schedule"]) for r in rows} == {
        ("paper", "test", "paper")}
    assert (out / "summary.md").read_text().startswith(
        "# fbank x folder x linear_probe\n\n**EMOBOX'S CODE, BUGS INCLUDED (--recipe paper)")
    ours = tmp_path / "ours"
    assert cli(*args, "--out", ours).code == 0
    mine = read_jsonl(ours / "results.jsonl")[0]
    # the long utterance is in the first fold's train side, test or validation: gone from it
    assert (mine["n_train"] + mine["n_valid"] + mine["n_test"]
            == rows[0]["n_train"] + rows[0]["n_valid"] + rows[0]["n_test"] + 1)
    packed = pack([out], tmp_path / "sub.zip")
    meta = packed.metadata
    assert packed.notes == [
        f"{out / 'predictions' / 'fold1.tsv'}: missing 1 of {mine['n_test']} test keys of fold "
        f"1, e.g. {long_key!r}: the run left them out (skipped audio, or --recipe paper's "
        f"utterances over 30 s); `emobox submit validate` refuses a submission without every "
        f"test key"]
    assert meta["corpora"]["folder"]["recipe"] == "paper"
    assert meta["corpora"]["folder"]["select"] == "test"


def test_paper_recipe_contradicting_options_are_refused():
    with pytest.raises(EmoboxUsageError, match="drop --schedule constant"):
        RunOptions(upstream="fbank", corpus="demo", downstream="linear_probe", recipe="paper",
                   schedule="constant")
    with pytest.raises(EmoboxUsageError, match="--recipe 'code'"):
        RunOptions(upstream="fbank", corpus="demo", downstream="linear_probe", recipe="code")


# -- the README's minimal plugin ------------------------------------------------------------------

def _readme_plugin_module():
    """The README's "A complete minimal package", as written there: its pyproject's entry point
    and its module, executed as that module."""
    import re
    import types
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("### A complete minimal package", 1)[1].split("\n### ", 1)[0]
    (toml_text,) = re.findall(r"```toml\n(.*?)```", section, re.S)
    (code,) = re.findall(r"```python\n(.*?)```", section, re.S)
    group = toml_text.split("[project.entry-points.emobox]", 1)[1]
    (module_name,) = re.findall(r'^\w+ = "(\w+)"$', group, re.M)
    assert code.startswith(f"# {module_name}.py\n")
    module = types.ModuleType(module_name)
    exec(compile(code, f"README.md ({module_name}.py)", "exec"), module.__dict__)
    return module


def test_the_readme_s_one_dimensional_plugin_learns_the_demo(tmp_path):
    from emobox.tracks.runner import run
    from emobox.testing import registry_with

    registry = registry_with(_readme_plugin_module())
    result = run(RunOptions(upstream="energy", corpus="demo", downstream="linear_probe",
                            out=str(tmp_path / "run")), registry=registry)
    assert result.config["feature_norm"] == "utterance"
    ua, _ = result.mean("ua")
    assert ua >= 0.45, ua  # chance is 0.25 (four balanced classes); per-frame: exactly 0.25
