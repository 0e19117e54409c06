"""What every settings section shares: unknown keys are errors, assignments are validated."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict


class SettingsError(ValueError):
    """A configuration problem, reported with the offending key."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


_URL_PASSWORD = re.compile(r"^(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@?#]*):(?P<password>[^@/?#]*)@")
_SECRET_PARAM = re.compile(r"(?i)\b(password|passwd|secret|token|sslpassword|key)=[^&;\s]*")
_SECRET_KEY = re.compile(r"(?i)(password|secret|token|credential|access\.?key|secret\.?key)")
REDACTED = "***"


def redact_url(url: str | None) -> str | None:
    """``url`` with its password (``scheme://user:PASSWORD@host``) and any ``password=``-like
    query parameter replaced by ``***``: what settings dumps, logs and MLflow params show."""
    if not url:
        return url
    url = _URL_PASSWORD.sub(lambda m: f"{m['head']}:{REDACTED}@", url)
    return _SECRET_PARAM.sub(lambda m: f"{m[1]}={REDACTED}", url)


def secret_key(name: str) -> bool:
    """A configuration key whose value is a credential (``spark.hadoop.fs.s3a.secret.key``...)."""
    return bool(_SECRET_KEY.search(name))


# Identifiers that may come from configuration: plain lower-case SQL names, nothing to escape.
IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def check_identifier(value: str) -> str:
    if not IDENTIFIER.fullmatch(value):
        raise ValueError(f"{value!r} is not a plain SQL identifier (lower-case letters, digits, _; at most 63)")
    return value
