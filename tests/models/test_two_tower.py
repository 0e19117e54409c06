"""The two-tower model: fusion, cold items from text, causality, recency, losses, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from llmrec_core.models.losses import click_bce, sampled_softmax
from llmrec_core.models.two_tower import GAP_BUCKETS, Dropout, TwoTower, TwoTowerConfig, gap_bucket


def _model(**kw) -> TwoTower:
    torch.manual_seed(0)
    cfg = TwoTowerConfig(**{"n_items": 10, "n_kinds": 5, "text_dim": 12, "dim": 8, "max_len": 6, "n_heads": 2, "dropout": 0.0, **kw})
    return TwoTower(cfg).eval()


def test_unknown_item_is_scored_from_text_alone():
    model = _model()
    items, text = torch.arange(3), torch.randn(3, 12)
    known = model.items(items, text, torch.tensor([True, True, True]))
    unknown = model.items(items, text, torch.tensor([False, False, False]))
    # With the ID part removed, changing the ID table must not move an unknown item.
    with torch.no_grad():
        model.items.id_emb.weight.add_(1.0)
    assert torch.allclose(model.items(items, text, torch.tensor([False] * 3)), unknown)
    assert not torch.allclose(model.items(items, text, torch.tensor([True] * 3)), known)
    assert torch.allclose(unknown.norm(dim=-1), torch.ones(3), atol=1e-5)


def test_id_dropout_only_in_training():
    model = _model(id_dropout=1.0)
    items, text = torch.arange(4), torch.randn(4, 12)
    all_known = torch.ones(4, dtype=torch.bool)
    model.train()
    dropped = model.items(items, text, all_known)
    assert torch.allclose(dropped, model.items(items, text, ~all_known))
    model.eval()
    assert not torch.allclose(model.items(items, text, all_known), dropped)


def test_ablations_use_one_signal():
    ids_only, text_only = _model(use_text=False), _model(use_ids=False)
    items = torch.arange(2)
    assert torch.allclose(ids_only.items(items, None, torch.ones(2, dtype=torch.bool)),
                          F.normalize(ids_only.items.id_emb(items), dim=-1))
    t1, t2 = torch.randn(2, 12), torch.randn(2, 12)
    assert not torch.allclose(text_only.items(items, t1, torch.ones(2, dtype=torch.bool)),
                              text_only.items(items, t2, torch.ones(2, dtype=torch.bool)))
    with pytest.raises(ValueError):
        TwoTowerConfig(n_items=1, n_kinds=1, text_dim=1, use_text=False, use_ids=False)


def _states(model, hist, kinds, gaps, profile=None):
    prof = model.users.profile_token(profile, torch.tensor([profile is not None]))
    return model.users(hist, kinds, gaps, prof)


@pytest.mark.parametrize("p", [0.1, 0.2, 0.5])
def test_dropout_drops_at_its_rate_and_keeps_the_expectation(p):
    drop = Dropout(p).train()
    x = torch.full((500, 1000), 3.0, requires_grad=True)
    torch.manual_seed(0)
    y = drop(x)
    kept = y != 0
    assert abs(1 - kept.float().mean().item() - p) < 0.003
    assert torch.allclose(y[kept], torch.tensor(3.0 / (1 - p)), rtol=1e-4)
    assert abs(y.mean().item() - 3.0) < 0.02
    # Masks differ call to call and do not repeat along the tensor; one seed gives one mask.
    again = drop(x) != 0
    assert abs((kept & again).float().mean().item() - (1 - p) ** 2) < 0.003
    assert abs((kept[:, :-1] & kept[:, 1:]).float().mean().item() - (1 - p) ** 2) < 0.003
    torch.manual_seed(0)
    assert torch.equal(drop(x) != 0, kept)
    y.sum().backward()
    assert torch.allclose(x.grad, torch.where(kept, 1 / (1 - p), 0.0), rtol=1e-4)
    assert torch.equal(drop.eval()(x), x)


def test_user_tower_is_causal_and_uses_order():
    model = _model()
    hist = torch.randn(1, 4, 8)
    kinds, gaps = torch.ones(1, 4, dtype=torch.long), torch.full((1, 4), 3)
    base = _states(model, hist, kinds, gaps)
    changed = hist.clone()
    changed[0, 3] = torch.randn(8)
    later = _states(model, changed, kinds, gaps)
    # Position j sees behaviours 1..j: changing behaviour 4 leaves positions 0..3 as they were.
    assert torch.allclose(base[0, :4], later[0, :4], atol=1e-6)
    assert not torch.allclose(base[0, 4], later[0, 4])
    swapped = hist[:, [1, 0, 2, 3]]
    assert not torch.allclose(_states(model, swapped, kinds, gaps)[0, 4], base[0, 4])


def test_recency_changes_the_user_vector():
    model = _model()
    states = torch.randn(2, 8)
    soon = model.users.head(states, torch.tensor([1, 1]))
    late = model.users.head(states, torch.tensor([20, 20]))
    assert not torch.allclose(soon, late)
    assert gap_bucket(np.array([0, 1, 3600, 10**12])).tolist() == [1, 2, 12, GAP_BUCKETS - 1]


def test_profile_token_used_only_when_present():
    model = _model()
    profile = torch.randn(2, 12)
    tok = model.users.profile_token(profile, torch.tensor([True, False]))
    assert torch.allclose(tok[1], model.users.no_profile)
    assert torch.allclose(tok[0], model.users.profile_proj(profile[0]))


def test_click_probability_is_sigmoid_of_scaled_dot_plus_bias():
    model = _model(tau=0.5)
    with torch.no_grad():
        model.bias.fill_(-1.0)
    u, v = F.normalize(torch.randn(3, 8), dim=-1), F.normalize(torch.randn(3, 8), dim=-1)
    expected = torch.sigmoid((u * v).sum(-1) / 0.5 - 1.0)
    assert torch.allclose(torch.sigmoid(model.click_logit(u, v)), expected)
    assert torch.allclose(model.logits(u, v).diagonal(), (u * v).sum(-1) / 0.5)


def test_sampled_softmax_with_uniform_q_and_all_items_is_full_softmax():
    logits, target = torch.randn(4, 6), torch.tensor([0, 3, 5, 2])
    uniform = torch.full((6,), np.log(1 / 6))
    assert torch.allclose(sampled_softmax(logits, target, uniform), F.cross_entropy(logits, target))
    # logQ: a candidate sampled twice as often loses log 2 from its logit.
    q = uniform.clone()
    q[1] += np.log(2)
    shifted = logits.clone()
    shifted[:, 1] -= np.log(2)
    assert torch.allclose(sampled_softmax(logits, target, q), F.cross_entropy(shifted, target), atol=1e-6)


def test_accidental_hits_are_not_negatives():
    logits, target = torch.tensor([[1.0, 5.0, 0.0]]), torch.tensor([0])
    q = torch.zeros(3)
    masked = sampled_softmax(logits, target, q, torch.tensor([[False, True, False]]))
    assert torch.allclose(masked, F.cross_entropy(torch.tensor([[1.0, 0.0]]), target))
    assert click_bce(torch.tensor([0.0]), torch.tensor([1])).item() == pytest.approx(np.log(2))
