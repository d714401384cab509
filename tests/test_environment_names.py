"""A `DSRFLOW_` variable nothing reads is named before the api or the worker starts.

A misspelt `DSRFLOW_ENV` left a production deployment running as development, with every one of
production's refusals off, and nothing said so. Production now refuses to start on such a name;
development warns and goes on. The real processes are started for production's refusal.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.environment_names import OTHER_NAMES, RETIRED, policy_names, refuse_unread_variables, setting_names
from dsrflow.settings import SettingsError, load_settings
from policy.model import load_policy
from tests.test_docs_settings import ELSEWHERE, REMOVED
from tests.test_production_settings import _apply, _start, sound_environment

ROOT = Path(__file__).resolve().parents[1]
TYPO = "DSRFLOW_ENVIRONMENT"


@pytest.mark.parametrize("command", ["api", "worker"])
def test_production_refuses_to_start_on_a_name_nothing_reads_and_says_which_was_meant(command, tmp_path):
    done = _start(command, {**sound_environment(), "DSRFLOW_LOGLEVEL": "debug"}, tmp_path)
    assert done.returncode == 2, done.stderr
    line = done.stderr.strip()
    assert line == ("error: refusing to start in production: DSRFLOW_LOGLEVEL: dsrflow reads no variable of "
                    "this name, so it has no effect (did you mean DSRFLOW_LOG_LEVEL?)"), line
    assert "debug" not in line  # a value may be a secret: only names are repeated


def test_development_warns_of_a_misspelt_environment_and_goes_on(monkeypatch, capsys):
    """The one slip production's own check cannot catch: the process never learns it is production."""
    _apply(monkeypatch, {TYPO: "production", "DSRFLOW_ENV": None})
    settings = load_settings()
    assert settings.environment == "development"
    refuse_unread_variables(settings)  # no refusal
    assert capsys.readouterr().err == (f"warning: {TYPO}: dsrflow reads no variable of this name, so it has no "
                                       "effect (did you mean DSRFLOW_ENV?)\n")


def test_a_retired_setting_is_named_with_what_took_its_place(monkeypatch):
    _apply(monkeypatch, {**sound_environment(), "DSRFLOW_RATE_VERIFY_PER_EMAIL": "10/hour"})
    with pytest.raises(SettingsError) as refused:
        refuse_unread_variables(load_settings())
    assert "DSRFLOW_RATE_VERIFY_PER_EMAIL: no longer read: DSRFLOW_RATE_GUESS_PER_EMAIL took its place" in str(
        refused.value)


def test_the_policys_own_variables_are_read(monkeypatch, tmp_path):
    """A `${NAME}` in a system's configuration and an http system's `*_env` are the policy's to read."""
    shipped = (ROOT / "policy" / "connexeon.yaml").read_text()
    assert "${DSRFLOW_DEMO_OPENDSR_URL:-" in shipped
    own = tmp_path / "policy.yaml"
    own.write_text(shipped.replace("${DSRFLOW_DEMO_OPENDSR_URL:-", "${DSRFLOW_MARKETING_URL:-"))
    _apply(monkeypatch, {**sound_environment(), "DSRFLOW_MARKETING_URL": "https://marketing.internal/opendsr",
                         "DSRFLOW_POLICY": str(own)})
    refuse_unread_variables(load_settings())
    # The same variable with the shipped policy, which does not read it, is refused.
    monkeypatch.delenv("DSRFLOW_POLICY")
    with pytest.raises(SettingsError, match="DSRFLOW_MARKETING_URL: dsrflow reads no variable"):
        refuse_unread_variables(load_settings())


def test_an_http_systems_secret_names_are_read():
    content = {"systems": {"crm": {"connector": "http", "config": {
        "auth": {"kind": "bearer", "token_env": "DSRFLOW_CRM_TOKEN"}, "base_url": "${DSRFLOW_CRM_URL}/api"}}}}
    assert policy_names(content) == {"DSRFLOW_CRM_TOKEN", "DSRFLOW_CRM_URL"}


def test_no_variable_the_manual_documents_is_taken_for_a_slip():
    """tests/test_docs_settings.py keeps the manual and the code's names in step; what it lists
    as read outside the settings must be read here too, or production would refuse it."""
    read = setting_names() | OTHER_NAMES | policy_names(load_policy().content)
    documented = {name for name in ELSEWHERE if name.startswith("DSRFLOW_")}
    assert documented <= read, documented - read
    assert set(RETIRED) == REMOVED
