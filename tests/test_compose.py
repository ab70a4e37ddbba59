"""docker-compose.kafka.yml (for hosts with Docker; none here) is checked without running it: the versions of the
tested no-Docker path, pinned images, files that exist, and command lines that liqbot's own parser accepts."""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import re
from pathlib import Path
from typing import Any

import chdb
import pytest
import yaml

from deploy.grafana.dashboards import DASHBOARDS_DIR, PROVISIONING_DIR
from deploy.kafka.broker import JVM_PERFORMANCE_OPTS
from deploy.prometheus.install import tools
from liqbot.cli import _parser
from liqbot.data import REPO

COMPOSE = REPO / "docker-compose.kafka.yml"
DOCKERFILE = REPO / "deploy" / "docker" / "Dockerfile"
KAFKA_INTERNAL = "kafka:19092"  # the listener other containers reach (KAFKA_ADVERTISED_LISTENERS)
REGISTRY_INTERNAL = "http://registry:8080/apis/ccompat/v7"
_INTERPOLATION = re.compile(r"\$\{(\w+)(?::?([-?])([^}]*))?\}")
_SECRET_NAME = re.compile(r"PASSWORD|SECRET|API_KEY|TOKEN")

Compose = dict[str, Any]


def _pom_property(pom: str, name: str) -> str:
    match = re.search(rf"<{name}>([^<]+)</{name}>", (REPO / pom).read_text())
    assert match, f"{pom} lacks <{name}>"
    return match.group(1)


def _project_version() -> str:
    match = re.search(r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(), re.MULTILINE)
    assert match
    return match.group(1)


def load_compose() -> Compose:
    compose: Compose = yaml.safe_load(COMPOSE.read_text())
    return compose


def interpolate(text: str) -> str:
    """Compose's `${VAR:-default}` as its default, `${VAR:?error}` (must be set) as a stand-in value."""
    return _INTERPOLATION.sub(lambda m: m.group(3) if m.group(2) == "-" else f"<{m.group(1)}>", text)


def _strict_parser() -> argparse.ArgumentParser:
    """liqbot's own parser, refusing abbreviated options: in a deployment file `--clickhouse` for
    `--clickhouse-url` breaks as soon as another option shares the prefix."""
    parser = _parser()
    pending = [parser]
    while pending:
        current = pending.pop()
        current.allow_abbrev = False  # read at parse time, so setting it on the built parsers is enough
        for action in current._actions:
            if isinstance(action, argparse._SubParsersAction):
                pending += list(action.choices.values())
    return parser


def liqbot_invocation_error(argv: list[str]) -> str | None:
    """Why liqbot's own parser refuses these arguments, or None when it takes them as `liqbot` would."""
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            args, unknown = _strict_parser().parse_known_args(argv)
    except SystemExit:
        return stderr.getvalue().strip().splitlines()[-1]
    if unknown and args.command != "test":  # liqbot.cli.main refuses them the same way
        return f"unrecognized arguments: {' '.join(unknown)}"
    return None


def parsed(argv: list[str]) -> argparse.Namespace:
    """The namespace of arguments known to be valid."""
    args, _ = _parser().parse_known_args(argv)
    return args


def _liqbot_services(compose: Compose) -> dict[str, Any]:
    return {name: s for name, s in compose["services"].items() if "build" in s}


def _host_paths(service: dict[str, Any]) -> list[tuple[Path, str]]:
    """Bind mounts as (host path in the repository, container path); named volumes left out."""
    mounts = []
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            mounts.append(((REPO / source).resolve(), target))
    return mounts


def _dockerfile_problems(dockerfile: Path) -> list[str]:
    text = dockerfile.read_text()
    problems = [f"{dockerfile.name}: base image {image} is not pinned to a version"
                for image in re.findall(r"^FROM\s+(\S+)", text, re.MULTILINE)
                if ":" not in image or image.endswith(":latest") or not re.search(r":\S*\d", image)]
    for line in re.findall(r"^COPY\s+(?!--from)(.+)$", text, re.MULTILINE):
        problems += [f"{dockerfile.name}: COPY {source} does not exist"
                     for source in line.split()[:-1] if not (REPO / source).exists()]
    return problems


def compose_problems(compose: Compose) -> list[str]:
    """Everything this file checks about a compose file, as messages (empty: nothing wrong)."""
    problems = []
    for name, service in compose["services"].items():
        image = service.get("image", "")
        if ":" not in image or image.endswith(":latest"):
            problems.append(f"{name}: image {image!r} is not pinned to a version")
        problems += [f"{name}: port {port} is published beyond the loopback"
                     for port in service.get("ports", []) if not str(port).startswith("127.0.0.1:")]
        problems += [f"{name}: {path} does not exist" for path, _ in _host_paths(service) if not path.exists()]
        problems += [f"{name}: {key} is written in the file, not taken from the environment"
                     for key, value in service.get("environment", {}).items()
                     if _SECRET_NAME.search(key) and not str(value).startswith("${")]
    for name, service in _liqbot_services(compose).items():
        problems += _liqbot_service_problems(name, service)
    return problems


def _liqbot_service_problems(name: str, service: dict[str, Any]) -> list[str]:
    build = service["build"]
    dockerfile = REPO / build["context"] / build["dockerfile"]
    if not dockerfile.exists():
        return [f"{name}: {dockerfile} does not exist"]
    problems = _dockerfile_problems(dockerfile)
    if service["image"] != f"liqbot:{_project_version()}":
        problems.append(f"{name}: the project's image is tagged {service['image']}, not the project's version")
    argv = [interpolate(str(arg)) for arg in service.get("command", [])]
    error = liqbot_invocation_error(argv)
    if error:
        return [*problems, f"{name}: `liqbot {' '.join(argv)}`: {error}"]
    args = parsed(argv)
    if args.bootstrap != KAFKA_INTERNAL or args.registry != REGISTRY_INTERNAL:
        problems.append(f"{name}: without --bootstrap {KAFKA_INTERNAL} --registry {REGISTRY_INTERNAL} liqbot "
                        "starts a broker of its own inside the container")
    if getattr(args, "metrics_port", None) is None:
        problems.append(f"{name}: serves no metrics (--metrics-port)")
    return problems


def test_compose_uses_the_tested_versions() -> None:
    services = load_compose()["services"]
    kafka, registry = services["kafka"], services["registry"]
    assert kafka["image"] == f"apache/kafka:{_pom_property('deploy/kafka/pom.xml', 'kafka.version')}"
    apicurio = _pom_property("deploy/registry/pom.xml", "apicurio.version")
    assert registry["image"] == f"apicurio/apicurio-registry:{apicurio}"
    assert registry["environment"]["APICURIO_STORAGE_KIND"] == "kafkasql"
    assert kafka["environment"]["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    # the broker's collector sets every hop's tail latency: the same one with and without Docker
    assert kafka["environment"]["KAFKA_JVM_PERFORMANCE_OPTS"].split() == list(JVM_PERFORMANCE_OPTS)


def test_clickhouse_server_is_the_engine_the_history_was_tested_on() -> None:
    engine = str(chdb.engine_version)  # the ClickHouse inside chDB, on which every history test ran
    image = load_compose()["services"]["clickhouse"]["image"]
    assert image == f"clickhouse/clickhouse-server:{'.'.join(engine.split('.')[:2])}"


def test_prometheus_image_is_the_tested_package_version() -> None:
    upstream = tools(say=lambda _: None).version.split("+")[0]  # Debian's 2.42.0+ds-5 is upstream 2.42.0
    assert load_compose()["services"]["prometheus"]["image"] == f"prom/prometheus:v{upstream}"


def test_the_compose_file_passes_every_check() -> None:
    assert compose_problems(load_compose()) == []


def _mutated(path: list[str], value: Any) -> Compose:
    compose = copy.deepcopy(load_compose())
    node = compose
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return compose


@pytest.mark.parametrize(("path", "value", "expected"), [
    (["services", "grafana", "image"], "grafana/grafana:latest", "image 'grafana/grafana:latest' is not pinned"),
    (["services", "clickhouse", "ports"], ["8123:8123"], "clickhouse: port 8123:8123 is published beyond the loopback"),
    (["services", "prometheus", "volumes"], ["./deploy/prometheus/absent.yml:/etc/prometheus/prometheus.yml:ro"],
     "absent.yml does not exist"),
    (["services", "sink", "environment", "LIQBOT_CLICKHOUSE_PASSWORD"], "hunter2",
     "sink: LIQBOT_CLICKHOUSE_PASSWORD is written in the file"),
    (["services", "sink", "command"], ["sink", "--clickhouse-uri", "http://clickhouse:8123"],
     "sink: `liqbot sink --clickhouse-uri http://clickhouse:8123`: unrecognized arguments"),
    (["services", "sink", "command"], ["sink", "--clickhouse", "http://clickhouse:8123"], "unrecognized arguments"),
    (["services", "agents", "command"], ["agents", "worker"], "agents: without --bootstrap kafka:19092"),
    (["services", "sink", "command"], ["sink", "--bootstrap", KAFKA_INTERNAL, "--registry", REGISTRY_INTERNAL],
     "sink: serves no metrics"),
    (["services", "sink", "image"], "liqbot:0.0.1", "not the project's version"),
    (["services", "sink", "build"], {"context": ".", "dockerfile": "Dockerfile.absent"}, "does not exist"),
])
def test_the_checks_reject_a_broken_compose_file(path: list[str], value: Any, expected: str) -> None:
    new = set(compose_problems(_mutated(path, value))) - set(compose_problems(load_compose()))
    assert any(expected in problem for problem in new), new


def test_the_dockerfile_check_rejects_floating_images_and_missing_sources(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nFROM rust\nCOPY liqbot/ no-such-dir/ /opt/\nCOPY --from=native /w/ /w/\n")
    assert sorted(_dockerfile_problems(bad)) == [
        "Dockerfile: COPY no-such-dir/ does not exist",
        "Dockerfile: base image python:latest is not pinned to a version",
        "Dockerfile: base image rust is not pinned to a version"]
    assert _dockerfile_problems(DOCKERFILE) == []
    assert (DOCKERFILE.parent / "Dockerfile.dockerignore").exists()  # BuildKit's per-Dockerfile ignore file


def test_interpolation_and_the_invocation_check() -> None:
    assert interpolate("${LIQBOT_SYMBOLS:-BTCUSDT,ETHUSDT}") == "BTCUSDT,ETHUSDT"
    assert interpolate("${LIQBOT_CLICKHOUSE_PASSWORD:?set it}") == "<LIQBOT_CLICKHOUSE_PASSWORD>"
    assert liqbot_invocation_error(["sink", "--batch-rows", "10"]) is None
    assert "invalid int value" in str(liqbot_invocation_error(["sink", "--batch-rows", "many"]))
    assert "invalid choice" in str(liqbot_invocation_error(["agents", "supervisor"]))


def test_agents_workers_share_one_group_and_scale() -> None:
    agents = load_compose()["services"]["agents"]
    assert agents["deploy"]["replicas"] >= 2  # the symbols' partitions are split over the workers
    args = parsed([interpolate(str(a)) for a in agents["command"]])
    assert args.agents == "features,predict,decide,execute"  # one set of agents: one consumer group


def test_one_ingest_per_venue() -> None:
    services = _liqbot_services(load_compose())
    venues = [parsed([interpolate(str(a)) for a in s["command"]]).venue
              for s in services.values() if s["command"][0] == "ingest"]
    assert sorted(venues) == ["binance", "bybit"]
    assert all(s.get("deploy", {}).get("replicas", 1) == 1 for s in services.values() if s["command"][0] == "ingest")


def _prometheus_config() -> tuple[dict[str, Path], dict[str, Any]]:
    """The Prometheus container's bind mounts (container path -> repository path) and the config it reads."""
    mounts = {target: path for path, target in _host_paths(load_compose()["services"]["prometheus"])}
    config: dict[str, Any] = yaml.safe_load(mounts["/etc/prometheus/prometheus.yml"].read_text())
    return mounts, config


def test_prometheus_gets_the_project_config_and_rules() -> None:
    mounts, config = _prometheus_config()
    assert mounts["/etc/prometheus/prometheus.yml"] == REPO / "deploy" / "prometheus" / "prometheus.yml"
    assert config.get("rule_files"), "prometheus.yml loads no rule files"
    for pattern in config["rule_files"]:
        in_container = pattern if pattern.startswith("/") else f"/etc/prometheus/{pattern}"  # beside the config
        target = next((t for t in mounts if in_container.startswith(t + "/")), None)
        assert target, f"prometheus.yml reads {in_container}, which no volume provides"
        found = sorted(mounts[target].glob(in_container.removeprefix(target + "/")))
        assert found == sorted((REPO / "deploy" / "prometheus" / "rules").glob("*.yml")), f"{pattern}: {found}"


def scrape_problems(compose: Compose, config: dict[str, Any]) -> list[str]:
    """Services serving metrics that Prometheus does not scrape at their `--metrics-port`."""
    static, discovered = set(), set()
    for job in config.get("scrape_configs", []):
        static |= {t for c in job.get("static_configs", []) for t in c.get("targets", [])}
        discovered |= {f"{n}:{c['port']}" for c in job.get("dns_sd_configs", []) for n in c.get("names", [])}
    problems = []
    for name, service in _liqbot_services(compose).items():
        port = getattr(parsed([interpolate(str(a)) for a in service["command"]]), "metrics_port", None)
        scaled = service.get("deploy", {}).get("replicas", 1) > 1
        if scaled and f"{name}:{port}" not in discovered:  # a static target would reach one replica of many
            problems.append(f"{name}: {port} is not discovered by DNS (dns_sd_configs), and it runs replicas")
        elif not scaled and f"{name}:{port}" not in static | discovered:
            problems.append(f"{name}: {name}:{port} is no scrape target of prometheus.yml")
    return problems


def test_prometheus_scrapes_every_service() -> None:
    assert scrape_problems(load_compose(), _prometheus_config()[1]) == []


def test_the_scrape_check_rejects_a_missing_or_static_target() -> None:
    config = {"scrape_configs": [{"job_name": "sink", "static_configs": [{"targets": ["sink:9400", "agents:9400"]}]}]}
    problems = scrape_problems(load_compose(), config)
    assert "agents: 9400 is not discovered by DNS (dns_sd_configs), and it runs replicas" in problems
    assert "lag-exporter: lag-exporter:9400 is no scrape target of prometheus.yml" in problems
    assert not [p for p in problems if p.startswith("sink:")]


def test_grafana_is_provisioned_from_the_repository() -> None:
    services = load_compose()["services"]
    mounts = {target: path for path, target in _host_paths(services["grafana"])}
    assert mounts["/etc/grafana/provisioning"] == PROVISIONING_DIR
    paths = [provider["options"]["path"] for provider_file in (PROVISIONING_DIR / "dashboards").glob("*.yml")
             for provider in yaml.safe_load(provider_file.read_text())["providers"]]
    assert paths and all(mounts.get(path) == DASHBOARDS_DIR for path in paths)
    home = services["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.rsplit("/", 1)[0] in paths and (DASHBOARDS_DIR / home.rsplit("/", 1)[1]).is_file()
    datasources = yaml.safe_load((PROVISIONING_DIR / "datasources" / "prometheus.yml").read_text())["datasources"]
    listen = next(a for a in services["prometheus"]["command"] if a.startswith("--web.listen-address="))
    assert [d["url"] for d in datasources] == [f"http://prometheus:{listen.rsplit(':', 1)[1]}"]


def test_metrics_are_reachable_from_the_prometheus_container() -> None:
    for name, service in _liqbot_services(load_compose()).items():
        args = parsed([interpolate(str(a)) for a in service["command"]])
        assert getattr(args, "metrics_addr", None) == "0.0.0.0", f"{name} binds its metrics to the loopback"
