"""Shared pieces of the reliability suite: a small corpus in the demo's native layout to plant
bad inputs in, the short run every case drives through the CLI, and what a user error must
look like on the terminal."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emobox.extraction.store import FeatureStore

EMOTIONS = ("angry", "happy", "neutral", "sad")
SPEAKERS = ("s0", "s1", "s2", "s3")  # 4 speakers: leave-one-speaker-out, fold 1 tests s0
SECONDS = 0.2
SR = 16000

# one fold, one configuration, one epoch: every case runs the whole pipeline in about a second
RUN = ("run", "-u", "fbank", "-c", "demo", "-d", "linear_probe", "-q", "--epochs", "1",
       "--warmup", "0", "--grid", "lr=1e-3 hidden=8", "--fold", "1")


def tone(seconds: float = SECONDS, sr: int = SR, freq: float = 220.0, amp: float = 0.3,
         channels: int = 1) -> np.ndarray:
    t = np.arange(int(round(seconds * sr))) / sr
    x = (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return x if channels == 1 else np.stack([x * (c + 1) / channels for c in range(channels)], 1)


def rel(spk: str, emo: str, n: int, ext: str = "flac") -> str:
    return f"audio/{spk}/{spk}_{emo}_{n:02d}.{ext}"


def key(spk: str, emo: str, n: int) -> str:
    return f"demo-{spk}_{emo}_{n:02d}"


def make_tree(root: Path, sentences: int = 2) -> Path:
    """4 speakers x 4 emotions x ``sentences`` short tones (emotion = pitch and loudness)."""
    for s, spk in enumerate(SPEAKERS):
        for e, emo in enumerate(EMOTIONS):
            for n in range(sentences):
                path = root / rel(spk, emo, n)
                path.parent.mkdir(parents=True, exist_ok=True)
                sf.write(path, tone(freq=150 + 60 * e + 7 * s + 3 * n, amp=0.1 + 0.1 * e), SR,
                         subtype="PCM_16")
    return root


@pytest.fixture
def tree(tmp_path) -> Path:
    return make_tree(tmp_path / "corpus")


def run_args(root: Path, out: Path, *extra: str) -> list[str]:
    return [*RUN, "--root", str(root), "--out", str(out), *extra]


def store_of(out: Path) -> FeatureStore:
    return FeatureStore(Path(json.loads((out / "config.json").read_text())["features"]))


def frames_of(out: Path, utt_key: str) -> np.ndarray:
    """The stored float frames of one utterance of a run."""
    store = store_of(out)
    keys, offsets, lengths = store.index()
    i = keys.index(utt_key)
    return np.asarray(store.layer(0)[offsets[i]:offsets[i] + lengths[i]], dtype=np.float32)


def fbank_of(wav: np.ndarray) -> np.ndarray:
    """What the fbank upstream gives for 16-kHz mono samples (the reference for a case)."""
    import torch

    from emobox.plugin.registry import get_registry

    up = get_registry().upstream("fbank").build()
    out = up([torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32))], [0])
    return out.hidden[0][0, : int(out.lengths[0])].numpy()


def skipped_rows(out: Path) -> list[dict[str, str]]:
    lines = (out / "skipped.tsv").read_text().splitlines()
    header = lines[0].split("\t")
    return [dict(zip(header, line.split("\t"))) for line in lines[1:]]


def assert_user_error(res, code: int, *fragments: str) -> str:
    """Exit ``code``, exactly one ``error:`` line holding every fragment, no traceback."""
    assert res.code == code, res
    assert "Traceback" not in res.err, res.err
    errors = [line for line in res.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, res.err
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])
    return errors[0]


def install_fake_distribution(site, dist, module, source, entry_point):
    """A distribution as pip leaves it (module + dist-info with an ``emobox`` entry point),
    found through ``sys.path``/``PYTHONPATH`` without installing anything."""
    site.mkdir(parents=True, exist_ok=True)
    (site / f"{module}.py").write_text(source)
    info = site / f"{dist.replace('-', '_')}-0.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.3\n")
    (info / "entry_points.txt").write_text(f"[emobox]\n{entry_point} = {module}\n")
    return site
