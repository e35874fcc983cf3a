"""Plugin: any HEAR module (HEAR 2021 API) as an upstream, ``-u hear -U module=NAME``
(see hear_upstream.py)."""

from __future__ import annotations

from emobox import UpstreamSpec, hookimpl


def _build(ckpt=None, device="cpu", module: str = "", model_file: str = ""):
    from .hear_upstream import HearUpstream

    return HearUpstream(module, model_file or ckpt or None).to(device)


@hookimpl
def emobox_upstreams():
    return [UpstreamSpec(
        name="hear", build=_build, family="hear",
        description="any HEAR 2021 module's timestamp embeddings (-U module=NAME)",
        paper="Turian et al., HEAR: Holistic Evaluation of Audio Representations, PMLR 2022",
        num_layers=0, hidden_size=0, frame_rate=0.0,
        options={"module": "the HEAR module to load, e.g. hearbaseline.naive (required)",
                 "model_file": "model file passed to the module's load_model (optional)"})]
