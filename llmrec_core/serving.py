"""Reading the published tables back: what ``llmrec recommend`` and ``llmrec similar`` print.

Rows come from the warehouse (the newest published day unless one is named); titles from the
lake's catalogue snapshot of that day.
"""

from __future__ import annotations

from datetime import date

from llmrec_core.data.snapshot import item_titles
from llmrec_core.errors import LlmrecError
from llmrec_core.settings import Settings


def lookup(settings: Settings, what: str, key: str, ds: date | None, k: int) -> str:
    """A printable table of ``what`` ("recommend" or "similar") for one user or item ID."""
    from llmrec_core.io.warehouse import Warehouse

    if k < 1:
        raise LlmrecError("--k must be at least 1")
    with Warehouse.open(settings) as wh:
        days = wh.published_days()
        if not days:
            raise LlmrecError(f"nothing published in the {wh.kind} warehouse {wh.where}: run `llmrec score` first")
        if ds is not None and ds not in days:
            raise LlmrecError(f"{ds} is not published; published days: {days[0]} .. {days[-1]}")
        day = ds or days[-1]
        rows = wh.user_recommendations(key, day, k) if what == "recommend" else wh.similar_items(key, day, k)
    noun = "user" if what == "recommend" else "item"
    if not rows:
        raise LlmrecError(f"no rows for {noun} {key!r} on {day}: not a known {noun} of that day")
    item_col = "item_id" if what == "recommend" else "rec_item_id"
    titles = item_titles(settings, day, [r[item_col] for r in rows])
    head = f"{'Recommendations for user' if what == 'recommend' else 'Items similar to'} {key}"
    if what == "similar":
        head += f" ({item_titles(settings, day, [key]).get(key, key)})"
    lines = [f"{head}, {day}, model version {rows[0]['model_version']}:"]
    for r in rows:
        line = f"{r['rank']:>3}. {titles.get(r[item_col], r[item_col])} [{r[item_col]}]  score {r['score']:.3f}"
        if what == "recommend":
            line += f"  ({r['source']}) {r['reason']}"
        lines.append(line)
    return "\n".join(lines)
