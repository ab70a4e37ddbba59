"""Where the history lives: embedded chDB under `$LIQBOT_HOME` or a ClickHouse server; the same client either way."""

from __future__ import annotations

import hashlib
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from liqbot.errors import LiqbotError

__all__ = ["MIGRATIONS_DIR", "PASSWORD_ENV", "Migration", "StoreSettings", "apply_migrations", "connect",
           "migrations"]

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
PASSWORD_ENV = "LIQBOT_CLICKHOUSE_PASSWORD"
_MIGRATION_NAME = re.compile(r"(\d{4})_[a-z0-9_]+\.sql")


@dataclass(frozen=True, kw_only=True)
class StoreSettings:
    """`url` None: embedded chDB in `path`. Else `http(s)://user@host:port/database`, password from the env."""

    path: Path = Path(".liqbot") / "clickhouse"
    url: str | None = None

    @property
    def where(self) -> str:
        """Where the store is, safe to print (never the password)."""
        if self.url is None:
            return f"chDB at {self.path}"
        parts = urlsplit(self.url)
        return f"ClickHouse at {parts.scheme}://{parts.username or 'default'}@{parts.hostname}:{parts.port}{parts.path}"


def connect(store: StoreSettings) -> Client:
    """A clickhouse-connect client on the store; the one place that knows chDB from a server."""
    if store.url is None:
        store.path.mkdir(parents=True, exist_ok=True)
        try:
            return clickhouse_connect.get_client(interface="chdb", path=str(store.path))
        except Exception as exc:
            if "Cannot lock file" in str(exc):
                raise LiqbotError(f"the chDB store {store.path} is open in another process (a running `liqbot sink`?): "
                                  "query through it with `liqbot sql`, or stop it first") from exc
            raise
    parts = urlsplit(store.url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise LiqbotError(f"--clickhouse-url {store.where}: use http(s)://user@host:8123/database")
    if parts.password:
        raise LiqbotError(f"--clickhouse-url must not carry the password; set {PASSWORD_ENV} instead")
    return clickhouse_connect.get_client(
        host=parts.hostname, port=parts.port or (8443 if parts.scheme == "https" else 8123),
        username=parts.username or "default", password=os.environ.get(PASSWORD_ENV, ""),
        database=parts.path.strip("/") or "default", secure=parts.scheme == "https",
    )


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    def statements(self) -> list[str]:
        """The file's statements: `;` at a line's end closes one; `--` lines are comments."""
        text = "\n".join(line for line in self.sql.splitlines() if not line.lstrip().startswith("--"))
        return [s.strip() for s in re.split(r";\s*$", text, flags=re.MULTILINE) if s.strip()]


def migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The migration files in version order; a misnamed file or a repeated version is an error."""
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _MIGRATION_NAME.fullmatch(path.name)
        if match is None:
            raise LiqbotError(f"migration {path.name}: name it NNNN_what.sql (four digits, lower case)")
        version = int(match.group(1))
        if version in found:
            raise LiqbotError(f"migrations {found[version].name} and {path.name} share version {version}")
        found[version] = Migration(version, path.name, path.read_text())
    return [found[v] for v in sorted(found)]


_LEDGER = """CREATE TABLE IF NOT EXISTS schema_migrations
(version UInt32, name String, checksum String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3))
ENGINE = MergeTree ORDER BY version"""


def apply_migrations(client: Client, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Applies the migrations not yet recorded, in order; returns their names. An edited applied one is an error."""
    client.command(_LEDGER)
    applied = {int(v): (n, c) for v, n, c in client.query("SELECT version, name, checksum FROM schema_migrations")
               .result_rows}
    done = []
    for migration in migrations(directory):
        if migration.version in applied:
            name, checksum = applied[migration.version]
            if checksum != migration.checksum:
                raise LiqbotError(f"migration {migration.name} changed after it was applied as {name}; "
                                  "never edit an applied migration: add a new one")
            continue
        for statement in migration.statements():
            client.command(statement)
        client.insert("schema_migrations", [[migration.version, migration.name, migration.checksum]],
                      column_names=["version", "name", "checksum"])
        log.info("applied migration %s", migration.name)
        done.append(migration.name)
    return done
