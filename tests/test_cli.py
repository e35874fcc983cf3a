"""Command-line usage errors exit 2 with click's short message, never a traceback."""

from __future__ import annotations


def test_unknown_command(cli):
    res = cli("nosuchcmd")
    assert res.code == 2
    assert "No such command 'nosuchcmd'" in res.err
    assert "Traceback" not in res.err + res.out


def test_unknown_option_and_missing_option(cli):
    res = cli("run", "--nosuch")
    assert res.code == 2 and "No such option: --nosuch" in res.err
    res = cli("run", "-u", "fbank")
    assert res.code == 2 and "Missing option '-c' / '--corpus'" in res.err


def test_version(cli):
    import emobox

    res = cli("--version")
    assert res.code == 0 and res.out.strip() == f"emobox {emobox.__version__}"
