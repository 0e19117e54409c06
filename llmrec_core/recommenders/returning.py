"""How likely a user is to come back soon: the first factor of an item's audience.

An item's audience (``item_audience``, the ``cold_items`` protocol's item side) asks which users
will engage with the item, and that is two questions: will the user be here at all, and will
they click it when they are. The click model answers the second only: its ``p(click | u, i)``
says nothing about whether a user who left a year ago comes back. So the language model ranks
an item's audience by

    p(u engages with i within H days) = p(u returns within H days) * p(click | u, i)

where ``p(returns)`` depends on the days since the user's last behaviour (one rate per bucket,
and one for users with no behaviour yet). The rates are estimated from the training events alone:
on reference days before the end of training, the share of users in each bucket who came back
within the next H days. A bucket with few users is pulled towards the rate of all users.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from llmrec_core.data.interactions import Interactions

DAY = 86_400
EDGES_DAYS = np.array([1, 3, 7, 14, 30, 60, 120, 240], np.float64)  # bucket b: EDGES[b-1] <= days < EDGES[b]
NO_HISTORY = len(EDGES_DAYS) + 1  # the bucket of users with no behaviour before the day
REFERENCE_DAYS, REFERENCE_STEP_DAYS = 8, 7
PRIOR_USERS = 10.0  # a bucket's rate counts as this many users at the rate of all users


def bucket(last_ts: np.ndarray, asof: np.ndarray) -> np.ndarray:
    """Each user's bucket: days since the last behaviour (``last_ts`` < 0: none)."""
    days = (np.asarray(asof, np.int64) - np.asarray(last_ts, np.int64)) / DAY
    return np.where(np.asarray(last_ts) < 0, NO_HISTORY, np.searchsorted(EDGES_DAYS, np.maximum(days, 0), side="right"))


@dataclass(frozen=True)
class ReturnRates:
    horizon_days: int
    rates: np.ndarray  # [NO_HISTORY + 1] p(returns within the horizon) per bucket

    def log_rate(self, last_ts: np.ndarray, asof: np.ndarray) -> np.ndarray:
        return np.log(self.rates[bucket(last_ts, asof)])

    def to_dict(self) -> dict:
        return {"horizon_days": self.horizon_days, "rates": [float(r) for r in self.rates]}

    @classmethod
    def from_dict(cls, state: dict) -> ReturnRates:
        return cls(int(state["horizon_days"]), np.asarray(state["rates"], np.float64))


def fit(events: Interactions, n_users: int, asof: int, horizon_days: int) -> ReturnRates:
    """Rates from ``events`` (all before ``asof``): reference days every week, the latest one
    ``horizon_days`` before ``asof`` so that every return counted happened before it."""
    num, den = np.zeros(NO_HISTORY + 1), np.zeros(NO_HISTORY + 1)
    first = int(events.ts.min()) if len(events) else asof
    for k in range(REFERENCE_DAYS):
        day = asof - (horizon_days + k * REFERENCE_STEP_DAYS) * DAY
        if day <= first:
            break
        before = events.ts < day
        last = np.full(n_users, -1, np.int64)
        np.maximum.at(last, events.user[before], events.ts[before])
        came = np.zeros(n_users, bool)
        came[events.user[(events.ts >= day) & (events.ts < day + horizon_days * DAY)]] = True
        b = bucket(last, np.full(n_users, day, np.int64))
        np.add.at(num, b, came)
        np.add.at(den, b, 1.0)
    if not num.sum():
        # Nothing to learn from (no reference day, or nobody came back): every user is as likely
        # to return, and the click model alone ranks.
        return ReturnRates(horizon_days, np.ones(NO_HISTORY + 1))
    overall = num.sum() / den.sum()
    return ReturnRates(horizon_days, (num + PRIOR_USERS * overall) / (den + PRIOR_USERS))
