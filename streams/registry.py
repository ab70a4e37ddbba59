"""A small client for the Confluent schema-registry REST API (served by Apicurio's ccompat/v7)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential

from liqbot.errors import LiqbotError

__all__ = ["RegistryClient", "RegistryError"]

_CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


class RegistryError(LiqbotError):
    """The registry refused a request or could not be reached."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, RegistryError) and (exc.status is None or exc.status >= 500)


class RegistryClient:
    """Registers schemas under subjects and fetches them by id; ids are cached (they never change)."""

    def __init__(self, url: str, timeout_s: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self._by_id: dict[int, str] = {}

    def register(self, subject: str, schema_text: str) -> int:
        """Id of `schema_text` under `subject`, registering it if new (the registry checks compatibility)."""
        body = {"schema": schema_text, "schemaType": "AVRO"}
        reply = self._request("POST", f"/subjects/{subject}/versions", body)
        schema_id = int(reply["id"])
        self._by_id[schema_id] = schema_text
        return schema_id

    def schema(self, schema_id: int) -> str:
        """The schema text registered under `schema_id`."""
        if schema_id not in self._by_id:
            self._by_id[schema_id] = str(self._request("GET", f"/schemas/ids/{schema_id}")["schema"])
        return self._by_id[schema_id]

    def set_compatibility(self, subject: str, level: str) -> None:
        self._request("PUT", f"/config/{subject}", {"compatibility": level})

    def subjects(self) -> list[str]:
        return list(self._request("GET", "/subjects"))

    @retry(retry=retry_if_exception(_transient), stop=stop_after_attempt(5),
           wait=wait_exponential(multiplier=0.1, max=2.0), reraise=True)
    def _request(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.url + path, data=data, method=method,
            headers={"Content-Type": _CONTENT_TYPE, "Accept": _CONTENT_TYPE},
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:500]
            raise RegistryError(f"registry {method} {path}: HTTP {exc.code}: {detail}", exc.code) from exc
        except (urllib.error.URLError, OSError) as exc:
            raise RegistryError(
                f"registry at {self.url} unreachable ({exc}); start it with `liqbot kafka up` "
                "or set LIQBOT_SERDE=single-object"
            ) from exc
