"""docker-compose.kafka.yml (for hosts with Docker) stays on the versions of the no-Docker path that is tested."""

from __future__ import annotations

import re

import yaml

from deploy.kafka.broker import JVM_PERFORMANCE_OPTS
from liqbot.data import REPO


def _pom_property(pom: str, name: str) -> str:
    match = re.search(rf"<{name}>([^<]+)</{name}>", (REPO / pom).read_text())
    assert match, f"{pom} lacks <{name}>"
    return match.group(1)


def test_compose_uses_the_tested_versions_and_loopback_only() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.kafka.yml").read_text())
    kafka, registry = compose["services"]["kafka"], compose["services"]["registry"]
    assert kafka["image"] == f"apache/kafka:{_pom_property('deploy/kafka/pom.xml', 'kafka.version')}"
    apicurio = _pom_property("deploy/registry/pom.xml", "apicurio.version")
    assert registry["image"] == f"apicurio/apicurio-registry:{apicurio}"
    assert registry["environment"]["APICURIO_STORAGE_KIND"] == "kafkasql"
    for service in (kafka, registry):
        assert all(port.startswith("127.0.0.1:") for port in service["ports"])
    assert kafka["environment"]["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    # the broker's collector sets every hop's tail latency: the same one with and without Docker
    assert kafka["environment"]["KAFKA_JVM_PERFORMANCE_OPTS"].split() == list(JVM_PERFORMANCE_OPTS)
