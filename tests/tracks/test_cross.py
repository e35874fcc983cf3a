"""The cross-corpus track: the average-accuracy formula, `emobox cross run` end to end on fixture
trees of the four EmoBox corpora, `emobox cross build`, and their errors."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import pytest

from cross_support import write_tree
from emobox import DataError
from emobox.tracks.cross import (CrossOptions, column_averages, cross_average, plan_cross,
                          row_averages)
from emobox.reporting.cross_report import paper_matrix
from emobox.io import read_jsonl
from emobox.training.metrics import scores
from emobox.reporting.paper import CROSS_CORPORA, paper_tables
from emobox.plugin.registry import Registry

CLASSES = ["Angry", "Happy", "Neutral", "Sad"]

# rows = training corpus, columns = test corpus; the diagonal never counts
HAND = [[0.99, 0.50, 0.30, 0.20],
        [0.40, 0.88, 0.60, 0.10],
        [0.30, 0.20, 0.77, 0.50],
        [0.60, 0.40, 0.20, 0.66]]


def test_average_accuracy_is_the_mean_off_diagonal_entry():
    # (0.5+0.3+0.2 + 0.4+0.6+0.1 + 0.3+0.2+0.5 + 0.6+0.4+0.2) / (4*4 - 4) = 4.3 / 12
    assert cross_average(HAND) == pytest.approx(4.3 / 12)
    changed = [row[:] for row in HAND]
    for i in range(4):
        changed[i][i] = None  # the diagonal does not enter the formula
    assert cross_average(changed) == pytest.approx(4.3 / 12)
    assert row_averages(HAND) == pytest.approx([1.0 / 3, 1.1 / 3, 1.0 / 3, 1.2 / 3])
    assert column_averages(HAND) == pytest.approx([1.3 / 3, 1.1 / 3, 1.1 / 3, 0.8 / 3])
    assert cross_average([[None, 0.2], [0.6, None]]) == pytest.approx(0.4)
    missing = [row[:] for row in HAND]
    missing[0][1] = None
    assert cross_average(missing) is None and row_averages(missing)[0] is None
    with pytest.raises(ValueError, match="square"):
        cross_average([[0.1, 0.2]])


def test_formula_reproduces_the_paper_s_figure1_from_table5():
    figure1 = paper_tables()["figure1"]["values"]
    assert len(figure1) == 10
    for model, entry in figure1.items():
        matrix = paper_matrix(model, CROSS_CORPORA)
        assert round(cross_average(matrix), 4) == pytest.approx(entry["avg_acc"], abs=1e-4)
    # Table 5 as the paper prints it: train IEMOCAP, test MELD for wav2vec 2.0 base
    m = paper_matrix("wav2vec2_base", ["savee", "iemocap", "meld"])
    assert m[1][2] == 29.78 and m[2][1] == 22.5 and m[0][0] is None
    assert paper_matrix("fbank", CROSS_CORPORA) is None


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    """Fixture trees of the four corpora: each balanced set plus 40 other utterances (seeded),
    every file a tone coding its class."""
    root = tmp_path_factory.mktemp("cross-trees")
    return {name: write_tree(root, name, extra=40) for name in CROSS_CORPORA}


def _root_map(trees) -> list[str]:
    out = []
    for name, tree in trees.items():
        out += ["--root-map", f"{name}={tree}"]
    return out


def _tsv(path: Path) -> list[dict]:
    return list(csv.DictReader(io.StringIO(path.read_text()), delimiter="\t"))


def test_cross_run_end_to_end_on_fixtures(trees, tmp_path, cli):
    out = tmp_path / "cross"
    args = ["cross", "run", "-u", "fbank", "-d", "linear_probe", *_root_map(trees),
            "--epochs", "6", "--warmup", "1", "--grid", "lr=1e-2 hidden=16,32", "-q",
            "--out", out]
    res = cli(*args)
    assert res.code == 0, res
    assert "cross-corpus accuracy %" in res.out and "savee" in res.out

    rows = read_jsonl(out / "results.jsonl")
    assert len(rows) == 4 * 2 * 4  # sources x configurations x targets
    assert all(r["kind"] == "emobox.cross_result" and r["selection"] == "valid" for r in rows)
    config = json.loads((out / "config.json").read_text())
    assert sorted(config["engine"]) == sorted(CROSS_CORPORA)  # each corpus's store's engine
    for r in rows:  # the engine that made the source corpus's training features
        assert r["engine"] == config["engine"][r["source"]]
        assert (r["engine"]["precision"], r["engine"]["device"]) == ("fp32", "cpu")
    selected = {(r["source"], r["target"]): r for r in rows if r["selected"]}
    assert len(selected) == 16
    for s in CROSS_CORPORA:  # one configuration is selected per source, for every target
        assert len({selected[(s, t)]["config_id"] for t in CROSS_CORPORA}) == 1

    matrix = {(r["source"], r["target"]): r for r in _tsv(out / "matrix.tsv")}
    assert len(matrix) == 16
    for (s, t), cell in selected.items():
        # the test set of the target, every key once, with the set's labels
        pred = _tsv(out / "predictions" / f"{s}__{t}.tsv")
        test_set = {r["key"]: r["label"] for r in _tsv(out / "test_sets" / f"{t}.tsv")}
        assert len(pred) == cell["n_test"] == 240
        assert {p["key"]: p["gold"] for p in pred} == test_set
        y = [CLASSES.index(p["gold"]) for p in pred]
        p_ = [CLASSES.index(p["predicted"]) for p in pred]
        recomputed = scores(y, p_, 4)
        assert cell["wa"] == pytest.approx(recomputed["wa"])
        assert cell["ua"] == pytest.approx(recomputed["ua"])
        assert cell["ua"] == pytest.approx(cell["wa"])  # balanced: UA = accuracy
        assert float(matrix[(s, t)]["accuracy"]) == pytest.approx(100 * cell["wa"], abs=0.006)
        assert matrix[(s, t)]["in_average"] == str(s != t).lower()
        assert cell["n_train"] + cell["n_valid"] > 0

    acc = [[selected[(s, t)]["wa"] for t in CROSS_CORPORA] for s in CROSS_CORPORA]
    data = json.loads((out / "matrix.json").read_text())
    assert data["corpora"] == list(CROSS_CORPORA)
    assert data["metrics"]["accuracy"]["matrix"] == acc
    assert data["metrics"]["accuracy"]["average"] == pytest.approx(cross_average(acc))
    summary = (out / "summary.md").read_text()
    assert f"**{100 * cross_average(acc):.2f}%**" in summary
    assert "Table 5 has no row for fbank" in summary
    assert "| Happy | exc, hap | joy | Happy | h |" in summary  # the harmonisation, as used
    assert (out / "heatmap.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the classes are coded in the audio: IEMOCAP's model carries over to the other corpora
    assert min(acc[0][1:]) >= 0.75, acc
    assert not any(math.isnan(v) for row in acc for v in row)

    config = json.loads((out / "config.json").read_text())
    assert config["splits"]["iemocap"]["test"] == 240
    assert set(config["test_sets"]) == set(CROSS_CORPORA)

    # the same command resumes: every source is finished, nothing is trained again
    before = (out / "results.jsonl").read_text()
    res = cli(*args)
    assert res.code == 0, res
    assert (out / "results.jsonl").read_text() == before
    # other options in the same folder are refused, not mixed
    res = cli(*[a if a != "6" else "7" for a in args])
    assert res.code == 2 and "holds a cross-corpus run made with other options" in res.err


def test_a_missing_test_utterance_is_named(tmp_path):
    ravdess = write_tree(tmp_path, "ravdess", extra=0, tones=False)
    savee = write_tree(tmp_path, "savee", extra=0, drop=["savee-JK-sa09"], tones=False)
    with pytest.raises(DataError, match=r"savee: 1 of the 240 utterances of its balanced test "
                                        r"set are not in the corpus scanned at .*savee-JK-sa09"):
        plan_cross(CrossOptions(upstream="fbank", corpora=("ravdess", "savee"),
                                root_map={"ravdess": str(ravdess), "savee": str(savee)}))


def test_a_corpus_without_a_set_says_how_to_make_one(tmp_path, cli):
    emodb = write_tree(tmp_path, "emodb", extra=40, tones=False)
    savee = write_tree(tmp_path, "savee", extra=0, tones=False)
    res = cli("cross", "run", "-u", "fbank", "-c", "savee,emodb", "--root-map",
              f"savee={savee}", "--root-map", f"emodb={emodb}")
    assert res.code == 2
    assert "emodb has no balanced test set" in res.err and "emobox cross build -c emodb" in res.err
    res = cli("cross", "run", "-u", "fbank", "-c", "savee", "--root-map", f"savee={savee}")
    assert res.code == 2 and "at least two corpora" in res.err
    res = cli("cross", "run", "-u", "fbank", "--classes", "angry,grumpy")
    assert res.code == 2 and "'grumpy' is not an emotion class" in res.err


def test_every_missing_corpus_and_missing_weights_are_named_at_once(tmp_path, cli,
                                                                   monkeypatch):
    monkeypatch.setenv("EMOBOX_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    emodb = write_tree(tmp_path, "emodb", extra=40, tones=False)
    res = cli("cross", "run", "-u", "hubert_base", "-c", "ravdess,emodb,savee", "--root-map",
              f"emodb={emodb}", "--out", tmp_path / "x", "-q")
    assert res.code == 2, res
    lines = res.err.strip().splitlines()
    assert len(lines) == 4 and all(ln.startswith("error: ") for ln in lines), res.err
    assert lines[0].startswith(f"error: corpus 'ravdess': root {tmp_path / 'data' / 'ravdess'} "
                               f"does not exist")
    assert lines[1].startswith("error: emodb has no balanced test set")
    assert lines[2].startswith(f"error: corpus 'savee': root {tmp_path / 'data' / 'savee'} "
                               f"does not exist")
    assert lines[3].startswith("error: no checkpoint for upstream 'hubert_base' on this machine")
    assert not (tmp_path / "x").exists()


def test_cross_build_reproduces_table3_structure_and_refuses_short_quotas(tmp_path, cli):
    ravdess = write_tree(tmp_path, "ravdess", extra=2000, tones=False)  # the whole corpus
    out = tmp_path / "sets"
    res = cli("cross", "build", "-c", "ravdess", "--root-map", f"ravdess={ravdess}",
              "--out", out, "-q")
    assert res.code == 0, res
    built = _tsv(out / "ravdess.tsv")
    per = {}
    for r in built:
        per.setdefault(r["speaker"], {}).setdefault(r["label"], 0)
        per[r["speaker"]][r["label"]] += 1
    assert len(built) == 240 and len(per) == 20  # Table 3: 20 speakers x 3 per class
    assert all(counts == {c: 3 for c in CLASSES} for counts in per.values())
    recipe = json.loads((out / "recipe.json").read_text())
    assert recipe["quota"] == {"ravdess": "20x3"} and recipe["seed"] == 0
    # the recipe file makes the same sets again
    again = tmp_path / "again"
    res = cli("cross", "build", "--recipe", out / "recipe.json", "--root-map",
              f"ravdess={ravdess}", "--out", again, "-q")
    assert res.code == 0, res
    assert (again / "ravdess.tsv").read_text() == (out / "ravdess.tsv").read_text()
    # RAVDESS has 4 neutral utterances per actor: 5 cannot be met, and it says who is short
    res = cli("cross", "build", "-c", "ravdess", "--root-map", f"ravdess={ravdess}",
              "--quota", "ravdess=10x5", "--out", tmp_path / "no")
    assert res.code == 2
    assert "ravdess: quota 10x5" in res.err and "01: Neutral 4/5" in res.err
    assert not (tmp_path / "no").exists()


def test_the_track_extends_to_a_corpus_with_a_built_set(tmp_path, cli):
    """EmoDB has no published set: build one, then run the track with it and SAVEE's."""
    emodb = write_tree(tmp_path, "emodb", extra=2000)  # the whole corpus, 10 speakers
    savee = write_tree(tmp_path, "savee", extra=24)
    sets = tmp_path / "sets"
    res = cli("cross", "build", "-c", "emodb", "--quota", "6x2", "--root-map",
              f"emodb={emodb}", "--out", sets, "-q")
    assert res.code == 0, res
    out = tmp_path / "run"
    res = cli("cross", "run", "-u", "fbank", "-c", "emodb,savee", "--sets", sets,
              "--root-map", f"emodb={emodb}", "--root-map", f"savee={savee}", "--epochs", "2",
              "--warmup", "1", "--grid", "lr=1e-2 hidden=16", "-q", "--out", out)
    assert res.code == 0, res
    config = json.loads((out / "config.json").read_text())
    assert config["test_sets"]["emodb"]["utterances"] == 48
    assert config["test_sets"]["emodb"]["origin"].startswith("file ")
    assert config["test_sets"]["savee"]["utterances"] == 240
    data = json.loads((out / "matrix.json").read_text())
    acc = data["metrics"]["accuracy"]["matrix"]
    assert data["metrics"]["accuracy"]["average"] == pytest.approx((acc[0][1] + acc[1][0]) / 2)
    # the built set never trains: EmoDB's training side excludes its 48 keys
    built = {r["key"] for r in _tsv(sets / "emodb.tsv")}
    preds = {r["key"] for r in _tsv(out / "predictions" / "emodb__emodb.tsv")}
    assert preds == built
    rows = [r for r in read_jsonl(out / "results.jsonl") if r["source"] == "emodb"]
    manifest = Registry().corpus("emodb").build(emodb).manifest
    four = [u.key for u in manifest if u.label in CLASSES]
    assert rows[0]["n_train"] + rows[0]["n_valid"] == len(four) - 48
    # fast features are labelled: in the config and in the matrix's title
    res = cli("cross", "run", "-u", "fbank", "-c", "emodb,savee", "--sets", sets,
              "--root-map", f"emodb={emodb}", "--root-map", f"savee={savee}", "--epochs", "1",
              "--warmup", "0", "--grid", "lr=1e-2 hidden=16", "-q", "--precision", "bf16",
              "--batch-seconds", "30", "--out", tmp_path / "run_bf16")
    assert res.code == 0, res
    assert json.loads((tmp_path / "run_bf16" / "config.json").read_text())["precision"] == "bf16"
    assert "(bf16 features)" in res.out


def test_cross_build_with_a_labeler_keeps_utterances_it_agrees_with(tmp_path, cli):
    savee = write_tree(tmp_path, "savee", extra=2000)  # the whole corpus, class-coded tones
    out = tmp_path / "sets"
    res = cli("cross", "build", "-c", "savee", "--root-map", f"savee={savee}", "--quota",
              "allx5", "--labeler", "fbank:linear_probe", "--labeler-epochs", "8",
              "--labeler-grid", "lr=1e-2 hidden=16", "--out", out, "-q")
    assert res.code == 0, res
    recipe = json.loads((out / "recipe.json").read_text())
    assert "fbank + linear_probe (out-of-fold" in recipe["sets"]["savee"]["pseudo_labels"]
    predicted = {}
    for f in (out / "labeler" / "savee" / "predictions").glob("fold*.tsv"):
        predicted.update({r["key"]: r["predicted"] for r in _tsv(f)})
    assert len(predicted) == 480  # every utterance labelled by the fold that did not train on it
    built = _tsv(out / "savee.tsv")
    assert len(built) == 4 * 4 * 5
    assert all(predicted[r["key"]] == r["label"] for r in built)


def test_the_run_options_of_a_source_corpus_carry_the_track_s_options():
    opts = CrossOptions(upstream="whisper_tiny_en", out="/cross/out", root_map={"savee": "/s"},
                        upstream_options={"mode": "trimmed"}, precision="bf16",
                        batch_seconds=5.0, seed=4, epochs=7)
    run = opts.run_options("savee")
    assert (run.upstream, run.corpus, run.root, run.downstream) == (
        "whisper_tiny_en", "savee", "/s", "linear_probe")
    assert dict(run.upstream_options) == {"mode": "trimmed"}
    assert (run.precision, run.batch_seconds, run.seed, run.epochs) == ("bf16", 5.0, 4, 7)
    assert run.out is None  # the track's folder is not a run directory


def test_cross_run_with_the_paper_recipe_drops_the_long_meld_clip(tmp_path, cli):
    long_key = "meld-dia309_utt0-train"  # 41 s in EmoBox's table: its extraction skipped it
    trees = {"meld": write_tree(tmp_path, "meld", extra=12, keep={long_key}),
             "savee": write_tree(tmp_path, "savee", extra=12)}
    out = tmp_path / "cross"
    res = cli("cross", "run", "-u", "fbank", "-d", "linear_probe", "-c", "meld,savee",
              *_root_map(trees), "--epochs", "2", "--warmup", "1", "--grid",
              "lr=1e-2 hidden=8", "-q", "--recipe", "paper", "--out", out)
    assert res.code == 0, res
    rows = read_jsonl(out / "results.jsonl")
    assert {(r["recipe"], r["selection"], r["schedule"]) for r in rows} == {
        ("paper", "test", "paper")}
    assert {r["valid_rule"] for r in rows} == {"random-20%"}
    config = json.loads((out / "config.json").read_text())
    meld_side = config["splits"]["meld"]["train"] + config["splits"]["meld"]["valid"]
    n_meld = {r["n_train"] + r["n_valid"] for r in rows if r["source"] == "meld"}
    assert n_meld == {meld_side - 1}  # the long clip is on the side, and not trained on
    summary = (out / "summary.md").read_text()
    assert summary.startswith("# Cross-corpus track: fbank x linear_probe\n\n**EMOBOX'S CODE")
    assert "meld: 1 utterances over 30 s dropped" in summary and long_key in summary


@pytest.mark.parametrize("text", ["[1, 2]", '{"corpora": ["savee"]}', '{"fingerprint": 7}'])
def test_a_damaged_cross_config_is_a_data_error_not_a_fresh_start(tmp_path, text):
    """As in `emobox run`: a config.json that is not a cross configuration stops the run (exit 3)
    instead of being overwritten."""
    from emobox.errors import DataError
    from emobox.tracks.cross import _prepare_out

    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text(text)
    with pytest.raises(DataError, match=r"config\.json: not an emobox cross-corpus configuration"):
        _prepare_out(out, {"fingerprint": "abc"}, None)
    assert (out / "config.json").read_text() == text


# -- layers and the audio a track was made from ----------------------------------------------------

FAST = ("--epochs", "2", "--warmup", "1", "--grid", "lr=1e-2 hidden=8", "-q")


@pytest.fixture
def two_trees(tmp_path):
    """RAVDESS and SAVEE fixture trees: each balanced set plus 12 other utterances."""
    return {name: write_tree(tmp_path / "trees", name, extra=12) for name in ("ravdess", "savee")}


@pytest.fixture
def tiny():
    from emobox.plugin.registry import set_registry
    from extract_fakes import TinyLayersPlugin

    reg = Registry()
    reg.register(TinyLayersPlugin(), name="tiny_layers_plugin")
    set_registry(reg)
    return reg


def _cross_dirs(out: str) -> dict[int, Path]:
    dirs = {}
    for line in out.splitlines():
        if line.startswith("layer ") and ": cross-corpus directory: " in line:
            layer, path = line[len("layer "):].split(": cross-corpus directory: ")
            dirs[int(layer)] = Path(path)
    return dirs


def test_cross_layer_all_with_a_one_layer_head_runs_every_layer(tiny, two_trees, tmp_path, cli):
    """`--layer all` with linear_probe is one track per layer of the upstream (it once ran
    layer 0 alone), from one extraction per corpus; each is the track `--layer N` makes."""
    out = tmp_path / "sweep"
    res = cli("cross", "run", "-u", "tiny_layers", "-c", "ravdess,savee", "--layer", "all",
              *_root_map(two_trees), *FAST, "--out", out)
    assert res.code == 0, res
    dirs = _cross_dirs(res.out)
    assert dirs == {n: out / f"layer{n}" for n in (0, 1, 2)}
    for n in (0, 1, 2):
        assert f"tiny_layers x linear_probe, layer {n} (rows" in " ".join(res.out.split())
        config = json.loads((dirs[n] / "config.json").read_text())
        assert (config["layer"], config["layers"]) == (n, [n])
        assert {r["layer"] for r in read_jsonl(dirs[n] / "results.jsonl")} == {n}
    config = json.loads((dirs[0] / "config.json").read_text())
    for store in config["features"].values():  # one extraction per corpus, every layer in it
        meta = json.loads((Path(store) / "meta.json").read_text())
        assert sorted(meta["layers"]) == ["0", "1", "2"]
        assert len(read_jsonl(Path(store) / "sessions.jsonl")) == 1
    # the per-layer view: each layer's off-diagonal averages, as its own matrix.json has them
    view = _tsv(out / "layers.tsv")
    assert [int(r["layer"]) for r in view] == [0, 1, 2]
    for r in view:
        data = json.loads((dirs[int(r["layer"])] / "matrix.json").read_text())["metrics"]
        for metric in ("accuracy", "ua", "f1"):
            assert float(r[metric]) == pytest.approx(100 * data[metric]["average"], abs=0.006)
        for source in ("ravdess", "savee"):
            assert float(r[f"accuracy_from_{source}"]) == pytest.approx(
                100 * data["accuracy"]["per_source"][source], abs=0.006)
        assert r["folder"] == str(dirs[int(r["layer"])])
    best = max(view, key=lambda r: float(r["accuracy"]))
    layers_md = (out / "layers.md").read_text()
    assert "# Cross-corpus scores by layer: tiny_layers x linear_probe" in layers_md
    assert f"| {best['layer']} | **{best['accuracy']}** |" in layers_md
    assert (out / "layers.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"by layer: {out / 'layers.md'}" in res.out
    assert "cross-corpus average % by layer" in " ".join(res.out.split())
    # `emobox report` reads intra-corpus run directories: over a cross one it says where the
    # matrices are, instead of calling the folder damaged
    rep = cli("report", dirs[0], "--out", tmp_path / "report")
    assert rep.code == 2, rep
    assert rep.err.strip() == (
        f"error: {dirs[0]} is a cross-corpus run directory (`emobox cross run`); `emobox "
        f"report` reads the run directories of `emobox run` and `emobox bench`: its matrices "
        f"are in {dirs[0] / 'summary.md'}, matrix.tsv and matrix.json"), rep.err
    rep = cli("report", out, "--out", tmp_path / "report")
    assert rep.code == 2, rep
    assert rep.err.strip().endswith(
        f"it holds 3 cross-corpus run directories (`emobox cross run`), whose matrices are in "
        f"their summary.md, and their averages by layer in {out / 'layers.md'}"), rep.err
    assert not (tmp_path / "report").exists()
    # `--layer 1` alone, pointed at the sweep's folder, finds it finished: nothing trained
    before = (dirs[1] / "results.jsonl").read_text()
    again = cli("cross", "run", "-u", "tiny_layers", "-c", "ravdess,savee", "--layer", "1",
                *_root_map(two_trees), *FAST, "--out", dirs[1])
    assert again.code == 0, again
    assert f"cross-corpus directory: {dirs[1]}" in again.out
    assert (dirs[1] / "results.jsonl").read_text() == before
    # a head that reads every layer: `all` is what it does anyway, one track
    ws = tmp_path / "ws"
    res = cli("cross", "run", "-u", "tiny_layers", "-c", "ravdess,savee", "-d", "weighted_sum",
              "--layer", "all", *_root_map(two_trees), *FAST, "--out", ws)
    assert res.code == 0, res
    config = json.loads((ws / "config.json").read_text())
    assert (config["layer"], config["layers"]) == ("all", [0, 1, 2])
    assert f"cross-corpus directory: {ws}" in res.out and "layer all:" not in res.out


@pytest.mark.parametrize("layer, down, message", [
    ("0-7", "linear_probe", "error: --layer 0-7: tiny_layers has layers 0..2; layer 3 does "
                            "not exist"),
    ("2-1", "linear_probe", "error: --layer 2-1: the range runs backwards; write 1-2"),
    ("0,2", "weighted_sum", "error: downstream 'weighted_sum' learns a weighting of every "
                            "layer of the upstream; a list of layers (0,2) trains one head "
                            "per layer"),
])
def test_bad_cross_layers_stop_before_any_extraction(tiny, cli, tmp_path, layer, down, message):
    res = cli("cross", "run", "-u", "tiny_layers", "-c", "ravdess,savee", "-d", down,
              "--layer", layer, "--features-dir", tmp_path / "features", "--out",
              tmp_path / "out", *FAST)
    assert res.code == 2, res
    lines = [x for x in res.err.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith(message), res.err
    assert not (tmp_path / "features").exists() and not (tmp_path / "out").exists()


def test_a_cross_run_resumed_over_changed_audio_is_refused(two_trees, tmp_path, cli):
    """config.json records each corpus's audio digest: after one SAVEE file is replaced by
    another recording (and its stale store removed), the finished sources are not taken."""
    from emobox.testing import write_audio

    out = tmp_path / "cross"
    args = ["cross", "run", "-u", "fbank", "-c", "ravdess,savee", *_root_map(two_trees), *FAST,
            "--features-dir", tmp_path / "features", "--out", out]
    res = cli(*args)
    assert res.code == 0, res
    config = json.loads((out / "config.json").read_text())
    digests = config["audio_sha256"]
    stores = config["features"]
    assert set(digests) == {"ravdess", "savee"}
    for name, digest in digests.items():
        assert digest == json.loads((Path(stores[name]) / "meta.json").read_text())[
            "audio"]["sha256"]
    results = (out / "results.jsonl").read_text()

    # a config.json of an earlier emobox records no digest: it resumes, unchanged
    del config["audio_sha256"]
    (out / "config.json").write_text(json.dumps(config))
    res = cli(*args)
    assert res.code == 0, res
    assert (out / "results.jsonl").read_text() == results
    assert json.loads((out / "config.json").read_text())["audio_sha256"] == digests

    wav = sorted((two_trees["savee"]).rglob("*.wav"))[0]
    wav.unlink()  # fixture files are hard links of one tone: replace, never write through
    write_audio(wav, seconds=0.2, freq=777.0)
    res = cli(*args)
    assert res.code == 3, res
    assert f"{wav}: content changed" in res.err or f"{wav}: size" in res.err, res.err
    store = res.err.split("emobox features rm ")[1].split("`")[0]
    assert store == stores["savee"]
    assert cli("features", "rm", store).code == 0
    res = cli(*args)
    assert res.code == 2, res
    assert res.err.startswith(f"error: {out} holds a cross-corpus run made with other options "
                              f"(audio_sha256 of savee: \"{digests['savee'][:38]}"), res.err
    assert "choose another --out or delete that folder" in res.err
    assert (out / "results.jsonl").read_text() == results
    assert json.loads((out / "config.json").read_text())["audio_sha256"] == digests


@pytest.mark.parametrize("tamper", ["no selection", "two selections"])
def test_a_source_whose_selection_was_lost_or_doubled_is_trained_again(two_trees, tmp_path, cli,
                                                                       tamper):
    """A finished source has one selected configuration for every target: a results.jsonl
    whose selection of one source was cleared or doubled (a damaged or edited file) does not
    count as finished; that source alone is trained again and its matrix row is whole."""
    out = tmp_path / "cross"
    args = ["cross", "run", "-u", "fbank", "-c", "ravdess,savee", *_root_map(two_trees),
            "--epochs", "2", "--warmup", "1", "--grid", "lr=1e-2 hidden=8,16", "-q",
            "--features-dir", tmp_path / "features", "--out", out]
    assert cli(*args).code == 0
    lines = (out / "results.jsonl").read_text().splitlines()
    rows = [json.loads(x) for x in lines]
    ravdess = [x for x, r in zip(lines, rows) if r["source"] == "ravdess"]
    i = next(i for i, r in enumerate(rows) if r["source"] == "savee"
             and r["target"] == "ravdess" and r["selected"] == (tamper == "no selection"))
    rows[i]["selected"] = not rows[i]["selected"]
    tampered = "".join(json.dumps(r) + "\n" for r in rows)
    (out / "results.jsonl").write_text(tampered)

    res = cli(*args)
    assert res.code == 0, res
    assert (out / "results.jsonl").read_text() != tampered
    again = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert [x for x in (out / "results.jsonl").read_text().splitlines()
            if json.loads(x)["source"] == "ravdess"] == ravdess  # kept as it was
    savee = [r for r in again if r["source"] == "savee"]
    assert len(savee) == 2 * 2
    chosen = [r for r in savee if r["selected"]]
    assert sorted(r["target"] for r in chosen) == ["ravdess", "savee"]
    assert len({r["config_id"] for r in chosen}) == 1
    matrix = json.loads((out / "matrix.json").read_text())["metrics"]["accuracy"]["matrix"]
    assert all(v is not None for row in matrix for v in row)
