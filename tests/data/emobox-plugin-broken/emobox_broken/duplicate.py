"""Fault: claims the name of a built-in upstream."""

import emobox


def _build(ckpt=None, device="cpu", **options):
    raise RuntimeError("never built")


@emobox.hookimpl
def emobox_upstreams():
    return [emobox.UpstreamSpec(name="mfcc", build=_build, hidden_size=13, frame_rate=100.0,
                                description="a second mfcc")]
