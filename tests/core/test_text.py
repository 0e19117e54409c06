"""Text rendering: item texts, behaviours, history, profiles, cleaning and caps."""

from __future__ import annotations

import pytest

from llmrec_core.settings import TextSettings
from llmrec_core.text import TextRenderer, cap, clean_text

RENDER = TextRenderer(TextSettings())


# --- clean_text and cap -------------------------------------------------------------------------

def test_clean_text_strips_controls_and_collapses_whitespace():
    # NUL, zero-width space, line separator, BOM, tab, newline and no-break spaces all become one space.
    assert clean_text("  a\x00b\u200bc\u2028d\ufeffe \t\n f\u00a0\u00a0g  ") == "a b c d e f g"
    assert clean_text(None) == ""
    assert clean_text(42) == "42"


def test_cap_leaves_short_text_alone():
    assert cap("hello world", 11) == "hello world"
    assert cap("hello world", 50) == "hello world"


def test_cap_cuts_at_word_boundary_in_last_fifth():
    # limit 20: the first 19 chars are "one two three four "; the last space (index 18) is >= 16.
    assert cap("one two three four five six", 20) == "one two three four…"


def test_cap_cuts_mid_word_when_no_space_is_near():
    # The only space is at index 2, far before 0.8 * 20 = 16: hard cut at 19 chars + ellipsis.
    out = cap("ab cdefghijklmnopqrstuvwxyz", 20)
    assert out == "ab cdefghijklmnopqr…"
    assert len(out) == 20


# --- items --------------------------------------------------------------------------------------

def test_item_with_title_and_categories():
    assert RENDER.item({"title": "Toy Story (1995)", "categories": ["Animation", "Comedy"]}) == (
        "Toy Story (1995). Genres: Animation, Comedy."
    )


def test_item_with_description():
    item = {"title": "Heat (1995)", "categories": ["Crime"], "description": "A heist goes wrong."}
    assert RENDER.item(item) == "Heat (1995). Genres: Crime. A heist goes wrong."


def test_item_without_categories_drops_the_genres_part():
    assert RENDER.item({"title": "Heat", "categories": [], "description": "A heist."}) == "Heat. A heist."
    assert RENDER.item({"title": "Heat", "categories": None, "description": None}) == "Heat."
    # Categories that clean to nothing are dropped, and a part of only empty fields with them.
    assert RENDER.item({"title": "Heat", "categories": ["", "\u200b", " Drama "]}) == "Heat. Genres: Drama."
    assert RENDER.item({"title": "Heat", "categories": ["", "\u200b"]}) == "Heat."


def test_item_title_falls_back_to_id():
    assert RENDER.item({"item_id": "42", "categories": ["Drama"]}) == "Item 42. Genres: Drama."
    # A title of only control / zero-width characters counts as missing.
    assert RENDER.item({"item_id": "7", "title": "\u200b \n"}) == "Item 7."


def test_item_text_is_cleaned():
    item = {"title": "Toy\x00Story\u200b(1995)", "categories": ["Anim\tation"], "description": "Line one\nline two"}
    assert RENDER.item(item) == "Toy Story (1995). Genres: Anim ation. Line one line two"


def test_item_attribute_fields():
    render = TextRenderer(TextSettings(item_parts=["{title}.", "Year: {attr_year}."]))
    assert render.item({"title": "Heat", "attributes": {"year": "1995"}}) == "Heat. Year: 1995."
    # pyarrow gives a map column as a list of pairs
    assert render.item({"title": "Heat", "attributes": [("year", "1995")]}) == "Heat. Year: 1995."
    assert render.item({"title": "Heat", "attributes": {}}) == "Heat."


def test_item_is_capped():
    render = TextRenderer(TextSettings(max_item_chars=20))
    # "One two three four five six." -> first 19 chars end in a space at index 18.
    assert render.item({"title": "One two three four five six"}) == "One two three four…"
    long = render.item({"title": "x" * 100, "description": "y" * 100})
    assert len(long) == 20
    assert long == "x" * 19 + "…"


# --- behaviours and history ---------------------------------------------------------------------

def test_behaviour_rating_values():
    assert RENDER.behaviour("rate", 5.0, "Toy Story (1995)") == "rated 5: Toy Story (1995)"
    assert RENDER.behaviour("rate", 3.5, "Heat") == "rated 3.5: Heat"
    assert RENDER.behaviour("rate", 4, "Heat") == "rated 4: Heat"


def test_behaviour_templates_and_default():
    assert RENDER.behaviour("click", None, "Heat") == "clicked Heat"
    assert RENDER.behaviour("purchase", None, "Heat") == "bought Heat"
    assert RENDER.behaviour("add_to_cart", 1.0, "Heat") == "added to cart Heat"
    # Unknown event type: behaviour_default "{event_type} {title}".
    assert RENDER.behaviour("share", None, "Heat") == "share Heat"
    custom = TextRenderer(TextSettings(behaviour_default="did {event_type} on {title}"))
    assert custom.behaviour("share", None, "Heat") == "did share on Heat"


def test_behaviour_is_cleaned_and_capped():
    assert RENDER.behaviour("click", None, "Heat\n(1995)\u200b") == "clicked Heat (1995)"
    render = TextRenderer(TextSettings(max_behaviour_chars=16))
    # "clicked A very long movie title": first 15 chars "clicked A very " end in a space at 14 >= 12.8.
    assert render.behaviour("click", None, "A very long movie title") == "clicked A very…"


def test_history_newest_first():
    assert RENDER.history(["first", "second", "third"]) == "third; second; first"
    assert RENDER.history([]) == ""


def test_history_stays_within_cap():
    render = TextRenderer(TextSettings(max_history_chars=16))
    # Each entry costs len + 2: 7 + 7 = 14 <= 16, a third would be 21.
    out = render.history(["aaaaa", "bbbbb", "ccccc"])
    assert out == "ccccc; bbbbb"
    assert len(out) <= 16


def test_history_stops_at_first_behaviour_that_does_not_fit():
    render = TextRenderer(TextSettings(max_history_chars=16))
    # The 15-char middle one does not fit after "ccccc"; the older "x" is not used to fill the gap.
    assert render.history(["x", "m" * 15, "ccccc"]) == "ccccc"


# --- profiles -----------------------------------------------------------------------------------

def test_profile_excludes_personal_attributes():
    attrs = {"age": "25", "occupation": "writer", "gender": "F", "zip_code": "12345", "email": "a@b.c"}
    out = RENDER.profile(attrs)
    assert out == "User profile: age: 25, occupation: writer."
    for secret in ("F", "12345", "a@b.c", "gender", "zip", "email"):
        assert secret not in out


def test_profile_exclusion_is_case_insensitive():
    assert RENDER.profile({"Gender": "M", "ZIP_CODE": "99999", "Email": "x@y.z", "Name": "Ann", "PHONE": "555"}) == ""
    assert RENDER.profile({"GENDER": "M", "Age": "30"}) == "User profile: Age: 30."


def test_profile_exclusion_ignores_key_spelling_that_renders_the_same():
    # Keys come unnormalised from raw JSON; any key that would *render* as an excluded attribute
    # ("gender: ...", "zip code: ...") must be excluded too.
    attrs = {" gender ": "F", "gender\u200b": "M", "Zip Code": "12345", "zip-code": "1", "age": "25"}
    out = RENDER.profile(attrs)
    # "zip-code" renders differently ("zip-code: 1") and is not on the list.
    assert out == "User profile: age: 25, zip-code: 1."


def test_profile_custom_exclusions():
    render = TextRenderer(TextSettings(exclude_user_attributes=["Age"]))
    assert render.profile({"age": "25", "gender": "F"}) == "User profile: gender: F."


def test_profile_empty():
    assert RENDER.profile({}) == ""
    assert RENDER.profile(None) == ""
    # Values that clean to nothing are dropped.
    assert RENDER.profile({"age": "", "occupation": "\u200b"}) == ""


def test_profile_formatting_and_cap():
    # Keys sorted, underscores shown as spaces, values cleaned, non-strings stringified.
    assert RENDER.profile({"occupation": "sci\nentist", "favourite_genre": "Drama", "age": 30}) == (
        "User profile: age: 30, favourite genre: Drama, occupation: sci entist."
    )
    render = TextRenderer(TextSettings(max_profile_chars=16))
    # "User profile: age: 25." -> first 15 chars "User profile: a", last space at 13 >= 12.8.
    assert render.profile({"age": "25"}) == "User profile:…"


@pytest.mark.parametrize("limit", [16, 17, 40])
def test_every_text_respects_its_cap(limit):
    s = TextSettings(max_item_chars=limit, max_behaviour_chars=limit, max_profile_chars=limit)
    render = TextRenderer(s)
    words = " ".join(["word"] * 30)
    assert len(render.item({"title": words, "description": words})) <= limit
    assert len(render.behaviour("rate", 4.5, words)) <= limit
    assert len(render.profile({"bio": words})) <= limit
