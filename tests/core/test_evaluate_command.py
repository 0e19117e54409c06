"""``llmrec evaluate`` runs the quality benchmark's code on the user's lake: the numbers of
``benchmarks/quality.py`` for the same cut-off, an MLflow evaluation run that holds them, a
registered version measured only after its training day, and one ``error:`` line (exit 2) for
what cannot run."""

from __future__ import annotations

import math
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path

import mlflow
import pytest

from llmrec_core import cli, comparison, evaluate
from llmrec_core.data.snapshot import load_snapshot
from llmrec_core.io import tracking
from llmrec_core.recommenders.classic import Popularity
from llmrec_core.settings import load_settings

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
# A tiny random-weight language model; the test window is the toy lake's last 5 days.
CONFIG = ('model: {encoder: "random:16x1", dim: 8, max_len: 6, max_text_tokens: 12}\n'
          "train: {epochs: 2, patience: 1, batch_size: 16, lr: 0.005, negatives: 8}\n"
          "evaluation: {temporal_window_days: 5, knn_neighbours_grid: [20, 50], knn_shrink_grid: [0.0, 10.0], popularity_days_grid: []}\n")


@pytest.fixture
def lake(toy_home):
    home, last = toy_home
    (home / "llmrec.yaml").write_text(CONFIG)
    return home, last


def evaluation_runs(settings) -> list:
    tracking.setup(settings)
    return mlflow.search_runs(search_all_experiments=True, filter_string="tags.kind = 'evaluation'", output_format="list")


def rows(table: str, protocol: str) -> list[str]:
    """The model rows of one protocol's block of a printed table."""
    block = table.split(f"**{protocol}**", 1)[1].split("\n\n")[1]
    return [line for line in block.splitlines() if line.startswith("| ") and not line.startswith("| model")]


def test_evaluate_gives_the_quality_benchmarks_numbers_and_records_them(lake, capsys, monkeypatch):
    _, last = lake
    assert cli.main(["evaluate", "--ds", str(last), "--models", "llmrec,popularity,item_knn"]) == 0
    printed = capsys.readouterr().out
    cutoff = last - timedelta(days=4)  # the last 5 days of the lake: evaluation.temporal_window_days
    assert f"cut-off {cutoff} (the last 5 days of {last}), window 5 days" in printed

    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import quality

    settings = load_settings()
    data = quality.Dataset("toy", last, datetime.combine(cutoff, time(), tzinfo=timezone.utc), 5, 5)
    bench = quality.run(settings, {"llmrec", "popularity", "item_knn"}, ["temporal"], False, [settings.train.seed], 1, data)
    expected = bench["protocols"]["temporal"]["results"]
    assert set(expected) == {"llmrec", "popularity", "item_knn"}
    assert rows(printed, "temporal") == rows(quality.table(bench), "temporal")

    (run,) = evaluation_runs(settings)
    tags, metrics = run.data.tags, run.data.metrics
    assert (tags["ds"], tags["protocol"], tags["cutoff"], tags["window"]) == (str(last), "temporal", str(cutoff), "5")
    assert tags["models"] == "item_knn,llmrec,popularity"
    wanted = {f"{name}.{k}": v for name, m in expected.items() for k, v in m.items() if math.isfinite(v)}
    # The sequence model's validation NDCG@10 (what settings are chosen by) beside the test metrics.
    (fit,) = bench["models"]["llmrec"]["temporal"]
    wanted["llmrec.valid_ndcg_10"] = fit["valid_ndcg_10"]
    assert metrics == wanted and len(wanted) > 30
    # ... and the cold-taste weight: nobody with history rated a new item in this toy's validation
    # window, so the configured one (the choice itself: tests/recommenders, tests/jobs).
    assert (fit["cold_taste_users"], fit["cold_taste_trials"], fit["cold_taste_weight"]) == (0, None, settings.model.cold_taste_weight)
    # ... and the audience: too few new items with an audience in that window, so the configured one.
    assert (fit["audience_trials"], fit["audience"], fit["audience_activity_weight"]) == (
        None, settings.model.audience, settings.model.audience_activity_weight)
    assert f"({fit['best_epoch']}, {fit['valid_ndcg_10']:.4f}, w {fit['cold_taste_weight']:g}, audience click)" in printed
    assert "| temporal | " in printed.split("paired bootstrap", 1)[1]  # llmrec against the best other
    assert f"MLflow evaluation run {run.info.run_id}" in printed
    artifact = mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/evaluation.json")
    assert artifact["table"] in printed and artifact["protocols"]["temporal"]["results"] == expected


def test_the_quick_profile_leaves_only_seq_text_only_out_of_loo(lake, monkeypatch, tmp_path):
    _, last = lake
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import quality

    quick, cutoff = quality.PROFILES["quick"], last - timedelta(days=4)
    data = quality.Dataset("toy", last, datetime.combine(cutoff, time(), tzinfo=timezone.utc), 5, 5)
    wanted = {"seq_id_only", "seq_text_only", "popularity"}
    bench = quality.run(load_settings(), wanted, ["loo", "temporal"], quick.rerank, quick.seeds, quick.loo_seeds, data, quick.loo_skip)
    assert set(bench["protocols"]["loo"]["results"]) == {"seq_id_only", "popularity"}
    assert set(bench["protocols"]["temporal"]["results"]) == wanted
    assert bench["seeds"] == bench["loo_seeds"] == [42] and set(bench["models"]["seq_id_only"]) == {"loo", "temporal"}
    # Its own work file and RESULTS section: a quick run never overwrites the full one.
    assert [quality.results_file("movielens-100k", p) for p in ("full", "quick")] == ["quality.json", "quality-quick.json"]
    assert quality.section_key("synthetic", "quick") == "quality-synthetic-quick"
    import common

    monkeypatch.setattr(common, "RESULTS", tmp_path / "RESULTS.md")
    common.RESULTS.write_text("# Benchmark results\n\n<!-- quality:begin -->\nthe full run\n<!-- quality:end -->\n")
    quality.write_results({**bench, "wall_s": 1.0, "machine": "here", "profile": "quick"})
    text = common.RESULTS.read_text()
    assert "the full run" in text and "## Recommendation quality (MovieLens-100K, quick profile)" in text
    assert "One seed (42): no spread" in text and "Means over seeds" not in text


def test_cold_seeds_fit_the_text_models_again_for_cold_items_alone(lake, monkeypatch):
    _, last = lake
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import quality

    assert quality.PROFILES["full"].cold_seeds == (45, 46, 47)
    cutoff = last - timedelta(days=4)
    data = quality.Dataset("toy", last, datetime.combine(cutoff, time(), tzinfo=timezone.utc), 5, 5)
    bench = quality.run(load_settings(), {"llmrec", "seq_id_only"}, ["temporal", "cold_items"], False, [42], 1, data,
                        cold_seeds=(42, 43, 43))  # 42 is already a seed, 43 is asked twice: each is fitted once
    assert bench["cold_seeds"] == [43]
    # The ID-only model cannot rank a new item: no extra fit for it. llmrec's second fit counts
    # on cold_items (with its no-map twin) and nowhere else, and is listed apart.
    assert [len(bench["models"]["llmrec"][f]) for f in ("temporal", "cold_items")] == [1, 1]
    assert set(bench["models"]["seq_id_only"]) == {"temporal"}
    assert comparison.valid_means(bench)["llmrec"] == bench["models"]["llmrec"]["temporal"][0]["valid_ndcg_10"]
    assert bench["protocols"]["cold_items"]["n_seeds"] == {"llmrec": 2, comparison.NO_MAP: 2, "seq_id_only": 1}
    assert bench["protocols"]["temporal"]["n_seeds"] == {"llmrec": 1, "seq_id_only": 1}
    assert [len(v) for v in bench["per_user"]["temporal"].values()] == [1, 1]
    printed = quality.table(bench)
    assert "| seeds |" in printed.split("**cold_items**")[1].split("\n\n")[1]
    assert rows(printed, "cold_items")[0].endswith(" | 2 |") and "| seeds |" not in printed.split("**cold_items**")[0]
    assert "| cold_items fit s per seed" in printed


def test_every_protocol_runs_and_is_recorded_as_its_own_run(lake, capsys):
    _, last = lake
    says = {"loo": ("each user's last event held out", "hr_10"), "ctr": ("window 5 days", "auc"),
            "cold_items": ("cold-items window 5 days", "cold_audience_recall_20")}
    for protocol, (printed, metric) in says.items():
        assert cli.main(["evaluate", "--ds", str(last), "--protocol", protocol, "--models", "popularity"]) == 0
        out = capsys.readouterr().out
        assert printed in out and f"**{protocol}**" in out and "| popularity |" in out
        assert "paired bootstrap" not in out  # one model: nothing to compare it with
    runs = {r.data.tags["protocol"]: r.data.metrics for r in evaluation_runs(load_settings())}
    assert {p: f"popularity.{m}" in runs[p] for p, (_, m) in says.items()} == dict.fromkeys(says, True)


def test_without_a_text_model_diversity_is_still_measured_in_the_language_models_space(lake, capsys):
    _, last = lake
    assert cli.main(["evaluate", "--ds", str(last), "--models", "popularity,item_knn"]) == 0
    printed = capsys.readouterr().out
    header = next(line for line in printed.split("**temporal**", 1)[1].splitlines() if line.startswith("| model |"))
    column = [c.strip() for c in header.split("|")].index("diversity_10")
    values = {row.split("|")[1].strip(): row.split("|")[column].strip() for row in rows(printed, "temporal")}
    assert set(values) == {"popularity", "item_knn"}
    assert all(0.0 < float(v) <= 2.0 for v in values.values()), values  # 1 - cosine, averaged over pairs


def register_popularity(settings, trained: date, *, promote: bool) -> str:
    """A popularity model fitted on the lake as of ``trained``, registered (and promoted or refused)."""
    from llmrec_core.registry.bundle import Bundle, register
    from llmrec_core.registry.pyfunc import input_example

    snap = load_snapshot(settings, trained)
    state = Popularity().fit(snap, snap.events).export()
    tracking.setup(settings)
    with tracking.run("train"):
        version = register(settings, Bundle(state, state, None, {"ds": str(trained), "model": "popularity"}),
                           input_example(list(snap.item_ids[:5])), {"model": "popularity"})
    if promote:
        tracking.promote(settings, version, "first champion", expected=None)
    else:
        tracking.refuse(settings, version, "does not beat popularity")
    return version


def test_a_registered_version_is_measured_after_its_training_day_and_only_if_the_gate_passed_it(lake, capsys):
    _, last = lake
    settings = load_settings()
    trained = last - timedelta(days=6)
    refused = register_popularity(settings, trained, promote=False)
    code, err = run_cli(["evaluate", "--ds", str(last), "--model-version", refused], capsys)
    assert code == 1 and "was not promoted by the gate (does not beat popularity)" in err and "Traceback" not in err
    assert not evaluation_runs(settings)

    version = register_popularity(settings, trained, promote=True)
    assert cli.main(["evaluate", "--ds", str(last), "--model-version", version, "--models", "popularity"]) == 0
    printed = capsys.readouterr().out
    assert f"cut-off {trained + timedelta(days=1)} (the day after the version's training day)" in printed
    (run,) = evaluation_runs(settings)
    assert run.data.tags["model_version"] == version and run.data.tags["promotion"] == "promoted"
    assert run.data.tags["models"] == f"popularity,popularity_v{version}"
    # The same model on the same days: the registered one restored, the other fitted here.
    metrics = run.data.metrics
    ours = {k.split(".", 1)[1]: v for k, v in metrics.items() if k.startswith("popularity.")}
    theirs = {k.split(".", 1)[1]: v for k, v in metrics.items() if k.startswith(f"popularity_v{version}.")}
    assert ours and ours == theirs

    # Its own training days are refused: it would be measured on what it learned.
    code, err = run_cli(["evaluate", "--ds", str(last), "--model-version", version, "--cutoff", str(trained)], capsys)
    assert code == 2 and f"trained on data up to {trained}" in err

    assert cli.main(["evaluate", "--ds", str(last), "--model-version", refused, "--force"]) == 0
    forced = next(r for r in evaluation_runs(settings) if r.data.tags["model_version"] == refused)
    assert forced.data.tags["forced"] == "true" and forced.data.tags["promotion"] == "not promoted: does not beat popularity"


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    try:
        code = cli.main(argv)
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize("argv, says", [
    (["--protocol", "precision"], "argument --protocol: invalid choice: 'precision'"),
    (["--models", "llmrec,sasrec"], "unknown model(s) 'sasrec'; known: llmrec, seq_id_only"),
    (["--ds", "2023-12-01"], "no snapshot of 2023-12-01 in"),
    (["--ds", "yesterday"], "not a day: 'yesterday'"),
    (["--window", "0"], "--window must be at least 1 day"),
    # The lake starts on 2024-01-01: the validation window before this cut-off has nothing before it.
    (["--cutoff", "2024-01-06", "--window", "5"], "from 2024-01-01, and no event of 2024-01-20 comes before that day"),
])
def test_what_cannot_run_is_one_error_line_and_exit_2(lake, capsys, argv, says):
    home, last = lake
    code, err = run_cli(["evaluate", "--ds", str(last), *argv], capsys)
    errors = [line for line in err.splitlines() if "error:" in line]
    assert code == 2 and "Traceback" not in err
    assert len(errors) == 1 and says in errors[0], err
    assert not (home / "mlflow.db").exists()  # nothing ran, nothing was recorded


def test_the_command_offers_every_protocol_of_the_harness():
    parser = cli.build_parser()
    for protocol in comparison.PROTOCOLS:
        assert parser.parse_args(["evaluate", "--ds", "2024-01-20", "--protocol", protocol]).protocol == protocol


def test_movielens_100k_is_recognised_by_its_snapshot_and_gets_the_benchmarks_cut_offs():
    ml = comparison.DATASETS["movielens-100k"]
    found = evaluate.recognise(date(1998, 4, 22), {"events": 100_000, "users": 943, "items": 1_682})
    assert found is ml and (found.cutoff.date(), found.window, found.cold_window) == (date(1998, 1, 1), 30, 120)
    assert evaluate.recognise(date(1998, 4, 22), {"events": 99_999, "users": 943, "items": 1_682}) is None
    assert evaluate.recognise(date(1998, 4, 21), {"events": 100_000, "users": 943, "items": 1_682}) is None


def test_a_lake_gets_the_model_settings_its_validation_chose_unless_the_environment_sets_them(tiny_settings):
    data = comparison.DATASETS["synthetic-sessions"]
    assert data.model == {"dim": 64, "max_len": 50}
    base = tiny_settings.model_copy(deep=True)
    base.model.dim, base.model.max_len = 128, 100
    chosen = comparison.lake_settings(base, data, environ={})
    assert (chosen.model.dim, chosen.model.max_len) == (64, 50)
    assert (base.model.dim, base.model.max_len) == (128, 100)  # the caller's settings are not changed
    swept = comparison.lake_settings(base, data, environ={"LLMREC_MODEL__DIM": "256"})
    assert (swept.model.dim, swept.model.max_len) == (128, 50)  # the environment's dim wins (already in base)
    ml = comparison.DATASETS["movielens-100k"]
    assert ml.model == {} and comparison.lake_settings(base, ml, environ={}) is base  # the defaults were chosen there
