"""The one HTTP helper against a loopback HTTP server: method, headers and body out; status, headers and body
back; refusals, server errors, slow-down answers and dead ports told apart; secrets scrubbed when asked."""

from __future__ import annotations

import json
import socket
import threading
import traceback
import urllib.error
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from streams.http import RestError, TransientHttpError, http_request

KEY = "k3yThatMustNotLeak9"


@dataclass(frozen=True)
class Canned:
    status: int
    body: str
    reason: str | None = None  # the status line's reason phrase; None: the standard one
    headers: dict[str, str] = field(default_factory=dict)


CANNED = {
    "/missing": Canned(404, "no such thing here"),
    "/busy": Canned(503, "try later"),
    "/slow": Canned(429, "slow down", headers={"X-Limit-Remaining": "0"}),
    "/created": Canned(201, "made", headers={"Location": "/thing/1"}),
    # the key straddles the 300th character of the body, and the reason phrase echoes it too
    "/echoes-key": Canned(401, "x" * 295 + KEY + " is refused", reason=f"bad key {KEY}"),
    "/busy-echoes-key": Canned(503, "", reason=f"busy for {KEY}"),
}


class _Handler(BaseHTTPRequestHandler):
    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        body = self.rfile.read(length).decode() if length else ""
        canned = CANNED.get(self.path)
        if canned is None:  # echo what arrived
            canned = Canned(200, json.dumps({"method": self.command, "path": self.path, "body": body,
                                             "headers": {k.lower(): v for k, v in self.headers.items()}}),
                            headers={"X-Echo": "yes"})
        data = canned.body.encode()
        self.send_response(canned.status, canned.reason)
        for name, value in canned.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = _serve  # noqa: N815 (http.server's naming)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.mark.parametrize(("method", "body"), [("GET", None), ("POST", b'{"a":1}'), ("PUT", b"raw"),
                                              ("DELETE", None)])
def test_method_headers_and_body_go_out_and_the_reply_comes_back(base_url: str, method: str,
                                                                 body: bytes | None) -> None:
    reply = http_request(method, f"{base_url}/echo?x=1", headers={"X-Test": "t-1", "Content-Type": "text/plain"},
                         body=body, timeout_s=5, transient_codes=())
    seen = json.loads(reply.body)
    assert (reply.status, reply.headers["X-Echo"]) == (200, "yes")
    assert (seen["method"], seen["path"], seen["body"]) == (method, "/echo?x=1", (body or b"").decode())
    assert (seen["headers"]["x-test"], seen["headers"]["content-type"]) == ("t-1", "text/plain")


def test_any_success_status_is_returned_with_its_headers(base_url: str) -> None:
    reply = http_request("POST", f"{base_url}/created", body=b"{}", timeout_s=5, transient_codes=())
    assert (reply.status, reply.headers["Location"], reply.body) == (201, "/thing/1", b"made")


def test_a_refusal_is_a_rest_error_with_the_start_of_the_body(base_url: str) -> None:
    refusal = r"^GET http://127\.0\.0\.1:\d+/missing: HTTP 404: 'no such thing here'$"
    with pytest.raises(RestError, match=refusal) as info:
        http_request("GET", f"{base_url}/missing", timeout_s=5, transient_codes=())
    assert isinstance(info.value.__cause__, urllib.error.HTTPError)


def test_server_errors_and_the_given_codes_are_transient_and_headers_are_seen(base_url: str) -> None:
    seen: list[Message] = []
    with pytest.raises(TransientHttpError, match=r"^HTTP 503$"):
        http_request("GET", f"{base_url}/busy", timeout_s=5, transient_codes=())
    with pytest.raises(TransientHttpError, match=r"^HTTP 429$"):
        http_request("GET", f"{base_url}/slow", timeout_s=5, transient_codes=(429,), on_headers=seen.append)
    with pytest.raises(RestError, match=r": HTTP 429: 'slow down'$"):  # not named transient: a refusal
        http_request("GET", f"{base_url}/slow", timeout_s=5, transient_codes=(403,), on_headers=seen.append)
    http_request("GET", f"{base_url}/echo", timeout_s=5, transient_codes=(), on_headers=seen.append)
    assert [m.get("X-Limit-Remaining") for m in seen] == ["0", "0", None]  # refusals' headers as well as answers'


def test_a_dead_port_is_transient() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(TransientHttpError, match="refused"):
        http_request("GET", f"http://127.0.0.1:{port}/", timeout_s=5, transient_codes=())


def _texts(error: BaseException) -> str:
    return str(error) + repr(error) + "".join(traceback.format_exception(error))


def test_redact_scrubs_the_body_before_cutting_it_and_drops_the_unscrubbed_urllib_error(base_url: str) -> None:
    def redact(text: str) -> str:
        return text.replace(KEY, "<redacted>")

    for path, kind in (("/echoes-key", RestError), ("/busy-echoes-key", TransientHttpError)):
        with pytest.raises(kind) as plain:  # positive control: the reply does carry the key
            http_request("GET", f"{base_url}{path}", timeout_s=5, transient_codes=())
        assert KEY in _texts(plain.value)  # in the chained urllib error's reason phrase
        with pytest.raises(kind) as scrubbed:
            http_request("GET", f"{base_url}{path}", timeout_s=5, transient_codes=(), redact=redact)
        assert KEY[:4] not in _texts(scrubbed.value)
        assert scrubbed.value.__cause__ is None and scrubbed.value.__suppress_context__
    assert str(scrubbed.value) == "HTTP 503"
    with pytest.raises(RestError) as refused:
        http_request("GET", f"{base_url}/echoes-key", timeout_s=5, transient_codes=(), redact=redact)
    assert str(refused.value).endswith(f": HTTP 401: '{'x' * 295}<reda'")  # cut after scrubbing
