"""Client side of the Arrow batch body: JSON request dicts (as `replay.request_payload` builds them)
as an Arrow IPC stream in `REQUEST_SCHEMA` (`serving/arrow_schema.py`), for clients, the
benchmarks and the tests.

The events' strings are written as dictionaries (`REQUEST_SCHEMA`): a smaller body, and the server
reads the codes as they are instead of hashing every string. Times are parsed as the JSON path
parses them (naive = UTC) and floored to milliseconds as `timeutil.datetime_ms` does.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import TypeAdapter, ValidationError

from tala_ray.features.online import Timestamp
from tala_ray.serving.arrow_schema import (
    APPLICANT_RULES,
    APPLICATION_RULES,
    ARROW_TYPES,
    LISTS,
    REQUEST_SCHEMA,
    FieldRule,
    list_type,
    schema_field,
)

_TIME_LIST = TypeAdapter(list[Timestamp | None])


def _encode_times(values: list[Any]) -> pa.Array:
    """Times parsed as the JSON path parses them (naive = UTC), floored to milliseconds as `datetime_ms` does."""
    micros = pa.array(_TIME_LIST.validate_python(values), pa.timestamp("us", tz="UTC"))
    return pc.floor_temporal(micros, unit="millisecond").cast(ARROW_TYPES["time"])


def _encode_values(rule: FieldRule, values: list[Any], path: str, item: bool = False) -> pa.Array:
    """One field's values (JSON-like; None for missing) as an Arrow array of its schema type."""
    data_type = schema_field(rule, item).type
    try:
        if rule.kind == "time":
            return _encode_times(values)
        return pa.array(values, type=data_type)
    except (ValidationError, pa.ArrowException, TypeError, ValueError) as error:
        raise ValueError(f"payload field {path}: cannot encode as {data_type}: {error}") from error


def _check_keys(records: Iterable[dict[str, Any]], allowed: Iterable[str], path: str) -> None:
    names = set(allowed)
    for record in records:
        if not names.issuperset(record):
            unknown = ", ".join(sorted(set(record) - names))
            raise ValueError(f"payload field {path or 'request'}: unknown key(s) {unknown}")


def _encode_list(payloads: list[dict[str, Any]], name: str, rules: tuple[FieldRule, ...]) -> pa.Array:
    """One list column (events or loans); a missing or null list is an empty one."""
    lists = [payload.get(name) or [] for payload in payloads]
    items = [item for records in lists for item in records]
    _check_keys(items, (rule.name for rule in rules), name)
    children = [
        _encode_values(rule, [item.get(rule.name) for item in items], f"{name}.{rule.name}", item=True)
        for rule in rules
    ]
    structs = pa.StructArray.from_arrays(children, fields=list(list_type(rules).value_type))
    offsets = np.concatenate([[0], np.cumsum([len(records) for records in lists])]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), structs, type=list_type(rules))


def payload_table(payloads: list[dict[str, Any]]) -> pa.Table:
    """JSON request dicts (as `replay.request_payload` builds them) as a table in `REQUEST_SCHEMA`.
    Values are not validated (that is the server's job); unknown keys and wrong types are errors."""
    _check_keys(payloads, ("applicant", "application", *LISTS), "")
    columns: dict[str, pa.Array] = {}
    for section, rules in (("applicant", APPLICANT_RULES), ("application", APPLICATION_RULES)):
        records = [payload.get(section) or {} for payload in payloads]
        _check_keys(records, (rule.name for rule in rules), section)
        for rule in rules:
            values = [record.get(rule.name) for record in records]
            columns[rule.name] = _encode_values(rule, values, f"{section}.{rule.name}")
    for name, (rules, _) in LISTS.items():
        columns[name] = _encode_list(payloads, name, rules)
    return pa.Table.from_pydict(columns, schema=REQUEST_SCHEMA)


def table_bytes(table: pa.Table) -> bytes:
    """A table as an Arrow IPC stream."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def encode_payloads(payloads: list[dict[str, Any]]) -> bytes:
    """JSON request dicts (as `replay.request_payload` builds them) as an Arrow IPC stream body."""
    return table_bytes(payload_table(payloads))
