"""Options that cannot run are refused before any scan, extraction or config.json: one
``error:`` line naming the valid choices, exit 2, nothing written."""

from __future__ import annotations

import os
import warnings

import pytest

from emobox import CorpusSpec, EmoboxUsageError, UpstreamSpec

RUN = ("run", "-u", "fbank", "-c", "demo", "-d", "linear_probe", "--epochs", "1", "-q")


def _written(home, out) -> list[str]:
    """Everything under EMOBOX_HOME and the asked-for run folder."""
    found = [os.path.relpath(os.path.join(d, f), home)
             for d, _, files in os.walk(home) for f in files]
    return found + ([str(out)] if out.exists() else [])


def _refused(cli, home, tmp_path, *extra):
    out = tmp_path / "run"
    res = cli(*RUN, "-o", out, *extra)
    assert res.code == 2, res
    errors = [line for line in res.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, res
    assert "Traceback" not in res.err + res.out
    assert _written(home, out) == []  # no store, no run folder, no config.json
    return errors[0]


def test_bad_select_is_refused_naming_the_modes(cli, _isolated_home, tmp_path):
    line = _refused(cli, _isolated_home, tmp_path, "--select", "tset")
    assert line == "error: --select must be one of valid, test (got 'tset')"


def test_bad_schedule_is_refused_naming_the_schedules(cli, _isolated_home, tmp_path):
    line = _refused(cli, _isolated_home, tmp_path, "--schedule", "cosine")
    assert line == "error: --schedule must be one of linear, constant, paper (got 'cosine')"


def test_bad_train_precision_is_refused_naming_the_precisions(cli, _isolated_home, tmp_path):
    line = _refused(cli, _isolated_home, tmp_path, "--train-precision", "fp8")
    assert line == "error: --train-precision must be one of fp32, bf16 (got 'fp8')"


def test_unknown_upstream_option_names_the_declared_options(cli, _isolated_home, tmp_path):
    line = _refused(cli, _isolated_home, tmp_path, "-U", "foo=bar")
    assert line == ("error: --upstream-option foo: upstream 'fbank' has no option 'foo'; its "
                    "options: frame_length_ms, frame_shift_ms, high_freq, low_freq, "
                    "num_mel_bins, preemph")


def test_unknown_corpus_option_says_the_corpus_takes_none(cli, _isolated_home, tmp_path):
    line = _refused(cli, _isolated_home, tmp_path, "-C", "foo=bar")
    assert line == "error: --corpus-option foo: corpus 'demo' has no option 'foo'; it takes no options"


def test_unknown_grid_name_names_the_heads_hyper_parameters(cli, _isolated_home, tmp_path):
    line = _refused(cli, _isolated_home, tmp_path, "--grid", "hiden=64")
    assert line.startswith("error: --grid hiden: linear_probe has no hyper-parameter 'hiden'; "
                           "its hyper-parameters: hidden (")
    assert "lr (" in line and "weight_decay (" in line


def test_bench_refuses_an_unknown_upstream_option_before_planning(cli, _isolated_home, tmp_path):
    out = tmp_path / "bench"
    res = cli("bench", "-u", "fbank", "-c", "demo", "-o", out, "--epochs", "1", "-q",
              "-U", "fbank:foo=bar")
    assert res.code == 2, res
    assert ("error: --upstream-option foo: upstream 'fbank' has no option 'foo'; its options: "
            "frame_length_ms" in res.err)
    assert _written(_isolated_home, out) == []


def test_a_declared_option_is_accepted():
    from emobox.tracks.runner import check_plugin_options, declared_options
    from emobox.plugin.registry import get_registry

    fbank = get_registry().upstream("fbank")
    check_plugin_options(fbank, {"num_mel_bins": 40}, "upstream", "--upstream-option")
    assert "num_ceps" in declared_options(get_registry().upstream("mfcc"))


def test_options_of_a_build_without_kwargs_are_its_keywords():
    from emobox.tracks.runner import CORPUS_BUILD_ARGS, check_plugin_options

    def build(root=None, mode="a"):
        return None

    spec = CorpusSpec(name="toy", build=build)
    check_plugin_options(spec, {"mode": "b"}, "corpus", "--corpus-option", CORPUS_BUILD_ARGS)
    with pytest.raises(EmoboxUsageError, match=r"corpus 'toy' has no option 'root'; its "
                                               r"options: mode$"):
        check_plugin_options(spec, {"root": "x"}, "corpus", "--corpus-option",
                             CORPUS_BUILD_ARGS)


def test_an_undeclared_plugin_is_not_second_guessed():
    from emobox.tracks.runner import check_plugin_options, declared_options

    def build(ckpt=None, device="cpu", **options):
        return None

    spec = UpstreamSpec(name="opaque", build=build)
    assert declared_options(spec) is None
    check_plugin_options(spec, {"anything": 1}, "upstream", "--upstream-option")  # build decides


def test_fewer_epochs_than_warmup_warns_with_the_warmup_used():
    from emobox.tracks.runner import RunOptions, plan_triple, warmup_warning

    assert warmup_warning(10, 10) is None and warmup_warning(20, 10) is None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plan = plan_triple(RunOptions("fbank", "demo", "linear_probe", epochs=3))
    note = ("--epochs 3 is smaller than --warmup 10: the 10 warm-up epochs are used as given, "
            "so training ends at 3/10 of the peak learning rate (pass a --warmup below "
            "--epochs to reach it)")
    assert note in plan.notes
    assert note in [str(w.message) for w in caught]
    quiet = plan_triple(RunOptions("fbank", "demo", "linear_probe", epochs=3, warmup_epochs=2))
    assert not any("--warmup" in n for n in quiet.notes)


def test_bench_refuses_an_unknown_corpus_option_before_planning(cli, _isolated_home, tmp_path):
    out = tmp_path / "bench"
    res = cli("bench", "-u", "fbank", "-c", "demo", "-o", out, "-q", "-C", "foo=bar")
    assert res.code == 2, res
    assert ("error: --corpus-option foo: corpus 'demo' has no option 'foo'; it takes no "
            "options") in res.err
    res = cli("bench", "-u", "fbank", "-c", "demo", "-o", out, "-q", "-C", "emodb:foo=bar")
    assert res.code == 2, res
    assert ("error: --corpus-option for emodb, which is not among the corpora of this bench "
            "(demo)") in res.err
    assert _written(_isolated_home, out) == []


def test_bench_corpus_options_reach_only_their_corpus_s_runs():
    from pathlib import Path

    from emobox.tracks.bench import BenchOptions

    opts = BenchOptions(upstreams=("fbank",), corpus_options={"folder": {"labels": "x.csv"}})
    run = opts.run_options("fbank", "folder", "linear_probe", None, Path("/o"), "/f")
    assert run.corpus_options == {"labels": "x.csv"}
    other = opts.run_options("fbank", "demo", "linear_probe", None, Path("/o"), "/f")
    assert other.corpus_options == {}
    assert opts.training_options()["corpus_options"] == {"folder": {"labels": "x.csv"}}


def test_cross_refuses_an_unknown_upstream_option_before_scanning(cli, _isolated_home, tmp_path):
    out = tmp_path / "cross"
    res = cli("cross", "run", "-u", "fbank", "-U", "foo=bar", "-q", "--out", out)
    assert res.code == 2, res
    assert ("error: --upstream-option foo: upstream 'fbank' has no option 'foo'; its options: "
            "frame_length_ms") in res.err
    assert _written(_isolated_home, out) == []


def test_cross_notes_fewer_epochs_than_warmup(tmp_path):
    from cross_support import write_tree

    from emobox.tracks.cross import CrossOptions, plan_cross

    roots = {name: str(write_tree(tmp_path, name, extra=0, tones=False))
             for name in ("ravdess", "savee")}
    plan = plan_cross(CrossOptions(upstream="fbank", corpora=("ravdess", "savee"),
                                   root_map=roots, epochs=4, warmup_epochs=5))
    assert ("--epochs 4 is smaller than --warmup 5: the 5 warm-up epochs are used as given, so "
            "training ends at 4/5 of the peak learning rate (pass a --warmup below --epochs to "
            "reach it)") in plan.notes


def test_extract_refuses_unknown_options_before_scanning(cli, _isolated_home):
    res = cli("extract", "-u", "fbank", "-c", "demo", "-q", "-U", "foo=bar")
    assert res.code == 2, res
    assert "error: --upstream-option foo: upstream 'fbank' has no option 'foo'" in res.err
    res = cli("extract", "-u", "fbank", "-c", "demo", "-q", "-C", "foo=bar")
    assert res.code == 2, res
    assert ("error: --corpus-option foo: corpus 'demo' has no option 'foo'; it takes no "
            "options") in res.err
    assert _written(_isolated_home, _isolated_home / "none") == []


TRACKS = {"run": ("run", "-u", "fbank", "-c", "demo"),
          "bench": ("bench", "-u", "fbank", "-c", "demo"),
          "cross run": ("cross", "run", "-u", "fbank", "-c", "ravdess,savee")}
REFUSED = [(("--select", "tset"), "error: --select must be one of valid, test (got 'tset')"),
           (("--precision", "fp8"), "error: --precision must be one of fp32, bf16, fp16 "
                                    "(got 'fp8')"),
           (("--on-bad-audio", "ignore"), "error: --on-bad-audio must be one of fail, skip "
                                          "(got 'ignore')"),
           (("--epochs", "0"), "error: --epochs must be at least 1, got 0"),
           (("-U", "foo=bar"), "error: --upstream-option foo: upstream 'fbank' has no option "
                               "'foo'; its options: frame_length_ms, frame_shift_ms, "
                               "high_freq, low_freq, num_mel_bins, preemph"),
           (("--grid", "hiden=64"), "error: --grid hiden: linear_probe has no hyper-parameter "
                                    "'hiden'; its hyper-parameters: hidden (")]


@pytest.mark.parametrize("track", sorted(TRACKS))
@pytest.mark.parametrize("extra, message", REFUSED, ids=[r[0][0] for r in REFUSED])
def test_every_track_refuses_the_same_bad_option_before_any_work(cli, _isolated_home, tmp_path,
                                                                 track, extra, message):
    out = tmp_path / "out"
    res = cli(*TRACKS[track], "--epochs", "1", "-q", "-o", out, *extra)
    assert res.code == 2, res
    errors = [line for line in res.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(message), res
    assert "Traceback" not in res.err + res.out
    assert _written(_isolated_home, out) == []


def test_cross_corpus_options_are_checked_against_each_corpus(cli, _isolated_home, tmp_path):
    out = tmp_path / "cross"
    res = cli("cross", "run", "-u", "fbank", "-c", "ravdess,savee", "-C", "savee:foo=1", "-q",
              "-o", out)
    assert res.code == 2, res
    assert "error: --corpus-option foo: corpus 'savee' has no option 'foo'" in res.err
    stray = cli("cross", "run", "-u", "fbank", "-c", "ravdess,savee", "-C", "meld:foo=1", "-q",
                "-o", out)
    assert stray.code == 2, stray
    assert ("error: --corpus-option for meld, which is not among the track's corpora "
            "(ravdess, savee)") in stray.err
    assert _written(_isolated_home, out) == []


def test_cross_corpus_options_reach_each_corpus_s_run_options():
    from emobox.tracks.cross import CrossOptions

    opts = CrossOptions(upstream="fbank", corpora=("ravdess", "savee"),
                        corpus_options={"savee": {"x": 1}})
    assert opts.run_options("savee").corpus_options == {"x": 1}
    assert opts.run_options("ravdess").corpus_options == {}
