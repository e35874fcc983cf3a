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


def test_grid_file_errors_name_the_file_and_the_problem(cli, tmp_path):
    missing = tmp_path / "nogrid.yaml"
    res = cli("run", "-u", "fbank", "-c", "demo", "--grid", missing)
    assert res.code == 2 and f"--grid file {missing} does not exist" in res.err
    listed = tmp_path / "grid.yaml"
    listed.write_text("- 0.001\n- 0.01\n")
    res = cli("run", "-u", "fbank", "-c", "demo", "--grid", listed)
    assert res.code == 2 and "expected a mapping name -> list of values" in res.err
    broken = tmp_path / "grid.json"
    broken.write_text("{lr: ")
    res = cli("run", "-u", "fbank", "-c", "demo", "--grid", broken)
    assert res.code == 2 and f"--grid file {broken}: cannot parse" in res.err
