"""``emobox run``, ``emobox bench`` and ``emobox cross run`` take the shared flags with the same
spelling, short names and defaults."""

from __future__ import annotations

import typer.main

from emobox.cli import app

# flags every track has: what is extracted, how heads are trained, where things go
SHARED = ("--upstream", "--downstream", "--out", "--seed", "--device", "--layer",
          "--no-layer-norm", "--feature-norm", "--grad-clip", "--recipe", "--grid", "--epochs",
          "--warmup", "--batch-size", "--select", "--class-weights", "--train-precision",
          "--schedule", "--upstream-ckpt", "--upstream-option", "--corpus-option",
          "--on-bad-audio", "--precision", "--batch-seconds", "--runtime", "--features-dir",
          "--quiet")
# the partition of a corpus into folds: the cross-corpus track has none (each source trains on
# its whole training side and is tested on every corpus's balanced set)
FOLD_TRACKS_ONLY = ("--scheme", "--fold")


def _flags(command) -> dict[str, tuple[tuple[str, ...], object]]:
    """long flag -> (every spelling, default)."""
    out = {}
    for param in command.params:
        names = tuple(sorted(param.opts + param.secondary_opts))
        if names and names[0].startswith("-"):
            out[max(param.opts, key=len)] = (names, param.default)
    return out


def _tracks() -> dict[str, dict]:
    root = typer.main.get_command(app)
    return {"run": _flags(root.commands["run"]), "bench": _flags(root.commands["bench"]),
            "cross run": _flags(root.commands["cross"].commands["run"])}


def test_every_track_has_every_shared_flag():
    missing = {name: [f for f in SHARED if f not in flags] for name, flags in _tracks().items()}
    assert missing == {"run": [], "bench": [], "cross run": []}


def test_shared_flags_have_the_same_spellings_and_defaults():
    tracks = _tracks()
    for flag in SHARED:
        seen = {name: flags[flag] for name, flags in tracks.items()}
        assert len(set(map(repr, seen.values()))) == 1, (flag, seen)
    run = tracks["run"]
    assert run["--device"] == (("--device",), "auto")
    assert run["--epochs"] == (("--epochs",), 100) and run["--warmup"] == (("--warmup",), 10)
    assert run["--upstream-option"] == (("--upstream-option", "-U"), [])
    assert run["--corpus-option"] == (("--corpus-option", "-C"), [])


def test_fold_flags_are_the_same_in_run_and_bench_and_absent_from_cross():
    tracks = _tracks()
    for flag in FOLD_TRACKS_ONLY:
        assert tracks["run"][flag] == tracks["bench"][flag], flag
        assert flag not in tracks["cross run"], flag
    assert tracks["run"]["--scheme"][1] == "emobox"


def test_flag_defaults_are_the_options_model_s():
    """What a library user gets from the options model is what the command line gives."""
    from emobox.cli.options import DEFAULT
    from emobox.tracks.options import FoldOptions

    model = FoldOptions()
    assert {k: getattr(model, k) for k in vars(DEFAULT)} == vars(DEFAULT)
    flags = _tracks()["run"]
    for flag, name in (("--seed", "seed"), ("--device", "device"), ("--epochs", "epochs"),
                       ("--warmup", "warmup_epochs"), ("--batch-size", "batch_size"),
                       ("--select", "select"), ("--schedule", "schedule"),
                       ("--feature-norm", "feature_norm"), ("--grad-clip", "grad_clip"),
                       ("--recipe", "recipe"), ("--precision", "precision"),
                       ("--train-precision", "train_precision"), ("--layer", "layer"),
                       ("--on-bad-audio", "on_bad_audio"), ("--scheme", "scheme"),
                       ("--upstream-ckpt", "upstream_ckpt"), ("--class-weights",
                                                             "class_weights"),
                       ("--batch-seconds", "batch_seconds"), ("--runtime", "runtime"),
                       ("--features-dir", "features_dir")):
        assert flags[flag][1] == getattr(model, name), flag
    assert flags["--no-layer-norm"][1] is (not model.layer_norm)


def test_the_command_line_starts_without_torch():
    import subprocess
    import sys

    code = "import sys, emobox.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_run_takes_bench_s_upstream_option_syntax(cli, tmp_path):
    ok = cli("run", "-u", "fbank", "-c", "demo", "-f", "1", "--epochs", "1", "-q", "-U",
             "fbank:num_mel_bins=40", "-o", tmp_path / "r")
    assert ok.code == 0, ok
    import json

    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert config["upstream_options"] == {"num_mel_bins": 40}
    bad = cli("run", "-u", "fbank", "-c", "demo", "-q", "-U", "mfcc:num_ceps=20",
              "-o", tmp_path / "s")
    assert bad.code == 2, bad
    assert ("error: --upstream-option mfcc:num_ceps=...: the upstream of this run is fbank; "
            "give name=value or fbank:name=value") in bad.err
    assert not (tmp_path / "s").exists()


def test_bench_takes_run_s_upstream_option_syntax():
    from emobox.cli.bench_cmd import parse_upstream_options

    assert parse_upstream_options(["num_mel_bins=40", "mfcc:num_ceps=20"], ("fbank", "mfcc")) \
        == {"fbank": {"num_mel_bins": 40}, "mfcc": {"num_mel_bins": 40, "num_ceps": 20}}


def test_bench_no_layer_norm_reaches_its_runs(cli, tmp_path):
    import json

    out = tmp_path / "b"
    res = cli("bench", "-u", "fbank", "-c", "demo", "-f", "1", "--epochs", "1", "-q",
              "--device", "cpu", "--no-layer-norm", "-o", out)
    assert res.code == 0, res
    config = json.loads((out / "runs" / "fbank__demo__linear_probe" / "config.json").read_text())
    assert config["feature_norm"] == "none"


def test_bench_upstream_ckpt_reaches_the_upstream(cli, tmp_path):
    res = cli("bench", "-u", "fbank", "-c", "demo", "-f", "1", "--epochs", "1", "-q",
              "--device", "cpu", "--upstream-ckpt", tmp_path / "w.pt", "-o", tmp_path / "b")
    assert "failed: extract:fbank:demo: fbank has no weights; drop --upstream-ckpt" in res.err


def test_bench_upstream_ckpt_needs_one_upstream(cli, tmp_path):
    res = cli("bench", "-u", "fbank,mfcc", "-c", "demo", "--upstream-ckpt", tmp_path / "w.pt",
              "-o", tmp_path / "b")
    assert res.code == 2
    assert ("error: --upstream-ckpt is the checkpoint of one upstream; this bench has 2 "
            "(fbank, mfcc): run one bench per checkpoint") in res.err
    assert not (tmp_path / "b").exists()


def test_extract_and_the_features_it_makes_use_the_same_device_default_as_run():
    root = typer.main.get_command(app)
    extract = _flags(root.commands["extract"])
    assert extract["--device"] == _tracks()["run"]["--device"] == (("--device",), "auto")
