"""Hypothesis strategies for any datum of an Avro schema (SYNTHETIC data, for the schemas no capture reaches)."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

__all__ = ["PRIMITIVES", "avro_datum"]

PRIMITIVES: dict[str, st.SearchStrategy[Any]] = {
    "null": st.none(), "boolean": st.booleans(), "int": st.integers(-2**31, 2**31 - 1),
    "long": st.integers(-2**63, 2**63 - 1), "double": st.floats(), "string": st.text(), "bytes": st.binary()}


def avro_datum(schema: Any, primitives: dict[str, st.SearchStrategy[Any]] = PRIMITIVES, max_items: int = 4,
               named: dict[str, st.SearchStrategy[Any]] | None = None,
               namespace: str = "liqbot") -> st.SearchStrategy[Any]:
    """Any datum of `schema` (parsed JSON); `primitives` says how each primitive type is drawn."""
    named = {} if named is None else named

    def of(part: Any, space: str) -> st.SearchStrategy[Any]:
        return avro_datum(part, primitives, max_items, named, space)

    if isinstance(schema, list):
        return st.one_of(*(of(branch, namespace) for branch in schema))
    if isinstance(schema, str):
        return primitives[schema] if schema in primitives else named[schema if "." in schema else
                                                                     f"{namespace}.{schema}"]
    if schema["type"] == "array":
        return st.lists(of(schema["items"], namespace), max_size=max_items)
    if schema["type"] == "enum":
        return st.sampled_from(schema["symbols"])
    if schema["type"] == "record":
        space = schema.get("namespace", namespace)
        fields = {f["name"]: of(f["type"], space) for f in schema["fields"]}
        record = named[f"{space}.{schema['name']}"] = st.fixed_dictionaries(fields)
        return record
    return of(schema["type"], namespace)
