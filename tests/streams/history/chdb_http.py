"""A test double for a ClickHouse server: its HTTP interface on 127.0.0.1, answered by chDB on a data directory.

No ClickHouse server can run where the tests run, but chDB is ClickHouse's own engine, embedded: this process puts
the HTTP protocol around it, so that clickhouse-connect's HTTP client (the sink's `--clickhouse-url` path) runs
unchanged against the real engine, its real parser, settings, errors and insert deduplication. What is ClickHouse's
is the engine's: SQL, formats, error text and codes, `insert_deduplication_token`. What is this file's is only the
protocol: it is faithful where the sink and clickhouse-connect 1.12 need it, and says below where it is not.

    python tests/streams/history/chdb_http.py --path DIR --port-file F [--port 0] [--user liqbot]
        [--password-env LIQBOT_CLICKHOUSE_PASSWORD]

The protocol, as ClickHouse's HTTP handler has it: GET or POST `/` with the SQL in `?query=`, the body, or both (the
body then follows the query, e.g. an INSERT's data); `database`, `default_format`, `query_id`, `param_<name>` and
every other URL parameter as a setting of the query (so an unknown one is ClickHouse's UNKNOWN_SETTING); `FORMAT`
in the SQL winning over `default_format`; GET read-only (`readonly = 2`); `INSERT ... FORMAT <fmt>` followed by its
data (any input format, Arrow included) in one request or with the statement in `?query=`; request bodies in
`Content-Encoding` lz4, zstd, gzip or deflate, chunked or not; responses compressed as
`Accept-Encoding` asks when `enable_http_compression=1`; Basic auth, `X-ClickHouse-User`/`X-ClickHouse-Key` or
`user`/`password` parameters checked against the one user (AUTHENTICATION_FAILED, 403, as ClickHouse answers);
errors with ClickHouse's text, `X-ClickHouse-Exception-Code` and ClickHouse's HTTP status for the code; the
`X-ClickHouse-Summary`, `-Query-Id`, `-Format`, `-Timezone` headers; `/ping`; HTTP/1.1 keep-alive.

Not faithful: every answer is buffered (as `wait_end_of_query=1` has it), so an error never arrives mid-stream;
`session_id` is accepted but a session keeps nothing between requests (SET, temporary tables); the Native format is
the protocol-0 one (clickhouse-connect's `client_protocol_version` probe sees an older server and does without it);
ClickHouse's own `compress=1`/`decompress=1` block compression is not spoken; one user, no roles, quotas or TLS.

Faults, for outage tests: POST `/_fault?mode=M&seconds=N` and for N seconds every other request gets, by `mode`:
`drop` the connection closed without an answer, `503` a 503 (as a proxy in front of a server would give),
`lost_reply` its statement run and then the connection closed (the answer lost after the work was done).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import gzip
import json
import logging
import os
import re
import signal
import socket
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
import zlib
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import chdb
import lz4.frame  # type: ignore[import-untyped]
from backports import zstd

__all__ = ["Fault", "Server", "main"]

log = logging.getLogger("chdb_http")

# URL parameters ClickHouse's HTTP handler consumes itself; every other one is a setting of the query.
_PROTOCOL_PARAMS = frozenset({"query", "database", "default_format", "user", "password", "quota_key", "query_id",
                              "session_id", "session_timeout", "session_check", "compress", "decompress",
                              "buffer_size", "wait_end_of_query", "client_protocol_version", "role",
                              "enable_http_compression", "stacktrace"})
_INSERT = re.compile(rb"\s*INSERT\s+INTO\s", re.IGNORECASE)
_FORMAT = re.compile(rb"\bFORMAT\s+([A-Za-z][A-Za-z0-9_]*)", re.IGNORECASE)
_TRAILING_FORMAT = re.compile(r"\bFORMAT\s+([A-Za-z][A-Za-z0-9_]*)\s*;?\s*$", re.IGNORECASE)
_SETTINGS = re.compile(r"\sSETTINGS\s", re.IGNORECASE)
_RESULTS = re.compile(r"\s*(\(\s*)*(SELECT|WITH|SHOW|DESCRIBE|DESC|EXPLAIN|EXISTS|CHECK)\b", re.IGNORECASE)
_ERROR = re.compile(r"Code: (\d+)\..*\(([A-Z_0-9]+)\)\s*$", re.DOTALL)

# exceptionCodeToHTTPStatus.cpp: the status ClickHouse gives an error, by the error's name; others are 500
_STATUS = {name: status for status, names in {
    401: "REQUIRED_PASSWORD",
    403: "UNKNOWN_USER WRONG_PASSWORD AUTHENTICATION_FAILED SET_NON_GRANTED_ROLE ACCESS_DENIED",
    400: "BAD_ARGUMENTS CANNOT_COMPILE_REGEXP CANNOT_PARSE_TEXT CANNOT_PARSE_ESCAPE_SEQUENCE "
         "CANNOT_PARSE_QUOTED_STRING CANNOT_PARSE_DATE CANNOT_PARSE_DATETIME CANNOT_PARSE_NUMBER "
         "CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING "
         "CANNOT_PARSE_IPV4 CANNOT_PARSE_IPV6 CANNOT_PARSE_INPUT_ASSERTION_FAILED CANNOT_PARSE_UUID DUPLICATE_COLUMN "
         "ILLEGAL_COLUMN UNKNOWN_ELEMENT_IN_AST UNKNOWN_TYPE_OF_AST_NODE THERE_IS_NO_COLUMN TOO_DEEP_AST TOO_BIG_AST "
         "UNEXPECTED_AST_STRUCTURE SYNTAX_ERROR INCORRECT_DATA TYPE_MISMATCH VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE",
    404: "UNKNOWN_TABLE UNKNOWN_FUNCTION UNKNOWN_IDENTIFIER UNKNOWN_TYPE UNKNOWN_STORAGE UNKNOWN_DATABASE "
         "UNKNOWN_SETTING UNKNOWN_DIRECTION_OF_SORTING UNKNOWN_AGGREGATE_FUNCTION UNKNOWN_FORMAT "
         "UNKNOWN_DATABASE_ENGINE UNKNOWN_TYPE_OF_QUERY UNKNOWN_ROLE",
    413: "QUERY_IS_TOO_LARGE", 501: "NOT_IMPLEMENTED", 503: "SOCKET_TIMEOUT CANNOT_OPEN_FILE CANNOT_SCHEDULE_TASK",
    411: "HTTP_LENGTH_REQUIRED", 408: "TIMEOUT_EXCEEDED", 415: "UNSUPPORTED_MEDIA_TYPE",
}.items() for name in names.split()}

_CONTENT_TYPES = {"TabSeparated": "text/tab-separated-values; charset=UTF-8", "CSV": "text/csv; charset=UTF-8",
                  "CSVWithNames": "text/csv; charset=UTF-8; header=present", "JSON": "application/json; charset=UTF-8",
                  "JSONEachRow": "application/x-ndjson; charset=UTF-8",
                  "JSONCompactEachRow": "application/x-ndjson; charset=UTF-8"}


class ClickHouseError(Exception):
    """An error as ClickHouse reports it: `Code: N. DB::Exception: ... (NAME)`."""

    def __init__(self, text: str) -> None:
        match = _ERROR.match(text.strip())
        if match is None:  # chDB's own (not the engine's) errors carry no code
            text, code, name = f"Code: 1001. DB::Exception: {text.strip()}. (STD_EXCEPTION)", 1001, "STD_EXCEPTION"
        else:
            code, name = int(match.group(1)), match.group(2)
        super().__init__(text.strip())
        self.code, self.status = code, _STATUS.get(name, 500)


@dataclass
class Fault:
    mode: str = ""
    until: float = 0.0

    def active(self) -> str:
        return self.mode if time.monotonic() < self.until else ""


@dataclass(frozen=True)
class Answer:
    body: bytes
    fmt: str | None  # the output format, for a statement that has a result
    summary: dict[str, str]


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, path: str, port: int, user: str, password: str) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.path, self.user, self.password = path, user, password
        # held open: the engine lives while a connection to it does
        self.engine = chdb.connect(path)  # type: ignore[no-untyped-call]
        self.version, self.timezone = self.engine.query("SELECT version(), timezone()", "TabSeparated").bytes() \
            .decode().strip().split("\t")
        self.fault = Fault()
        self.fault_lock = threading.Lock()

    def run(self, sql: bytes, params: dict[str, str], readonly: bool) -> Answer:
        """One statement on a connection of its own (so its settings are its own), with `params` as ClickHouse's
        HTTP handler takes them; raises ClickHouseError."""
        conn = chdb.connect(self.path)  # type: ignore[no-untyped-call]
        try:
            database = params.get("database", "default")
            self._query(conn, f"USE `{database.replace('`', '``')}`", "TabSeparated")
            settings = {k: v for k, v in params.items() if k not in _PROTOCOL_PARAMS and not k.startswith("param_")}
            if readonly:
                settings = {"readonly": "2", **settings}
            for name, value in settings.items():
                if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                    raise ClickHouseError(f"Code: 115. DB::Exception: Unknown setting '{name}'. (UNKNOWN_SETTING)")
                self._query(conn, f"SET {name} = {_literal(value)}", "TabSeparated")
            insert = _split_insert(sql)
            if insert is not None:
                # from a file, as clickhouse-connect's own chDB backend does: chDB 4.4's send_insert() returns
                # without an error when the engine refuses the insert (Too many parts), so the rows would be lost
                statement, input_format, data = insert
                with tempfile.NamedTemporaryFile(suffix=f".{input_format.lower()}") as file:
                    file.write(data)
                    file.flush()
                    clause = _SETTINGS.search(statement)  # FROM INFILE goes before an INSERT's SETTINGS
                    head, tail = (statement[:clause.start()], statement[clause.start():]) if clause else (statement, "")
                    from_file = f"{head} FROM INFILE {_literal(file.name)}{tail} FORMAT {input_format}"
                    result = self._query(conn, from_file, "TabSeparated")
                return Answer(b"", None, _summary(result))
            text = sql.decode()
            if not text.strip():
                raise ClickHouseError("Code: 62. DB::Exception: Empty query. (SYNTAX_ERROR)")
            default = params.get("default_format", "TabSeparated")
            named = _TRAILING_FORMAT.search(text)
            output = named.group(1) if named else default if _RESULTS.match(text) else None
            bound = {k[len("param_"):]: v for k, v in params.items() if k.startswith("param_")}
            result = self._query(conn, text, default, bound)
            return Answer(result.bytes() or b"", output, _summary(result))
        finally:
            conn.close()

    @staticmethod
    def _query(conn: Any, sql: str, fmt: str, params: dict[str, str] | None = None) -> Any:
        try:
            return conn.query(sql, fmt, params=params or {})
        except Exception as exc:
            raise ClickHouseError(str(exc)) from exc


def _literal(value: str) -> str:
    """A setting's value as a quoted literal (ClickHouse converts it to the setting's type)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _split_insert(sql: bytes) -> tuple[str, str, bytes] | None:
    """`INSERT INTO ... FORMAT fmt` and the data after it (past blanks and one line end), or None for other SQL."""
    if not _INSERT.match(sql):
        return None
    match = _FORMAT.search(sql)
    if match is None:
        return None  # INSERT ... VALUES / SELECT: an ordinary statement
    rest = sql[match.end():]
    rest = rest.lstrip(b" \t")
    rest = rest[2:] if rest.startswith(b"\r\n") else rest[1:] if rest.startswith(b"\n") else rest
    return sql[:match.start()].decode().strip(), match.group(1).decode(), rest


def _summary(result: Any) -> dict[str, str]:
    def number(name: str) -> float:  # a method on a query's result, an attribute on an insert's
        value = getattr(result, name, 0)
        try:
            return float(value() if callable(value) else value)
        except (TypeError, ValueError):
            return 0.0

    read_rows, read_bytes = int(number("rows_read")), int(number("bytes_read"))
    written_rows, written_bytes = int(number("rows_written")), int(number("bytes_written"))
    elapsed = number("elapsed")
    return {"read_rows": str(read_rows), "read_bytes": str(read_bytes), "written_rows": str(written_rows),
            "written_bytes": str(written_bytes), "total_rows_to_read": str(read_rows),
            "result_rows": str(written_rows or read_rows), "result_bytes": str(written_bytes or read_bytes),
            "elapsed_ns": str(int(elapsed * 1e9))}


def _decompress(data: bytes, encoding: str) -> bytes:
    encoding = encoding.strip().lower()
    if encoding in ("", "identity", "none"):
        return data
    if encoding == "lz4":
        out, rest = [], data
        while rest:  # one frame, or several one after another
            decompressor = lz4.frame.LZ4FrameDecompressor()
            out.append(decompressor.decompress(rest))
            rest = decompressor.unused_data
        return b"".join(out)
    if encoding == "zstd":
        return bytes(zstd.decompress(data))
    if encoding == "gzip":
        return gzip.decompress(data)
    if encoding == "deflate":
        return zlib.decompress(data)
    raise ClickHouseError(f"Code: 638. DB::Exception: Unknown compression method: {encoding}. "
                          "(UNKNOWN_COMPRESSION_METHOD)")


_RESPONSE_ENCODINGS = {"lz4": lz4.frame.compress, "zstd": zstd.compress, "gzip": gzip.compress,
                       "deflate": zlib.compress}


class _Handler(BaseHTTPRequestHandler):
    server: Server
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._handle(b"")

    def do_POST(self) -> None:
        self._handle(self._body())

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _handle(self, body: bytes) -> None:
        parsed = urllib.parse.urlsplit(self.path)
        params = dict(urllib.parse.parse_qsl(parsed.query, keep_blank_values=True))
        if parsed.path == "/_fault":
            with self.server.fault_lock:
                self.server.fault = Fault(params.get("mode", "drop"), time.monotonic() + float(params["seconds"]))
            log.warning("fault: %s for %s s", params.get("mode", "drop"), params["seconds"])
            self._reply(200, b"Ok.\n", {})
            return
        fault = self.server.fault.active()
        if fault == "drop":
            self._drop()
            return
        if fault == "503":
            self._reply(503, b"Service Unavailable\n", {})
            return
        if parsed.path == "/ping" or (parsed.path == "/" and not body and "query" not in params):
            self._reply(200, b"Ok.\n", {})
            return
        query_id = params.get("query_id") or str(uuid.uuid4())
        headers = {"X-ClickHouse-Query-Id": query_id, "X-ClickHouse-Timezone": self.server.timezone,
                   "X-ClickHouse-Server-Display-Name": socket.gethostname()}
        started, sql = time.monotonic(), b""
        try:
            if parsed.path != "/":
                raise ClickHouseError(f"Code: 1001. DB::Exception: There is no handle {parsed.path}. (STD_EXCEPTION)")
            self._authenticate(params)
            data = _decompress(body, self.headers.get("Content-Encoding", ""))
            sql = (params["query"].encode() + (b"\n" + data if data else b"")) if "query" in params else data
            try:
                answer = self.server.run(sql, params, readonly=self.command == "GET")
            except ClickHouseError:
                raise
            except Exception as exc:  # a bug here, reported as a server reports its own
                raise ClickHouseError(f"{type(exc).__name__}: {exc}") from exc
        except ClickHouseError as exc:
            log.info("%s %s: %s", query_id, _head(sql), exc)
            headers["X-ClickHouse-Exception-Code"] = str(exc.code)
            headers["Content-Type"] = "text/plain; charset=UTF-8"
            self._finish(fault, exc.status, f"{exc} (version {self.server.version} (official build))\n".encode(),
                         headers)
            return
        log.info("%s %s: %.3f s", query_id, _head(sql), time.monotonic() - started)
        headers["X-ClickHouse-Summary"] = json.dumps(answer.summary)
        if answer.fmt is not None:
            headers["X-ClickHouse-Format"] = answer.fmt
            headers["Content-Type"] = _CONTENT_TYPES.get(answer.fmt, "application/octet-stream")
        else:
            headers["Content-Type"] = "text/plain; charset=UTF-8"
        out = answer.body
        if params.get("enable_http_compression") == "1":
            accepted = [e.strip().split(";")[0] for e in self.headers.get("Accept-Encoding", "").split(",")]
            encoding = next((e for e in accepted if e in _RESPONSE_ENCODINGS), None)
            if encoding is not None:
                out = bytes(_RESPONSE_ENCODINGS[encoding](out))
                headers["Content-Encoding"] = encoding
        self._finish(fault, 200, out, headers)

    def _authenticate(self, params: dict[str, str]) -> None:
        user, password = params.get("user", "default"), params.get("password", "")
        if "X-ClickHouse-User" in self.headers:
            user, password = self.headers["X-ClickHouse-User"], self.headers.get("X-ClickHouse-Key", "")
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            user, _, password = base64.b64decode(auth[len("Basic "):]).decode().partition(":")
        if (user, password) != (self.server.user, self.server.password):
            raise ClickHouseError(f"Code: 516. DB::Exception: {user}: Authentication failed: password is incorrect, "
                                  "or there is no user with such name. (AUTHENTICATION_FAILED)")

    def _finish(self, fault: str, status: int, body: bytes, headers: dict[str, str]) -> None:
        if fault == "lost_reply":
            self._drop()
        else:
            self._reply(status, body, headers)

    def _drop(self) -> None:
        """Closes the connection with no answer (the body was read: the client sees the server hang up)."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _reply(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Keep-Alive", "timeout=10")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        log.debug(format, *args)


def _head(sql: bytes) -> str:
    """The statement, shortened, for the log (never an INSERT's data, nor the URL and its password parameter)."""
    insert = _split_insert(sql)
    text = f"{insert[0]} FORMAT {insert[1]}" if insert else sql[:400].decode(errors="replace")
    return " ".join(text.split())[:160]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", required=True, help="chDB's data directory")
    parser.add_argument("--port", type=int, default=0, help="on 127.0.0.1 (default: a free one)")
    parser.add_argument("--port-file", required=True, help="written with the port once it listens")
    parser.add_argument("--user", default="default")
    parser.add_argument("--password-env", default="LIQBOT_CLICKHOUSE_PASSWORD",
                        help="the environment variable holding the user's password (empty when unset)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    Path(args.path).mkdir(parents=True, exist_ok=True)
    server = Server(args.path, args.port, args.user, os.environ.get(args.password_env, ""))

    def stop(*_: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    port_file = Path(args.port_file)
    port_file.with_suffix(".tmp").write_text(str(server.server_address[1]))
    port_file.with_suffix(".tmp").replace(port_file)
    log.info("ClickHouse HTTP (chDB %s, engine %s) on 127.0.0.1:%d, data in %s", chdb.__version__, server.version,
             server.server_address[1], args.path)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        server.engine.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
