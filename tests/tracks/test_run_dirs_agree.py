"""`emobox run` and `emobox cross run` resume through the same run-directory code: a damaged
config.json, or one of the other track, stops either with exit 3 and one `error:` line naming
the file, which is left as it was (never overwritten by a fresh start)."""

from __future__ import annotations

import pytest
from cross_support import write_tree

RUN_CONFIG = '{"kind": "emobox.run", "fingerprint": "abc"}'
CROSS_CONFIG = '{"kind": "emobox.cross", "fingerprint": "abc"}'


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    root = tmp_path_factory.mktemp("agree-trees")
    return {name: write_tree(root, name, extra=0, tones=False) for name in ("ravdess", "savee")}


def _track(name: str, trees) -> tuple[str, ...]:
    if name == "run":
        return ("run", "-u", "fbank", "-c", "demo", "-f", "1")
    roots = [a for c, tree in trees.items() for a in ("--root-map", f"{c}={tree}")]
    return ("cross", "run", "-u", "fbank", "-c", "ravdess,savee", *roots)


@pytest.mark.parametrize("track", ["run", "cross run"])
@pytest.mark.parametrize("text, problem", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "not "),
    ('{"fingerprint": 7}', "not an emobox "),
], ids=["not-json", "a-list", "no-kind"])
def test_a_damaged_config_stops_every_track_the_same_way(cli, trees, tmp_path, track, text,
                                                         problem):
    out = tmp_path / "out"
    out.mkdir()
    (out / "config.json").write_text(text)
    res = cli(*_track(track, trees), "--epochs", "1", "-q", "-o", out)
    assert res.code == 3, res
    errors = [line for line in res.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, res
    assert errors[0].startswith(f"error: {out / 'config.json'}: ") and problem in errors[0], res
    assert errors[0].endswith("the file is corrupt (edited or damaged): choose another --out or "
                              "delete that folder"), res
    assert (out / "config.json").read_text() == text
    assert not (out / "results.jsonl").exists()


@pytest.mark.parametrize("track, other, kind", [("run", CROSS_CONFIG, "emobox.cross"),
                                                ("cross run", RUN_CONFIG, "emobox.run")])
def test_a_run_directory_of_the_other_track_is_refused(cli, trees, tmp_path, track, other,
                                                       kind):
    out = tmp_path / "out"
    out.mkdir()
    (out / "config.json").write_text(other)
    res = cli(*_track(track, trees), "--epochs", "1", "-q", "-o", out)
    assert res.code == 3, res
    assert f"error: {out / 'config.json'}: not an emobox " in res.err
    assert f"kind '{kind}'" in res.err
    assert (out / "config.json").read_text() == other
