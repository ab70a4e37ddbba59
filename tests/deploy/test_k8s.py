"""deploy/k8s (no cluster here): every manifest against Kubernetes' own JSON schemas (kubernetes-validate, strict),
probes on the metrics port, command lines liqbot's parser accepts, and no secret value written in a file."""

from __future__ import annotations

import copy
import re
from typing import Any

import kubernetes_validate
import pytest
import yaml

from liqbot.data import REPO
from tests.test_compose import interpolate as compose_interpolate
from tests.test_compose import liqbot_invocation_error, load_compose, parsed

K8S = REPO / "deploy" / "k8s"
KUBERNETES = kubernetes_validate.latest_version()  # the newest schemas the package bundles
_SECRET_NAME = re.compile(r"PASSWORD|SECRET|API_KEY|TOKEN", re.IGNORECASE)
_REFERENCE = re.compile(r"\$\((\w+)\)")
_URL_PASSWORD = re.compile(r"://[^/@\s:]+:[^/@\s]+@")

Manifest = dict[str, Any]


def manifests() -> list[Manifest]:
    """Every document of every manifest file, the Kustomization included."""
    return [doc for path in sorted(K8S.glob("*.yaml")) for doc in yaml.safe_load_all(path.read_text()) if doc]


def _of_kind(docs: list[Manifest], kind: str) -> dict[str, Manifest]:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}


def _schema_problems(doc: Manifest) -> list[str]:
    if doc["kind"] == "Kustomization":  # kustomize's own file, not a Kubernetes object
        return []
    try:
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [f"{doc['kind']} {doc['metadata'].get('name')}: {exc.message}"]
    return []


def _environment(container: dict[str, Any], config: dict[str, str]) -> dict[str, str]:
    """What `$(VAR)` expands to in the container: the ConfigMap's values, then its own env (refs as stand-ins)."""
    env = dict(config) if any(src.get("configMapRef") for src in container.get("envFrom", [])) else {}
    for var in container.get("env", []):
        env[var["name"]] = var.get("value", f"<{var['name']}>")
    return env


def expand(arg: str, env: dict[str, str]) -> str:
    """Kubernetes' expansion of `$(VAR)` in args; an undefined reference stays as written, as the kubelet does."""
    return _REFERENCE.sub(lambda m: env.get(m.group(1), m.group(0)), arg)


def _container_problems(name: str, container: dict[str, Any], pod: dict[str, Any], config: dict[str, str]) -> list[str]:
    problems = []
    if container.get("command") != ["liqbot"]:
        problems.append(f"{name}: command {container.get('command')} is not the liqbot entry point")
    argv = [expand(str(a), _environment(container, config)) for a in container.get("args", [])]
    error = liqbot_invocation_error(argv)
    if error:
        return [*problems, f"{name}: `liqbot {' '.join(argv)}`: {error}"]
    args = parsed(argv)
    if not args.bootstrap:
        problems.append(f"{name}: without --bootstrap liqbot starts a broker of its own in the pod")
    ports = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
    metrics = getattr(args, "metrics_port", None)
    if metrics is None or ports.get("metrics") != metrics:
        problems.append(f"{name}: --metrics-port {metrics} is not the container port named metrics {ports}")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        get = container.get(probe, {}).get("httpGet")
        if probe != "startupProbe" and get is None:
            problems.append(f"{name}: no {probe} over HTTP")
        elif get is not None and (get.get("port") not in ("metrics", metrics) or get.get("path") != "/metrics"):
            problems.append(f"{name}: {probe} asks {get.get('port')}{get.get('path')}, not the metrics endpoint")
    if pod.get("annotations", {}).get("prometheus.io/port") != str(metrics):
        problems.append(f"{name}: Prometheus is told port {pod.get('annotations', {}).get('prometheus.io/port')}")
    resources = container.get("resources", {})
    problems += [f"{name}: no {kind}.{what}" for kind in ("requests", "limits") for what in ("cpu", "memory")
                 if what not in resources.get(kind, {})]
    return problems + _secret_problems(name, container)


def _secret_problems(name: str, container: dict[str, Any]) -> list[str]:
    problems = [f"{name}: {var['name']} is written in the manifest, not taken from a Secret"
                for var in container.get("env", []) if _SECRET_NAME.search(var["name"])
                and "secretKeyRef" not in var.get("valueFrom", {})]
    return problems + [f"{name}: a password in {arg}" for arg in container.get("args", [])
                       if _URL_PASSWORD.search(str(arg))]


def manifest_problems(docs: list[Manifest]) -> list[str]:
    """Everything this file checks about the manifests, as messages (empty: nothing wrong)."""
    problems = [p for doc in docs for p in _schema_problems(doc)]
    configs = _of_kind(docs, "ConfigMap")
    config = {k: str(v) for c in configs.values() for k, v in c.get("data", {}).items()}
    problems += [f"ConfigMap: {key} is a secret" for key in config if _SECRET_NAME.search(key)]
    problems += [f"ConfigMap: a password in {key}" for key, value in config.items() if _URL_PASSWORD.search(value)]
    problems += [f"Secret {name}: its values are in the repository" for name, secret in _of_kind(docs, "Secret").items()
                 if secret.get("data") or secret.get("stringData")]
    for name, deployment in _of_kind(docs, "Deployment").items():
        template = deployment["spec"]["template"]
        for container in template["spec"]["containers"]:
            problems += _container_problems(name, container, template["metadata"], config)
    return problems


def test_the_manifests_pass_every_check() -> None:
    assert manifest_problems(manifests()) == []


def _broken(change: str) -> list[Manifest]:
    docs = copy.deepcopy(manifests())
    sink = _of_kind(docs, "Deployment")["sink"]["spec"]["template"]
    container = sink["spec"]["containers"][0]
    if change == "typo":
        container["livenessProbes"] = container.pop("livenessProbe")
    elif change == "probe port":
        container["readinessProbe"]["httpGet"]["port"] = 8080
    elif change == "no liveness":
        del container["livenessProbe"]
    elif change == "plain password":
        container["env"][0] = {"name": "LIQBOT_CLICKHOUSE_PASSWORD", "value": "hunter2"}
    elif change == "password in url":
        container["args"] = [a.replace("$(LIQBOT_CLICKHOUSE_URL)", "http://liqbot:hunter2@clickhouse:8123/liqbot")
                             for a in container["args"]]
    elif change == "bad args":
        container["args"] = ["sink", "--clickhouse", "x"]  # an abbreviation: fragile, refused
    elif change == "no limits":
        del container["resources"]["limits"]
    elif change == "committed secret":
        docs.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "liqbot-secrets"},
                     "stringData": {"clickhouse-password": "hunter2"}})
    elif change == "annotation":
        sink["metadata"]["annotations"]["prometheus.io/port"] = "9100"
    return docs


@pytest.mark.parametrize(("change", "expected"), [
    ("typo", "'livenessProbes' was unexpected"),
    ("probe port", "readinessProbe asks 8080/metrics"),
    ("no liveness", "no livenessProbe"),
    ("plain password", "LIQBOT_CLICKHOUSE_PASSWORD is written in the manifest"),
    ("password in url", "a password in http://liqbot:hunter2@"),
    ("bad args", "unrecognized arguments"),
    ("no limits", "no limits.cpu"),
    ("committed secret", "Secret liqbot-secrets: its values are in the repository"),
    ("annotation", "Prometheus is told port 9100"),
])
def test_the_checks_reject_a_broken_manifest(change: str, expected: str) -> None:
    new = set(manifest_problems(_broken(change))) - set(manifest_problems(manifests()))
    assert any(expected in problem for problem in new), new


def test_the_kustomization_lists_every_manifest() -> None:
    (kustomization,) = [doc for doc in manifests() if doc["kind"] == "Kustomization"]
    assert sorted(kustomization["resources"]) == sorted(p.name for p in K8S.glob("*.yaml")
                                                        if p.name != "kustomization.yaml")
    assert {image["name"]: image["newTag"] for image in kustomization["images"]} == \
        {"liqbot": load_compose()["services"]["sink"]["image"].split(":")[1]}  # the compose file's pinned tag


def _commands() -> dict[str, Any]:
    """Each Deployment's liqbot arguments, expanded and parsed."""
    docs = manifests()
    config = {k: str(v) for c in _of_kind(docs, "ConfigMap").values() for k, v in c["data"].items()}
    found = {}
    for name, deployment in _of_kind(docs, "Deployment").items():
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        found[name] = parsed([expand(str(a), _environment(container, config)) for a in container["args"]])
    return found


def _service(args: Any) -> str:
    """What a command line runs: `ingest bybit`, `agents worker`, `sink`, `lag exporter`."""
    extra = {"ingest": "venue", "agents": "action", "lag": "action"}.get(args.command)
    return f"{args.command} {getattr(args, extra)}" if extra else args.command


def test_the_same_services_as_the_compose_file() -> None:
    compose = {_service(parsed([compose_interpolate(str(a)) for a in s["command"]]))
               for s in load_compose()["services"].values() if "build" in s}
    assert sorted(_service(args) for args in _commands().values()) == sorted(compose)


def test_agents_scale_as_one_group_and_ingest_runs_once_per_venue() -> None:
    deployments = _of_kind(manifests(), "Deployment")
    agents = deployments["agents"]["spec"]
    assert agents["replicas"] >= 2 and agents["strategy"]["rollingUpdate"]["maxSurge"] == 0
    assert _commands()["agents"].agents == "features,predict,decide,execute"  # one set: one consumer group
    (budget,) = _of_kind(manifests(), "PodDisruptionBudget").values()
    assert budget["spec"]["selector"] == agents["selector"]
    ingest = {name: d["spec"] for name, d in deployments.items() if _commands()[name].command == "ingest"}
    assert sorted(_commands()[name].venue for name in ingest) == ["binance", "bybit"]
    assert all(spec["replicas"] == 1 and spec["strategy"]["type"] == "Recreate" for spec in ingest.values())


def test_secrets_come_from_the_secret_object() -> None:
    deployments = _of_kind(manifests(), "Deployment")
    refs = {var["name"]: var["valueFrom"]["secretKeyRef"] for d in deployments.values()
            for c in d["spec"]["template"]["spec"]["containers"] for var in c.get("env", [])
            if "secretKeyRef" in var.get("valueFrom", {})}
    assert refs["LIQBOT_CLICKHOUSE_PASSWORD"] == {"name": "liqbot-secrets", "key": "clickhouse-password"}
    # the Bybit keys matter only under --live: optional, so a paper worker starts without them
    assert refs["LIQBOT_BYBIT_API_KEY"]["optional"] and refs["LIQBOT_BYBIT_API_SECRET"]["optional"]
    assert _of_kind(manifests(), "Secret") == {}
    assert "kubectl -n liqbot create secret generic liqbot-secrets" in (K8S / "kustomization.yaml").read_text()


def test_expansion_follows_the_kubelet() -> None:
    env = {"A": "x"}
    assert expand("$(A)-$(B)", env) == "x-$(B)"


def test_metrics_are_reachable_from_outside_the_pod() -> None:
    for name, args in _commands().items():
        assert getattr(args, "metrics_addr", None) == "0.0.0.0", f"{name} binds its metrics to the loopback"
