"""What every settings section shares: unknown keys are errors, assignments are validated."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict


class SettingsError(ValueError):
    """A configuration problem, reported with the offending key."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# Identifiers that may come from configuration: plain lower-case SQL names, nothing to escape.
IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def check_identifier(value: str) -> str:
    if not IDENTIFIER.fullmatch(value):
        raise ValueError(f"{value!r} is not a plain SQL identifier (lower-case letters, digits, _; at most 63)")
    return value
