"""Business-rule filters admit exactly the items the configured rules allow."""

from __future__ import annotations

import pytest

from llmrec_core.scoring.filters import allowed_items
from llmrec_core.settings import FilterSettings, SettingsError, load_settings

CATS = [["Horror"], ["Comedy", "Drama"], [], ["Drama"]]
ATTRS = [{"rating": "R"}, {"rating": "PG"}, {}, {"rating": "PG", "lang": "fr"}]


@pytest.mark.parametrize("rules,expected", [
    (FilterSettings(), [True, True, True, True]),
    (FilterSettings(exclude_categories=["Horror"]), [False, True, True, True]),
    (FilterSettings(include_categories=["Drama"]), [False, True, False, True]),
    (FilterSettings(include_categories=["Drama"], exclude_categories=["Comedy"]), [False, False, False, True]),
    (FilterSettings(include_attributes={"rating": ["PG"]}), [False, True, False, True]),
    (FilterSettings(exclude_attributes={"lang": ["fr"], "rating": ["R"]}), [False, True, True, False]),
])
def test_rules(rules, expected):
    assert allowed_items(rules, CATS, ATTRS).tolist() == expected


def test_rules_come_from_configuration_and_reject_unknown_keys(tmp_path):
    s = load_settings(environ={"LLMREC_HOME": str(tmp_path), "LLMREC_SCORING__FILTERS__EXCLUDE_CATEGORIES": "[Horror, Drama]"})
    assert allowed_items(s.scoring.filters, CATS, ATTRS).tolist() == [False, False, True, False]
    with pytest.raises(SettingsError, match="scoring.filters.exclude_genres"):
        load_settings(environ={"LLMREC_HOME": str(tmp_path), "LLMREC_SCORING__FILTERS__EXCLUDE_GENRES": "[x]"})
