"""Train one RecBole sequential model on an exported ``loo`` split and rank our test users.

Runs inside RecBole's own virtual env (``benchmarks/peers.py`` makes it and calls this script;
RecBole 1.2.1 needs numpy<2, so it cannot share the project's env). RecBole trains with its own
trainer and its own leave-one-out validation for early stopping (``LS: valid_and_test``, the
same last-two split the harness makes). The test ranking is done here, not by RecBole's
evaluator, because RecBole 1.2.1 does not exclude already-seen items for sequential models:
every test user's history (everything but the held-out item) is masked, pads too, and the
held-out item's rank is pessimistic on ties, as in ``llmrec_core.evaluation.target_ranks``.

    python peers_recbole.py --data DIR --model SASRec --seed 42 --out ranks.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, required=True, help="folder with llmrec_loo/llmrec_loo.inter and eval.npz")
    parser.add_argument("--model", required=True, choices=["SASRec", "GRU4Rec"])
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--patience", type=int, default=10)
    parser.add_argument("--max-len", type=int, default=50)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))

    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.data.interaction import Interaction
    from recbole.utils import get_model, get_trainer, init_seed

    config = Config(model=args.model, dataset="llmrec_loo", config_dict={
        "data_path": str(args.data), "USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id", "TIME_FIELD": "timestamp",
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "user_inter_num_interval": None, "item_inter_num_interval": None, "val_interval": None, "rm_dup_inter": None,
        "MAX_ITEM_LIST_LENGTH": args.max_len,
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full", "group_by": "user"},
        "train_neg_sample_args": None, "loss_type": "CE",
        "epochs": args.epochs, "stopping_step": args.patience, "eval_step": 1,
        "metrics": ["NDCG", "Hit"], "topk": [10], "valid_metric": "NDCG@10",
        "device": "cpu", "use_gpu": False, "seed": args.seed, "reproducibility": True,
        "checkpoint_dir": str(args.out.parent / f"saved-{args.model}-{args.seed}"), "show_progress": False,
        "train_batch_size": 2048, "eval_batch_size": 4096,
    })
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train, valid, _ = data_preparation(config, dataset)
    model = get_model(args.model)(config, train.dataset).to(config["device"])
    trainer = get_trainer(config["MODEL_TYPE"], args.model)(config, model)
    started = time.perf_counter()
    best_valid, _ = trainer.fit(train, valid, saved=True, show_progress=False)  # the valid_metric, NDCG@10
    fit_s = time.perf_counter() - started
    state = torch.load(trainer.saved_model_file, map_location="cpu", weights_only=False)
    model.load_state_dict(state["state_dict"])
    model.eval()

    ev = np.load(args.data / "eval.npz", allow_pickle=False)
    token_id = dataset.field2token_id["item_id"]
    hist = np.array([token_id[t] for t in ev["history"].astype(str)], np.int64)
    target = np.array([token_id[t] for t in ev["target"].astype(str)], np.int64)
    indptr = ev["indptr"]
    seq_field, len_field = config["ITEM_ID_FIELD"] + config["LIST_SUFFIX"], config["ITEM_LIST_LENGTH_FIELD"]
    ranks = np.zeros(len(target), np.int64)
    started = time.perf_counter()
    with torch.no_grad():
        for s in range(0, len(target), 512):
            rows = range(s, min(s + 512, len(target)))
            seqs = np.zeros((len(rows), args.max_len), np.int64)  # left-aligned, zero padding after
            lens = np.zeros(len(rows), np.int64)
            for j, r in enumerate(rows):
                items = hist[indptr[r]:indptr[r + 1]][-args.max_len:]
                seqs[j, :len(items)], lens[j] = items, len(items)
            scores = model.full_sort_predict(Interaction({seq_field: torch.from_numpy(seqs), len_field: torch.from_numpy(lens)}))
            scores = scores.view(len(rows), -1).numpy().astype(np.float64)
            scores[:, 0] = -np.inf  # the padding item
            for j, r in enumerate(rows):
                scores[j, hist[indptr[r]:indptr[r + 1]]] = -np.inf  # the whole history, not only the last max_len
                t = scores[j, target[r]]
                ranks[r] = (scores[j] > t).sum() + (scores[j] == t).sum() if np.isfinite(t) else scores.shape[1]
    args.out.write_text(json.dumps({
        "model": args.model, "seed": args.seed, "fit_s": round(fit_s, 1), "rank_s": round(time.perf_counter() - started, 1),
        "best_valid_ndcg_10_unmasked": float(best_valid), "best_epoch": int(state["epoch"]) + 1,
        "epochs_run": len(trainer.train_loss_dict),
        "ranks": ranks.tolist(),
    }))


if __name__ == "__main__":
    main()
