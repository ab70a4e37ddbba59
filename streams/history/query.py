"""SQL on the history from any process: chDB lets one process open its directory, so a running sink answers for it.

The sink serves the plain form of ClickHouse's HTTP interface on loopback (POST the query, `?default_format=`),
so `curl` works as with a server; `liqbot sql` goes there when a sink runs, else opens the store itself.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from clickhouse_connect.driver.client import Client

from liqbot.errors import LiqbotError
from streams.history.store import StoreSettings, connect

__all__ = ["FORMATS", "QueryServer", "answer", "endpoint", "endpoint_file", "run_query", "running_sink"]

log = logging.getLogger(__name__)

# `liqbot sql --format` names to ClickHouse output formats.
FORMATS = {"table": "PrettyCompactMonoBlock", "csv": "CSVWithNames", "json": "JSONEachRow", "parquet": "Parquet",
           "tsv": "TabSeparatedWithNames"}


def endpoint_file(store: StoreSettings) -> Path:
    return store.path.parent / "sink.json"


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        parsed = urllib.parse.urlsplit(self.path)
        if parsed.path == "/ping":
            self._reply(200, b"Ok.\n")
            return
        query = urllib.parse.parse_qs(parsed.query).get("query", [""])[0]
        self._answer(query, parsed.query)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
        self._answer(body, urllib.parse.urlsplit(self.path).query)

    def _answer(self, sql: str, params: str) -> None:
        fmt = urllib.parse.parse_qs(params).get("default_format", ["TabSeparated"])[0]
        if not sql.strip():
            self._reply(400, b"empty query: POST it as the body, or GET ?query=\n")
            return
        try:
            out = answer(self.server.client, sql, fmt)
        except Exception as exc:  # ClickHouse's own message is the answer, as a server gives it
            self._reply(500, f"{exc}\n".encode())
            return
        self._reply(200, out)

    def _reply(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("sql endpoint: " + format, *args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, client: Client, port: int) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.client = client


@dataclass
class QueryServer:
    """The sink's SQL endpoint on 127.0.0.1; its address is written beside the store while it runs."""

    client: Client
    store: StoreSettings
    port: int = 0

    def __post_init__(self) -> None:
        self._server = _Server(self.client, self.port)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/"
        self._thread = threading.Thread(target=self._server.serve_forever, name="sql-endpoint", daemon=True)

    def start(self) -> str:
        self._thread.start()
        endpoint_file(self.store).write_text(json.dumps({"pid": os.getpid(), "url": self.url}))
        return self.url

    def stop(self) -> None:
        endpoint_file(self.store).unlink(missing_ok=True)
        self._server.shutdown()
        self._server.server_close()


_RESULTS = re.compile(r"\s*(\(\s*)*(SELECT|WITH|SHOW|DESCRIBE|DESC|EXPLAIN|EXISTS|CHECK)\b", re.IGNORECASE)


def answer(client: Client, sql: str, fmt: str) -> bytes:
    """A query's result in `fmt`; a statement (ALTER, DELETE, INSERT ... SELECT) has none, as with a server."""
    if _RESULTS.match(sql):
        return bytes(client.raw_query(sql, fmt=fmt))
    client.command(sql)
    return b""


def endpoint(store: StoreSettings) -> tuple[int, str] | None:
    """The (pid, url) the sink wrote beside `store`, or None; the pid may be dead (a killed sink's file stays)."""
    try:
        info = json.loads(endpoint_file(store).read_text())
        return int(info["pid"]), str(info["url"])
    except (FileNotFoundError, ValueError, KeyError):
        return None


def running_sink(store: StoreSettings) -> str | None:
    """The SQL endpoint of a live sink on the chDB store `store`, or None."""
    found = endpoint(store)
    if found is None:
        return None
    try:
        os.kill(found[0], 0)
    except ProcessLookupError:
        return None  # a sink that was killed left its file behind
    return found[1]


def run_query(store: StoreSettings, sql: str, fmt: str) -> bytes:
    """`sql`'s result in ClickHouse output format `fmt`: through the running sink, the server, or chDB itself."""
    url = running_sink(store) if store.url is None else None
    if url is None:
        client = connect(store)
        try:
            return answer(client, sql, fmt)
        except Exception as exc:
            raise LiqbotError(str(exc).strip()) from exc
        finally:
            client.close()
    request = urllib.request.Request(f"{url}?default_format={fmt}", data=sql.encode(), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=600) as reply:
            return bytes(reply.read())
    except urllib.error.HTTPError as exc:
        raise LiqbotError(exc.read().decode().strip()) from exc
