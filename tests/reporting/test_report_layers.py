"""Per-layer view of `emobox report`: UA by layer when runs differ only in layer."""

from __future__ import annotations

from pathlib import Path

from emobox.tracks.rundirs import RunDir


def _run(layer, ua, std, corpus="demo", precision="fp32"):
    """A finished run of two folds whose selected UAs are ua - std and ua + std."""
    config = {"upstream": "whisper_tiny_en", "corpus": corpus, "downstream": "linear_probe",
              "layer": layer, "precision": precision, "scheme": "emobox", "n_folds": 2}
    rows = [{"fold": f, "selected": True, "ua": ua + sign * std, "wa": 0.5, "f1": 0.25,
             "config_id": "a"} for f, sign in ((1, -1), (2, 1))]
    return RunDir(Path(f"run{layer}"), config, rows)


def test_layer_sweep_table_and_plot(tmp_path):
    from emobox.reporting.layers import layer_sweeps, write

    runs = [_run(3, 0.70, 0.02), _run(1, 0.50, 0.01), _run(2, 0.625, 0.0)]
    sweeps = layer_sweeps(runs)
    key = ("whisper_tiny_en", "demo", "linear_probe")
    assert list(sweeps) == [key]
    assert [(n, round(m, 6), round(s, 6)) for n, m, s in sweeps[key]] == [
        (1, 50.0, 1.0), (2, 62.5, 0.0), (3, 70.0, 2.0)]
    files = write(runs, tmp_path, plots=True)
    md = files["layers.md"].read_text()
    assert "| 1 | 50.00 ± 1.00 | 50.00 ± 0.00 | 25.00 ± 0.00 | 2/2 |" in md
    assert "| 3 | **70.00 ± 2.00** | 50.00 ± 0.00 | 25.00 ± 0.00 | 2/2 |" in md  # the best
    png = files["plots/layers.png"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000


def test_no_layer_view_when_runs_differ_in_more_than_layer(tmp_path):
    from emobox.reporting.layers import layer_sweeps, write

    runs = [_run(1, 0.5, 0.0), _run(2, 0.6, 0.0, precision="bf16")]
    assert layer_sweeps(runs) == {}
    assert write(runs, tmp_path, plots=True) == {}
    assert not (tmp_path / "layers.md").exists()
