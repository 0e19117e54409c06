"""Business rules on what may be recommended: include/exclude categories and attribute values.

One pure function from the catalogue's facets to a boolean mask; the scoring job combines it
with availability, and every output row (recommendations, similar items) obeys it.
"""

from __future__ import annotations

import numpy as np

from llmrec_core.settings import FilterSettings


def allowed_items(rules: FilterSettings, categories: list[list[str]], attributes: list[dict[str, str]]) -> np.ndarray:
    """True for each item the rules admit."""
    include_c, exclude_c = set(rules.include_categories), set(rules.exclude_categories)
    include_a = {k: set(map(str, v)) for k, v in rules.include_attributes.items()}
    exclude_a = {k: set(map(str, v)) for k, v in rules.exclude_attributes.items()}
    out = np.ones(len(categories), bool)
    for i, (cats, attrs) in enumerate(zip(categories, attributes, strict=True)):
        cats = set(cats)
        if include_c and not cats & include_c:
            out[i] = False
        elif cats & exclude_c:
            out[i] = False
        elif any(attrs.get(k) not in values for k, values in include_a.items()):
            out[i] = False
        elif any(attrs.get(k) in values for k, values in exclude_a.items()):
            out[i] = False
    return out
