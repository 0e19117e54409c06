"""Every recommender behind one interface, on the toy lake with a tiny random language model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from llmrec_core.data import protocols
from llmrec_core.data.snapshot import load_snapshot
from llmrec_core.errors import LlmrecError
from llmrec_core.evaluation import evaluate
from llmrec_core.io import tensorfile
from llmrec_core.recommenders.base import History
from llmrec_core.recommenders.classic import ItemKNN, Popularity
from llmrec_core.recommenders.llm import LlmRecommender
from llmrec_core.recommenders.portable import restore
from llmrec_core.recommenders.reranked import Reranked


@pytest.fixture
def toy(toy_home, tiny_settings):
    _, last = toy_home
    snap = load_snapshot(tiny_settings, last)
    cutoff = snap.end_ts - 3 * protocols.DAY
    return tiny_settings, snap, cutoff


def _llm(settings, **change):
    ms = settings.model.model_copy(update=change)
    return LlmRecommender(ms, settings.train, name="t", cache_dir=settings.models_dir / "cache")


def _scores(rec, snap, events):
    users = np.arange(snap.n_users, dtype=np.int32)
    return rec.score(users, History.of(events, snap.n_users), np.full(snap.n_users, snap.end_ts))


def test_llm_learns_preferences_and_scores_cold_items_from_text(toy):
    settings, snap, cutoff = toy
    settings.train.epochs = 15
    ctr = protocols.ctr(snap.events, snap.n_users, cutoff, 3)
    cold = protocols.cold_items(snap.events, snap.n_users, snap.n_items, cutoff, 3)
    assert len(cold.items) > 0
    fused = _llm(settings).fit(snap, ctr.train)
    ids_only = _llm(settings, use_text=False).fit(snap, ctr.train)
    fused_ctr = evaluate(fused, ctr, snap, [10])
    assert fused_ctr["user_auc"] > 0.7  # users like their topic; 0.5 would be chance
    assert 0 < fused_ctr["log_loss"] < 1.0
    assert evaluate(fused, cold, snap, [10])["cold_recall_10"] > 0.2
    # An ID-only model cannot score an item it never saw, by construction.
    assert evaluate(ids_only, cold, snap, [10])["cold_recall_10"] == 0.0
    assert np.isneginf(_scores(ids_only, snap, ctr.train)[:, cold.items]).all()
    assert np.isfinite(_scores(fused, snap, ctr.train)[:, cold.items]).all()


def test_comparison_measures_diversity_in_the_vectors_the_model_encoded(toy, monkeypatch):
    """One cache of frozen text vectors: what the model fitted on is what diversity@K is measured
    in, and a second encoding is read back rather than recomputed."""
    from llmrec_core import comparison
    from llmrec_core.models import encoder as lm
    from llmrec_core.recommenders import zoo

    settings, snap, cutoff = toy
    settings.train.epochs = 1
    rec = zoo.sequence_models(settings, ablations=False)[0].fit(snap, snap.events.mask(snap.events.ts < cutoff))

    def unused(*args, **kwargs):
        raise AssertionError("encoded again")

    with monkeypatch.context() as m:  # the comparison reads the model's cache: it loads no encoder
        m.setattr(lm, "load_encoder", unused)
        vectors = comparison.catalogue_vectors(settings, snap)
    assert np.array_equal(vectors, rec.item_text_.cpu().numpy())

    ms, ts = settings.model, settings.train

    again = lm.frozen_vectors(ms.encoder, snap.item_texts, ms.max_text_tokens, ts.text_batch_size, torch.device("cpu"),
                              seed=ts.seed, cache_dir=zoo.text_cache_dir(settings), load=unused)
    assert np.array_equal(again.numpy(), vectors)
    # A random encoder's weights come from the seed: another seed is another entry.
    other = lm.frozen_vectors(ms.encoder, snap.item_texts, ms.max_text_tokens, ts.text_batch_size, torch.device("cpu"),
                              seed=ts.seed + 1, cache_dir=zoo.text_cache_dir(settings))
    assert not np.allclose(other.numpy(), vectors)


def test_training_is_deterministic_on_cpu(toy):
    settings, snap, cutoff = toy
    train = snap.events.mask(snap.events.ts < cutoff)
    a = _scores(_llm(settings).fit(snap, train), snap, train)
    b = _scores(_llm(settings).fit(snap, train), snap, train)
    assert np.array_equal(a, b)


def test_nothing_to_train_on_is_an_error_not_a_model_that_fails_later(toy):
    settings, snap, _ = toy
    with pytest.raises(LlmrecError, match="t: no training events to fit on"):
        _llm(settings).fit(snap, snap.events.mask(np.zeros(len(snap.events), bool)), validate=lambda: 0.0)


def test_killed_run_resumes_from_its_last_checkpoint(toy, tmp_path):
    settings, snap, cutoff = toy
    train = snap.events.mask(snap.events.ts < cutoff)
    settings.train.epochs = 4
    whole = _scores(_llm(settings).fit(snap, train), snap, train)
    ckpt = tmp_path / "ckpt"

    def die(epoch, row):
        if epoch == 2:
            raise KeyboardInterrupt("killed")

    with pytest.raises(KeyboardInterrupt):
        _llm(settings).fit(snap, train, checkpoint=ckpt, on_epoch=die)
    assert tensorfile.load(ckpt)["epoch"] == 1  # epoch 2 died before its checkpoint
    resumed = _llm(settings).fit(snap, train, checkpoint=ckpt)
    assert resumed.result_.resumed_from == 1 and resumed.result_.epochs_run == 4
    assert np.allclose(_scores(resumed, snap, train), whole, atol=1e-5)


def test_early_stopping_keeps_the_best_epoch(toy):
    settings, snap, cutoff = toy
    settings.train.epochs, settings.train.patience, settings.train.min_epochs = 10, 2, 1
    train = snap.events.mask(snap.events.ts < cutoff)
    values = iter([0.1, 0.5, 0.3, 0.2, 0.1, 0.9])
    rec = _llm(settings).fit(snap, train, validate=lambda: next(values))
    assert rec.result_.best_epoch == 2 and rec.result_.epochs_run == 4
    # A first plateau longer than the patience: min_epochs runs past it to the better epoch 6,
    # then stops after the patience.
    settings.train.min_epochs = 6
    values = iter([0.1, 0.5, 0.3, 0.2, 0.1, 0.9, 0.4, 0.3, 0.2])
    rec = _llm(settings).fit(snap, train, validate=lambda: next(values))
    assert rec.result_.best_epoch == 6 and rec.result_.epochs_run == 8
    # No later improvement: exactly min_epochs are run, and the early best is kept.
    settings.train.min_epochs = 5
    values = iter([0.1, 0.5, 0.3, 0.2, 0.1, 0.0])
    rec = _llm(settings).fit(snap, train, validate=lambda: next(values))
    assert rec.result_.best_epoch == 2 and rec.result_.epochs_run == 5


def test_the_comparison_reports_the_validation_ndcg_of_the_epoch_it_kept(toy):
    """``valid_ndcg_10`` is the model's NDCG@10 on the validation split at the kept epoch (what
    settings are chosen by), not the test split's: without a refit the kept model gives it back."""
    from llmrec_core import comparison

    settings, snap, _ = toy
    settings.train.epochs, settings.train.patience = 4, 1
    valid, test = protocols.loo(snap.events, snap.n_users)
    rec = _llm(settings)
    info = comparison.fit_sequence(rec, snap, valid.train, valid, test.train, "ndcg_10", False)
    again = evaluate(rec, valid, snap, [10])["ndcg_10"]
    assert info["valid_ndcg_10"] == pytest.approx(again, abs=1e-6) and info["valid_ndcg_10"] > 0
    assert info["valid_ndcg_10"] != pytest.approx(evaluate(rec, test, snap, [10])["ndcg_10"], abs=1e-6)
    results = {"models": {"t": {"loo": [info, {**info, "valid_ndcg_10": 0.0}]}, "popularity": {"loo": [{"fit_s": 0.1}]}}}
    assert comparison.valid_means(results) == {"t": pytest.approx(info["valid_ndcg_10"] / 2)}
    assert comparison.fit_cell({**info, "fit_s": 3.5}) == f"3.5 ({info['best_epoch']}, {info['valid_ndcg_10']:.4f})"


def test_the_audience_is_the_one_the_validation_window_chooses(toy, monkeypatch):
    """``tuning.choose_audience``: ``click``, then ``share`` with each activity weight, each
    measured by the ``cold_items`` protocol's audience recall; the best is set on the model
    (ties: the earlier candidate); too few new items, an empty grid, or every candidate scoring
    the same keep the configured audience."""
    from llmrec_core import tuning

    settings, snap, cutoff = toy
    settings.train.epochs = 2
    rec = _llm(settings).fit(snap, snap.events.mask(snap.events.ts < cutoff))
    cold = protocols.cold_items(snap.events, snap.n_users, snap.n_items, cutoff, 3)
    grid, want = [0.0, 4.0], {}
    for key, update in (("click", {"audience": "click"}), ("share_0", {"audience": "share", "audience_activity_weight": 0.0}),
                        ("share_4", {"audience": "share", "audience_activity_weight": 4.0})):
        rec.model_settings = rec.model_settings.model_copy(update=update)
        want[key] = evaluate(rec, cold, snap, [3])["cold_audience_recall_3"]
    assert len(set(want.values())) > 1  # the candidates order this window's audiences differently: a real choice
    rec.model_settings = rec.model_settings.model_copy(update={"audience": "click", "audience_activity_weight": 1.0})
    items = sum(len(t) > 0 for t in cold.item_truth)
    monkeypatch.setattr(tuning, "AUDIENCE_MIN_ITEMS", items)
    chosen = tuning.choose_audience(rec, snap, cold, grid, k=3)
    assert chosen.trials == pytest.approx(want) and list(chosen.trials) == list(want) and chosen.items == items
    best = next(key for key in want if want[key] == max(want.values()))
    ms = rec.model_settings
    assert (chosen.audience, chosen.weight) == (ms.audience, ms.audience_activity_weight)
    assert best == ("click" if ms.audience == "click" else f"share_{ms.audience_activity_weight:g}")
    logged = chosen.metrics()
    assert logged["audience_share"] == float(ms.audience == "share") and logged["audience_share_4_recall_3"] == want["share_4"]
    # Ties go to the earlier candidate; when every candidate scores the same, the configured one stays.
    for figures, expected in (({"click": 0.1, "share_0": 0.3, "share_4": 0.3}, ("share", 0.0)),
                              ({"click": 0.3, "share_0": 0.3, "share_4": 0.3}, ("click", 1.0))):
        monkeypatch.setattr(tuning, "audience_recall", lambda r, *a, figures=figures: figures[
            "click" if r.model_settings.audience == "click" else f"share_{r.model_settings.audience_activity_weight:g}"])
        rec.model_settings = rec.model_settings.model_copy(update={"audience": "click", "audience_activity_weight": 1.0})
        got = tuning.choose_audience(rec, snap, cold, grid, k=3)
        assert (got.audience, got.weight) == expected == (rec.model_settings.audience, rec.model_settings.audience_activity_weight)
    # Kept as configured: too few new items on the window, no grid, or a model without text.
    id_only = _llm(settings, use_text=False)
    id_only.fit(snap, snap.events.mask(snap.events.ts < cutoff))
    for model, g, minimum in ((rec, grid, items + 1), (rec, [], 1), (id_only, grid, 1)):
        monkeypatch.setattr(tuning, "AUDIENCE_MIN_ITEMS", minimum)
        model.model_settings = model.model_settings.model_copy(update={"audience": "share", "audience_activity_weight": 2.0})
        kept = tuning.choose_audience(model, snap, cold, g, k=3)
        assert (kept.audience, kept.weight, kept.trials) == ("share", 2.0, None)
        assert (model.model_settings.audience, model.model_settings.audience_activity_weight) == ("share", 2.0)


def test_the_comparison_serves_the_cold_taste_weight_its_validation_window_chose(toy, monkeypatch):
    """``fit_sequence`` on a time cut-off, as the training job: the weight is chosen on the inner
    window's new items after early stopping, kept through the refit, and shown in the fit table."""
    from llmrec_core import comparison, tuning

    settings, snap, cutoff = toy
    settings.train.epochs = 2
    monkeypatch.setattr(tuning, "COLD_TASTE_MIN_USERS", 1)
    inner = protocols.temporal(snap.events, snap.n_users, cutoff, 3)
    cold = protocols.cold_items(snap.events, snap.n_users, snap.n_items, cutoff, 3)
    ctr = protocols.ctr(snap.events, snap.n_users, cutoff, 3)
    rec = _llm(settings, cold_taste_weight=3.0)
    monkeypatch.setattr(tuning, "AUDIENCE_MIN_ITEMS", 1)
    info = comparison.fit_sequence(rec, snap, inner.train, inner, snap.events, "ndcg_10", True, ctr, cold, [0.0, 1.0, 4.0], 2, [0.0, 2.0])
    trials = info["cold_taste_trials"]
    assert list(trials) == [0.0, 1.0, 4.0] and len(set(trials.values())) > 1 and info["cold_taste_users"] > 0
    best = max(trials, key=lambda w: (trials[w], -list(trials).index(w)))
    assert info["cold_taste_weight"] == best == rec.model_settings.cold_taste_weight  # the refit model carries it
    assert rec.known_[torch.from_numpy(cold.items).long()].all()  # refit on every event: the window's new items are known now
    # The audience is chosen on the same window, after the scaling, and the refit model carries it too.
    assert list(info["audience_trials"]) == ["click", "share_0", "share_2"] and info["audience_items"] > 0
    assert len(set(info["audience_trials"].values())) > 1
    assert (info["audience"], info["audience_activity_weight"]) == (rec.model_settings.audience, rec.model_settings.audience_activity_weight)
    shown = "click" if info["audience"] == "click" else f"share {info['audience_activity_weight']:g}"
    assert comparison.fit_cell({**info, "fit_s": 1.0}) == f"1.0 ({info['best_epoch']}, {info['valid_ndcg_10']:.4f}, w {best:g}, audience {shown})"


def test_export_restore_round_trip_and_grown_catalogue(toy):
    settings, snap, cutoff = toy
    train = snap.events.mask(snap.events.ts < cutoff)
    rec = _llm(settings).fit(snap, train)
    restored = restore(rec.export(), snap, "cpu")
    assert np.allclose(_scores(restored, snap, train), _scores(rec, snap, train), atol=1e-5)
    # Onto a catalogue in another order with one brand-new item: matched by ID, new one from text.
    order = np.r_[np.arange(snap.n_items)[::-1]]
    from dataclasses import replace

    grown = replace(snap, item_ids=np.r_[snap.item_ids[order], ["new"]].astype(object),
                    item_texts=[snap.item_texts[i] for i in order] + ["Galaxy story new. Genres: Space."],
                    item_titles=[snap.item_titles[i] for i in order] + ["Galaxy story new"],
                    item_available=np.ones(snap.n_items + 1, bool))
    moved = restore(rec.export(), grown, "cpu")
    s_old = _scores(rec, snap, train)
    # Histories must use the new item indices too.
    remap = np.argsort(order)
    events = replace(train, item=remap[train.item].astype(np.int32))
    s_new = moved.score(np.arange(snap.n_users, dtype=np.int32), History.of(events, snap.n_users), np.full(snap.n_users, snap.end_ts))
    assert np.allclose(s_new[:, :-1], s_old[:, order], atol=1e-4)
    assert np.isfinite(s_new[:, -1]).all()


@pytest.mark.parametrize("mode", ["lora", "full"])
def test_finetune_modes_update_the_language_model(toy, mode):
    settings, snap, cutoff = toy
    settings.train.epochs = 1
    train = snap.events.mask(snap.events.ts < cutoff)
    probe = _llm(settings, finetune=mode)
    probe._prepare_text(snap)  # the language model's text vectors before any training
    rec = _llm(settings, finetune=mode)
    rec.fit(snap, train)
    after = rec.all_item_vectors() is not None and rec.item_text_
    assert not torch.allclose(probe.item_text_, after)  # the encoder moved, so do the text vectors
    trainable = [n for n, p in rec.encoder_.named_parameters() if p.requires_grad]
    assert trainable and (mode == "full" or all("lora" in n for n in trainable))


def test_baselines_share_the_interface(toy):
    settings, snap, cutoff = toy
    train = snap.events.mask(snap.events.ts < cutoff)
    unseen = np.bincount(train.item, minlength=snap.n_items) == 0
    pop = Popularity().fit(snap, train)
    s = _scores(pop, snap, train)
    counts = np.bincount(train.item, minlength=snap.n_items)
    top = np.argmax(s[0])
    assert counts[top] == counts.max() and np.isneginf(s[:, unseen]).all()
    knn = ItemKNN(5).fit(snap, train)
    s = _scores(knn, snap, train)
    assert s.shape == (snap.n_users, snap.n_items) and np.isneginf(s[:, unseen]).all()
    assert ((knn.sim_ > 0).sum(axis=1) <= 5).all()


@pytest.mark.parametrize("name", ["item_knn", "ease"])
def test_an_item_to_item_baseline_leaves_a_user_without_history_to_the_fallback(toy, name):
    """Item-to-item weights say nothing of a user known only by profile: the baseline cannot
    score them (-inf), so the served list is the popularity fallback, and they are no item's
    audience. A row of zeros used to list the catalogue's first items to them as the model's."""
    from llmrec_core.recommenders.classic import EASE
    from llmrec_core.scoring.engine import audience, recommend
    from llmrec_core.scoring.inputs import assemble, popularity
    from llmrec_core.settings import TextSettings

    settings, snap, cutoff = toy
    train = snap.events.mask(snap.events.ts < cutoff)
    rec = (ItemKNN(5) if name == "item_knn" else EASE(l2=10.0)).fit(snap, train)
    history = History.of(train, snap.n_users)
    newcomers = np.flatnonzero(history.length(np.arange(snap.n_users)) == 0)
    assert len(newcomers) and len(newcomers) < snap.n_users
    s = _scores(rec, snap, train)
    assert np.isneginf(s[newcomers]).all()
    assert np.isfinite(s[np.flatnonzero(history.length(np.arange(snap.n_users)) > 0)]).any(axis=1).all()
    # A history of items the weights do not know (first seen after the model) says nothing either.
    unknown = np.flatnonzero(np.bincount(train.item, minlength=snap.n_items) == 0)
    late = snap.events.mask(np.isin(snap.events.item, unknown) & np.isin(snap.events.user, newcomers))
    assert len(late) and np.isneginf(_scores(rec, snap, late)[np.unique(late.user)]).all()

    profiles = ["a reader of films"] * snap.n_users  # everyone has a profile: the newcomers are COLD_TEXT
    allowed = np.ones(snap.n_items, bool)
    popular, shares = popularity(snap, allowed, settings.scoring.popular_days)
    sc = assemble(rec, history, np.full(snap.n_users, cutoff), profiles, allowed, list(snap.item_titles), popular, shares,
                  TextSettings(), 4, settings.scoring)
    rows = recommend(np.arange(snap.n_users), sc).to_pydict()
    served = {}
    for u, i, source in zip(rows["user"], rows["item"], rows["source"], strict=True):
        served.setdefault(u, []).append((i, source))
    for u in newcomers:
        assert served[u] == [(int(i), "popularity_fallback") for i in popular[:4]]
    assert {src for u, lst in served.items() if u not in set(newcomers) for _, src in lst} == {"model"}
    assert not set(audience(np.arange(snap.n_users), sc).column("user").to_pylist()) & set(newcomers.tolist())


def test_popularity_over_recent_days_breaks_ties_by_all_time_counts():
    """Item 2 was the hit long ago, item 1 is the hit of the last week, item 0 had one event in
    that week and none before, items 3 and 4 none in it (4 more often before), item 5 never.
    The ties go against the item order, so an index tie-break would fail."""
    from tests.core.test_evaluation import snapshot
    from tests.toy import interactions

    D, end = protocols.DAY, 100 * protocols.DAY
    old = [(u, 2, 1, end - 50 * D) for u in range(6)] + [(u, 4, 1, end - 40 * D) for u in range(4)] + [(0, 3, 1, end - 40 * D)]
    week = [(u, 1, 1, end - 2 * D) for u in range(3)] + [(0, 0, 1, end - 6 * D), (0, 2, 1, end - 1)]
    events = interactions(old + week)
    snap = snapshot(6, 6, events)
    all_time = Popularity().fit(snap, events).scores_
    recent = Popularity(days=7).fit(snap, events).scores_
    assert list(np.argsort(-all_time, kind="stable")[:5]) == [2, 4, 1, 0, 3]
    # Last 7 days: item 1 (3 events), then 2 and 0 (1 each; 2 has more in all), then 4 before 3.
    assert list(np.argsort(-recent, kind="stable")[:5]) == [1, 2, 0, 4, 3]
    assert np.isneginf(recent[5]) and np.isneginf(all_time[5])
    assert Popularity(days=7).params() == {"days": 7}
    state = Popularity(days=7).fit(snap, events).export()
    back = restore(state, snap)
    assert back.days == 7 and np.array_equal(back.scores_, recent)
    with pytest.raises(ValueError, match="days"):
        Popularity(days=-1)


def test_spark_als_baseline(toy, spark):
    from llmrec_core.recommenders.als import SparkALS

    settings, snap, cutoff = toy
    train = snap.events.mask(snap.events.ts < cutoff)
    als = SparkALS(settings.spark, rank=4, iterations=3).fit(snap, train)
    s = _scores(als, snap, train)
    unseen_items = np.bincount(train.item, minlength=snap.n_items) == 0
    unseen_users = np.bincount(train.user, minlength=snap.n_users) == 0
    assert np.isneginf(s[:, unseen_items]).all() and np.isneginf(s[unseen_users]).all()
    assert np.isfinite(s[np.ix_(~unseen_users, ~unseen_items)]).all()


def test_reranker_reorders_only_the_top_candidates(toy):
    settings, snap, cutoff = toy
    train = snap.events.mask(snap.events.ts < cutoff)
    base = _llm(settings).fit(snap, train)
    rr = Reranked(base, settings.rerank, settings.text, settings.model.encoder, torch.device("cpu"), max_pairs=40).fit(snap, train)
    assert 0 < rr.n_pairs_ <= 40
    users = np.arange(snap.n_users, dtype=np.int32)
    hist = History.of(train, snap.n_users)
    asof = np.full(snap.n_users, snap.end_ts)
    before, after = base.score(users, hist, asof), rr.score(users, hist, asof)
    for u in users[:10]:
        seen = set(hist.items(u).tolist())
        order = [i for i in np.argsort(-before[u], kind="stable") if i not in seen]
        top = set(order[: settings.rerank.top_n])
        new_order = [i for i in np.argsort(-after[u], kind="stable") if i not in seen]
        assert set(new_order[: settings.rerank.top_n]) == top  # same candidates, maybe new order


def test_ease_is_the_closed_form_and_travels_by_id(toy):
    from llmrec_core.recommenders.classic import EASE

    settings, snap, cutoff = toy
    train = snap.events.mask(snap.events.ts < cutoff)
    ease = EASE(l2=10.0).fit(snap, train)
    x = np.zeros((snap.n_users, snap.n_items))
    x[train.user, train.item] = 1.0
    p = np.linalg.inv(x.T @ x + 10.0 * np.eye(snap.n_items))
    expected = np.eye(snap.n_items) - p / np.diag(p)[None, :]  # Steck 2019, eq. 8
    assert np.allclose(ease.sim_, expected, atol=1e-4) and np.allclose(np.diag(ease.sim_), 0.0)
    s = _scores(ease, snap, train)
    known = np.bincount(train.item, minlength=snap.n_items) > 0
    with_history = np.bincount(train.user, minlength=snap.n_users) > 0
    assert np.isneginf(s[:, ~known]).all() and np.isfinite(s[np.ix_(with_history, known)]).all()
    moved = restore(ease.export(), snap)
    assert np.array_equal(_scores(moved, snap, train), s)


def test_the_text_to_id_map_gives_cold_items_an_id_part(toy):
    settings, snap, cutoff = toy
    settings.train.epochs = 3
    train = snap.events.mask(snap.events.ts < cutoff)
    rec = _llm(settings).fit(snap, train)
    tower, known = rec.model_.items, rec.known_
    assert (~known).any() and tower.text_to_id.abs().sum() > 0
    with_map = rec.all_item_vectors().clone()
    text = rec.item_text_ - rec.text_mean_
    # The map is the ridge solution on the known items.
    x, y = text[known].double(), tower.id_emb.weight[known].double()
    w = torch.linalg.solve(x.T @ x + settings.model.cold_map_l2 * torch.eye(x.shape[1], dtype=x.dtype), x.T @ y)
    assert torch.allclose(tower.text_to_id.double(), w, atol=1e-4)
    tower.text_to_id.zero_()
    rec._cache = None
    without = rec.all_item_vectors()
    assert torch.allclose(with_map[known], without[known])  # known items keep their learned ID part
    assert not torch.allclose(with_map[~known], without[~known])
    none = _llm(settings, cold_start="none").fit(snap, train)
    assert none.model_.items.text_to_id.abs().sum() == 0


def test_calibration_lowers_log_loss_and_keeps_the_ranking(toy):
    from llmrec_core.evaluation import calibrate

    settings, snap, cutoff = toy
    settings.train.epochs = 3
    ctr = protocols.ctr(snap.events, snap.n_users, cutoff, 3)
    rec = _llm(settings).fit(snap, ctr.train)
    raw = evaluate(rec, ctr, snap, [10])
    top_before = rec.recommend(np.arange(snap.n_users), History.of(ctr.history, snap.n_users), np.full(snap.n_users, cutoff), 5)[1]
    rec.calibration = calibrate(rec, ctr, snap)
    fitted = evaluate(rec, ctr, snap, [10])
    assert rec.calibration[0] > 0 and rec.calibration != (1.0, 0.0)
    assert fitted["log_loss"] < raw["log_loss"] and fitted["auc"] == pytest.approx(raw["auc"])
    top_after = rec.recommend(np.arange(snap.n_users), History.of(ctr.history, snap.n_users), np.full(snap.n_users, cutoff), 5)[1]
    assert np.array_equal(top_before, top_after)
    assert restore(rec.export(), snap, "cpu").calibration == rec.calibration


def test_an_items_audience_is_return_rate_times_click_and_travels_with_the_model(toy):
    from llmrec_core.recommenders.base import Recommender
    from llmrec_core.topk import topk_of_scores, transpose_csr

    settings, snap, cutoff = toy
    settings.train.epochs = 2
    train = snap.events.mask(snap.events.ts < cutoff)
    rec = _llm(settings).fit(snap, train)
    assert rec.returns_ is not None and len(np.unique(rec.returns_.rates)) > 1
    users = np.arange(snap.n_users)
    history, asof = History.of(train, snap.n_users), np.full(snap.n_users, snap.end_ts)
    # By hand: log p(returns within 7 days | days since the last behaviour) + log sigmoid(click logit).
    last = np.array([train.ts[history.rows(u)].max() if history.length(np.array([u]))[0] else -1 for u in users])
    click = rec.score(users, history, asof).astype(np.float64)
    joint = rec.returns_.log_rate(last, asof)[:, None] - np.logaddexp(0, -click)
    want_s, want = topk_of_scores(joint.T, 4, exclude=transpose_csr(history.seen(users), snap.n_items))
    got_s, got = rec.audience(users, history, asof, 4)
    assert np.array_equal(got, want) and np.allclose(got_s, want_s, atol=1e-4)
    # Without return rates the audience is the click ranking, as for every other recommender.
    restored = restore(rec.export(), snap, "cpu")
    assert np.array_equal(restored.returns_.rates, rec.returns_.rates)
    assert np.array_equal(restored.audience(users, history, asof, 4)[1], got)
    restored.returns_ = None
    assert np.array_equal(restored.audience(users, history, asof, 4)[1], Recommender.audience(restored, users, history, asof, 4)[1])
    assert not np.array_equal(restored.audience(users, history, asof, 4)[1], got)


@pytest.mark.parametrize("change", [{}, {"cold_taste_weight": 2.0}, {"use_text": False}])
def test_an_items_audience_by_share_is_return_rate_activity_and_the_softmax_over_the_catalogue(toy, monkeypatch, change):
    """``model.audience: share``: users by log p(returns) + w log(1 + behaviours) + log p(item |
    user), the softmax of the served scores over every item the model can score (the blended
    ones for new items; an ID-only model's unknown items left out), in blocks of users and items."""
    from llmrec_core.recommenders import llm
    from llmrec_core.topk import topk_of_scores, transpose_csr

    settings, snap, cutoff = toy
    settings.train.epochs = 2
    train = snap.events.mask(snap.events.ts < cutoff)
    rec = _llm(settings, **change).fit(snap, train)
    rec.calibration = (0.7, -0.3)  # a Platt slope: p(item | user) is the softmax of the model's own logits
    monkeypatch.setattr(llm, "USER_BLOCK", 7)
    monkeypatch.setattr(llm, "ITEM_BLOCK", 5)
    users = np.arange(snap.n_users)
    history, asof = History.of(snap.events.mask(snap.events.user != 0), snap.n_users), np.full(snap.n_users, snap.end_ts)
    by_click = rec.audience(users, history, asof, 4)
    rec.model_settings = rec.model_settings.model_copy(update={"audience": "share", "audience_activity_weight": 1.5})
    served = rec.score(users, history, asof).astype(np.float64) / 0.7
    log_share = served - np.logaddexp.reduce(served, axis=1, keepdims=True)  # an unknown item's -inf adds nothing
    assert np.allclose(np.exp(log_share).sum(1), 1.0)
    joint = rec.returns_.log_rate(history.last_ts(users), asof)[:, None] + 1.5 * np.log1p(history.length(users))[:, None] + log_share
    want_s, want = topk_of_scores(joint.T, 4, exclude=transpose_csr(history.seen(users), snap.n_items))
    got_s, got = rec.audience(users, history, asof, 4)
    assert np.array_equal(got, want) and np.allclose(got_s, want_s, atol=1e-3)
    assert not np.array_equal(got, by_click[1])  # a different order than the click audience's
    if change.get("use_text") is False:
        assert (got[~rec.known_.numpy()] == -1).all()
    # The weight moves the order, and the choice travels with the model.
    rec.model_settings = rec.model_settings.model_copy(update={"audience_activity_weight": 0.0})
    assert not np.array_equal(rec.audience(users, history, asof, 4)[1], got)
    rec.model_settings = rec.model_settings.model_copy(update={"audience_activity_weight": 1.5})
    restored = restore(rec.export(), snap, "cpu")
    assert (restored.model_settings.audience, restored.model_settings.audience_activity_weight) == ("share", 1.5)
    assert np.array_equal(restored.audience(users, history, asof, 4)[1], got)
    # Without return rates the user's term is the activity and the softmax alone; some users can be left out.
    restored.returns_ = None
    eligible = np.arange(snap.n_users) % 3 != 0
    no_return = joint - rec.returns_.log_rate(history.last_ts(users), asof)[:, None]
    want_s, want = topk_of_scores(no_return.T, 4, exclude=transpose_csr(history.seen(users), snap.n_items), allowed=eligible)
    got_s, got = restored.audience(users, history, asof, 4, eligible=eligible)
    assert np.array_equal(got, want) and np.allclose(got_s, want_s, atol=1e-3) and not np.isin(got, np.flatnonzero(~eligible)).any()


def test_new_items_are_reordered_by_the_users_taste_with_the_models_mean_and_spread(toy, monkeypatch):
    """``cold_taste_weight``: for a user with history, the items the model knows by text only are
    ranked by z(model) + w z(taste), rescaled to the model's mean and spread over them; the
    known items, and users without a taste, keep the model's scores; the lists, the audience and
    a restored model rank by those scores."""
    from llmrec_core.recommenders import llm
    from llmrec_core.topk import topk_of_scores, transpose_csr

    settings, snap, cutoff = toy
    settings.train.epochs = 2
    train = snap.events.mask(snap.events.ts < cutoff)
    rec = _llm(settings).fit(snap, train)
    monkeypatch.setattr(llm, "USER_BLOCK", 7)  # several blocks of users, each with its own exclusions
    users = np.arange(snap.n_users)
    # Scored on every event, as the nightly job does: the days after training put some new items in
    # the histories (the tastes, and the exclusions of the new items' own top-K). User 0 has none.
    history = History.of(snap.events.mask(snap.events.user != 0), snap.n_users)
    asof = np.full(snap.n_users, snap.end_ts)
    plain = rec.score(users, history, asof).astype(np.float64)
    rec.model_settings = rec.model_settings.model_copy(update={"cold_taste_weight": 2.0})
    blended = rec.score(users, history, asof).astype(np.float64)
    new = ~rec.known_.numpy()
    assert 2 <= new.sum() < snap.n_items
    # By hand: the taste is the mean centred text vector of the behaviours that are not dislikes.
    X = (rec.item_text_ - rec.text_mean_).numpy().astype(np.float64)

    def by_hand(over: np.ndarray) -> tuple[np.ndarray, int]:
        want, tasted = plain.copy(), 0
        for u in users:
            rows = history.rows(int(u))
            liked = history.events.item[rows][history.events.label[rows] != 0]
            if not len(liked):
                continue
            t = X[over] @ X[liked].mean(0)
            s = plain[u, over]
            mix = (s - s.mean()) / s.std() + 2.0 * (t - t.mean()) / t.std()
            want[u, over] = s.mean() + s.std() * mix / mix.std()
            tasted += 1
        return want, tasted

    want, tasted = by_hand(new)
    assert 0 < tasted < snap.n_users  # users with and without a taste
    assert np.isin(history.events.item, np.flatnonzero(new)).any()  # new items seen since training
    assert np.allclose(blended, want, atol=1e-3)
    assert np.array_equal(blended[:, ~new], plain[:, ~new])
    moved = [u for u in users if not np.array_equal(np.argsort(-blended[u, new]), np.argsort(-plain[u, new]))]
    assert moved  # the blend changed some user's order of the new items
    seen = history.seen(users)
    lists = rec.recommend(users, history, asof, 6)
    by_score = topk_of_scores(blended, 6, exclude=seen)
    assert np.array_equal(lists[1], by_score[1]) and np.allclose(lists[0], by_score[0], atol=1e-3)
    # Among the new items alone (the cold_items protocol), with the new items users saw since training excluded.
    only_new = rec.recommend(users, history, asof, 6, allowed=new)
    assert np.array_equal(only_new[1], topk_of_scores(want, 6, exclude=seen, allowed=new)[1])
    # A candidate set does not change a pair's score: the blend stays standardised over all new
    # items, not over the allowed ones (which would order these lists differently).
    allowed = np.ones(snap.n_items, bool)
    allowed[np.flatnonzero(new)[::2]] = False
    want_allowed = topk_of_scores(want, 6, exclude=seen, allowed=allowed)
    got_allowed = rec.recommend(users, history, asof, 6, allowed=allowed)
    assert np.array_equal(got_allowed[1], want_allowed[1]) and np.allclose(got_allowed[0], want_allowed[0], atol=1e-3)
    assert not np.array_equal(topk_of_scores(by_hand(new & allowed)[0], 6, exclude=seen, allowed=allowed)[1], want_allowed[1])
    no_new = allowed & ~new  # a candidate set without new items: the model's own lists
    assert np.array_equal(rec.recommend(users, history, asof, 6, allowed=no_new)[1],
                          topk_of_scores(plain, 6, exclude=seen, allowed=no_new)[1])
    joint = rec.returns_.log_rate(history.last_ts(users), asof)[:, None] - np.logaddexp(0, -blended)
    want_aud = topk_of_scores(joint.T, 4, exclude=transpose_csr(seen, snap.n_items))
    got_aud = rec.audience(users, history, asof, 4)
    assert np.array_equal(got_aud[1], want_aud[1]) and np.allclose(got_aud[0], want_aud[0], atol=1e-3)
    rec.returns_ = None  # an audience by the click logit alone
    by_click = topk_of_scores(blended.T, 4, exclude=transpose_csr(seen, snap.n_items))
    assert np.array_equal(rec.audience(users, history, asof, 4)[1], by_click[1])
    restored = restore(rec.export(), snap, "cpu")
    assert restored.model_settings.cold_taste_weight == 2.0
    assert np.array_equal(restored.recommend(users, history, asof, 6)[1], lists[1])


def test_the_cold_taste_weight_is_the_one_the_validation_window_chooses(toy, monkeypatch):
    """``tuning.choose_cold_taste``: each weight's figure is the ``cold_items`` protocol's recall of
    users with history with that weight; the best one is set on the model (ties: the earlier);
    too few such users, an empty grid, a model without text, or a window where every weight
    scores the same keep the configured weight."""
    from llmrec_core import tuning
    from llmrec_core.evaluation import evaluate

    settings, snap, cutoff = toy
    settings.train.epochs = 2
    rec = _llm(settings, cold_taste_weight=0.5).fit(snap, snap.events.mask(snap.events.ts < cutoff))
    cold = protocols.cold_items(snap.events, snap.n_users, snap.n_items, cutoff, 3)
    grid = [0.0, 4.0, 1.0, 0.0]
    want = {}
    for w in grid:
        rec.model_settings = rec.model_settings.model_copy(update={"cold_taste_weight": w})
        want[w] = evaluate(rec, cold, snap, [2])["cold_recall_2_warm_users"]
    assert len(set(want.values())) > 1  # the weights order this window's new items differently: a real choice
    rec.model_settings = rec.model_settings.model_copy(update={"cold_taste_weight": 0.5})
    monkeypatch.setattr(tuning, "COLD_TASTE_MIN_USERS", 1)
    chosen = tuning.choose_cold_taste(rec, snap, cold, grid, k=2)
    assert chosen.trials == pytest.approx(want) and list(chosen.trials) == [0.0, 4.0, 1.0]
    best = max(want.values())
    assert chosen.weight == next(w for w in want if want[w] == best) == rec.model_settings.cold_taste_weight
    metrics = chosen.metrics()
    assert metrics["cold_taste_weight"] == chosen.weight and metrics["cold_taste_4_recall_2_warm_users"] == want[4.0]
    # The users are those with history who rated a new item in the window.
    history_users = {int(u) for u in np.unique(cold.train.user)}
    assert metrics["cold_taste_users"] == chosen.users == sum(1 for u, t in enumerate(cold.truth) if len(t) and u in history_users) > 0
    # Ties go to the earlier weight; when every weight scores the same, the configured one stays.
    for figures, expected in (({0.0: 0.2, 4.0: 0.6, 1.0: 0.6}, 4.0), ({0.0: 0.6, 4.0: 0.6, 1.0: 0.6}, 0.5)):
        monkeypatch.setattr(tuning, "warm_cold_recall", lambda r, *a, figures=figures: figures[r.model_settings.cold_taste_weight])
        rec.model_settings = rec.model_settings.model_copy(update={"cold_taste_weight": 0.5})
        assert tuning.choose_cold_taste(rec, snap, cold, grid, k=2).weight == expected == rec.model_settings.cold_taste_weight
    # Kept as configured: too few users with history on the window, no grid, no text.
    monkeypatch.setattr(tuning, "COLD_TASTE_MIN_USERS", chosen.users + 1)
    for model, g in ((rec, grid), (rec, []), (_llm(settings, use_text=False, cold_taste_weight=0.5), grid)):
        model.model_settings = model.model_settings.model_copy(update={"cold_taste_weight": 0.5})
        kept = tuning.choose_cold_taste(model, snap, cold, g, k=2)
        assert kept.weight == model.model_settings.cold_taste_weight == 0.5 and kept.trials is None
