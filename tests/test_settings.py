"""Each malformed variable stops start-up with one line naming it, and a non-zero exit."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from temporalio.worker import UnsandboxedWorkflowRunner

import workflows
from dsrflow.infra import event_loop
from dsrflow.rate_settings import RATES
from dsrflow.settings import Settings, SettingsError, load_settings
from workers.dsr_worker import SANDBOXED, build_id, worker_tuning

BAD_VALUES = [
    ("DSRFLOW_API_PORT", "eighty", "DSRFLOW_API_PORT: expected a TCP port number"),
    ("DSRFLOW_API_PORT", "70000", "DSRFLOW_API_PORT: expected a TCP port number"),
    ("SMTP_PORT", "-1", "SMTP_PORT: expected a TCP port number"),
    ("SMTP_STARTTLS", "maybe", "SMTP_STARTTLS: expected true or false"),
    ("DSRFLOW_WORKFLOW_SANDBOX", "sometimes", "DSRFLOW_WORKFLOW_SANDBOX: expected true or false"),
    ("DSRFLOW_EVENT_LOOP", "trio", "DSRFLOW_EVENT_LOOP: expected 'uvloop' or 'asyncio'"),
    ("DSRFLOW_DATABASE_URL", "mysql://db/x", "DSRFLOW_DATABASE_URL: expected a PostgreSQL URL"),
    ("DSRFLOW_DATABASE_URL", "postgresql:///dsrflow", "DSRFLOW_DATABASE_URL: expected a PostgreSQL URL"),
    ("DSRFLOW_DATABASE_URL", "postgresql:///dsrflow?host=run/pg", "DSRFLOW_DATABASE_URL: expected a PostgreSQL URL"),
    ("TEMPORAL_ADDRESS", "temporal", "TEMPORAL_ADDRESS: expected host:port"),
    ("TEMPORAL_ADDRESS", "http://temporal:7233", "TEMPORAL_ADDRESS: expected a host name"),
    ("SMTP_HOST", "mail host", "SMTP_HOST: expected a host name"),
    ("DSRFLOW_ENCRYPTION_KEYS", "k1", "DSRFLOW_ENCRYPTION_KEYS: expected comma-separated key-id:base64-key"),
    ("DSRFLOW_ENCRYPTION_KEYS", "k1:c2hvcnQ=", "DSRFLOW_ENCRYPTION_KEYS: expected 32 bytes"),
    ("DSRFLOW_SECRET_KEY", "abc", "DSRFLOW_SECRET_KEY: expected base64 of 32 random bytes"),
    ("DSRFLOW_ENV", "prod", "DSRFLOW_ENV: expected 'development' or 'production'"),
    ("DSRFLOW_REDACT_PATTERNS", "not json", "DSRFLOW_REDACT_PATTERNS: expected a JSON list"),
    ("DSRFLOW_POLICY", "/nonexistent/policy.yaml", "DSRFLOW_POLICY: expected the path of a policy YAML"),
    ("DSRFLOW_RATE_SUBMIT_PER_IP", "lots", "DSRFLOW_RATE_SUBMIT_PER_IP: expected a rate such as 10/hour"),
    ("DSRFLOW_RATE_VERIFY_PER_REQUEST", "5/fortnight", "DSRFLOW_RATE_VERIFY_PER_REQUEST: expected a rate"),
    ("DSRFLOW_RATE_SIGNIN_PER_IP", "0/hour", "DSRFLOW_RATE_SIGNIN_PER_IP: expected a rate"),
    ("DSRFLOW_MAX_UNVERIFIED_OPEN", "0", "DSRFLOW_MAX_UNVERIFIED_OPEN: "),
    ("DSRFLOW_TEMPORAL_UI_URL", "temporal:8080", "DSRFLOW_TEMPORAL_UI_URL: expected an absolute http(s) URL"),
    ("DSRFLOW_STORAGE", "nfs", "DSRFLOW_STORAGE: expected 'local' or 's3'"),
    ("DSRFLOW_S3_ENDPOINT", "minio:9000", "DSRFLOW_S3_ENDPOINT: expected the store's http(s) URL"),
    ("DSRFLOW_S3_ENDPOINT", "https://s3.example.com/bucket", "DSRFLOW_S3_ENDPOINT: expected the store's http(s) URL"),
    ("DSRFLOW_S3_BUCKET", "My_Packages", "DSRFLOW_S3_BUCKET: expected a bucket name"),
    ("DSRFLOW_S3_PREFIX", "dsrflow/../other", "DSRFLOW_S3_PREFIX: expected a key prefix"),
    ("DSRFLOW_S3_ACCESS_KEY_ID", "AKIAEXAMPLE",
     "DSRFLOW_S3_SECRET_ACCESS_KEY: expected set together with DSRFLOW_S3_ACCESS_KEY_ID"),
]


@pytest.mark.parametrize(("variable", "value", "message"), BAD_VALUES)
def test_bad_value_names_the_variable(monkeypatch, variable, value, message):
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("field", sorted(RATES))
def test_every_rate_limit_is_checked_when_the_settings_are_read(monkeypatch, field):
    """DSRFLOW_RATE_GUESS_PER_EMAIL was read unchecked: a bad value failed the first wrong code."""
    variable = Settings.model_fields[field].validation_alias.choices[0]
    monkeypatch.setenv(variable, "lots")
    with pytest.raises(SettingsError, match=rf"^{variable}: expected a rate such as 10/hour"):
        load_settings()


def test_secrets_are_not_echoed(monkeypatch):
    monkeypatch.setenv("DSRFLOW_ENCRYPTION_KEYS", "k1:bm90LWEta2V5")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert "bm90LWEta2V5" not in str(caught.value)


def test_the_s3_back_end_needs_its_bucket_and_never_echoes_its_secret(monkeypatch):
    monkeypatch.setenv("DSRFLOW_STORAGE", "s3")
    with pytest.raises(SettingsError, match=r"^DSRFLOW_S3_BUCKET: expected the bucket's name: it must be set "
                                            r"when DSRFLOW_STORAGE=s3$"):
        load_settings()
    monkeypatch.setenv("DSRFLOW_S3_BUCKET", "dsr-packages")
    monkeypatch.setenv("DSRFLOW_S3_SECRET_ACCESS_KEY", "s3cr3t-never-shown")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert str(caught.value).startswith("DSRFLOW_S3_SECRET_ACCESS_KEY: expected set together with")
    assert "s3cr3t" not in str(caught.value)
    monkeypatch.setenv("DSRFLOW_S3_ACCESS_KEY_ID", "dsrflow")
    monkeypatch.setenv("DSRFLOW_S3_PREFIX", "/prod/dsrflow/")
    settings = load_settings()
    assert (settings.storage, settings.s3_bucket, settings.s3_prefix) == ("s3", "dsr-packages", "prod/dsrflow")


def test_defaults(monkeypatch):
    for name in ("DSRFLOW_HOME", "DSRFLOW_API_PORT", "TEMPORAL_NAMESPACE", "DSRFLOW_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert str(settings.home) == ".dsrflow"
    assert settings.api_port == 8000
    assert settings.temporal_namespace == "default"
    assert settings.effective_database_url.endswith(":5433/dsrflow")
    assert settings.storage == "local"  # packages under DSRFLOW_HOME, as `make run` wants


def test_a_database_on_this_machine_may_be_named_by_its_socket_directory(monkeypatch):
    url = "postgresql://postgres@/dsrflow?host=/run/postgresql&port=5433"
    monkeypatch.setenv("DSRFLOW_DATABASE_URL", url)
    assert load_settings().effective_database_url == url


def test_workflow_code_runs_in_the_sandbox_when_asked(monkeypatch, settings):
    """A worker runs workflow code outside Temporal's sandbox (its cost: BENCHMARKS.md, issue 17),
    as this suite's stacks do; with DSRFLOW_WORKFLOW_SANDBOX=true inside, where a non-deterministic
    call fails the workflow task. The suite's workflow tests always run inside (tests/workflow_stack.py)."""
    assert isinstance(worker_tuning(settings)["workflow_runner"], UnsandboxedWorkflowRunner)
    monkeypatch.delenv("DSRFLOW_WORKFLOW_SANDBOX", raising=False)
    assert isinstance(worker_tuning(load_settings())["workflow_runner"], UnsandboxedWorkflowRunner)
    monkeypatch.setenv("DSRFLOW_WORKFLOW_SANDBOX", "true")
    assert worker_tuning(load_settings())["workflow_runner"] is SANDBOXED


def test_the_worker_names_its_build_by_version_and_workflow_code(monkeypatch, settings, tmp_path):
    """The build id each workflow task's completion records in the history: dsrflow's version and
    a digest of the workflow code's source, the same for the same code wherever it lies, another
    once a workflow changes (the SDK's default hashed every loaded module at each start)."""
    built = worker_tuning(settings)["build_id"]
    assert re.fullmatch(rf"dsrflow-{re.escape(version('dsrflow'))}-[0-9a-f]{{16}}", built), built
    copy = tmp_path / "workflows"
    shutil.copytree(Path(workflows.__file__).parent, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(workflows, "__file__", str(copy / "__init__.py"))
    assert build_id.__wrapped__() == built
    (copy / "dsr.py").write_text((copy / "dsr.py").read_text() + "\n# a change\n")
    assert build_id.__wrapped__() != built


def test_the_worker_and_the_api_run_on_uvloop_unless_told_otherwise(monkeypatch):
    """The long-running processes take their loop from DSRFLOW_EVENT_LOOP (dsrflow/infra/event_loop.py)."""
    async def loop_kind() -> str:
        return type(asyncio.get_running_loop()).__module__.split(".")[0]

    monkeypatch.delenv("DSRFLOW_EVENT_LOOP", raising=False)
    assert event_loop.run(load_settings(), loop_kind()) == "uvloop"
    assert event_loop.uvicorn_loop(load_settings()) == "uvloop"
    monkeypatch.setenv("DSRFLOW_EVENT_LOOP", "asyncio")
    assert event_loop.run(load_settings(), loop_kind()) == "asyncio"
    assert event_loop.uvicorn_loop(load_settings()) == "asyncio"


def test_cli_exits_non_zero_with_one_line():
    env = {**os.environ, "DSRFLOW_API_PORT": "abc"}
    done = subprocess.run([sys.executable, "-m", "cli.main", "migrate"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "error: DSRFLOW_API_PORT: expected a TCP port number between 1 and 65535 (got 'abc')"
    )


@pytest.mark.parametrize("command", [["migrate"], ["audit", "verify"], ["retention", "plan"]])
def test_cli_says_in_one_line_when_the_database_is_unreachable(tmp_path, command):
    from devstack.processes import free_port

    env = {**os.environ, "DSRFLOW_HOME": str(tmp_path),
           "DSRFLOW_DATABASE_URL": f"postgresql://dsrflow@127.0.0.1:{free_port()}/dsrflow"}
    done = subprocess.run([sys.executable, "-m", "cli.main", *command], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.startswith("error: cannot reach the database") and len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr
