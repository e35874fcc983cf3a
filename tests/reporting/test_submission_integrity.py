"""What `submit pack`, `submit validate` and `leaderboard show` read is untrusted: a zip whose end
records lie about its directory, a run directory whose predictions or config.json were edited,
a leaderboard entry whose figures were edited. Each is refused, or left out, with one line that
names the file and what is wrong."""

from __future__ import annotations

import copy
import csv
import hashlib
import io
import json
import shutil
import struct
import zipfile
from pathlib import Path

import pytest

from bench_support import local_grid
from emobox.plugin.registry import set_registry
from emobox.tracks.options import fingerprint

DEMO_RUN = "fbank__demo__linear_probe"
# config.json fields `emobox run` writes beside those its fingerprint is made of
NOT_FINGERPRINTED = {"fingerprint", "versions", "device", "root", "features", "notes", "request",
                     "options", "upstream_parameters", "engine", "grid_defaults"}


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    return local_grid(tmp_path_factory)


@pytest.fixture(autouse=True)
def _registry(grid):
    set_registry(grid["registry"])


@pytest.fixture(scope="module")
def packed(grid, tmp_path_factory):
    """A submission packed from the grid's fbank x demo run (3 folds)."""
    from emobox.reporting.submission import pack

    set_registry(grid["registry"])
    return pack([grid["dir"] / "runs" / DEMO_RUN], tmp_path_factory.mktemp("packed") / "s.zip").path


@pytest.fixture(scope="module")
def card(grid, packed):
    from emobox.reporting.submission import score

    set_registry(grid["registry"])
    return score(packed)


def one_error(res, code: int) -> str:
    """The one line a refused command prints."""
    assert res.code == code, res
    assert "Traceback" not in res.err
    lines = res.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.err
    return lines[0][len("error: "):]


# -- the zip's directory ------------------------------------------------------------------------

def central_entry(name: str, offset: int = 0, data: bytes = b"") -> bytes:
    n = name.encode()
    return struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 0, 0, 0x21,
                       zipfile.crc32(data), len(data), len(data), len(n), 0, 0, 0, 0, 0,
                       offset) + n


def local_entry(name: str, data: bytes) -> bytes:
    n = name.encode()
    return struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 0, 0, 0x21, zipfile.crc32(data),
                       len(data), len(data), len(n), 0) + n + data


def eocd(entries: int, dir_bytes: int, dir_offset: int) -> bytes:
    return struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, entries, entries, dir_bytes, dir_offset, 0)


def zip64_end(entries: int, dir_bytes: int, dir_offset: int, at: int) -> bytes:
    """A ZIP64 end of central directory record written at ``at``, and its locator."""
    record = struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, entries, entries,
                         dir_bytes, dir_offset)
    return record + struct.pack("<IIQI", 0x07064B50, 0, at, 1)


@pytest.fixture
def no_zip_parsing(monkeypatch):
    """zipfile must not be asked to read the zip's directory."""
    def refuse(*args, **kwargs):
        raise AssertionError("zipfile.ZipFile was called")

    monkeypatch.setattr(zipfile, "ZipFile", refuse)


def test_a_zip64_end_record_listing_a_million_members_is_refused_unparsed(
        tmp_path, cli, no_zip_parsing):
    data = b"{}"
    body = local_entry("metadata.json", data)
    central = central_entry("metadata.json", 0, data)
    start = len(body) + len(central)
    path = tmp_path / "zip64.zip"
    path.write_bytes(body + central + zip64_end(1_000_004, len(central), len(body), start)
                     + eocd(5, len(central), len(body)))
    assert path.stat().st_size < 300
    res = cli("submit", "validate", path)
    assert one_error(res, 3) == (f"{path}: the zip's ZIP64 end record lists 1000004 members in a "
                                 f"{len(central)} bytes directory; a submission has at most "
                                 f"10000 members")


def test_a_zip64_end_record_with_a_huge_directory_is_refused_unparsed(tmp_path, cli,
                                                                      no_zip_parsing):
    central = central_entry("metadata.json")
    path = tmp_path / "zip64.zip"
    path.write_bytes(central + zip64_end(1, 1 << 30, 0, len(central)) + eocd(1, len(central), 0))
    res = cli("submit", "validate", path)
    assert one_error(res, 3) == (f"{path}: the zip's ZIP64 end record lists 1 members in a "
                                 f"1024 MiB directory; a submission has at most 10000 members")


def test_a_directory_holding_more_members_than_its_end_record_says_is_refused_unparsed(
        tmp_path, cli, no_zip_parsing):
    central = b"".join(central_entry(f"x/{i}") for i in range(10_001))
    path = tmp_path / "many.zip"
    path.write_bytes(central + eocd(5, len(central), 0))
    res = cli("submit", "validate", path)
    assert one_error(res, 3) == (f"{path}: the zip's directory holds more than 10000 members "
                                 f"(its end record says 5); a submission has at most 10000")


def test_a_good_submission_with_a_zip64_end_record_is_still_read(packed, tmp_path, cli):
    """Its end record holds the ZIP64 placeholders (0xFFFF members): the counts are those of
    the ZIP64 end record."""
    data = packed.read_bytes()
    at = data.rindex(b"PK\x05\x06")
    entries, dir_bytes, dir_offset = struct.unpack("<HII", data[at + 10:at + 20])
    path = tmp_path / "zip64.zip"
    path.write_bytes(data[:at] + zip64_end(entries, dir_bytes, dir_offset, at)
                     + eocd(0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF))
    with zipfile.ZipFile(path) as zf:
        assert len(zf.infolist()) == 4
    res = cli("submit", "validate", path)
    assert res.code == 0 and f"{path}: valid (1 corpora, 3 folds)" in res.out, res


def test_validate_prints_a_bounded_number_of_problems(packed, tmp_path, cli):
    path = tmp_path / "extra.zip"
    shutil.copy(packed, path)
    with zipfile.ZipFile(path, "a") as zf:
        for i in range(300):
            zf.writestr(f"extra/{i}.txt", "")
    res = cli("submit", "validate", path)
    assert res.code == 5, res
    lines = res.err.splitlines()
    assert len(lines) == 51
    assert lines[0] == "problem: extra/0.txt: unexpected file (predictions go in " \
                       "predictions/<corpus>/fold<k>.tsv); it is not read"
    assert lines[-1] == f"{path}: 300 problems (250 more not shown)"


# -- packing a run directory ----------------------------------------------------------------------

@pytest.fixture
def run(grid, tmp_path) -> Path:
    """A copy of the grid's fbank x demo run, to edit."""
    return Path(shutil.copytree(grid["dir"] / "runs" / DEMO_RUN, tmp_path / "run"))


def edit_lines(path: Path, fn) -> list[str]:
    lines = path.read_text().splitlines()
    path.write_text("\n".join(fn(list(lines))) + "\n")
    return lines


def pack_cli(cli, run: Path, tmp_path: Path):
    return cli("submit", "pack", run, "-o", tmp_path / "s.zip")


def test_an_untouched_run_packs_and_validates(run, tmp_path, cli):
    res = pack_cli(cli, run, tmp_path)
    assert res.code == 0 and "fbank on demo (3 folds)" in res.out and not res.err, res
    assert cli("submit", "validate", tmp_path / "s.zip").code == 0


@pytest.mark.parametrize("case", ["missing key", "duplicate key", "unknown label", "unknown key"])
def test_pack_refuses_damaged_predictions_naming_file_and_line(run, tmp_path, cli, case):
    pred = run / "predictions" / "fold2.tsv"
    lines = pred.read_text().splitlines()
    k1, k2 = lines[1].split("\t")[0], lines[2].split("\t")[0]
    edit, expected = {
        "missing key": (lambda ls: [ls[0]] + ls[2:],
                        f"{pred}: missing 1 of {len(lines) - 1} test keys of fold 2, e.g. {k1!r}"),
        "duplicate key": (lambda ls: ls[:3] + [ls[1]] + ls[3:],
                          f"{pred}: line 4: duplicate key {k1!r} (first on line 2)"),
        "unknown label": (lambda ls: ls[:2] + [f"{k2}\tAngry\tSadd"] + ls[3:],
                          f"{pred}: line 3: unknown label 'Sadd' for {k2!r} (classes of demo: "
                          f"Angry, Happy, Neutral, Sad)"),
        "unknown key": (lambda ls: ls[:2] + ["nope\tAngry\tAngry"] + ls[3:],
                        f"{pred}: line 3: unknown key 'nope' (not in demo)"),
    }[case]
    edit_lines(pred, edit)
    message = one_error(pack_cli(cli, run, tmp_path), 3)
    assert message.startswith(expected), message
    assert not (tmp_path / "s.zip").exists()


def test_pack_refuses_a_changed_prediction_that_stays_well_formed(run, tmp_path, cli):
    pred = run / "predictions" / "fold2.tsv"
    lines = pred.read_text().splitlines()
    key, gold, predicted = lines[1].split("\t")
    other = next(lab for lab in ("Angry", "Happy", "Neutral", "Sad") if lab != predicted)
    edit_lines(pred, lambda ls: [ls[0], f"{key}\t{gold}\t{other}"] + ls[2:])
    rows = [json.loads(ln) for ln in (run / "results.jsonl").read_text().splitlines()]
    [row] = [r for r in rows if r["selected"] and r["fold"] == 2]
    labels = row["labels"]
    recorded = row["confusion"][labels.index(gold)]
    # the first cell that differs, in row-major order, is the one the message names
    cells = sorted((labels.index(gold), labels.index(lab)) for lab in (predicted, other))
    i, j = cells[0]
    now = recorded[j] + (1 if labels[j] == other else -1)
    message = one_error(pack_cli(cli, run, tmp_path), 3)
    assert message == (f"{pred}: {now} items of gold {labels[i]} predicted {labels[j]}, but "
                       f"fold 2's row in {run / 'results.jsonl'} counts {recorded[j]}: the "
                       f"predictions are not the ones the run scored; the file is corrupt "
                       f"(edited or damaged)")
    assert not (tmp_path / "s.zip").exists()


def edit_config(run: Path, change, refingerprint: bool = False) -> dict:
    """Edit config.json (and, with ``refingerprint``, give it the fingerprint of its edited
    fields, as someone covering the edit would); returns the config as it was."""
    path = run / "config.json"
    config = json.loads(path.read_text())
    before = copy.deepcopy(config)
    change(config)
    if refingerprint:
        config["fingerprint"] = fingerprint(
            {k: v for k, v in config.items() if k not in NOT_FINGERPRINTED}, 12)
    path.write_text(json.dumps(config, indent=2))
    return before


def test_the_fingerprint_is_made_of_these_fields(run):
    from emobox.tracks.options import RUN_CONFIG_UNFINGERPRINTED

    config = json.loads((run / "config.json").read_text())
    assert RUN_CONFIG_UNFINGERPRINTED == NOT_FINGERPRINTED
    assert fingerprint({k: v for k, v in config.items() if k not in NOT_FINGERPRINTED},
                       12) == config["fingerprint"]


@pytest.mark.parametrize("field, value, expected", [
    ("epochs", 100, "epochs is 100, but the results in {results} were made with 3"),
    ("folds", [1, 2], "its fields do not give the fingerprint it records ({fp}); it was "
                      "edited after the run"),
    ("n_folds", 5, "its fields do not give the fingerprint it records ({fp}); it was edited "
                   "after the run"),
    ("labels", ["Angry", "Happy", "Neutral", "Sadness"],
     'labels are ["Angry", "Happy", "Neutral", "Sadness"], but fold 1 in {results} has '
     '["Angry", "Happy", "Neutral", "Sad"]'),
])
def test_pack_refuses_an_edited_config_naming_it(run, tmp_path, cli, field, value, expected):
    before = edit_config(run, lambda c: c.__setitem__(field, value))
    message = one_error(pack_cli(cli, run, tmp_path), 3)
    assert message == (f"{run / 'config.json'}: " + expected.format(
        results=run / "results.jsonl", fp=before["fingerprint"])
        + "; the file is corrupt (edited or damaged)")
    assert not (tmp_path / "s.zip").exists()


def test_an_edit_covered_by_a_new_fingerprint_is_still_refused(run, tmp_path, cli):
    results = run / "results.jsonl"
    edit_config(run, lambda c: c.__setitem__("folds", [1, 2, 3, 4]), refingerprint=True)
    assert one_error(pack_cli(cli, run, tmp_path), 3) == (
        f"{run / 'config.json'}: folds lists fold 4, but n_folds is 3; the file is corrupt "
        f"(edited or damaged)")
    edit_config(run, lambda c: c.__setitem__("folds", [1, 2, 3]), refingerprint=True)
    before = edit_config(run, lambda c: c.__setitem__("audio_sha256", "0" * 64),
                         refingerprint=True)
    after = json.loads((run / "config.json").read_text())["fingerprint"]
    assert one_error(pack_cli(cli, run, tmp_path), 3) == (
        f"{results}: rows of run {before['fingerprint']}, but {run / 'config.json'} is run "
        f"{after}; the file is corrupt (edited or damaged)")


def test_a_bad_config_field_is_named_in_config_json(run, tmp_path, cli):
    """grid.lr that is not a list, with the fingerprint and the result rows edited to match:
    the error names config.json and the field."""
    edit_config(run, lambda c: c["grid"].__setitem__("lr", "abc"), refingerprint=True)
    new = json.loads((run / "config.json").read_text())["fingerprint"]
    rows = [json.loads(ln) for ln in (run / "results.jsonl").read_text().splitlines()]
    for r in rows:
        r["options"]["grid"]["lr"], r["run_id"] = "abc", new
    (run / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert one_error(pack_cli(cli, run, tmp_path), 3) == (
        f"{run / 'config.json'}: field 'grid.lr': Input should be a valid list; the file is "
        f"corrupt (edited or damaged)")


# -- the leaderboard ----------------------------------------------------------------------------

def entry(card: dict, name: str, change=None) -> dict:
    e = copy.deepcopy(card)
    e["name"] = name
    e["sha256"] = hashlib.sha256(name.encode()).hexdigest()
    e["content_sha256"] = hashlib.sha256(b"content " + name.encode()).hexdigest()
    if change:
        change(e["corpora"]["demo"])
    return e


def write_board(path: Path, entries) -> Path:
    path.write_text(json.dumps({"kind": "emobox.leaderboard", "schema_version": 1,
                                "entries": entries}))
    return path


def all_099(c):
    for f in c["folds"]:
        f["ua"] = f["wa"] = f["f1"] = 0.99
    for m in ("ua", "wa", "f1"):
        c[m], c[f"{m}_std"] = 0.99, 0.0


def big_counts(c):
    c["folds"][0]["confusion"][0][0] = 10 ** 9


@pytest.mark.parametrize("case", ["corpus ua", "every score", "folds cut", "huge counts",
                                  "listed twice"])
def test_entries_whose_figures_do_not_hold_are_left_out(card, tmp_path, cli, case):
    demo = card["corpora"]["demo"]
    fold1 = demo["folds"][0]
    n_test = fold1["n_test"]
    bad, expected = {
        "corpus ua": (entry(card, "bad", lambda c: c.__setitem__("ua", 0.99)),
                      f"corpus 'demo': ua is 0.9900, but the mean of its folds is "
                      f"{demo['ua']:.4f}"),
        "every score": (entry(card, "bad", all_099),
                        f"corpus 'demo', fold 1: ua is 0.9900, but its confusion matrix gives "
                        f"{fold1['ua']:.4f}"),
        "folds cut": (entry(card, "bad", lambda c: c.__setitem__("folds", c["folds"][:1])),
                      "corpus 'demo' lists fold 1 of n_folds 3; a score has every fold once"),
        "huge counts": (entry(card, "bad", big_counts),
                        f"corpus 'demo', fold 1: the confusion matrix counts "
                        f"{n_test - fold1['confusion'][0][0] + 10 ** 9} items, but n_test is "
                        f"{n_test}"),
        "listed twice": (entry(card, "good"), "the same submission as entry 1 (listed twice)"),
    }[case]
    board = write_board(tmp_path / "board.json", [entry(card, "good"), bad])
    text = board.read_bytes()
    res = cli("leaderboard", "show", "--file", board, "--format", "csv")
    assert res.code == 0, res
    name = "good" if case == "listed twice" else "bad"
    assert res.err.splitlines() == [
        f"warning: {board}: entry 2 ({name!r}): {expected}; the entry is left out"]
    rows = list(csv.DictReader(io.StringIO(res.out)))
    assert [(r["rank"], r["submission"], r["demo UA"]) for r in rows] == [
        ("1", "good", f"{100 * demo['ua']:.2f}")]
    assert board.read_bytes() == text


def test_an_entry_written_by_emobox_passes_its_checks(card, tmp_path, cli):
    from emobox.reporting.leaderboard import figures_problem

    assert figures_problem(card) == ""
    board = write_board(tmp_path / "board.json", [entry(card, "a"), entry(card, "b")])
    res = cli("leaderboard", "show", "--file", board, "--format", "csv")
    assert res.code == 0 and not res.err, res
    assert [r["submission"] for r in csv.DictReader(io.StringIO(res.out))] == ["a", "b"]


def test_adding_keeps_an_entry_with_edited_figures_as_it_is(card, packed, tmp_path, cli):
    bad = entry(card, "bad", lambda c: c.__setitem__("ua", 0.99))
    board = write_board(tmp_path / "board.json", [bad])
    res = cli("leaderboard", "add", packed, "--file", board)
    assert res.code == 0, res
    assert res.err.splitlines() == [
        f"warning: {board}: entry 1 ('bad'): corpus 'demo': ua is 0.9900, but the mean of its "
        f"folds is {card['corpora']['demo']['ua']:.4f}; the entry is kept as it is"]
    entries = json.loads(board.read_text())["entries"]
    assert entries[0] == bad and entries[1]["name"] == "fbank"
