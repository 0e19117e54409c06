"""Implicit-feedback ALS from Spark MLlib as a baseline.

Factors are learned on Spark (local by default, a cluster by configuration) and scored in
numpy like every other recommender. A user or item without training interactions has no
factors, so ALS cannot score it (-inf).
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from llmrec_core.data.interactions import Interactions
from llmrec_core.data.snapshot import Snapshot
from llmrec_core.recommenders.base import History, Recommender
from llmrec_core.recommenders.classic import by_id
from llmrec_core.settings import SparkSettings

log = logging.getLogger(__name__)


class SparkALS(Recommender):
    name = "als"

    def __init__(self, spark: SparkSettings, rank: int = 64, iterations: int = 10, reg: float = 0.05,
                 alpha: float = 10.0, seed: int = 42):
        self.spark_settings = spark
        self.rank, self.iterations, self.reg, self.alpha, self.seed = rank, iterations, reg, alpha, seed

    def params(self) -> dict[str, object]:
        return {"rank": self.rank, "iterations": self.iterations, "reg": self.reg, "alpha": self.alpha}

    def fit(self, snap: Snapshot, train: Interactions) -> SparkALS:
        import pandas as pd
        from pyspark.ml.recommendation import ALS

        from llmrec_core.io.spark import get_spark

        spark = get_spark(self.spark_settings, "llmrec-als")
        pairs = pd.DataFrame({"user": train.user.astype(np.int32), "item": train.item.astype(np.int32)})
        # Confidence = number of interactions with the item (implicit feedback).
        counts = pairs.value_counts().rename("n").reset_index().astype({"n": np.float32})
        df = spark.createDataFrame(counts)
        model = ALS(
            rank=self.rank, maxIter=self.iterations, regParam=self.reg, alpha=self.alpha, implicitPrefs=True,
            userCol="user", itemCol="item", ratingCol="n", seed=self.seed, coldStartStrategy="nan",
        ).fit(df)
        self.user_factors_ = self._dense(model.userFactors.toPandas(), snap.n_users)
        self.item_factors_ = self._dense(model.itemFactors.toPandas(), snap.n_items)
        self.user_ids_, self.item_ids_ = np.asarray(snap.user_ids, dtype=object), np.asarray(snap.item_ids, dtype=object)
        return self

    def _dense(self, frame, n: int) -> np.ndarray:
        out = np.full((n, self.rank), np.nan, np.float32)
        if len(frame):
            out[frame["id"].to_numpy()] = np.stack(frame["features"].to_numpy()).astype(np.float32)
        return out

    def score(self, users: np.ndarray, history: History, asof: np.ndarray) -> np.ndarray:
        s = self.user_factors_[users] @ self.item_factors_.T
        return np.where(np.isnan(s), -np.inf, s).astype(np.float32)

    def item_vectors(self) -> np.ndarray:
        return np.nan_to_num(self.item_factors_)

    def export(self) -> dict:
        return {"kind": self.name, "name": self.name, "params": self.params(), "user_ids": list(self.user_ids_),
                "item_ids": list(self.item_ids_), "user_factors": torch.from_numpy(self.user_factors_),
                "item_factors": torch.from_numpy(self.item_factors_)}

    @classmethod
    def restore(cls, state: dict, snap: Snapshot, device: str = "cpu") -> SparkALS:
        """Factors by ID onto a snapshot; users and items the model never saw have none (-inf)."""
        from llmrec_core.settings import SparkSettings

        p = state["params"]
        rec = cls(SparkSettings(), p["rank"], p["iterations"], p["reg"], p["alpha"])
        for side, ids in (("user", snap.user_ids), ("item", snap.item_ids)):
            rows = by_id(state[f"{side}_ids"], ids)
            factors = np.full((len(ids), rec.rank), np.nan, np.float32)
            factors[rows >= 0] = state[f"{side}_factors"].numpy()[rows[rows >= 0]]
            setattr(rec, f"{side}_factors_", factors)
        rec.user_ids_, rec.item_ids_ = np.asarray(snap.user_ids, dtype=object), np.asarray(snap.item_ids, dtype=object)
        return rec
