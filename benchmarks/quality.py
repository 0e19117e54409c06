"""Recommendation quality on MovieLens-100K: the LLM model, its ablations and every baseline.

    .venv/bin/python benchmarks/quality.py [--protocols loo temporal] [--models llmrec popularity]
        [--seeds 42 43 44] [--loo-seeds 3]

Needs the lake of ``make run`` (MovieLens-100K) in ``$LLMREC_HOME``. Protocols
(docs/evaluation.md), all on the snapshot of the data's last day, 1998-04-22. Every model ranks
through its own ``recommend`` (the path ``llmrec score`` publishes with):

- ``loo``: leave-last-out (every interaction is a target; last item test, second-to-last
  validation for early stopping; full ranking; the user's history excluded). RecBole's split,
  but not its evaluation: RecBole 1.2.1 does not exclude already-seen items for sequential
  models, so its published figures are not comparable with these. ``benchmarks/peers.py``
  runs RecBole's SASRec and GRU4Rec on this split with the same masking and adds them here.
- ``temporal``, ``ctr``: cutoff 1998-01-01, 30-day window; 211 users have new positives in the
  window, 116 of them new users. ``cold_items``: the same cutoff, every positive after it (86
  items first seen after the cutoff, 261 users); each user's cold items are ranked against
  the cold items, and each cold item's users against all users.
  Sequence models pick their epoch count on [cutoff - 30 d, cutoff) with training before
  that, are calibrated (Platt scaling) on that window's labelled pairs, and are then refit on
  everything before the cutoff, as the training job does. ``llmrec_no_cold_map`` is the same
  fitted model without the text-to-ID map of items that have no interactions.

Baselines (popularity, item-kNN, EASE, ALS, content) are tuned on the same validation split (the
``evaluation.*_grid`` settings) and refit on the test split's training events. Sequence models
run once per seed; tables show the mean ± standard deviation over seeds, and a paired bootstrap
95% interval of the per-user NDCG@10 difference between ``llmrec`` and the best other model.
Every model of a protocol fits on the same training events. Results: ``<work>/quality.json``
and the table in ``benchmarks/RESULTS.md``.

Profiles: ``full`` (the default) is the above, three seeds everywhere and the re-ranker, and
three more seeds (45, 46, 47) for ``cold_items`` alone, whose 86 new items spread more from seed
to seed than the other protocols (``--cold-seeds``; the extra fits are of the models that read
text, and are measured there only): about 1.8 hours on 2 cores once the peers are kept. ``--profile quick`` is one seed
(42), no re-ranker, and no ``seq_text_only`` on ``loo``: about half an hour, into
``<work>/quality-quick.json`` and its own RESULTS section, for a change under way; its
single-seed figures carry no spread.

The harness is ``llmrec_core/comparison.py``, which ``llmrec evaluate`` runs too: on this lake,
``llmrec evaluate --ds 1998-04-22 --protocol temporal --seeds 42`` gives this script's
``--protocols temporal --seeds 42 --no-rerank`` numbers (the same cut-offs are its defaults there).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, machine, write_section  # noqa: E402

from llmrec_core.comparison import DATASETS, Dataset, bootstrap, fit_sequence, lake_settings, table  # noqa: E402, F401  (refresh.py, peers.py)
from llmrec_core.comparison import run as compare  # noqa: E402
from llmrec_core.data.snapshot import load_snapshot  # noqa: E402
from llmrec_core.evaluate import DEFAULT_MODELS  # noqa: E402
from llmrec_core.settings import load_settings  # noqa: E402

log = logging.getLogger("quality")
DS = DATASETS["movielens-100k"].ds


@dataclasses.dataclass(frozen=True)
class Profile:
    seeds: list[int]
    loo_seeds: int
    rerank: bool
    loo_skip: frozenset[str] = frozenset()  # models the loo family leaves out
    cold_seeds: tuple[int, ...] = ()  # more seeds for cold_items alone


PROFILES = {"full": Profile([42, 43, 44], 3, True, cold_seeds=(45, 46, 47)),
            "quick": Profile([42], 1, False, frozenset({"seq_text_only"}))}


def run(settings, wanted: set[str], which: list[str], rerank: bool, seeds: list[int], loo_seeds: int,
        data: Dataset = DATASETS["movielens-100k"], loo_skip: frozenset[str] = frozenset(), cold_seeds=()) -> dict:
    """The comparison on the snapshot of ``data.ds``: the code ``llmrec evaluate`` runs."""
    return compare(settings, load_snapshot(settings, data.ds), data, wanted, which, rerank=rerank, seeds=seeds, loo_seeds=loo_seeds,
                   loo_skip=loo_skip, cold_seeds=cold_seeds)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--protocols", nargs="+", default=["loo", "temporal", "cold_items", "ctr"])
    parser.add_argument("--models", nargs="+", default=None)
    parser.add_argument("--profile", choices=sorted(PROFILES), default="full", help="seeds, re-ranker and loo models by default")
    parser.add_argument("--no-rerank", action="store_true")
    parser.add_argument("--seeds", nargs="+", type=int, help="training seeds of the sequence models (the profile's by default)")
    parser.add_argument("--loo-seeds", type=int, help="how many of --seeds the (slow) loo family runs (the profile's by default)")
    parser.add_argument("--cold-seeds", nargs="*", type=int,
                        help="more seeds for cold_items alone, fitting only the models that read text "
                             "(the profile's by default; none when --seeds is given)")
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "_work")
    parser.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="movielens-100k",
                        help="which lake ($LLMREC_HOME) this is: its day and cutoffs")
    args = parser.parse_args()
    profile = PROFILES[args.profile]
    seeds = args.seeds or profile.seeds
    loo_seeds = args.loo_seeds if args.loo_seeds is not None else len(seeds) if args.seeds else profile.loo_seeds
    # Like --loo-seeds: with --seeds given, the profile's extra seeds are not added unasked.
    cold_seeds = args.cold_seeds if args.cold_seeds is not None else () if args.seeds else profile.cold_seeds
    settings = lake_settings(load_settings(), DATASETS[args.dataset])
    wanted = set(args.models or DEFAULT_MODELS)
    start = time.perf_counter()
    results = run(settings, wanted, args.protocols, profile.rerank and not args.no_rerank, seeds, loo_seeds, DATASETS[args.dataset],
                  profile.loo_skip, cold_seeds)
    results["wall_s"] = round(time.perf_counter() - start, 1)
    results["profile"] = args.profile
    results["machine"] = machine()
    results["command"] = " ".join(["benchmarks/quality.py", *sys.argv[1:]])
    results["date"] = time.strftime("%Y-%m-%d", time.gmtime())
    args.work.mkdir(parents=True, exist_ok=True)
    (args.work / results_file(args.dataset, args.profile)).write_text(json.dumps(results, indent=2, default=float))
    print(table(results))
    if not args.no_write:
        write_results(results, args.dataset)


def section_key(dataset: str, profile: str = "full") -> str:
    """The RESULTS section (and, with ``.json``, the work file) of a dataset's run under a profile."""
    return "-".join(["quality", *([dataset] if dataset != "movielens-100k" else []), *([profile] if profile != "full" else [])])


def results_file(dataset: str, profile: str = "full") -> str:
    return f"{section_key(dataset, profile)}.json"


def write_results(results: dict, dataset: str = "movielens-100k") -> None:
    """The quality section of RESULTS.md from ``quality.json`` (``peers.py`` adds its rows and rewrites it)."""
    default = (f"benchmarks/quality.py --seeds {' '.join(map(str, results['seeds']))} --loo-seeds {len(results['loo_seeds'])}"
               f" --cold-seeds {' '.join(map(str, results.get('cold_seeds', [])))}")
    command = f"`.venv/bin/python {results.get('command', default)}`, {results['wall_s']} s in all"
    for name, p in results.get("peers", {}).items():
        command += (f"; then `.venv/bin/python benchmarks/peers.py --models {name} --seeds {' '.join(map(str, p['seeds']))} "
                    f"--epochs {p['max_epochs']} --patience {p['patience']}` (RecBole {name} on the same loo split, {p.get('date', '')}"
                    + (f"; seed {', '.join(map(str, p['reused']))} reused, trained by an earlier run on this split" if p.get("reused") else "")
                    + ")")
    profile = results.get("profile", "full")
    title = f"Recommendation quality ({DATASETS[dataset].title}{f', {profile} profile' if profile != 'full' else ''})"
    write_section(section_key(dataset, profile), title, "\n".join([
        f"Machine: {results['machine']}. Run: {results.get('date', time.strftime('%Y-%m-%d', time.gmtime()))}, {command}. "
        + ("Means over seeds ± standard deviation (sequence models; baselines are deterministic but for ALS). " if len(results["seeds"]) > 1
         else f"One seed ({results['seeds'][0]}): no spread, and a difference is confirmed with three seeds before it is trusted. ")
        + "Baselines tuned on the validation window; sequence models stop early there and are calibrated there."
        + (f" `cold_items` also has seeds {', '.join(map(str, results['cold_seeds']))} for the models that read text (its `seeds` column)."
           if results.get("cold_seeds") else ""),
        "", table(results)]))


if __name__ == "__main__":
    main()
