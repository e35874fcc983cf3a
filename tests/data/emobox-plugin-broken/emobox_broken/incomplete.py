"""Faults: an upstream lacking attributes and smaller than declared, a head whose grid names a
parameter its build does not take, and a hook with a misspelt name."""

import emobox


def _build_upstream(ckpt=None, device="cpu", **options):
    import torch

    class HalfDone(torch.nn.Module):  # not an emobox.Upstream: no checkpoint_id, no padding_sensitive
        name = "incomplete_upstream"
        sample_rate = 16000
        num_layers = 0
        hidden_size = 16
        frame_rate = 100.0
        max_seconds = None

        def forward(self, wavs, layers):
            from emobox.extraction.upstream import UpstreamOutput

            frames = [w[: len(w) // 160 * 160].reshape(-1, 160)[:, :16] for w in wavs]
            lengths = torch.tensor([len(f) for f in frames])
            return UpstreamOutput({0: torch.nn.utils.rnn.pad_sequence(frames, batch_first=True)},
                                  lengths)

    return HalfDone()


def _build_head(in_dim, n_classes, hidden=32):
    import torch

    return torch.nn.Linear(in_dim, n_classes)


@emobox.hookimpl
def emobox_upstreams():
    return [emobox.UpstreamSpec(name="incomplete_upstream", build=_build_upstream,
                                hidden_size=32, frame_rate=100.0, description="half done")]


@emobox.hookimpl
def emobox_downstreams():
    return [emobox.DownstreamSpec(name="incomplete_head", build=_build_head,
                                  grid={"lr": [1e-3], "hidden": [32], "dropout": [0.1]})]


@emobox.hookimpl
def emobox_corpus():
    return []
