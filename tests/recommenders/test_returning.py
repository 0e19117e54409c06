"""The return rates an item's audience is ranked with, learnt from the training events alone."""

from __future__ import annotations

import numpy as np

from llmrec_core.data.interactions import Interactions
from llmrec_core.recommenders import returning

DAY = returning.DAY
END = 100 * DAY


def _events(pairs: list[tuple[int, int]]) -> Interactions:
    user, ts = (np.array(x) for x in zip(*pairs, strict=True))
    n = len(user)
    return Interactions(user.astype(np.int32), np.zeros(n, np.int32), np.ones(n, np.int16), np.ones(n, np.int8),
                        ts.astype(np.int64), np.full(n, np.nan, np.float32), np.full(n, "click", object)).sorted()


def _log() -> Interactions:
    """Users 0-9 come every day; 10-19 came in the first week only; 20-29 arrive in the last 40
    days and then come every day; 30-39 never come."""
    pairs = [(u, d * DAY + 3600) for u in range(10) for d in range(100)]
    pairs += [(u, d * DAY + 3600) for u in range(10, 20) for d in range(7)]
    pairs += [(u, d * DAY + 7200) for u in range(20, 30) for d in range(60, 100)]
    return _events(pairs)


def test_users_who_were_here_lately_come_back_and_those_gone_for_months_do_not():
    rates = returning.fit(_log(), 40, END, 7)
    recent = returning.bucket(np.array([END - 3600]), np.array([END]))[0]
    gone = returning.bucket(np.array([5 * DAY]), np.array([END]))[0]
    assert recent == 0 and gone == 6 and returning.bucket(np.array([-1]), np.array([END]))[0] == returning.NO_HISTORY
    # Everyone seen within a day came back within a week; nobody gone for months did (both pulled a
    # little towards the rate of all users, which is why neither is exactly 1 or 0).
    assert rates.rates[recent] > 0.9 and rates.rates[gone] < 0.2
    # Users without behaviour: 10 of 20 arrived after one reference day of eight, none after the others.
    assert rates.rates[gone] < rates.rates[returning.NO_HISTORY] < rates.rates[recent]
    log_rate = rates.log_rate(np.array([END - 3600, 5 * DAY, -1]), np.full(3, END))
    assert log_rate[0] > log_rate[2] > log_rate[1]
    back = returning.ReturnRates.from_dict(rates.to_dict())
    assert back.horizon_days == 7 and np.array_equal(back.rates, rates.rates)


def test_rates_never_read_events_after_the_day_they_are_fitted_for():
    log = _log()
    later = Interactions.concat([log, _events([(u, END + d * DAY) for u in range(10, 40) for d in range(5)])])
    assert np.array_equal(returning.fit(later.mask(later.ts < END), 40, END, 7).rates, returning.fit(log, 40, END, 7).rates)
    # Returns counted for the last reference day end at END: a return after it changes nothing.
    assert np.array_equal(returning.fit(later, 40, END, 7).rates, returning.fit(log, 40, END, 7).rates)


def test_with_nothing_to_learn_from_every_user_is_as_likely_to_return():
    short = _events([(0, END - DAY), (1, END - 2 * DAY)])  # no reference day a horizon before the end
    assert np.array_equal(returning.fit(short, 2, END, 7).rates, np.ones(returning.NO_HISTORY + 1))
