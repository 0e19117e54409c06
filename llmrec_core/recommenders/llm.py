"""The LLM two-tower model as a recommender: text vectors, training step, scoring.

``LlmRecommender(model_settings, train_settings)`` is the product's model; with
``use_text=False`` it is the ID-only ablation, with ``use_ids=False`` the text-only one.
Fine-tune mode ``none`` encodes item and profile texts once with the frozen language model
(cached on disk by content hash); ``lora`` and ``full`` put the language model in the
training graph for item texts (profile texts stay frozen vectors).
"""

from __future__ import annotations

import copy
import logging
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch

from llmrec_core.data.interactions import Interactions
from llmrec_core.data.snapshot import Snapshot, data_fingerprint
from llmrec_core.errors import LlmrecError
from llmrec_core.models import encoder as lm
from llmrec_core.models.batches import history_batch, make_segments, train_batch
from llmrec_core.models.encoder import pick_device
from llmrec_core.models.losses import click_bce, sampled_softmax
from llmrec_core.models.two_tower import TwoTower, TwoTowerConfig, gap_bucket
from llmrec_core.recommenders import returning
from llmrec_core.recommenders.base import History, Recommender
from llmrec_core.recommenders.classic import by_id, same_text
from llmrec_core.recommenders.content import tastes
from llmrec_core.settings import ModelSettings, TrainSettings
from llmrec_core.topk import blocked_topk, columns_topk, csr_rows, joint_topk, merge_top, transpose_csr
from llmrec_core.training import LoopResult, run_epochs

log = logging.getLogger(__name__)
USER_BLOCK = 4096  # users whose vectors are computed and ranked at once
ITEM_BLOCK = 16384  # items scored at once for the softmax over the catalogue (an item's audience by share)


class LlmRecommender(Recommender):
    probabilistic = True

    def __init__(self, model: ModelSettings, train: TrainSettings, *, name: str = "llmrec", all_targets: bool = False,
                 cache_dir: Path | None = None, progress: bool = False):
        self.model_settings, self.train_settings = model, train
        self.name, self.all_targets = name, all_targets
        self.cache_dir, self.progress = cache_dir, progress
        self.device = pick_device(train.device)
        self.result_: LoopResult | None = None
        # Platt scaling (a, c) of the click logit, fitted on a validation window: see ``calibrate``.
        self.calibration: tuple[float, float] = (1.0, 0.0)
        self.returns_: returning.ReturnRates | None = None  # see ``fit_returns``

    def __getstate__(self) -> dict:
        # A broadcast ships the model, not a block's vectors or the new items' statistics.
        return {**self.__dict__, "_users_cache": None, "_blend_cache": None}

    def params(self) -> dict[str, object]:
        return {**{f"model.{k}": v for k, v in self.model_settings.model_dump().items()},
                **{f"train.{k}": v for k, v in self.train_settings.model_dump().items()},
                "all_targets": self.all_targets}

    # -- text -----------------------------------------------------------------------------
    def _frozen_vectors(self, texts: list[str]) -> torch.Tensor:
        ms, ts = self.model_settings, self.train_settings
        return lm.frozen_vectors(ms.encoder, texts, ms.max_text_tokens, ts.text_batch_size, self.device, seed=ts.seed,
                                 cache_dir=self.cache_dir, load=lambda: (self.encoder_, self.tokenizer_))

    def _prepare_text(self, snap: Snapshot) -> None:
        ms = self.model_settings
        self.tokenizer_ = lm.load_tokenizer(ms.encoder)
        self.encoder_ = lm.load_encoder(ms.encoder).to(self.device)
        torch.manual_seed(self.train_settings.seed)  # a random encoder must not shift the model's init
        self.item_text_ = self._frozen_vectors(snap.item_texts).to(self.device)
        self.profile_text_ = self._frozen_vectors([t or "" for t in snap.profile_texts]).to(self.device)
        self.has_profile_ = torch.tensor([bool(t) for t in snap.profile_texts], device=self.device)
        # Sentence vectors share a large common direction; centring them on the catalogue mean
        # lets items differ from the first step instead of after many epochs.
        self.text_mean_ = self.item_text_.mean(0, keepdim=True)
        self.profile_mean_ = self.profile_text_[self.has_profile_].mean(0, keepdim=True) if self.has_profile_.any() else 0.0
        # Random weights (tests, throughput runs) cannot be re-created by name: keep them.
        self.random_encoder_state_ = ({k: v.cpu() for k, v in self.encoder_.state_dict().items()}
                                      if ms.encoder.startswith("random:") else None)
        if ms.finetune == "none":
            self.encoder_ = None  # frozen vectors are all the model needs
            return
        self.item_tokens_ = lm.TextTokens(self.tokenizer_, snap.item_texts, ms.max_text_tokens)
        if ms.finetune == "lora":
            from peft import LoraConfig, get_peft_model

            targets = [n for n in ("query", "value", "q_lin", "v_lin", "q_proj", "v_proj")
                       if any(name.endswith(n) for name, _ in self.encoder_.named_modules())]
            self.encoder_ = get_peft_model(self.encoder_, LoraConfig(r=ms.lora_r, lora_alpha=ms.lora_alpha, target_modules=targets))

    def _text_rows(self, items: torch.Tensor) -> torch.Tensor | None:
        if not self.model_settings.use_text:
            return None
        if self.encoder_ is None:
            return self.item_text_[items] - self.text_mean_
        return lm.encode(self.encoder_, self.item_tokens_, items.cpu(), self.device) - self.text_mean_

    def _autocast(self):
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return nullcontext()

    # -- training -------------------------------------------------------------------------
    def fit(self, snap: Snapshot, train: Interactions, *, validate=None, epochs: int | None = None,
            checkpoint: Path | None = None, on_epoch=None) -> LlmRecommender:
        ms, ts = self.model_settings, self.train_settings
        if not len(train):
            raise LlmrecError(f"{self.name}: no training events to fit on")
        torch.manual_seed(ts.seed)
        if self.device.type == "cpu":
            torch.use_deterministic_algorithms(True, warn_only=True)
            # Deterministic mode also fills every new tensor with NaN before an op writes it (a
            # tenth of a training step here); no op of the model reads memory it did not write,
            # and the fits come out the same to the last digit without it.
            torch.utils.deterministic.fill_uninitialized_memory = False
        self.snap_ = snap
        if ms.use_text:
            self._prepare_text(snap)
        else:
            self.encoder_, self.has_profile_ = None, torch.zeros(snap.n_users, dtype=torch.bool, device=self.device)
            self.profile_text_ = None
        counts = np.bincount(train.item, minlength=snap.n_items).astype(np.float64)
        self.known_ = torch.from_numpy(counts > 0).to(self.device)
        q = np.where(counts > 0, counts, 0.0) ** 0.75
        self.q_ = torch.from_numpy(q / q.sum()).float().to(self.device)
        # In-batch positives arrive at the rate of their frequency as softmax targets.
        targets = train.item if self.all_targets else train.item[train.label == 1]
        tcounts = np.bincount(targets, minlength=snap.n_items).astype(np.float64)
        self.p_ = torch.from_numpy(tcounts / max(tcounts.sum(), 1.0)).float().to(self.device)
        cfg = TwoTowerConfig(n_items=snap.n_items, n_kinds=snap.kinds.size,
                             text_dim=self.item_text_.shape[1] if ms.use_text else 1,
                             **ms.model_dump(include={"dim", "max_len", "n_layers", "n_heads", "dropout", "id_dropout", "use_text", "use_ids", "tau"}))
        torch.manual_seed(ts.seed)
        self.model_ = TwoTower(cfg).to(self.device)
        groups = [{"params": list(self.model_.parameters()), "lr": ts.lr}]
        if self.encoder_ is not None:
            groups.append({"params": [p for p in self.encoder_.parameters() if p.requires_grad], "lr": ts.encoder_lr})
        fused = {"fused": True} if self.device.type == "cuda" else {}
        optimizer = torch.optim.AdamW(groups, weight_decay=ts.weight_decay, **fused)
        self.train_ = train
        segments = make_segments(train, snap.n_users, ms.max_len)
        net = torch.nn.ModuleList([self.model_] + ([self.encoder_] if self.encoder_ is not None else []))

        def batches(epoch: int):
            order = np.random.default_rng(ts.seed + epoch).permutation(len(segments))
            if torch.distributed.is_available() and torch.distributed.is_initialized():
                # Each process takes its share. Equal shares give every process the same number of
                # steps: each backward is a collective all-reduce (DistributedDataParallel).
                world, rank = torch.distributed.get_world_size(), torch.distributed.get_rank()
                order = order[: len(order) - len(order) % world][rank::world]
            for s in range(0, len(order), ts.batch_size):
                yield train_batch(segments, order[s : s + ts.batch_size], train, self.all_targets, ms.max_len)

        if epochs is not None and epochs < 1:
            raise ValueError(f"epochs must be at least 1, not {epochs}")
        config = {"cfg": cfg.to_dict(), "epochs": ts.epochs if epochs is None else epochs, **{k: str(v) for k, v in self.params().items()}, "n_train": len(train),
                  "fingerprint": data_fingerprint(snap, train)}
        self.result_ = run_epochs(
            net, optimizer, batches, self._step, epochs=ts.epochs if epochs is None else epochs, config=config, validate=validate,
            patience=ts.patience, min_epochs=ts.min_epochs, checkpoint=checkpoint, progress=self.progress, on_epoch=on_epoch, name=self.name,
            seed=ts.seed,
        )
        self._cache = self._users_cache = None
        self.fit_cold_start()
        self.fit_returns(train)
        return self

    def fit_returns(self, train: Interactions) -> None:
        """The return rates an item's audience is ranked with (``model.return_horizon_days``),
        learnt from the training events up to their end."""
        horizon = self.model_settings.return_horizon_days
        asof = int(train.ts.max()) + 1 if len(train) else 0
        self.returns_ = returning.fit(train, self.snap_.n_users, asof, horizon) if horizon else None

    def fit_cold_start(self) -> None:
        """Fit the text-to-ID map of items without interactions (``model.cold_start: map``)."""
        ms = self.model_settings
        if not (ms.use_text and ms.use_ids and ms.cold_start == "map"):
            return
        self.all_item_vectors()  # refreshes the text vectors from a fine-tuned encoder
        self.model_.items.fit_text_to_id(self.item_text_ - self.text_mean_, self.known_, ms.cold_map_l2)
        self._cache = self._users_cache = None

    def _item_vectors(self, items: torch.Tensor) -> torch.Tensor:
        return self.model_.items(items, self._text_rows(items), self.known_[items])

    def _profile_tokens(self, users: torch.Tensor) -> torch.Tensor:
        prof = self.profile_text_[users] - self.profile_mean_ if self.profile_text_ is not None else None
        return self.model_.users.profile_token(prof, self.has_profile_[users])

    def _step(self, batch) -> torch.Tensor:
        dev = self.device
        seq = batch.seq
        negatives = torch.multinomial(self.q_, self.train_settings.negatives, replacement=True)
        soft = batch.softmax.to(dev)
        needed = torch.cat([seq.items.flatten().to(dev), batch.target_item.to(dev), negatives])
        uniq, inv = torch.unique(needed, return_inverse=True)
        self._cache = self._users_cache = None
        with self._autocast():
            vecs = self._item_vectors(uniq)
            n_hist = seq.items.numel()
            hist = vecs[inv[:n_hist]].view(*seq.items.shape, -1) * (seq.kinds.to(dev) > 0).unsqueeze(-1)
            states = self.model_.users(hist, seq.kinds.to(dev), seq.gaps.to(dev), self._profile_tokens(seq.users.to(dev)))
            u = self.model_.users.head(states[batch.target_pos.to(dev), batch.target_col.to(dev)], batch.elapsed.to(dev))
            tgt_local = inv[n_hist : n_hist + len(batch.target_item)]
            # Zero with a graph: a batch without targets still backpropagates (and all-reduces).
            loss = 0.0 * self.model_.bias
            if soft.any():
                cand, cand_inv = torch.unique(torch.cat([tgt_local[soft], inv[n_hist + len(batch.target_item):]]), return_inverse=True)
                col = cand_inv[: int(soft.sum())]
                logits = self.model_.logits(u[soft], vecs[cand]).float()
                rows = batch.target_pos.to(dev)[soft]
                owned = torch.zeros(len(seq.users), len(cand), dtype=torch.bool, device=dev)
                owned[rows, col] = True
                # Mixed negative sampling: logQ = log of each candidate's expected number of draws
                # (in-batch positives at their target frequency, sampled negatives at q). The
                # inclusion probability 1 - exp(-draws) was measured too: temporal NDCG@10 0.220
                # against 0.258 here, popularity 0.247 (benchmarks/RESULTS.md).
                expected = int(soft.sum()) * self.p_[uniq[cand]] + self.train_settings.negatives * self.q_[uniq[cand]]
                log_q = torch.log(expected.clamp(min=1e-12))
                loss = loss + sampled_softmax(logits, col, log_q, owned[rows])
            labelled = batch.target_label.to(dev) >= 0
            if labelled.any() and self.train_settings.bce_weight > 0:
                click = self.model_.click_logit(u[labelled], vecs[tgt_local[labelled]]).float()
                loss = loss + self.train_settings.bce_weight * click_bce(click, batch.target_label.to(dev)[labelled])
        return loss

    # -- scoring --------------------------------------------------------------------------
    @torch.no_grad()
    def all_item_vectors(self) -> torch.Tensor:
        if self._cache is None:
            self.model_.eval()
            if self.encoder_ is not None:
                self.encoder_.eval()
                self.item_text_ = lm.encode_all(self.encoder_, self.item_tokens_, self.train_settings.text_batch_size, self.device).to(self.device)
            text = self.item_text_ - self.text_mean_ if self.model_settings.use_text else None
            items = torch.arange(self.snap_.n_items, device=self.device)
            self._cache = self.model_.items(items, text, self.known_)
        return self._cache

    @torch.no_grad()
    def user_vectors(self, users: np.ndarray, history: History, asof: np.ndarray) -> torch.Tensor:
        self.model_.eval()
        ms, dev = self.model_settings, self.device
        stops = history.indptr[users + 1]
        seq = history_batch(users, history.indptr[users], stops, history.events, ms.max_len)
        V = self.all_item_vectors()
        hist = V[seq.items.to(dev)] * (seq.kinds.to(dev) > 0).unsqueeze(-1)
        states = self.model_.users(hist, seq.kinds.to(dev), seq.gaps.to(dev), self._profile_tokens(seq.users.to(dev)))
        lengths = seq.lengths.to(dev)
        last_ts = history.events.ts[np.maximum(stops - 1, 0)] if len(history.events) else np.zeros(len(users), np.int64)
        elapsed = torch.from_numpy(np.where(seq.lengths.numpy() > 0, gap_bucket(asof - last_ts), 0).astype(np.int64)).to(dev)
        return self.model_.users.head(states[torch.arange(len(users), device=dev), lengths], elapsed)

    def score(self, users: np.ndarray, history: History, asof: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            U = self.user_vectors(users, history, asof)
            a, c = self.calibration
            s = (self.model_.logits(U, self.all_item_vectors()) + self.model_.bias) * a + c
            if not self.model_settings.use_text:
                s[:, ~self.known_] = -torch.inf  # an ID-only model cannot score an item it never saw
            new = self._text_only()
            if len(new):
                rows, cols = self._blend_vectors(users, history, U.float(), new)
                s[:, torch.from_numpy(new).to(s.device)] = (rows @ cols.T).to(s.dtype)
            return s.float().cpu().numpy()

    # The fast paths: vectors and the blocked top-K, never a users x items matrix.
    def _scale_bias(self) -> tuple[float, float]:
        """score = <u, i> * scale + bias: the calibrated click logit ``a (<u, i> / tau + b) + c``."""
        a, c = self.calibration
        return a / self.model_.cfg.tau, a * float(self.model_.bias.item()) + c

    def _scorable(self, allowed: np.ndarray | None) -> np.ndarray | None:
        if self.model_settings.use_text:
            return allowed
        known = self.known_.cpu().numpy()  # an ID-only model cannot score an item it never saw
        return known if allowed is None else allowed & known

    def all_user_vectors(self, users: np.ndarray, history: History, asof: np.ndarray) -> torch.Tensor:
        """User vectors in blocks. The last call's result is kept: the scoring engine asks for the
        same block twice (its lists, then its audience)."""
        key = (users.tobytes(), np.asarray(asof).tobytes())
        cached = getattr(self, "_users_cache", None)
        if cached is not None and cached[0] is history and cached[1] == key:
            return cached[2]
        out = torch.cat([self.user_vectors(users[s : s + USER_BLOCK], history, asof[s : s + USER_BLOCK])
                         for s in range(0, len(users), USER_BLOCK)]) if len(users) else torch.zeros((0, self.model_.cfg.dim), device=self.device)
        self._users_cache = (history, key, out)  # holds the history: its id cannot be reused
        return out

    def recommend(self, users: np.ndarray, history: History, asof: np.ndarray, k: int, *,
                  exclude=None, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        users = np.asarray(users, np.int64)
        exclude = history.seen(users) if exclude is None else exclude
        scale, bias = self._scale_bias()
        U, V = self.all_user_vectors(users, history, asof).float(), self.all_item_vectors().float()
        new = self._text_only()
        # The blend is standardised over all new items, whichever of them the list may hold, so a
        # pair's score does not depend on the candidate set (as ``score`` and ``audience``).
        pick = np.ones(len(new), bool) if allowed is None else np.asarray(allowed, bool)[new]
        if not pick.any():
            return blocked_topk(U, V, k, exclude=exclude, allowed=self._scorable(allowed), scale=scale, bias=bias,
                                user_block=USER_BLOCK)
        # The known items as the model scores them; the new ones blended with the taste, apart.
        known = self.known_.cpu().numpy()
        lists = blocked_topk(U, V, k, exclude=exclude, allowed=known if allowed is None else allowed & known,
                             scale=scale, bias=bias, user_block=USER_BLOCK)
        blended, ranked = [], None
        for u0 in range(0, len(users), USER_BLOCK):
            u1 = min(len(users), u0 + USER_BLOCK)
            rows, cols = self._blend_vectors(users[u0:u1], history, U[u0:u1], new)
            if ranked is None:  # the same columns for every block: the allowed new items'
                ranked = cols if pick.all() else cols[torch.from_numpy(np.flatnonzero(pick)).to(cols.device)]
            blended.append(columns_topk(rows, ranked, new[pick], V.shape[0], k, exclude=csr_rows(exclude, np.arange(u0, u1))))
        if not blended:
            return lists
        return merge_top([lists, (np.concatenate([b[0] for b in blended]), np.concatenate([b[1] for b in blended]))], k)

    def audience(self, users: np.ndarray, history: History, asof: np.ndarray, k: int, *,
                 eligible: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Users by ``log p(returns within H days)`` (``returning``; 0 for a model without return
        rates: ``return_horizon_days`` 0, or exported before they existed) plus the user's taste
        for the item, which ``model.audience`` says how to weigh:

        - ``click``: ``log p(click | user, item)``, the calibrated click probability;
        - ``share``: ``w log(1 + n_u) + log p(item | user)``, with n_u the user's behaviours, w
          ``model.audience_activity_weight``, and ``p(item | user)`` the softmax of the model's
          scores over every item it can score: the share of the user's next behaviour that goes
          to the item.

        With ``cold_taste_weight``, a new item's score is the blended one, as everywhere."""
        ms = self.model_settings
        users = np.asarray(users, np.int64)
        V = self.all_item_vectors().float()
        U = self.all_user_vectors(users, history, asof).float()
        engaged = transpose_csr(history.seen(users), V.shape[0])
        scale, bias = self._scale_bias()
        log_return = None if self.returns_ is None else self.returns_.log_rate(history.last_ts(users), asof)

        new = self._text_only()  # the items the taste blend scores, ranked with their own vectors
        known = self.known_.cpu().numpy()
        old = np.flatnonzero(known) if len(new) or not ms.use_text else np.arange(V.shape[0])
        parts = [(old, V if len(old) == V.shape[0] else V[torch.from_numpy(old).to(V.device)], U, scale, bias)]
        if len(new):
            people, items = self._blend_vectors(users, history, U, new)
            parts.append((new, items, people, 1.0, 0.0))
        share = None
        if ms.audience == "share":
            # Every score divided by the Platt slope a is the model's own logit plus a constant:
            # a softmax over those is p(item | user).
            a = self.calibration[0]
            parts = [(part, R * (sc / a), C, 1.0, b / a) for part, R, C, sc, b in parts]
            prior = ms.audience_activity_weight * np.log1p(history.length(users)) - self._log_partition(parts)
            share = torch.from_numpy(prior + (0.0 if log_return is None else log_return)).to(V)[:, None]

        scores, rows = np.full((V.shape[0], k), -np.inf, np.float32), np.full((V.shape[0], k), -1, np.int64)
        for part, R, C, sc, b in parts:
            if not len(part):
                continue
            excluded = engaged if len(part) == V.shape[0] else csr_rows(engaged, part)
            if share is not None:  # the user's term in a column of its own: one linear top-K
                ones = torch.ones((R.shape[0], 1), dtype=R.dtype, device=R.device)
                found = blocked_topk(torch.cat([R, ones], 1), torch.cat([C, share], 1), k, exclude=excluded, allowed=eligible,
                                     bias=b, user_block=USER_BLOCK)
            elif log_return is None:
                found = blocked_topk(R, C, k, exclude=excluded, allowed=eligible, scale=sc, bias=b, user_block=USER_BLOCK)
            else:
                found = joint_topk(R, C, log_return, k, exclude=excluded, allowed=eligible, scale=sc, bias=b, row_block=USER_BLOCK)
            scores[part], rows[part] = found
        return scores, rows

    @torch.no_grad()
    def _log_partition(self, parts: list) -> np.ndarray:
        """``log sum_i exp(<c_u, r_i> * scale + bias)`` per user (column) over every part's items
        (rows): the normaliser of ``p(item | user)``, in blocks of users and items."""
        out = []
        n = parts[0][2].shape[0]
        for u0 in range(0, n, USER_BLOCK):
            total = torch.full((min(n, u0 + USER_BLOCK) - u0,), -torch.inf, dtype=torch.float64)
            for _, R, C, sc, b in parts:
                for i0 in range(0, R.shape[0], ITEM_BLOCK):
                    # float32 scores (logsumexp subtracts each row's maximum), float64 sums across blocks
                    block = torch.logsumexp(C[u0 : u0 + USER_BLOCK] @ R[i0 : i0 + ITEM_BLOCK].T * sc + b, dim=1)
                    total = torch.logaddexp(total, block.double().cpu())
            out.append(total.numpy())
        return np.concatenate(out) if out else np.zeros(0)

    # -- new items ranked with the user's taste (model.cold_taste_weight) ---------------------
    def _text_only(self) -> np.ndarray:
        """The items the taste blend reorders, those known by text only, or none when the model
        does not blend."""
        ms = self.model_settings
        if not (ms.cold_taste_weight > 0 and ms.use_text):
            return np.zeros(0, np.int64)
        return np.flatnonzero(~self.known_.cpu().numpy())

    @torch.no_grad()
    def _blend_vectors(self, users: np.ndarray, history: History, U: torch.Tensor,
                       new: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows for ``users`` (whose user vectors are ``U``) and rows for the items ``new`` whose
        dot products are the blended scores: for user u and new item i, with s the calibrated
        click logit and t the dot product of the user's taste with the item's centred text vector,

            m_u + sd_u(s) * (z_u(s) + w z_u(t)) / sd_u(z_u(s) + w z_u(t)),

        z_u and sd_u taken over the items ``new``: the model's order among them moved towards the
        taste's, with the model's mean and spread there. Users without a taste keep s. Every
        mean and spread comes from the items' means and covariances, so no users x items matrix
        is needed: the rows are [u * scale / D, c * taste, offset] and [v_i, x_i, 1]."""
        w = self.model_settings.cold_taste_weight
        V = self.all_item_vectors().float()
        scale, bias = self._scale_bias()
        key = new.tobytes()
        cached = getattr(self, "_blend_cache", None)
        if cached is None or cached[0] is not V or cached[1] != key:  # once per item vectors and new items
            X = (self.item_text_ - self.text_mean_).float()
            at = torch.from_numpy(new).to(V.device)
            Vn, Xn = V[at], X[at]
            mv, mx = Vn.mean(0), Xn.mean(0)
            Vd, Xd = Vn - mv, Xn - mx
            n = len(new)
            stats = (mv, mx, Vd.T @ Vd / n, Xd.T @ Xd / n, Vd.T @ Xd / n, torch.cat([Vn, Xn, torch.ones(n, 1, device=V.device)], 1))
            self._blend_cache = cached = (V, key, stats, X.cpu().numpy())
        mv, mx, cov_v, cov_x, cov_vx, cols = cached[2]
        taste, has = tastes(users, history, cached[3], 0.0, 0.0)
        T = torch.from_numpy(taste).to(V.device)
        su = U * scale
        sd_s = ((su @ cov_v) * su).sum(1).clamp(min=0).sqrt()
        sd_t = ((T @ cov_x) * T).sum(1).clamp(min=0).sqrt()
        ok = torch.from_numpy(has).to(V.device) & (sd_s > 1e-6) & (sd_t > 1e-9)
        rho = torch.where(ok, ((su @ cov_vx) * T).sum(1) / (sd_s * sd_t).clamp(min=1e-12), 0.0)
        D = torch.where(ok, (1 + w * w + 2 * w * rho).clamp(min=1e-6).sqrt(), 1.0)
        c = torch.where(ok, w * sd_s / (sd_t.clamp(min=1e-12) * D), 0.0)
        m = su @ mv + bias
        offset = bias / D + m * (1 - 1 / D) - c * (T @ mx)
        rows = torch.cat([su / D[:, None], c[:, None] * T, offset[:, None]], 1)
        return rows, cols

    def item_vectors(self) -> np.ndarray:
        return self.all_item_vectors().float().cpu().numpy()

    def export(self) -> dict:
        """What scoring needs: the model config and weights, the item IDs it knows, each item's
        text and text vector, and (for ``lora``/``full``) the fine-tuned encoder weights."""
        ms = self.model_settings
        self.all_item_vectors()  # refreshes the text vectors from a fine-tuned encoder
        text = self.item_text_.cpu() if ms.use_text else None
        encoder_state = getattr(self, "random_encoder_state_", None)
        base_state = encoder_state
        if self.encoder_ is not None:
            enc = copy.deepcopy(self.encoder_)  # merging LoRA must not change the live model
            enc = enc.merge_and_unload() if hasattr(enc, "merge_and_unload") else enc
            encoder_state = {k: v.cpu() for k, v in enc.state_dict().items()}
        counts = np.bincount(self.train_.kind, minlength=self.snap_.kinds.size)
        return {
            "kind": "llmrec",
            "name": self.name,
            "model_settings": ms.model_dump(),
            "train_settings": self.train_settings.model_dump(),
            "cfg": self.model_.cfg.to_dict(),
            "state": {k: v.cpu() for k, v in self.model_.state_dict().items()},
            "item_ids": list(self.snap_.item_ids),
            "item_texts": list(self.snap_.item_texts),
            "item_titles": list(self.snap_.item_titles),
            "item_text_vectors": text,
            # The centring the model was trained with is part of the model.
            "text_mean": self.text_mean_.cpu() if ms.use_text else None,
            "profile_mean": torch.as_tensor(self.profile_mean_).cpu() if ms.use_text else None,
            "known": self.known_.cpu(),
            "kinds": self.snap_.kinds,
            "default_kind": int(np.argmax(counts[1:]) + 1) if counts[1:].any() else 1,
            "encoder_state": encoder_state,
            "base_encoder_state": base_state,
            "encoder_tuned": self.encoder_ is not None,
            "calibration": list(self.calibration),
            "return_rates": self.returns_.to_dict() if self.returns_ is not None else None,
            "ds": str(self.snap_.ds),
        }

    @classmethod
    def restore(cls, state: dict, snap: Snapshot, device: str = "auto") -> LlmRecommender:
        """An exported model onto any day's catalogue. Items are matched by ID, so a catalogue
        that grew since training keeps working: a new item is encoded from its text and has no
        ID part (cold start); an item whose text changed is encoded from its new text and keeps
        its ID part; profiles are encoded fresh."""
        ms, ts = ModelSettings(**state["model_settings"]), TrainSettings(**{**state["train_settings"], "device": device})
        rec = cls(ms, ts, name=state["name"])
        rec.calibration = tuple(state.get("calibration", (1.0, 0.0)))
        rates = state.get("return_rates")
        rec.returns_ = returning.ReturnRates.from_dict(rates) if rates else None
        rows = by_id(state["item_ids"], snap.item_ids)
        unchanged = same_text(state["item_texts"], rows, snap.item_texts)
        cfg = TwoTowerConfig(**{**state["cfg"], "n_items": snap.n_items})
        model = TwoTower(cfg)
        weights = dict(state["state"])
        if cfg.use_text and cfg.use_ids:
            weights.setdefault("items.text_to_id", torch.zeros(cfg.text_dim, cfg.dim))  # saved before cold-start maps
        if cfg.use_ids:
            table = torch.zeros(snap.n_items, cfg.dim)
            hit = rows >= 0
            table[torch.from_numpy(np.flatnonzero(hit))] = weights["items.id_emb.weight"][torch.from_numpy(rows[hit])]
            weights["items.id_emb.weight"] = table
        model.load_state_dict(weights)
        rec.model_ = model.to(rec.device).eval()
        known = np.zeros(snap.n_items, bool)
        known[rows >= 0] = state["known"].numpy()[rows[rows >= 0]]
        # A changed text is a changed item as far as the text tower knows; its ID part stays.
        rec.known_ = torch.from_numpy(known).to(rec.device)
        rec.snap_, rec.encoder_, rec._cache = snap, None, None
        rec.has_profile_ = torch.tensor([bool(t) for t in snap.profile_texts], dtype=torch.bool, device=rec.device)
        rec.profile_text_, rec.item_text_ = None, None
        if ms.use_text:
            enc, tok = _saved_encoder(state, rec.device), lm.load_tokenizer(ms.encoder)
            text = torch.zeros(snap.n_items, cfg.text_dim)
            text[torch.from_numpy(np.flatnonzero(unchanged))] = state["item_text_vectors"][torch.from_numpy(rows[unchanged])]
            fresh = np.flatnonzero(~unchanged)
            if len(fresh):
                vecs = lm.encode_all(enc, lm.TextTokens(tok, [snap.item_texts[i] for i in fresh], ms.max_text_tokens), ts.text_batch_size, rec.device)
                text[torch.from_numpy(fresh)] = vecs
                log.info("encoded %d new or changed item texts", len(fresh))
            rec.item_text_ = text.to(rec.device)
            rec.text_mean_ = state["text_mean"].to(rec.device)
            rec.profile_mean_ = state["profile_mean"].to(rec.device)
            # Profiles were always encoded by the frozen base model.
            if state["encoder_tuned"]:
                enc = _saved_encoder(state, rec.device, tuned=False)
            # Many users share a profile text (or have none): each distinct text is encoded once.
            distinct, which = np.unique(np.array([t or "" for t in snap.profile_texts], dtype=object).astype(str), return_inverse=True)
            vecs = lm.encode_all(enc, lm.TextTokens(tok, list(distinct), ms.max_text_tokens), ts.text_batch_size, rec.device)
            rec.profile_text_ = vecs[torch.from_numpy(which.reshape(-1))].to(rec.device)
        return rec


def _saved_encoder(state: dict, device: torch.device, tuned: bool = True):
    enc = lm.load_encoder(state["model_settings"]["encoder"])
    weights = state["encoder_state"] if tuned else state["base_encoder_state"]
    if weights is not None:
        enc.load_state_dict(weights)
    return enc.to(device).eval()
