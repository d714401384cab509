"""docker-compose.yml's Temporal: the server persists in the postgres service, its setup registers
exactly the search attributes the workflows write, and the Temporal UI decodes payloads through the
API's codec endpoint where the browser reaches it. Docker does not run here, so these tests read
the files."""

from __future__ import annotations

import shlex
from urllib.parse import urlparse

import pytest
from temporalio.api.enums.v1 import IndexedValueType

from tests.compose_support import (
    OPERATOR_ENV,
    app_environment,
    command_lines,
    container_ports,
    environment,
    interpolate,
    load_compose,
    published_ports,
    split_address,
)
from workflows.search_attributes import SEARCH_ATTRIBUTES

EXPECTED_SEARCH_ATTRIBUTES = {
    "DsrStatus": "Keyword", "DsrType": "Keyword", "DsrRegime": "Keyword", "DsrDueDate": "Datetime",
}
_CLI_TYPES = {
    "INDEXED_VALUE_TYPE_TEXT": "Text",
    "INDEXED_VALUE_TYPE_KEYWORD": "Keyword",
    "INDEXED_VALUE_TYPE_INT": "Int",
    "INDEXED_VALUE_TYPE_DOUBLE": "Double",
    "INDEXED_VALUE_TYPE_BOOL": "Bool",
    "INDEXED_VALUE_TYPE_DATETIME": "Datetime",
    "INDEXED_VALUE_TYPE_KEYWORD_LIST": "KeywordList",
}


@pytest.fixture(scope="module")
def compose() -> dict:
    return load_compose()


def test_temporal_persists_in_the_postgres_service(compose: dict) -> None:
    services = compose["services"]
    env = environment(services["temporal"])
    assert env["DB"] == "postgres12"
    assert env["POSTGRES_SEEDS"] in services
    assert services[env["POSTGRES_SEEDS"]]["image"].startswith("postgres:")
    assert int(env["DB_PORT"]) in container_ports(services[env["POSTGRES_SEEDS"]])
    assert env["POSTGRES_USER"] and env["POSTGRES_PWD"]
    assert services["temporal"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_ui_codec_endpoint_is_the_api_as_the_browser_sees_it(compose: dict) -> None:
    services = compose["services"]
    ui = {key: interpolate(value, OPERATOR_ENV) for key, value in environment(services["temporal-ui"]).items()}
    assert split_address(ui["TEMPORAL_ADDRESS"])[0] == "temporal"
    assert ui["TEMPORAL_CORS_ORIGINS"]
    codec = urlparse(ui["TEMPORAL_CODEC_ENDPOINT"])
    assert codec.path.rstrip("/").endswith("/codec")
    api_port = int(app_environment(compose, "api")["DSRFLOW_API_PORT"])
    assert codec.port == published_ports(services["api"])[api_port]
    assert codec.hostname in ("localhost", "127.0.0.1")
    public = urlparse(app_environment(compose, "api")["DSRFLOW_PUBLIC_URL"])
    assert (codec.scheme, codec.netloc) == (public.scheme, public.netloc)


def registered_search_attributes(compose: dict) -> dict[str, str]:
    service = compose["services"]["temporal-setup"]
    registered: dict[str, str] = {}
    for line in command_lines(service):
        words = shlex.split(line)
        if words[:4] != ["temporal", "operator", "search-attribute", "create"]:
            continue
        options = list(zip(words[4::2], words[5::2], strict=False))
        assert dict(options).get("--address") == compose["x-dsrflow-env"]["TEMPORAL_ADDRESS"]
        names = [value for flag, value in options if flag == "--name"]
        types = [value for flag, value in options if flag == "--type"]
        # The CLI pairs each --name with the --type after it; an unpaired name is silently dropped.
        assert len(names) == len(types), line
        registered.update(zip(names, types, strict=True))
    return registered


def test_setup_registers_exactly_the_workflow_search_attributes(compose: dict) -> None:
    service = compose["services"]["temporal-setup"]
    assert service["image"].startswith("temporalio/admin-tools")
    assert service["depends_on"]["temporal"]
    registered = registered_search_attributes(compose)
    assert registered == EXPECTED_SEARCH_ATTRIBUTES
    in_code = {
        key.name: _CLI_TYPES[IndexedValueType.Name(key.indexed_value_type)]
        for key in SEARCH_ATTRIBUTES
    }
    assert registered == in_code
