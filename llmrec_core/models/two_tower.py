"""The LLM two-tower click-through model (README.md, "The model, training and MLflow").

- Item tower: the language model's text vector of an item, projected, fused with a learned
  item-ID embedding through a learned per-dimension gate. In training the ID part is dropped
  with probability ``id_dropout``; an item the model never saw in training has no ID part at
  all, so it is scored from its text alone.
- User tower: a causal transformer over the user's recent behaviours. Each behaviour is the
  item vector plus embeddings of its kind (event type or rating bucket), its position and the
  time since the previous behaviour. Position 0 holds the user's profile text vector (a learned
  "no profile" vector when there is none), so a user with no history is scored from the
  profile. The output is shifted by an embedding of the time elapsed since the last behaviour
  (recency at prediction time).
- Score: ``p(click | u, i) = sigmoid(<u, i> / tau + b)`` with u and i L2-normalised.

Text vectors come from a frozen cache (fine-tune mode ``none``) or from the language model
inside the forward pass (``lora``/``full``; see :class:`ItemText`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

GAP_BUCKETS = 32


def gap_bucket(seconds: np.ndarray) -> np.ndarray:
    """1 + floor(log2(1 + seconds)), capped (0 is kept for "no previous behaviour")."""
    b = 1 + np.floor(np.log2(1.0 + np.clip(seconds, 0, None)))
    return np.clip(b, 1, GAP_BUCKETS - 1)


@dataclass
class TwoTowerConfig:
    n_items: int
    n_kinds: int
    text_dim: int
    dim: int = 64
    max_len: int = 50
    n_layers: int = 2
    n_heads: int = 2
    dropout: float = 0.2
    id_dropout: float = 0.3
    use_text: bool = True
    use_ids: bool = True
    tau: float = 0.1

    def __post_init__(self):
        if not (self.use_text or self.use_ids):
            raise ValueError("the model needs text, IDs or both")
        if self.dim % self.n_heads:
            raise ValueError(f"dim {self.dim} is not divisible by n_heads {self.n_heads}")

    def to_dict(self) -> dict:
        return asdict(self)


class ItemTower(nn.Module):
    def __init__(self, cfg: TwoTowerConfig):
        super().__init__()
        self.cfg = cfg
        if cfg.use_text:
            self.text_proj = nn.Sequential(nn.Linear(cfg.text_dim, 2 * cfg.dim), nn.GELU(), nn.Linear(2 * cfg.dim, cfg.dim))
        if cfg.use_ids:
            self.id_emb = nn.Embedding(cfg.n_items, cfg.dim)
            nn.init.normal_(self.id_emb.weight, std=0.02)
        if cfg.use_text and cfg.use_ids:
            self.gate = nn.Linear(2 * cfg.dim, cfg.dim)
            # Cold start: a linear map from an item's text vector to the ID embedding it would
            # have, fitted after training on the items that have one (``fit_text_to_id``). Zero
            # until then: an unknown item has no ID part.
            self.register_buffer("text_to_id", torch.zeros(cfg.text_dim, cfg.dim))

    @torch.no_grad()
    def fit_text_to_id(self, text: torch.Tensor, known: torch.Tensor, l2: float) -> None:
        """Ridge regression from the known items' text vectors to their learned ID embeddings."""
        x, y = text[known].double(), self.id_emb.weight[known].double()
        gram = x.T @ x + l2 * torch.eye(x.shape[1], dtype=x.dtype, device=x.device)
        self.text_to_id.copy_(torch.linalg.solve(gram, x.T @ y).to(self.text_to_id.dtype))

    def forward(self, items: torch.Tensor, text: torch.Tensor | None, known: torch.Tensor) -> torch.Tensor:
        """Normalised vectors of ``items``; ``text`` holds their text vectors, ``known`` whether
        each item had training interactions. An unknown item's ID part is the one its text maps
        to (zero before ``fit_text_to_id``); in training, dropped ID parts are zero."""
        cfg = self.cfg
        if not cfg.use_ids:
            return F.normalize(self.text_proj(text), dim=-1)
        keep = known
        if self.training and cfg.id_dropout > 0:
            keep = keep & (torch.rand(items.shape, device=items.device) >= cfg.id_dropout)
        ids = self.id_emb(items) * keep.unsqueeze(-1).to(self.id_emb.weight.dtype)
        if cfg.use_text and not self.training:
            ids = torch.where(known.unsqueeze(-1), ids, (text @ self.text_to_id).to(ids.dtype))
        if not cfg.use_text:
            return F.normalize(ids, dim=-1)
        t = self.text_proj(text)
        g = torch.sigmoid(self.gate(torch.cat([t, ids], dim=-1)))
        return F.normalize(g * t + (1 - g) * ids, dim=-1)


class Dropout(nn.Dropout):
    """``nn.Dropout`` with a cheaper mask on the CPU.

    torch's CPU dropout draws a Bernoulli mask: on 2 cores (Intel Xeon) 50 ms for the 6.6 M
    activations of one feed-forward layer of a batch, and the model's dropouts were a quarter
    of a training step. Here each 64-bit draw of torch's generator gives four 16-bit uniforms,
    and an element is kept when its uniform is at or above ``p`` (``p`` rounded to 1/65536;
    the kept elements are scaled by the rounded rate, so the expectation is unchanged): 17 ms
    for the same layer, seeded by ``torch.manual_seed`` like the original. On a GPU it is
    ``nn.Dropout``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0 or x.device.type != "cpu":
            return super().forward(x)
        drop = min(round(self.p * 65536), 65535)
        n = x.numel()
        bits = torch.randint(-(2**63), 2**63 - 1, ((n + 3) // 4,), dtype=torch.int64).view(torch.int16)[:n]
        keep = (bits >= drop - 32768).view(x.shape)
        return x * keep * (65536 / (65536 - drop))


class UserTower(nn.Module):
    def __init__(self, cfg: TwoTowerConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.dim
        self.kind_emb = nn.Embedding(cfg.n_kinds, d, padding_idx=0)
        self.pos_emb = nn.Embedding(cfg.max_len + 1, d)
        self.gap_emb = nn.Embedding(GAP_BUCKETS, d)
        self.elapsed_emb = nn.Embedding(GAP_BUCKETS, d)
        # Small embeddings: at the default N(0, 1) they would drown the unit-norm item vectors.
        for emb in (self.kind_emb, self.pos_emb, self.gap_emb, self.elapsed_emb):
            nn.init.normal_(emb.weight, std=0.02)
        with torch.no_grad():
            self.kind_emb.weight[0].zero_()
        self.no_profile = nn.Parameter(torch.zeros(d))
        if cfg.use_text:
            self.profile_proj = nn.Linear(cfg.text_dim, d)
        layer = nn.TransformerEncoderLayer(d, cfg.n_heads, 4 * d, cfg.dropout, batch_first=True, norm_first=True)
        # The feed-forward's and the residuals' dropouts (the attention's own stays torch's).
        layer.dropout, layer.dropout1, layer.dropout2 = Dropout(cfg.dropout), Dropout(cfg.dropout), Dropout(cfg.dropout)
        self.encoder = nn.TransformerEncoder(layer, cfg.n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.drop = Dropout(cfg.dropout)
        self.out = nn.Linear(d, d)

    def profile_token(self, profile: torch.Tensor | None, has_profile: torch.Tensor) -> torch.Tensor:
        base = self.no_profile.expand(len(has_profile), -1)
        if profile is None or not self.cfg.use_text:
            return base
        return torch.where(has_profile.unsqueeze(-1), self.profile_proj(profile), base)

    def forward(self, hist: torch.Tensor, kinds: torch.Tensor, gaps: torch.Tensor, profile_tok: torch.Tensor) -> torch.Tensor:
        """Hidden states for positions 0..L (0 = profile only, j = after behaviour j).

        hist [B, L, d] item vectors, kinds/gaps [B, L] (kind 0 = padding, right-padded),
        profile_tok [B, d]. Causal: position j sees the profile and behaviours 1..j only.
        """
        B, L, _ = hist.shape
        x = torch.cat([profile_tok.unsqueeze(1), hist + self.kind_emb(kinds) + self.gap_emb(gaps)], dim=1)
        x = self.drop(x + self.pos_emb(torch.arange(L + 1, device=x.device)))
        causal = torch.triu(torch.ones(L + 1, L + 1, dtype=torch.bool, device=x.device), diagonal=1)
        return self.norm(self.encoder(x, mask=causal))

    def head(self, states: torch.Tensor, elapsed: torch.Tensor) -> torch.Tensor:
        """User vectors from hidden states and the elapsed-time bucket at prediction time."""
        return F.normalize(self.out(states + self.elapsed_emb(elapsed)), dim=-1)


class TwoTower(nn.Module):
    def __init__(self, cfg: TwoTowerConfig):
        super().__init__()
        self.cfg = cfg
        self.items = ItemTower(cfg)
        self.users = UserTower(cfg)
        self.bias = nn.Parameter(torch.zeros(()))

    def logits(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """<u, i> / tau for every (user, item) pair of the two matrices."""
        return users @ items.T / self.cfg.tau

    def click_logit(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Row-wise ``<u, i> / tau + b``; its sigmoid is p(click)."""
        return (users * items).sum(-1) / self.cfg.tau + self.bias
