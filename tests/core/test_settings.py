"""Typed settings: defaults, YAML, environment overrides, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmrec_core.settings import SettingsError, load_settings


def test_defaults_derive_every_path_from_home(tmp_path):
    s = load_settings(environ={"LLMREC_HOME": str(tmp_path)})
    assert s.home == tmp_path
    assert s.raw_table("events") == tmp_path / "raw" / "events"
    assert s.lake_table("sequences") == tmp_path / "lake" / "sequences"
    assert s.spark.master == "local[*]" and s.feedback.event_types == ["add_to_cart", "click", "purchase", "rate", "view"]


def test_relative_home_is_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_settings(environ={}).home == tmp_path / ".llmrec"


def test_yaml_in_home_then_environment_wins(tmp_path):
    (tmp_path / "llmrec.yaml").write_text("clean:\n  max_bad_share: 0.2\nsequences:\n  max_len: 20\n")
    env = {"LLMREC_HOME": str(tmp_path), "LLMREC_SEQUENCES__MAX_LEN": "30", "LLMREC_SPARK__CONF": "{spark.x: '1'}"}
    s = load_settings(environ=env)
    assert s.clean.max_bad_share == 0.2 and s.sequences.max_len == 30 and s.spark.conf == {"spark.x": "1"}


def test_explicit_config_file(tmp_path):
    cfg = tmp_path / "other.yaml"
    cfg.write_text("feedback:\n  positive_types: [purchase]\n")
    s = load_settings(cfg, environ={"LLMREC_HOME": str(tmp_path)})
    assert s.feedback.positive_types == ["purchase"]


@pytest.mark.parametrize(
    "yaml_text, env, message",
    [
        ("clean:\n  max_bad_shares: 0.1\n", {}, "unknown setting 'clean.max_bad_shares'"),
        ("colour: blue\n", {}, "unknown setting 'colour'"),
        ("", {"LLMREC_SPARK__MASTERS": "x"}, "unknown setting 'spark.masters'"),
        ("clean:\n  max_bad_share: 2\n", {}, "setting 'clean.max_bad_share'"),
        ("sequences:\n  max_len: many\n", {}, "setting 'sequences.max_len'"),
        ("feedback:\n  rating_min: 6\n", {}, "rating_min must not exceed rating_max"),
        ("- a list\n", {}, "must hold a mapping"),
    ],
)
def test_bad_configuration_names_the_key(tmp_path, yaml_text, env, message):
    (tmp_path / "llmrec.yaml").write_text(yaml_text)
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_settings(environ={"LLMREC_HOME": str(tmp_path), **env})


def test_missing_config_file(tmp_path):
    with pytest.raises(SettingsError, match="config file not found"):
        load_settings(Path(tmp_path / "nope.yaml"), environ={})


def test_tracking_uri_defaults_to_home_and_mlflow_env_overrides(tmp_path):
    from llmrec_core.settings import load_settings

    home = tmp_path / "h"
    assert load_settings(environ={"LLMREC_HOME": str(home)}).tracking_uri == f"sqlite:///{home.absolute()}/mlflow.db"
    env = {"LLMREC_HOME": str(home), "MLFLOW_TRACKING_URI": "http://127.0.0.1:5000"}
    assert load_settings(environ=env).tracking_uri == "http://127.0.0.1:5000"
    env["LLMREC_TRACKING__TRACKING_URI"] = "sqlite:////srv/mlflow.db"
    assert load_settings(environ=env).tracking_uri == "sqlite:////srv/mlflow.db"
