"""RecBole's SASRec and GRU4Rec side by side with llmrec on the harness's exact ``loo`` split.

    .venv/bin/python benchmarks/peers.py [--profile quick] [--seeds 42 43 44] [--models SASRec GRU4Rec]
        [--epochs N] [--patience 3] [--refit]

Needs the lake of ``make run`` (MovieLens-100K) and, to sit beside our models, the
``quality.json`` of ``benchmarks/quality.py`` in the work folder. RecBole 1.2.1 pins numpy<2,
so this script makes its own virtual env under ``benchmarks/_work/recbole-venv`` (torch from
the same local CPU wheel) and runs ``peers_recbole.py`` there, once per model and seed.
``--profile quick`` reads ``quality-quick.json`` (``quality.py --profile quick``) and runs seed
42 only.

The same split, event for event: the snapshot of 1998-04-22 and ``protocols.loo`` (every
interaction of every user; the last as test, the one before as validation). Events go to
RecBole in the harness's order (same-second events keep it: the timestamp RecBole sorts by is
the event's position), so RecBole's ``LS: valid_and_test`` holds out the same two items per
user. RecBole trains and stops early with its own trainer on its own (unmasked) validation
NDCG@10. The test ranking masks every item of the user's history, as the harness does for our
models, over the full catalogue, pessimistic on ties. Results go into ``quality.json`` (the
``loo`` table, per-user NDCG@10 for the bootstrap, fit seconds) and the quality section of
``benchmarks/RESULTS.md``.

RecBole trains with early stopping (``--patience``, its ``stopping_step``) under a cap it does
not reach on MovieLens-100K (20 epochs for SASRec, 40 for GRU4Rec), so a row is a finished model.
A peer's run depends only on the exported split, the model, the seed, the cap, the patience,
RecBole's pins and ``peers_recbole.py``: a run is kept under ``<work>/peers/runs/`` by a digest
of all of them and reused while none changes (say so with ``--refit`` to train anyway). A
change to llmrec leaves the split alone, so only the first run pays for the peers.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import logging
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT  # noqa: E402
from quality import DS, PROFILES, bootstrap, results_file, write_results  # noqa: E402

from llmrec_core.data import protocols  # noqa: E402
from llmrec_core.data.snapshot import load_snapshot  # noqa: E402
from llmrec_core.metrics import ndcg_of_ranks, ranks_to_metrics  # noqa: E402
from llmrec_core.settings import load_settings  # noqa: E402

log = logging.getLogger("peers")
RECBOLE = ["torch==2.13.0", "numpy<2", "pandas<3", "recbole==1.2.1"]
EPOCHS = {"SASRec": 20, "GRU4Rec": 40}  # caps the early stopping reaches first on MovieLens-100K


def recbole_env(work: Path) -> Path:
    """RecBole's own virtual env (made once; a stamp records what was installed)."""
    venv = (work / "recbole-venv").absolute()
    stamp = venv / ".installed"
    if not stamp.is_file() or stamp.read_text() != " ".join(RECBOLE):
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", *RECBOLE], check=True)
        stamp.write_text(" ".join(RECBOLE))
    return venv / "bin" / "python"


def export_split(snap, test, data: Path) -> str:
    """The snapshot's events as a RecBole atomic file, and the test users' histories and targets;
    returns a digest of both."""
    ev = snap.events
    (data / "llmrec_loo").mkdir(parents=True, exist_ok=True)
    with open(data / "llmrec_loo" / "llmrec_loo.inter", "w", encoding="utf-8") as f:
        f.write("user_id:token\titem_id:token\ttimestamp:float\n")
        for pos, (u, i) in enumerate(zip(snap.user_ids[ev.user], snap.item_ids[ev.item], strict=True)):
            f.write(f"{u}\t{i}\t{pos}\n")
    indptr = test.history.indptr(snap.n_users)
    rows = [np.arange(indptr[u], indptr[u + 1]) for u in test.users]
    np.savez(data / "eval.npz",
             history=np.array(snap.item_ids[test.history.item[np.concatenate(rows)]], dtype=str),
             indptr=np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int64),
             target=np.array([snap.item_ids[t[0]] for t in test.truth], dtype=str))
    return split_digest(data)


def split_digest(data: Path) -> str:
    """What RecBole reads and what the ranks are judged on, as one digest."""
    h = hashlib.sha256((data / "llmrec_loo" / "llmrec_loo.inter").read_bytes())
    with np.load(data / "eval.npz") as ev:
        for key in sorted(ev.files):
            h.update(f"{key}:{ev[key].dtype}:{ev[key].shape}".encode())
            h.update(np.ascontiguousarray(ev[key]).tobytes())
    return h.hexdigest()


def run_key(split: str, model: str, seed: int, epochs: int, patience: int) -> str:
    """Everything a peer's ranks depend on: the split, the run's settings, RecBole's pins and the script."""
    h = hashlib.sha256("\0".join([split, model, str(seed), str(epochs), str(patience), *RECBOLE]).encode())
    h.update((ROOT / "benchmarks" / "peers_recbole.py").read_bytes())
    return h.hexdigest()[:16]


def peer_run(python: Callable[[], Path], data: Path, split: str, model: str, seed: int, epochs: int, patience: int,
             refit: bool) -> dict:
    """A peer's run on this split, reused from ``<data>/runs`` when one with the same key is there
    (``python`` gives RecBole's interpreter, made only when a run has to train)."""
    out = data / "runs" / f"{model}-{seed}-{run_key(split, model, seed, epochs, patience)}.json"
    if out.is_file() and not refit:
        res = json.loads(out.read_text())
        log.info("%s seed %s: reused %s (fit %.0f s, %s epochs, %s)", model, seed, out.name, res["fit_s"], res["epochs_run"], res["date"])
        return {**res, "reused": True}
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_suffix(".partial")
    res = run_peer(python(), data, model, seed, epochs, patience, partial)
    res["date"] = time.strftime("%Y-%m-%d", time.gmtime())
    partial.write_text(json.dumps(res))
    partial.replace(out)
    log.info("%s seed %s: fit %.0f s, %s epochs", model, seed, res["fit_s"], res["epochs_run"])
    return res


def run_peer(python: Path, data: Path, model: str, seed: int, epochs: int, patience: int, out: Path) -> dict:
    started = time.perf_counter()
    proc = subprocess.run([str(python), str(ROOT / "benchmarks" / "peers_recbole.py"), "--data", str(data), "--model", model,
                           "--seed", str(seed), "--epochs", str(epochs), "--patience", str(patience), "--out", str(out)],
                          capture_output=True, text=True, cwd=data)
    if proc.returncode != 0:
        raise SystemExit(f"{model} (seed {seed}) failed:\n{proc.stderr[-4000:]}")
    res = json.loads(out.read_text())
    res["wall_s"] = round(time.perf_counter() - started, 1)
    return res


def merge(quality: dict, name: str, runs: list[dict], ks=(10, 20)) -> None:
    """One peer's seeds into the ``loo`` block of ``quality.json``, as quality.py lays it out."""
    per_seed = [{f"{m}_{k}": v for k in ks for m, v in ranks_to_metrics(np.array(r["ranks"]), k).items()} for r in runs]
    block = quality["protocols"]["loo"]
    block["results"][name] = {k: float(np.mean([p[k] for p in per_seed])) for k in per_seed[0]}
    block["std"][name] = {k: float(np.std([p[k] for p in per_seed])) for k in per_seed[0]}
    block["n_seeds"][name] = len(runs)
    quality["per_user"]["loo"][name] = [ndcg_of_ranks(np.array(r["ranks"]), 10).tolist() for r in runs]
    quality["models"][name] = {"loo": [{"fit_s": r["fit_s"], "best_epoch": r["best_epoch"], "epochs_run": r["epochs_run"],
                                        "params": "RecBole 1.2.1 defaults, CE loss"}
                                       for r in runs]}


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", choices=sorted(PROFILES), default="full", help="which quality run the peers join, and its seeds")
    parser.add_argument("--models", nargs="+", default=["SASRec", "GRU4Rec"], choices=sorted(EPOCHS))
    parser.add_argument("--seeds", nargs="+", type=int, help="the profile's seeds by default")
    parser.add_argument("--epochs", type=int, help=f"RecBole's maximum number of epochs (by default {EPOCHS})")
    parser.add_argument("--patience", type=int, default=3, help="RecBole's early stopping (stopping_step)")
    parser.add_argument("--refit", action="store_true", help="train even where a run with the same key is kept")
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "_work")
    parser.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    args = parser.parse_args()
    seeds = args.seeds or PROFILES[args.profile].seeds
    qfile = args.work / results_file("movielens-100k", args.profile)
    if not qfile.is_file():
        raise SystemExit(f"{qfile} is missing: run benchmarks/quality.py --profile {args.profile} first (the peers sit beside its models)")
    quality = json.loads(qfile.read_text())
    if "loo" not in quality["protocols"]:
        raise SystemExit(f"{qfile} has no loo results: run benchmarks/quality.py with the loo protocol")
    snap = load_snapshot(load_settings(), DS)
    _, test = protocols.loo(snap.events, snap.n_users)
    data = (args.work / "peers").absolute()
    split = export_split(snap, test, data)
    env = functools.cache(lambda: recbole_env(args.work))  # made only when a run is not kept
    for name in args.models:
        epochs = args.epochs or EPOCHS[name]
        runs = [peer_run(env, data, split, name, seed, epochs, args.patience, args.refit) for seed in seeds]
        merge(quality, f"recbole_{name.lower()}", runs)
        quality.setdefault("peers", {})[name] = {"seeds": seeds, "max_epochs": epochs, "patience": args.patience,
                                                 "date": max(r["date"] for r in runs),
                                                 "reused": [s for s, r in zip(seeds, runs, strict=True) if r.get("reused")]}
    quality["bootstrap"] = bootstrap(quality["per_user"])
    qfile.write_text(json.dumps(quality, indent=2, default=float))
    if not args.no_write:
        write_results(quality)


if __name__ == "__main__":
    main()
