"""docker-compose.yml's Prometheus and Grafana (docs/observability.md) are provisioned from the
files in deploy/: the data source, the dashboard, the scrape jobs and the alert rules an operator
acts on. Docker does not run here, so these tests read the files."""

from __future__ import annotations

import json
from urllib.parse import urlparse

import pytest

from tests.compose_support import (
    OPERATOR_ENV,
    ROOT,
    app_environment,
    bind_mounts,
    container_ports,
    environment,
    interpolate,
    load_compose,
    mounted,
    split_address,
)
from tests.yaml_files import read_yaml


@pytest.fixture(scope="module")
def compose() -> dict:
    return load_compose()


DEPLOY = ROOT / "deploy"


def test_observability_services_are_provisioned_from_deploy_files(compose: dict) -> None:
    services = compose["services"]
    for name in ("prometheus", "grafana"):
        mounts = bind_mounts(services[name])
        assert mounts, f"{name} mounts nothing from deploy/"
        for source in mounts.values():
            assert source.exists(), f"{name} mounts {source}, which does not exist"
            assert DEPLOY in source.parents, f"{name} mounts {source} from outside deploy/"
    prometheus = services["prometheus"]
    config_path = next(a.split("=", 1)[1] for a in prometheus["command"] if a.startswith("--config.file="))
    config = read_yaml(mounted(prometheus, config_path))
    assert config["rule_files"], "no alert rules"
    for rules in config["rule_files"]:
        assert read_yaml(mounted(prometheus, rules))["groups"]


def test_grafana_gets_the_prometheus_data_source_and_the_dashboard(compose: dict) -> None:
    services = compose["services"]
    grafana = services["grafana"]
    sources = [read_yaml(p) for p in
               sorted(mounted(grafana, "/etc/grafana/provisioning/datasources").glob("*.yml"))]
    datasource = next(d for s in sources for d in s["datasources"] if d["type"] == "prometheus")
    url = urlparse(datasource["url"])
    assert url.hostname == "prometheus" and url.port in container_ports(services["prometheus"])
    providers = [p for f in sorted(mounted(grafana, "/etc/grafana/provisioning/dashboards").glob("*.yml"))
                 for p in read_yaml(f)["providers"]]
    dashboards = [d for p in providers for d in sorted(mounted(grafana, p["options"]["path"]).glob("*.json"))]
    assert [d.name for d in dashboards] == ["dsrflow.json"]
    dashboard = json.loads(dashboards[0].read_text())
    uids = {p["datasource"]["uid"] for p in dashboard["panels"] if "datasource" in p}
    assert uids == {datasource["uid"]}, "every panel reads the provisioned data source"
    env = environment(grafana)
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    with pytest.raises(AssertionError, match="GRAFANA_ADMIN_PASSWORD is required"):
        interpolate(env["GF_SECURITY_ADMIN_PASSWORD"], {})


def _scrape_job(config: dict, name: str) -> dict:
    return next(job for job in config["scrape_configs"] if job["job_name"] == name)


def test_prometheus_reads_the_api_with_the_metrics_token_and_every_worker(compose: dict) -> None:
    services = compose["services"]
    prometheus = services["prometheus"]
    config = read_yaml(mounted(prometheus, "/etc/prometheus/prometheus.yml"))
    api_env = app_environment(compose, "api")

    api = _scrape_job(config, "dsrflow-api")
    (discovery,) = api["dns_sd_configs"]
    assert discovery["names"] == ["api"] and discovery["port"] == int(api_env["DSRFLOW_API_PORT"])
    assert api["metrics_path"] == "/metrics"
    # The token file is the compose secret holding the value the api checks.
    secret = api["authorization"]["credentials_file"].removeprefix("/run/secrets/")
    assert secret in prometheus["secrets"]
    assert compose["secrets"][secret]["environment"] == "DSRFLOW_METRICS_TOKEN"
    assert api_env["DSRFLOW_METRICS_TOKEN"] == OPERATOR_ENV["DSRFLOW_METRICS_TOKEN"]

    worker = _scrape_job(config, "dsrflow-worker")
    (discovery,) = worker["dns_sd_configs"]
    host, port = split_address(app_environment(compose, "worker")["DSRFLOW_WORKER_METRICS_ADDRESS"])
    assert discovery["names"] == ["worker"] and discovery["port"] == port
    assert port in container_ports(services["worker"])
    assert not services["worker"].get("ports"), "the worker's metrics have no credentials: never published"


REQUIRED_ALERTS = {
    "DsrRequestsOverdue": "dsrflow_requests_overdue",
    "DsrTaskNeedsAttentionForADay": "dsrflow_tasks_needing_attention_oldest_seconds",
    "DsrActivityFailureRate": "temporal_activity_execution_failed_total",
    "DsrNoWorkerPolling": "temporal_num_pollers",
    "DsrWorkflowTaskFailing": "temporal_workflow_task_execution_failed_total",
    "DsrRequestsNotStarted": "dsrflow_requests_unstarted_oldest_seconds",
    "DsrRequestStopped": "dsrflow_steps_needing_attention",
    "DsrSweepStale": "dsrflow_sweep_last_success_age_seconds",
    "DsrSweepProblems": "dsrflow_sweep_problems",
    "DsrStaffAlertsRefused": "dsrflow_staff_alerts_refused",
}


def test_alert_rules_cover_what_an_operator_must_act_on() -> None:
    rules = {rule["alert"]: rule for group in read_yaml(DEPLOY / "prometheus/alerts.yml")["groups"]
             for rule in group["rules"]}
    for name, metric in REQUIRED_ALERTS.items():
        assert metric in rules[name]["expr"], name
    for name, rule in rules.items():
        assert rule["labels"]["severity"] in ("critical", "warning"), name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name
    assert "86400" in rules["DsrTaskNeedsAttentionForADay"]["expr"]  # more than a day
    assert "absent(" in rules["DsrNoWorkerPolling"]["expr"]  # no worker at all leaves no series
