"""Plugin: data2vec 2.0 (base, large) and emotion2vec (base), ported to plain torch.

Neither model has a transformers class, and their reference code (fairseq, FunASR's training
stack) is not needed: ``data2vec2_net`` is the network, ``data2vec2_ckpt`` reads the released
checkpoint files (or a folder converted by ``emobox.upstreams.data2vec2.ckpt.convert_checkpoint``).

Weights are looked up, in order, at ``--upstream-ckpt PATH``, ``$EMOBOX_MODELS/<name>`` (a
folder, or ``<name>.pt`` beside it) and, for emotion2vec, the Hugging Face cache (offline).
"""

from __future__ import annotations

import functools
from pathlib import Path

from emobox import UpstreamSpec, hookimpl

from .variants import E2V_HUB, E2V_REVISION, FAIRSEQ_URL, SHAPES, VARIANTS  # noqa: F401

D2V2_PAPER = ("A. Baevski, A. Babu, W.-N. Hsu, M. Auli. Efficient self-supervised learning with "
              "contextualized target representations for vision, speech and language. ICML 2023")
E2V_PAPER = ("Z. Ma, Z. Zheng, J. Ye, J. Li, Z. Gao, S. Zhang, X. Chen. emotion2vec: "
             "Self-supervised pre-training for speech emotion representation. Findings of ACL 2024")


def _locate(name: str, ckpt=None):
    """The checkpoint file (or converted folder) of ``name`` on this machine; never loads it."""
    from emobox.extraction.checkpoints import find_checkpoint

    from .upstream import checkpoint_file

    files, _, how = VARIANTS[name]
    hub = E2V_HUB if name == "emotion2vec_base" else ""
    found = find_checkpoint(name, ckpt, hub_id=hub, revision=E2V_REVISION if hub else "",
                            how_to_get=how)
    return checkpoint_file(found, name, files)


def _convert(name: str, source=None, out=None, overwrite: bool = False):
    """Convert a released ``.pt`` (``source``, else the one found locally) into an encoder folder
    (``out``, default ``$EMOBOX_MODELS/<name>-converted``)."""
    from emobox import paths
    from emobox.errors import EmoboxUsageError

    from ..checkpoint_guard import check_replaceable
    from .ckpt import CONVERTED_FILES, convert_checkpoint
    from .upstream import preset

    src = _locate(name, source)
    dst = paths.models_dir() / f"{name}-converted" if out is None else Path(out)
    if dst.exists() and any(dst.iterdir()) and not overwrite:
        raise EmoboxUsageError(f"{dst} exists; pass --overwrite to replace it")
    check_replaceable(dst, CONVERTED_FILES)
    return convert_checkpoint(src, dst, preset(name))


def _build(name: str, ckpt=None, device="cpu", **options):
    from emobox.errors import EmoboxUsageError

    if options:
        raise EmoboxUsageError(f"{name} takes no --upstream-option (got "
                               f"{', '.join(sorted(options))})")
    from emobox.extraction.checkpoints import checkpoint_id

    from .ckpt import load_encoder
    from .upstream import Data2Vec2Upstream, preset

    path = _locate(name, ckpt)
    encoder, _ = load_encoder(path, preset(name))
    layers, width = SHAPES[name]
    cfg = encoder.cfg
    if (cfg.num_layers, cfg.embed_dim) != (layers, width):
        raise EmoboxUsageError(
            f"{path}: a {cfg.num_layers}-layer, {cfg.embed_dim}-dim model, but {name} has "
            f"{layers} layers of {width}; is it the checkpoint of another upstream?")
    return Data2Vec2Upstream(name, encoder, checkpoint_id(path)).to(device).eval()


def _callables(name: str) -> dict:
    return dict(build=functools.partial(_build, name), locate=functools.partial(_locate, name),
                convert=functools.partial(_convert, name))


@hookimpl
def emobox_upstreams():
    common = dict(family="data2vec2", frame_rate=50.0, sample_rate=16000)
    return [
        UpstreamSpec(
            name="data2vec2_base", **_callables("data2vec2_base"), **common,
            description="data2vec 2.0 base (LibriSpeech 960 h), plain-torch port; 12 "
                        "transformer blocks of 768",
            checkpoint="base_libri.pt (fairseq data2vec 2.0 release)",
            parameters=93_163_532, paper=D2V2_PAPER, license="MIT",
            num_layers=SHAPES["data2vec2_base"][0], hidden_size=SHAPES["data2vec2_base"][1]),
        UpstreamSpec(
            name="data2vec2_large", **_callables("data2vec2_large"), **common,
            description="data2vec 2.0 large (Libri-light 60k h), plain-torch port; 8 prenet + "
                        "16 transformer blocks of 1024",
            checkpoint="large_vox.pt (fairseq data2vec 2.0 release)",
            parameters=313_275_408, paper=D2V2_PAPER, license="MIT",
            num_layers=SHAPES["data2vec2_large"][0], hidden_size=SHAPES["data2vec2_large"][1]),
        UpstreamSpec(
            name="emotion2vec_base", **_callables("emotion2vec_base"), **common,
            description="emotion2vec base (data2vec 2.0 architecture, self-supervised on 262 h "
                        "of emotional speech), plain-torch port; 4 prenet + 8 blocks of 768",
            checkpoint=f"{E2V_HUB} (emotion2vec_base.pt)", revision=E2V_REVISION,
            parameters=93_171_212, paper=E2V_PAPER,
            license="FunASR model license (weights); MIT (code)",
            num_layers=SHAPES["emotion2vec_base"][0], hidden_size=SHAPES["emotion2vec_base"][1],
            # pre-training data: IEMOCAP, MELD, MEAD, CMU-MOSEI and MSP-Podcast
            trained_on=("iemocap", "meld", "mead", "msppodcast")),
    ]
