"""docker-compose.yml and the files it uses, checked without a Docker engine.

The file is validated against the Compose Specification's JSON schema (vendored in
tests/kit/schemas/), every file it mounts or builds from must exist, and the configs it
mounts are checked by their own tools (mcp-sidecar check, promtool, amtool).
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml
from support import LOCALHOST, free_port, wait_for

SCHEMA = Path(__file__).resolve().parent / "schemas" / "compose-spec.json"


@pytest.fixture(scope="module")
def compose(repo: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((repo / "docker-compose.yml").read_text())
    return data


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA.read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def bind_mounts(service: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(host path, container path) of every bind mount in short syntax; named volumes skipped."""
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/")):
            yield source, target


def mount_source(compose: dict[str, Any], service: str, target: str) -> str:
    """The host path mounted at `target` (or at a directory above it) in `service`."""
    for source, mounted_at in bind_mounts(compose["services"][service]):
        if target == mounted_at:
            return source
        if target.startswith(mounted_at.rstrip("/") + "/"):
            return source + target[len(mounted_at.rstrip("/")) :]
    raise AssertionError(f"{service}: nothing mounted at {target}")


def test_the_compose_file_follows_the_compose_specification(
    compose: dict[str, Any], validator: jsonschema.protocols.Validator
) -> None:
    errors = [f"{e.json_path}: {e.message}" for e in validator.iter_errors(compose)]
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize(
    "breakage",
    [
        {"healthcheck": {"interval": 10}},  # durations are strings
        {"depends_on": {"x": {"condition": "service_happy"}}},
        {"restart_policy": "always"},  # not a service key
    ],
)
def test_the_schema_rejects_a_broken_service(
    compose: dict[str, Any], validator: jsonschema.protocols.Validator, breakage: dict[str, Any]
) -> None:
    broken = {**compose, "services": {**compose["services"], "extra": {"image": "busybox", **breakage}}}
    assert list(validator.iter_errors(broken))


def test_every_mounted_and_built_file_exists(repo: Path, compose: dict[str, Any]) -> None:
    checked = 0
    for name, service in compose["services"].items():
        for source, _ in bind_mounts(service):
            assert (repo / source).exists(), f"{name} mounts {source}, which does not exist"
            checked += 1
        if build := service.get("build"):
            context = repo / build["context"]
            assert (context / build.get("dockerfile", "Dockerfile")).is_file(), name
    assert checked >= 7


def test_the_dockerfile_copies_only_what_exists_and_is_not_ignored(repo: Path) -> None:
    ignored = [
        line.strip()
        for line in (repo / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copies = re.findall(r"^COPY (?!--from)(.+)$", (repo / "Dockerfile").read_text(), flags=re.MULTILINE)
    assert copies
    for line in copies:
        for source in line.split()[:-1]:
            assert (repo / source).exists(), f"Dockerfile copies {source}, which does not exist"
            top = PurePosixPath(source).parts[0]
            assert not any(fnmatch.fnmatch(top, pattern) for pattern in ignored), (
                f"{source} is in .dockerignore"
            )


def test_every_service_has_a_healthcheck_and_depends_on_real_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"sidecar", "demo-http", "prometheus", "alertmanager", "grafana", "jaeger"} <= set(services)
    for name, service in services.items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        for dependency, condition in service.get("depends_on", {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            if condition["condition"] == "service_healthy":
                assert services[dependency].get("healthcheck"), dependency


def test_the_sidecar_config_is_valid_and_listens_on_all_interfaces(
    repo: Path, compose: dict[str, Any], sidecar_check: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    sidecar = compose["services"]["sidecar"]
    config_path = sidecar["command"][sidecar["command"].index("-c") + 1]
    source = repo / mount_source(compose, "sidecar", config_path)
    result = sidecar_check(source)
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(source.read_text())
    assert config["sidecar"]["listen"] == "0.0.0.0:9464"
    published = {port.rsplit(":", 2)[-1] for port in sidecar["ports"]}
    assert {"9464", "9465"} <= published
    for server in config["servers"]:  # stdio servers run inside the image: their files are copied
        for arg in server.get("args", []):
            if arg.endswith(".py"):
                assert (repo / arg).is_file() and arg.startswith("examples/"), arg
        if server["transport"] != "stdio":
            assert urlsplit(server["url"]).hostname in compose["services"], server["url"]


def test_the_admin_token_has_no_default(repo: Path, compose: dict[str, Any]) -> None:
    """A token shipped in the file would be known to everyone: unset, the admin endpoints are off."""
    sidecar = compose["services"]["sidecar"]
    config_path = sidecar["command"][sidecar["command"].index("-c") + 1]
    config = yaml.safe_load((repo / mount_source(compose, "sidecar", config_path)).read_text())
    token_env = config["sidecar"]["admin_token_env"]
    assert sidecar["environment"][token_env] == f"${{{token_env}:-}}"


def test_traces_go_to_jaeger(compose: dict[str, Any]) -> None:
    environment = compose["services"]["sidecar"]["environment"]
    endpoint = urlsplit(environment["OTEL_EXPORTER_OTLP_ENDPOINT"])
    assert endpoint.hostname == "jaeger" and endpoint.port in (4317, 4318)
    protocol = environment.get("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    assert (protocol == "grpc") == (endpoint.port == 4317)


def test_prometheus_scrapes_the_sidecar_loads_the_rules_and_alerts(
    repo: Path, compose: dict[str, Any], promtool: str, tmp_path: Path
) -> None:
    service = compose["services"]["prometheus"]
    config_arg = next(a for a in service["command"] if a.startswith("--config.file="))
    config_source = repo / mount_source(compose, "prometheus", config_arg.split("=", 1)[1])
    config = yaml.safe_load(config_source.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    targets = jobs["mcp-sidecar"]["static_configs"][0]["targets"]
    assert targets == ["sidecar:9464"]
    alertmanagers = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert alertmanagers == ["alertmanager:9093"]
    # The rules mounted into the container match the config's rule_files glob.
    rule_targets = [t for _, t in bind_mounts(service) if t.endswith(".yml") and "rules" in t]
    assert any(fnmatch.fnmatch(t, config["rule_files"][0]) for t in rule_targets)
    assert mount_source(compose, "prometheus", rule_targets[0]) == "./alerts/mcp-sidecar.rules.yml"
    # promtool checks the config with the rules where this checkout has them.
    config["rule_files"] = [str(repo / "alerts" / "mcp-sidecar.rules.yml")]
    local = tmp_path / "prometheus.yml"
    local.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [promtool, "check", "config", str(local)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 8 rules found" in result.stdout


def test_alertmanager_config_is_valid_and_routes_to_the_webhook(
    repo: Path, compose: dict[str, Any], amtool: str
) -> None:
    service = compose["services"]["alertmanager"]
    config_arg = next(a for a in service["command"] if a.startswith("--config.file="))
    source = repo / mount_source(compose, "alertmanager", config_arg.split("=", 1)[1])
    result = subprocess.run([amtool, "check-config", str(source)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    config = yaml.safe_load(source.read_text())
    webhook_port = compose["services"]["webhook"]["command"][-1]
    for receiver in config["receivers"]:
        for hook in receiver["webhook_configs"]:
            url = urlsplit(hook["url"])
            assert (url.hostname, str(url.port)) == ("webhook", webhook_port)
    critical = [r for r in config["route"]["routes"] if 'severity="critical"' in r["matchers"]]
    assert critical and critical[0]["receiver"] == "pager"


def test_grafana_is_provisioned_with_the_datasource_and_the_dashboard(
    repo: Path, compose: dict[str, Any], dashboard: dict[str, Any]
) -> None:
    datasources_dir = repo / mount_source(compose, "grafana", "/etc/grafana/provisioning/datasources")
    providers_dir = repo / mount_source(compose, "grafana", "/etc/grafana/provisioning/dashboards")
    datasources = [
        d for f in datasources_dir.glob("*.yml") for d in yaml.safe_load(f.read_text())["datasources"]
    ]
    prometheus = next(d for d in datasources if d["type"] == "prometheus")
    assert urlsplit(prometheus["url"]).hostname == "prometheus" and prometheus["isDefault"]
    variable = dashboard["templating"]["list"][0]
    assert variable["current"]["value"] == prometheus["uid"]  # the dashboard opens on it
    jaeger = next(d for d in datasources if d["type"] == "jaeger")
    assert urlsplit(jaeger["url"]).hostname == "jaeger"
    providers = [p for f in providers_dir.glob("*.yml") for p in yaml.safe_load(f.read_text())["providers"]]
    path = providers[0]["options"]["path"]
    assert mount_source(compose, "grafana", f"{path}/mcp-sidecar.json") == "./dashboards/mcp-sidecar.json"


def test_the_example_webhook_logs_one_line_per_alert(repo: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "deploy/alertmanager/webhook_logger.py", "--port", str(port)],
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def answers() -> bool:
        assert process.poll() is None, "webhook logger exited"
        try:
            with urllib.request.urlopen(f"http://{LOCALHOST}:{port}/", timeout=1) as response:
                assert response.status == 200
                return True
        except OSError:
            return False

    try:
        wait_for(answers, 10, "the webhook logger to start")
        payload = {
            "version": "4",
            "status": "firing",
            "alerts": [
                {"status": "firing", "labels": {"alertname": "MCPCriticalServerDown", "server": "demo",
                                                "severity": "critical"}, "annotations": {"summary": "down"}},
                {"status": "resolved", "labels": {"alertname": "MCPOptionalServerDown", "server": "x"}},
            ],
        }  # fmt: skip
        request = urllib.request.Request(
            f"http://{LOCALHOST}:{port}/pager", data=json.dumps(payload).encode(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200
    finally:
        os.kill(process.pid, signal.SIGTERM)
        try:
            out, _ = process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            out, _ = process.communicate(timeout=10)
    lines = [json.loads(line) for line in out.splitlines()]
    assert [(x["receiver"], x["alertname"], x["status"]) for x in lines] == [
        ("pager", "MCPCriticalServerDown", "firing"),
        ("pager", "MCPOptionalServerDown", "resolved"),
    ]
    assert lines[0]["server"] == "demo" and lines[0]["severity"] == "critical"
