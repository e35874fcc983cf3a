"""The flags ``emobox run``, ``emobox bench`` and ``emobox cross run`` share, declared once.

Each is an ``Annotated`` type: a command takes it as ``epochs: Epochs = DEFAULT.epochs``, so
every track spells it the same way, with the same help and the same default.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Annotated, Any, List, Optional

import typer

from ..errors import EmoboxUsageError

# The defaults of the options model (emobox.tracks.options.FoldOptions), written out so that the
# command line starts without loading torch; tests/tracks/test_shared_flags.py checks that they agree.
DEFAULT = SimpleNamespace(
    seed=0, device="auto", layer=None, layer_norm=True, feature_norm="utterance", grad_clip=5.0,
    recipe="emobox", epochs=100, warmup_epochs=10, batch_size=32, select="valid",
    class_weights=False, precision="fp32", train_precision="fp32", schedule="linear",
    upstream_ckpt=None, on_bad_audio="fail", features_dir=None, batch_seconds=None,
    scheme="emobox", runtime="torch")

Seed = Annotated[int, typer.Option("--seed", help="Seed of splits, initialisation and "
                                   "batches.")]
Device = Annotated[str, typer.Option("--device", help="auto (cuda when this machine has it, "
                                     "else cpu) | cpu | cuda | cuda:N.")]
Layer = Annotated[Optional[str], typer.Option("--layer", help="Upstream layer (default: "
                                              "last); run, bench and cross run also take "
                                              "several, each run as its own variant from one "
                                              "extraction: a list (4,8,12), a range (0-12), a "
                                              "mix (0-3,8) or 'all'.")]
NoLayerNorm = Annotated[bool, typer.Option("--no-layer-norm", help="The same as "
                                           "--feature-norm none.")]
FeatureNorm = Annotated[str, typer.Option("--feature-norm", help="utterance (one mean and "
                                          "variance per utterance, EmoBox's) | frame (each "
                                          "frame over its dimensions) | none.")]
GradClip = Annotated[float, typer.Option("--grad-clip", help="Clip each configuration's "
                                         "gradient to this L2 norm (SpeechBrain's default, "
                                         "which EmoBox ran); 0: no clipping.")]
Recipe = Annotated[str, typer.Option("--recipe", help="emobox (EmoBox's protocol, its bugs "
                                     "fixed) | paper (EmoBox's code, bugs included: selects by "
                                     "test, its schedule, drops utterances over 30 s, random "
                                     "20% validation; outputs are marked).")]
Grid = Annotated[List[str], typer.Option("--grid", help="Sweep, e.g. 'lr=1e-3,1e-4 "
                                         "hidden=128,256', or a .json/.yaml file.")]
Epochs = Annotated[int, typer.Option("--epochs", help="Training epochs.")]
Warmup = Annotated[int, typer.Option("--warmup", help="Warm-up epochs to the peak learning "
                                     "rate.")]
BatchSize = Annotated[int, typer.Option("--batch-size", help="Utterances per batch.")]
Select = Annotated[str, typer.Option("--select", help="valid (default) | test: EmoBox's "
                                     "recipe, only to compare with its tables; outputs are "
                                     "marked.")]
ClassWeights = Annotated[bool, typer.Option("--class-weights", help="Weight the loss by "
                                            "inverse class frequency.")]
TrainPrecision = Annotated[str, typer.Option("--train-precision", help="fp32 (exact) | bf16 "
                                             "(bfloat16 frame-level matmuls; labelled in the "
                                             "results).")]
Schedule = Annotated[str, typer.Option("--schedule", help="Learning rate after the warm-up: "
                                       "linear (decay towards 0) | constant | paper (EmoBox's "
                                       "script: epoch 2 at 0).")]
UpstreamCkpt = Annotated[Optional[str], typer.Option("--upstream-ckpt", help="Local "
                                                     "checkpoint of the upstream (one -u "
                                                     "only).")]
UpstreamOption = Annotated[List[str], typer.Option(
    "--upstream-option", "-U", help="Upstream option name=value, for every upstream, or "
    "UPSTREAM:name=value for one (e.g. whisper_large_v3:mode=trimmed) (repeatable).")]
CorpusOption = Annotated[List[str], typer.Option(
    "--corpus-option", "-C", help="Corpus option name=value, for every corpus, or "
    "CORPUS:name=value for one (repeatable).")]
OnBadAudio = Annotated[str, typer.Option("--on-bad-audio", help="fail | skip (skipped files "
                                         "are listed in the run directory).")]
Precision = Annotated[str, typer.Option("--precision", help="Feature extraction: fp32 "
                                        "(exact) | bf16 | fp16 (fast modes, labelled in every "
                                        "output).")]
BatchSeconds = Annotated[Optional[float], typer.Option("--batch-seconds", help="Extraction "
                                                       "batch budget in padded audio "
                                                       "seconds.")]
Runtime = Annotated[str, typer.Option("--runtime", help="Feature extraction on the CPU: "
                                      "torch (default) | openvino (the wav2vec2 family, "
                                      "data2vec 2.0/emotion2vec and Whisper's encoder; "
                                      "checked against torch, "
                                      "recorded in every output).")]
FeaturesDir = Annotated[Optional[str], typer.Option("--features-dir", help="Feature stores "
                                                    "folder (default $EMOBOX_HOME/features; "
                                                    "shared by every node on a cluster).")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]
Fold = Annotated[List[int], typer.Option("--fold", "-f", help="Fold(s) to run (repeatable); "
                                         "default all.")]
Scheme = Annotated[str, typer.Option("--scheme", help="Partition: emobox | "
                                     "speaker-independent.")]


def options_of(parsed: dict[str, Any], owner: str, flag: str, what: str) -> dict[str, Any]:
    """``-U``/``-C`` options of a track with one upstream or corpus ``owner``, parsed as
    name -> value: a name may be written ``OWNER:name`` (the syntax of ``emobox bench``), where
    OWNER must be ``owner``."""
    out: dict[str, Any] = {}
    for key, value in parsed.items():
        named, colon, name = key.partition(":")
        if colon:
            if named.strip() != owner or not name.strip():
                raise EmoboxUsageError(f"{flag} {key}=...: the {what} of this run is {owner}; "
                                       f"give name=value or {owner}:name=value")
            key = name.strip()
        out[key] = value
    return out


__all__ = ["DEFAULT", "options_of"]
