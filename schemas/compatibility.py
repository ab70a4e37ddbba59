"""Avro schema-resolution checks (Avro 1.12 spec, "Schema Resolution"): can a reader read a writer's data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["full_incompatibilities", "incompatibilities"]

_PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}
_PROMOTIONS = {
    ("int", "long"), ("int", "float"), ("int", "double"),
    ("long", "float"), ("long", "double"), ("float", "double"),
    ("string", "bytes"), ("bytes", "string"),
}


@dataclass
class _Names:
    """Named types of one schema, by full name, so references can be followed."""

    types: dict[str, dict[str, Any]] = field(default_factory=dict)

    def collect(self, schema: Any, namespace: str = "") -> None:
        if isinstance(schema, list):
            for branch in schema:
                self.collect(branch, namespace)
        elif isinstance(schema, dict):
            kind = schema["type"]
            if kind in ("record", "error", "enum", "fixed"):
                full = _full_name(schema, namespace)
                self.types[full] = schema
                namespace = full.rpartition(".")[0]
            if kind in ("record", "error"):
                for f in schema["fields"]:
                    self.collect(f["type"], namespace)
            elif kind == "array":
                self.collect(schema["items"], namespace)
            elif kind == "map":
                self.collect(schema["values"], namespace)
            elif isinstance(kind, (dict, list)):
                self.collect(kind, namespace)

    def resolve(self, schema: Any, namespace: str) -> Any:
        if isinstance(schema, str) and schema not in _PRIMITIVES:
            full = schema if "." in schema else f"{namespace}.{schema}".lstrip(".")
            return self.types[full]
        if isinstance(schema, dict) and isinstance(schema["type"], (dict, list)):
            return self.resolve(schema["type"], namespace)
        if isinstance(schema, dict) and schema["type"] in _PRIMITIVES:
            return schema["type"]
        return schema


def _full_name(schema: dict[str, Any], namespace: str) -> str:
    name = str(schema["name"])
    if "." in name:
        return name
    ns = schema.get("namespace", namespace)
    return f"{ns}.{name}" if ns else name


def _kind(schema: Any) -> str:
    if isinstance(schema, list):
        return "union"
    if isinstance(schema, dict):
        return str(schema["type"])
    return str(schema)


class _Checker:
    def __init__(self, reader: dict[str, Any], writer: dict[str, Any]) -> None:
        self.r_names, self.w_names = _Names(), _Names()
        self.r_names.collect(reader)
        self.w_names.collect(writer)
        self.problems: list[str] = []
        self._seen: set[tuple[int, int]] = set()

    def check(self, r: Any, w: Any, r_ns: str, w_ns: str, path: str) -> bool:  # noqa: PLR0911 (one rule a return)
        r, w = self.r_names.resolve(r, r_ns), self.w_names.resolve(w, w_ns)
        rk, wk = _kind(r), _kind(w)
        if wk == "union":
            return all([self.check(r, b, r_ns, w_ns, f"{path}[{_kind(b)}]") for b in w])
        if rk == "union":
            if any(self._quiet(b, w, r_ns, w_ns) for b in r):
                return True
            return self._fail(path, f"writer type {wk} matches no branch of the reader's union")
        if rk in _PRIMITIVES or wk in _PRIMITIVES:
            if rk == wk or (wk, rk) in _PROMOTIONS:
                return True
            return self._fail(path, f"writer {wk} cannot be read as {rk}")
        if rk != wk:
            return self._fail(path, f"writer {wk} cannot be read as {rk}")
        if rk in ("record", "enum", "fixed"):
            r_full, w_full = _full_name(r, r_ns), _full_name(w, w_ns)
            aliases = {_full_name({"name": a}, r_full.rpartition(".")[0]) for a in r.get("aliases", [])}
            if r_full != w_full and w_full not in aliases:
                return self._fail(path, f"named type {w_full} cannot be read as {r_full}")
            r_ns, w_ns = r_full.rpartition(".")[0], w_full.rpartition(".")[0]
        return getattr(self, f"_{rk}", lambda *a: True)(r, w, r_ns, w_ns, path)

    def _record(self, r: dict[str, Any], w: dict[str, Any], r_ns: str, w_ns: str, path: str) -> bool:
        key = (id(r), id(w))
        if key in self._seen:
            return True
        self._seen.add(key)
        w_fields = {f["name"]: f for f in w["fields"]}
        ok = True
        for rf in r["fields"]:
            names = [rf["name"], *rf.get("aliases", [])]
            wf = next((w_fields[n] for n in names if n in w_fields), None)
            fpath = f"{path}.{rf['name']}"
            if wf is None:
                if "default" not in rf:
                    ok = self._fail(fpath, "reader field is missing from the writer and has no default")
            elif not self.check(rf["type"], wf["type"], r_ns, w_ns, fpath):
                ok = False
        return ok

    def _enum(self, r: dict[str, Any], w: dict[str, Any], r_ns: str, w_ns: str, path: str) -> bool:
        missing = [s for s in w["symbols"] if s not in r["symbols"]]
        if missing and "default" not in r:
            return self._fail(path, f"writer enum symbols {missing} unknown to the reader, which has no default")
        return True

    def _fixed(self, r: dict[str, Any], w: dict[str, Any], r_ns: str, w_ns: str, path: str) -> bool:
        return r["size"] == w["size"] or self._fail(path, f"fixed size {w['size']} read as {r['size']}")

    def _array(self, r: dict[str, Any], w: dict[str, Any], r_ns: str, w_ns: str, path: str) -> bool:
        return self.check(r["items"], w["items"], r_ns, w_ns, f"{path}[]")

    def _map(self, r: dict[str, Any], w: dict[str, Any], r_ns: str, w_ns: str, path: str) -> bool:
        return self.check(r["values"], w["values"], r_ns, w_ns, f"{path}{{}}")

    def _quiet(self, r: Any, w: Any, r_ns: str, w_ns: str) -> bool:
        saved = list(self.problems)
        ok = self.check(r, w, r_ns, w_ns, "")
        self.problems = saved
        return ok

    def _fail(self, path: str, message: str) -> bool:
        self.problems.append(f"{path or '<root>'}: {message}")
        return False


def incompatibilities(reader: dict[str, Any], writer: dict[str, Any]) -> list[str]:
    """Why data written with `writer` cannot be read with `reader`; empty when it can."""
    checker = _Checker(reader, writer)
    checker.check(reader, writer, "", "", reader.get("name", ""))
    return checker.problems


def full_incompatibilities(new: dict[str, Any], old: dict[str, Any]) -> list[str]:
    """Problems in either direction: old consumers reading new data, new consumers reading old data."""
    forward = [f"old reader, new data: {p}" for p in incompatibilities(old, new)]
    backward = [f"new reader, old data: {p}" for p in incompatibilities(new, old)]
    return forward + backward
