"""docker-compose.yml and the Dockerfile agree with the code they run.

Docker does not run here, so these tests read the files: every variable the api and worker get is
one `Settings` reads (a renamed setting breaks the build here, not in production), every address
names a service of the file on a port that service listens on, and the image holds every package.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import urlparse

import pytest

from dsrflow.infra.production import codec_cors_origins, production_problems
from dsrflow.settings import Settings
from policy.model import load_policy
from tests.compose_support import (
    APP_SERVICES,
    OPERATOR_ENV,
    ROOT,
    app_environment,
    command_lines,
    container_ports,
    environment,
    interpolate,
    load_compose,
    published_ports,
    settings_aliases,
    split_address,
)


@pytest.fixture(scope="module")
def compose() -> dict:
    return load_compose()


def on_this_host(compose: dict, name: str, chosen: dict[str, str] = OPERATOR_ENV) -> dict[str, str]:
    """The service's variables as `app_environment` gives them, with DSRFLOW_POLICY turned from the
    container's path into the file the service's bind mount shows there, so Settings can read it."""
    env = {key: interpolate(value, chosen) for key, value in environment(compose["services"][name]).items()}
    for volume in compose["services"][name]["volumes"]:
        source, target = interpolate(str(volume), chosen).split(":")[:2]
        if env["DSRFLOW_POLICY"].startswith(target + "/"):
            folder = ROOT / source if source.startswith("./") else Path(source)
            env["DSRFLOW_POLICY"] = str(folder / env["DSRFLOW_POLICY"][len(target) + 1:])
            return env
    raise AssertionError(f"{name}: DSRFLOW_POLICY {env['DSRFLOW_POLICY']} is not in a mounted folder")


def use_environment(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    for alias in settings_aliases():
        monkeypatch.delenv(alias, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)


EXPECTED_SERVICES = {
    "postgres", "temporal", "temporal-ui", "api", "worker", "temporal-setup", "minio", "minio-setup", "migrate",
}
# Without these a production process would start embedded components or fail to decrypt.
REQUIRED_APP_VARIABLES = {
    "DSRFLOW_ENV", "DSRFLOW_DATABASE_URL", "TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "SMTP_HOST",
    "SMTP_PORT", "SMTP_STARTTLS", "DSRFLOW_API_HOST", "DSRFLOW_API_PORT", "DSRFLOW_PUBLIC_URL",
    "DSRFLOW_ENCRYPTION_KEYS", "DSRFLOW_SECRET_KEY", "DSRFLOW_HOME", "DSRFLOW_TEMPORAL_UI_URL",
    # The controller's own policy, mounted from the operator's folder (docs/operations.md).
    "DSRFLOW_POLICY",
    # Packages built by the worker, served by the api: a store both reach (docs/operations.md).
    "DSRFLOW_STORAGE", "DSRFLOW_S3_ENDPOINT", "DSRFLOW_S3_BUCKET", "DSRFLOW_S3_ACCESS_KEY_ID",
    "DSRFLOW_S3_SECRET_ACCESS_KEY",
}
# Services -----------------------------------------------------------------------------------


def test_all_services_are_defined(compose: dict) -> None:
    assert EXPECTED_SERVICES <= set(compose["services"])


def test_api_and_worker_share_one_environment_block(compose: dict) -> None:
    shared = compose["x-dsrflow-env"]
    for name in APP_SERVICES:
        assert compose["services"][name]["environment"] == shared


def test_api_and_worker_run_the_cli_from_the_local_image(compose: dict) -> None:
    services = compose["services"]
    assert services["api"]["command"] == ["dsrflow", "api"]
    assert services["worker"]["command"] == ["dsrflow", "worker"]
    for name in APP_SERVICES:
        assert services[name]["build"] in (".", {"context": "."})


def test_api_and_worker_start_after_their_dependencies(compose: dict) -> None:
    for name in APP_SERVICES:
        depends = compose["services"][name]["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy"
        # Against a database the release has not migrated every call answered 500.
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        assert depends["temporal-setup"]["condition"] == "service_completed_successfully"
        assert depends["minio-setup"]["condition"] == "service_completed_successfully"
        assert "mailcatcher" not in depends
    setup = compose["services"]["minio-setup"]["depends_on"]
    assert setup["minio"]["condition"] == "service_healthy"


def test_postgres_has_a_healthcheck_and_a_volume(compose: dict) -> None:
    postgres = compose["services"]["postgres"]
    assert postgres["image"].startswith("postgres:16")
    assert "pg_isready" in postgres["healthcheck"]["test"]
    assert any(str(v).endswith(":/var/lib/postgresql/data") for v in postgres["volumes"])


# Environment of the app ---------------------------------------------------------------------


def test_app_gets_every_variable_needed_to_reach_external_components(compose: dict) -> None:
    for name in APP_SERVICES:
        missing = REQUIRED_APP_VARIABLES - set(environment(compose["services"][name]))
        assert not missing, f"{name} lacks {sorted(missing)}"


def test_app_sets_only_variables_settings_reads(compose: dict) -> None:
    aliases = settings_aliases()
    assert REQUIRED_APP_VARIABLES <= aliases, "a required variable is no longer a setting"
    for name in APP_SERVICES:
        unknown = set(environment(compose["services"][name])) - aliases
        assert not unknown, f"{name} sets variables Settings does not read: {sorted(unknown)}"


def test_app_environment_is_valid_production_settings(
    compose: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in APP_SERVICES:
        use_environment(monkeypatch, on_this_host(compose, name))
        settings = Settings()
        assert settings.environment == "production"
        assert settings.database_url and settings.temporal_address and settings.smtp_host
        assert settings.keyring and settings.api_host == "0.0.0.0"
        # ...and the api and worker would start with them (dsrflow/infra/production.py).
        assert production_problems(settings) == []


def test_the_mail_catcher_override_still_starts_in_production(compose: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """docker-compose.dev.yml sends to its mail catcher in plain SMTP over the compose network: the
    api and worker (DSRFLOW_ENV=production either way) must accept it, and only with it."""
    trial = load_compose("docker-compose.dev.yml")
    for name in APP_SERVICES:
        use_environment(monkeypatch, {**on_this_host(compose, name), **environment(trial["services"][name])})
        assert production_problems(Settings()) == []
        monkeypatch.delenv("SMTP_ALLOW_PLAIN")
        assert [p for p in production_problems(Settings()) if p.startswith("SMTP_STARTTLS: false for mailcatcher")]


def test_encryption_keys_are_required_with_a_helpful_message(compose: dict) -> None:
    value = compose["x-dsrflow-env"]["DSRFLOW_ENCRYPTION_KEYS"]
    match = re.fullmatch(r"\$\{DSRFLOW_ENCRYPTION_KEYS:\?([^}]+)\}", value)
    assert match, "DSRFLOW_ENCRYPTION_KEYS must be required, without a default key"
    assert "base64" in match.group(1) and "comma" in match.group(1)
    with pytest.raises(AssertionError, match="DSRFLOW_ENCRYPTION_KEYS is required"):
        interpolate(value, {})


# Addresses resolve to services --------------------------------------------------------------


def test_temporal_address_is_the_temporal_service(compose: dict) -> None:
    services = compose["services"]
    for name in APP_SERVICES:
        host, port = split_address(app_environment(compose, name)["TEMPORAL_ADDRESS"])
        assert host in services
        assert port in container_ports(services[host])
        assert services[host]["image"].startswith("temporalio/auto-setup")


def test_database_url_is_the_postgres_service(compose: dict) -> None:
    services = compose["services"]
    for name in APP_SERVICES:
        url = urlparse(app_environment(compose, name)["DSRFLOW_DATABASE_URL"])
        assert url.hostname == "postgres"
        assert (url.port or 5432) in container_ports(services["postgres"])
        assert url.path == "/dsrflow"


def test_postgres_creates_the_app_and_temporal_databases(compose: dict) -> None:
    init = compose["configs"]["postgres-init"]["content"]
    url = urlparse(app_environment(compose, "api")["DSRFLOW_DATABASE_URL"])
    temporal_env = environment(compose["services"]["temporal"])
    assert f"CREATE ROLE {url.username} LOGIN" in init
    assert f"CREATE DATABASE dsrflow OWNER {url.username}" in init
    for database in (temporal_env["DBNAME"], temporal_env["VISIBILITY_DBNAME"]):
        assert f"CREATE DATABASE {database} OWNER {temporal_env['POSTGRES_USER']}" in init
    # The passwords the init script gives the roles are the ones the clients use, defaulted or not.
    for chosen in (OPERATOR_ENV, {**OPERATOR_ENV, "DSRFLOW_DB_PASSWORD": "app-pw", "TEMPORAL_DB_PASSWORD": "wf-pw"}):
        def resolve(value: str, chosen: dict = chosen) -> str:
            return interpolate(value, chosen)

        postgres_env = {k: resolve(v) for k, v in environment(compose["services"]["postgres"]).items()}
        app_url = urlparse(resolve(compose["x-dsrflow-env"]["DSRFLOW_DATABASE_URL"]))
        assert app_url.password == postgres_env["DSRFLOW_DB_PASSWORD"]
        assert resolve(temporal_env["POSTGRES_PWD"]) == postgres_env["TEMPORAL_DB_PASSWORD"]
        assert postgres_env["POSTGRES_PASSWORD"]
    assert ":'dsrflow_pw'" in init and '"$$DSRFLOW_DB_PASSWORD"' in init
    assert ":'temporal_pw'" in init and '"$$TEMPORAL_DB_PASSWORD"' in init
    mounts = compose["services"]["postgres"]["configs"]
    assert any(m["source"] == "postgres-init" and m["target"].startswith(
        "/docker-entrypoint-initdb.d/") for m in mounts)


def test_packages_are_kept_in_the_minio_service(compose: dict) -> None:
    """The api and the worker share the minio service's bucket, as dsrflow's own user (made by
    minio-setup, allowed that bucket only), with the secret the operator chose."""
    services = compose["services"]
    minio, setup = services["minio"], services["minio-setup"]
    assert any(str(v).endswith(":/data") for v in minio["volumes"]) and "/data" in minio["command"]
    assert "mc" in minio["healthcheck"]["test"]
    script = "\n".join(command_lines(setup))
    policy = json.loads(compose["configs"]["minio-policy"]["content"])
    mounted = {m["source"]: m["target"] for m in setup["configs"]}
    for name in APP_SERVICES:
        env = app_environment(compose, name)
        endpoint = urlparse(env["DSRFLOW_S3_ENDPOINT"])
        assert env["DSRFLOW_STORAGE"] == "s3" and endpoint.hostname == "minio"
        assert endpoint.port in container_ports(minio)
        bucket, user = env["DSRFLOW_S3_BUCKET"], env["DSRFLOW_S3_ACCESS_KEY_ID"]
        assert f"alias set store http://{endpoint.netloc} " in script
        assert f"mc mb --ignore-existing store/{bucket}" in script
        assert f'mc admin user add store {user} "$DSRFLOW_S3_SECRET_ACCESS_KEY"' in script
        assert f"mc admin policy create store dsrflow-app {mounted['minio-policy']}" in script
        assert f"--user {user}" in script
        assert {r for s in policy["Statement"] for r in s["Resource"]} == {f"arn:aws:s3:::{bucket}",
                                                                         f"arn:aws:s3:::{bucket}/*"}
        chosen = interpolate(environment(setup)["DSRFLOW_S3_SECRET_ACCESS_KEY"], OPERATOR_ENV)
        assert env["DSRFLOW_S3_SECRET_ACCESS_KEY"] == chosen and len(chosen) >= 8
        assert not {"MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD"} & set(env)  # the root user stays in minio's hands
    assert environment(setup)["MINIO_ROOT_PASSWORD"] == environment(minio)["MINIO_ROOT_PASSWORD"]


def test_plain_http_to_the_bucket_is_refused_in_production_unless_the_network_is_ours(
        compose: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """docker-compose.yml speaks http to minio over its own network, and says so
    (DSRFLOW_S3_ALLOW_HTTP); without it the api and worker would not start."""
    env = on_this_host(compose, "api")
    assert env.pop("DSRFLOW_S3_ALLOW_HTTP") == "true"
    use_environment(monkeypatch, env)
    [problem] = production_problems(Settings())
    assert problem.startswith("DSRFLOW_S3_ENDPOINT: plain http to minio") and "DSRFLOW_S3_ALLOW_HTTP" in problem


def test_api_listens_on_its_published_port(compose: dict) -> None:
    env = app_environment(compose, "api")
    port = int(env["DSRFLOW_API_PORT"])
    assert port in published_ports(compose["services"]["api"])
    public = urlparse(env["DSRFLOW_PUBLIC_URL"])
    assert public.port == published_ports(compose["services"]["api"])[port]


# What the operator chooses, and the first start -------------------------------------------


def test_ui_follows_the_public_addresses_the_operator_chose(
        compose: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """Behind a TLS proxy the UI calls the codec endpoint where staff signed in (DSRFLOW_PUBLIC_URL,
    whose host their session cookie is for), from the origin the api lets call it."""
    chosen = {**OPERATOR_ENV, "DSRFLOW_PUBLIC_URL": "https://privacy.example.com",
              "DSRFLOW_TEMPORAL_UI_URL": "https://temporal.example.com"}
    ui = {key: interpolate(value, chosen) for key, value in environment(compose["services"]["temporal-ui"]).items()}
    assert ui["TEMPORAL_CODEC_ENDPOINT"] == "https://privacy.example.com/codec"
    use_environment(monkeypatch, on_this_host(compose, "api", chosen))
    settings = Settings()
    assert production_problems(settings) == []
    assert codec_cors_origins(settings) == [ui["TEMPORAL_CORS_ORIGINS"]] == ["https://temporal.example.com"]


def test_migrations_run_before_the_api_and_worker_start(compose: dict) -> None:
    """`docker compose up` (the first one, and each upgrade's) applies the image's migrations with
    the app's own settings, once, before any api or worker of that image serves."""
    services = compose["services"]
    migrate = services["migrate"]
    assert migrate["command"] == ["dsrflow", "migrate"]
    assert migrate["restart"] == "no"
    assert migrate["build"] == services["api"]["build"] and migrate["image"] == services["api"]["image"]
    assert migrate["environment"] == compose["x-dsrflow-env"]
    assert migrate["volumes"] == services["api"]["volumes"] == services["worker"]["volumes"]
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert not migrate.get("ports") and not migrate.get("expose")


def test_the_policy_is_the_operators_folder_and_file(
        compose: dict, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Unchosen, the api and worker read the shipped example policy (Connexeon BV's); POLICY_DIR and
    POLICY_FILE give them the controller's own, with the translations beside it."""
    for name in APP_SERVICES:
        assert Path(on_this_host(compose, name)["DSRFLOW_POLICY"]).resolve() == (
            ROOT / "policy" / "connexeon.yaml").resolve()
    for shipped in (ROOT / "policy").glob("connexeon*.yaml"):
        text = shipped.read_text().replace("name: Connexeon BV", "name: Example Controller SA")
        (tmp_path / shipped.name.replace("connexeon", "ours")).write_text(text.replace("connexeon.", "ours."))
    chosen = {**OPERATOR_ENV, "POLICY_DIR": str(tmp_path), "POLICY_FILE": "ours.yaml"}
    for name in APP_SERVICES:
        env = on_this_host(compose, name, chosen)
        assert env["DSRFLOW_POLICY"] == str(tmp_path / "ours.yaml")
        use_environment(monkeypatch, env)
        settings = Settings()
        assert load_policy(settings.policy_path).policy.controller.name == "Example Controller SA"
