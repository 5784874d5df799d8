"""deploy/kubernetes/: schema-valid core kinds, a native sidecar with probes, secrets by
reference, a PodMonitor that finds it, and a PrometheusRule identical to alerts/."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from externals import require

# Native sidecars (init containers with restartPolicy: Always) are on by default since 1.29.
KUBERNETES_VERSIONS = ("1.29.0", "1.33.0")
OPS_PORT = 9464


@pytest.fixture(scope="module")
def manifests(repo: Path) -> dict[str, dict[str, Any]]:
    """Every object of deploy/kubernetes/*.yaml by kind (one object per kind here)."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted((repo / "deploy" / "kubernetes").glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            assert document["kind"] not in found, f"two {document['kind']} objects"
            found[document["kind"]] = document
    return found


@pytest.fixture(scope="module")
def pod(manifests: dict[str, dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = manifests["Deployment"]["spec"]["template"]["spec"]
    return spec


@pytest.fixture(scope="module")
def sidecar(pod: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in pod["initContainers"] if c["name"] == "mcp-sidecar")


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("kind", ["Deployment", "ConfigMap"])
def test_core_kinds_are_valid(manifests: dict[str, dict[str, Any]], kind: str, version: str) -> None:
    require(
        importlib.util.find_spec("kubernetes_validate") is not None, "kubernetes-validate (a test dependency)"
    )
    import kubernetes_validate

    kubernetes_validate.validate(manifests[kind], version, strict=True)


def test_the_validator_rejects_a_misspelt_field(manifests: dict[str, dict[str, Any]]) -> None:
    require(
        importlib.util.find_spec("kubernetes_validate") is not None, "kubernetes-validate (a test dependency)"
    )
    import kubernetes_validate

    broken = yaml.safe_load(yaml.safe_dump(manifests["Deployment"]))
    broken["spec"]["template"]["spec"]["initContainers"][0]["restartPolicyy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[-1], strict=True)


def test_the_kustomization_lists_every_manifest(repo: Path, manifests: dict[str, dict[str, Any]]) -> None:
    listed = set(manifests["Kustomization"]["resources"])
    on_disk = {p.name for p in (repo / "deploy" / "kubernetes").glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk


def test_mcp_sidecar_is_a_native_sidecar_with_probes(sidecar: dict[str, Any]) -> None:
    assert sidecar["restartPolicy"] == "Always"
    ports = {p["name"]: p["containerPort"] for p in sidecar["ports"]}
    assert ports["ops"] == OPS_PORT
    probes = {kind: sidecar[f"{kind}Probe"]["httpGet"] for kind in ("startup", "readiness", "liveness")}
    assert probes["readiness"]["path"] == "/readyz"
    assert probes["liveness"]["path"] == "/livez"
    assert probes["startup"]["path"] in {"/livez", "/readyz"}
    for probe in probes.values():
        assert probe["port"] in ("ops", OPS_PORT)


def test_the_agent_uses_the_gateway_on_localhost(pod: dict[str, Any], sidecar: dict[str, Any]) -> None:
    agent = pod["containers"][0]
    env = {e["name"]: e.get("value") for e in agent.get("env", [])}
    gateway_port = next(p["containerPort"] for p in sidecar["ports"] if p["name"] == "gateway")
    assert env["MCP_GATEWAY_URL"] == f"http://127.0.0.1:{gateway_port}/mcp"


def test_the_configmap_config_is_valid_and_its_secrets_come_from_secret_refs(
    manifests: dict[str, dict[str, Any]],
    pod: dict[str, Any],
    sidecar: dict[str, Any],
    tmp_path: Path,
    sidecar_check: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    configmap = manifests["ConfigMap"]
    mounted = {v["name"]: v for v in sidecar["volumeMounts"]}
    volume = next(
        v for v in pod["volumes"] if v.get("configMap", {}).get("name") == configmap["metadata"]["name"]
    )
    config_path = sidecar["args"][sidecar["args"].index("-c") + 1]
    key = config_path.removeprefix(mounted[volume["name"]]["mountPath"].rstrip("/") + "/")
    text = configmap["data"][key]
    env = {e["name"]: e for e in sidecar["env"]}
    variables = set(re.findall(r"\$\{(\w+)", text))
    config = yaml.safe_load(text)
    if token_env := config["sidecar"].get("admin_token_env"):
        variables.add(token_env)
    assert variables, "the example should show a secret"
    for name in variables:  # every secret is a reference, never a literal in a manifest
        assert "secretKeyRef" in env[name].get("valueFrom", {}), name
        assert "value" not in env[name], name
    path = tmp_path / "config.yaml"
    path.write_text(text)
    result = sidecar_check(path, {name: f"test-value-of-{name}" for name in variables})
    assert result.returncode == 0, result.stderr
    assert config["sidecar"]["listen"] == f"0.0.0.0:{OPS_PORT}"  # reachable by Prometheus


def test_the_podmonitor_finds_the_sidecar_as_job_mcp_sidecar(
    manifests: dict[str, dict[str, Any]], sidecar: dict[str, Any]
) -> None:
    monitor = manifests["PodMonitor"]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    pod_labels = manifests["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    endpoint = monitor["spec"]["podMetricsEndpoints"][0]
    assert endpoint["port"] in {p["name"] for p in sidecar["ports"]}
    assert endpoint["path"] == "/metrics"
    relabel = [r for r in endpoint["relabelings"] if r["targetLabel"] == "job"]
    assert relabel and relabel[0]["replacement"] == "mcp-sidecar"


def test_the_prometheusrule_carries_exactly_the_shipped_rules(
    repo: Path, manifests: dict[str, dict[str, Any]], rule_groups: list[dict[str, Any]]
) -> None:
    rule = manifests["PrometheusRule"]
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["spec"]["groups"] == rule_groups
    result = subprocess.run(
        [sys.executable, "deploy/kubernetes/render_prometheusrule.py", "--check"],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_the_prometheusrule_groups_pass_promtool(
    manifests: dict[str, dict[str, Any]], promtool: str, tmp_path: Path
) -> None:
    rules = tmp_path / "from-prometheusrule.yml"
    rules.write_text(yaml.safe_dump({"groups": manifests["PrometheusRule"]["spec"]["groups"]}))
    result = subprocess.run(
        [promtool, "check", "rules", str(rules)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
