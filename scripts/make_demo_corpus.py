#!/usr/bin/env python3
"""Regenerate the embedded ``demo`` corpus: synthetic acted speech from espeak-ng + sox.

Twelve synthetic speakers (espeak-ng voices and variants) each say four short sentences in four
emotions. The emotions are rendered through the cues listeners use for acted emotion: pitch
level, speaking rate, loudness and voice quality (angry: fast, loud, harsh/overdriven; happy:
high, fast, bright; neutral: default; sad: low, slow, quiet, muffled). Small seeded jitter
varies every take. Output: ``corpora/demo/audio/<speaker>/<speaker>_<emotion>_<sentence>.flac``,
16 kHz 16-bit mono FLAC, silence trimmed.

Requires the Debian packages ``espeak-ng`` and ``sox`` (``apt-get install espeak-ng sox``); the
package itself ships the generated audio and never needs them.

    python scripts/make_demo_corpus.py [--out corpora/demo/audio] [--seed 0]
"""

from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import tempfile
from pathlib import Path

SPEAKERS = {  # speaker id -> espeak-ng voice+variant
    "spk01": "en-us+m1", "spk02": "en-us+f1", "spk03": "en+m3", "spk04": "en+f2",
    "spk05": "en-gb-scotland+m4", "spk06": "en-gb-x-rp+f3", "spk07": "en-029+m5",
    "spk08": "en-us-nyc+f4", "spk09": "en-gb-x-gbclan+m7", "spk10": "en+f5",
    "spk11": "en-gb-x-rp+m2", "spk12": "en-us+f3",
}
SENTENCES = ["Open the door.", "It is time now.", "Come over here.", "I knew that."]
# emotion -> (espeak speed wpm, pitch 0-99, amplitude 0-200, sox effects)
EMOTIONS = {
    "angry": (205, 42, 185, ["gain", "-8", "overdrive", "12", "30", "treble", "+3"]),
    "happy": (190, 80, 125, ["gain", "-5", "treble", "+5"]),
    "neutral": (165, 50, 100, []),
    "sad": (115, 22, 55, ["lowpass", "2200"]),
}
SAMPLE_RATE = 16000


def render(text: str, voice: str, speed: int, pitch: int, amp: int, effects: list[str],
           out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch),
                        "-a", str(amp), "-w", str(raw), text], check=True)
        subprocess.run(["sox", "-D", str(raw), "-r", str(SAMPLE_RATE), "-b", "16", "-c", "1",
                        str(out), *effects,
                        "silence", "1", "0.02", "0.5%", "reverse",
                        "silence", "1", "0.02", "0.5%", "reverse"], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).resolve().parents[1] / "corpora" / "demo" / "audio")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed: apt-get install espeak-ng sox")
    rng = random.Random(args.seed)
    if args.out.exists():
        shutil.rmtree(args.out)
    for spk, voice in SPEAKERS.items():
        (args.out / spk).mkdir(parents=True)
        for emotion, (speed, pitch, amp, effects) in EMOTIONS.items():
            for i, text in enumerate(SENTENCES, start=1):
                out = args.out / spk / f"{spk}_{emotion}_{i:02d}.flac"
                render(text, voice, speed + rng.randint(-8, 8),
                       max(0, min(99, pitch + rng.randint(-4, 4))),
                       max(10, amp + rng.randint(-10, 10)), effects, out)
    files = sorted(args.out.rglob("*.flac"))
    size = sum(f.stat().st_size for f in files)
    print(f"wrote {len(files)} files, {size / 1e6:.2f} MB, to {args.out}")


if __name__ == "__main__":
    main()
