"""A bidirectional LSTM head with attention pooling that ignores padded frames."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from emobox import Downstream, EmoboxUsageError


class LstmAttentionHead(Downstream):
    """``features [B, T, D]`` -> BiLSTM -> attention weights over the real frames -> logits.

    Padding never reaches the LSTM (the batch is packed by ``lengths``) and gets no attention
    weight (its scores are set to -inf before the softmax), so an utterance's logits do not depend
    on what it is batched with. ``forward_packed`` comes from :class:`emobox.Downstream`.
    """

    def __init__(self, in_dim: int, n_classes: int, hidden: int = 64, layers: int = 1,
                 dropout: float = 0.1):
        super().__init__()
        if hidden < 1 or layers < 1 or not 0.0 <= dropout < 1.0:
            raise EmoboxUsageError(f"example_head: need hidden >= 1, layers >= 1 and 0 <= dropout "
                                   f"< 1, got hidden={hidden}, layers={layers}, dropout={dropout}")
        self.lstm = nn.LSTM(in_dim, hidden, num_layers=layers, batch_first=True,
                            bidirectional=True, dropout=dropout if layers > 1 else 0.0)
        self.score = nn.Linear(2 * hidden, 1)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(2 * hidden, n_classes)

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        steps = features.shape[1]
        packed = pack_padded_sequence(features, lengths.clamp(min=1).cpu(), batch_first=True,
                                      enforce_sorted=False)
        states, _ = pad_packed_sequence(self.lstm(packed)[0], batch_first=True,
                                        total_length=steps)  # [B, T, 2H], zeros past lengths
        real = torch.arange(steps, device=features.device)[None, :] < lengths[:, None]
        scores = self.score(states).squeeze(-1).masked_fill(~real, float("-inf"))
        weights = torch.softmax(scores, dim=1).unsqueeze(-1)  # [B, T, 1]
        pooled = (weights * states).sum(dim=1)
        return self.out(self.drop(pooled))
