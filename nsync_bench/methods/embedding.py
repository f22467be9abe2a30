"""A token-embedding layer whose placeholder row is a separate trainable vector.

Textual Inversion trains one row of a 49,408-row matrix. Holding that row as its own parameter
(and substituting it where the placeholder token occurs) keeps the other rows untouched by
construction, keeps the optimizer's state at one row instead of the whole matrix, and lets NSYNC
give each branch its own leaf copy of the row (``branches``), so one backward pass yields each
branch's gradient separately.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LearnedRowEmbedding(nn.Module):
    def __init__(self, base: nn.Embedding, token_id: int, row: torch.Tensor) -> None:
        super().__init__()
        self.base = base  # frozen
        self.token_id = token_id
        self.row = nn.Parameter(row.detach().clone().float().reshape(1, -1))
        # Set by NSYNC's fused step: per-branch rows and the number of samples of each branch.
        self.branch_rows: list[torch.Tensor] | None = None
        self.branch_sizes: list[int] | None = None

    @property
    def weight(self) -> torch.Tensor:  # what the rest of transformers expects of an embedding
        return self.base.weight

    @property
    def embedding_dim(self) -> int:
        return self.base.embedding_dim

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        # The base matrix is frozen here (and may be a trainable matrix in the released code's mode,
        # whose gradient must then come only from the rule): no gradient flows into it.
        out = F.embedding(input_ids, self.base.weight.detach())
        mask = (input_ids == self.token_id).unsqueeze(-1)
        if self.branch_rows is None:
            rows = self.row.to(out.dtype).expand(input_ids.shape[0], -1)
        else:
            assert self.branch_sizes is not None and sum(self.branch_sizes) == input_ids.shape[0]
            rows = torch.cat([r.to(out.dtype).expand(n, -1) for r, n in zip(self.branch_rows, self.branch_sizes,
                                                                               strict=True)])
        return torch.where(mask, rows.unsqueeze(1), out)
