"""Per-layer view of `emobox report`: UA by layer when runs differ only in layer."""

from __future__ import annotations

from types import SimpleNamespace


def _run(layer, ua, std, corpus="demo", precision="fp32"):
    config = {"layer": layer, "precision": precision, "scheme": "emobox"}
    return SimpleNamespace(triple=("whisper_tiny_en", corpus, "linear_probe"), config=config,
                           mean_std=lambda m: (ua, std) if m == "ua" else None)


def test_layer_sweep_table_and_plot(tmp_path):
    from emobox.reporting.layers import layer_sweeps, write

    runs = [_run(3, 0.70, 0.02), _run(1, 0.50, 0.01), _run(2, 0.625, 0.0)]
    sweeps = layer_sweeps(runs)
    assert sweeps == {("whisper_tiny_en", "demo", "linear_probe"):
                      [(1, 50.0, 1.0), (2, 62.5, 0.0), (3, 70.0, 2.0)]}
    files = write(runs, tmp_path, plots=True)
    md = files["layers.md"].read_text()
    assert "| 1 | 50.00 ± 1.00 |" in md and "| 3 | 70.00 ± 2.00 |" in md
    png = files["plots/layers.png"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000


def test_no_layer_view_when_runs_differ_in_more_than_layer(tmp_path):
    from emobox.reporting.layers import layer_sweeps, write

    runs = [_run(1, 0.5, 0.0), _run(2, 0.6, 0.0, precision="bf16")]
    assert layer_sweeps(runs) == {}
    assert write(runs, tmp_path, plots=True) == {}
    assert not (tmp_path / "layers.md").exists()
