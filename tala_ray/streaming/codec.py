"""The records on the wire: one JSON object a stream entry (field `v`), its `kind` plus the columns of
its raw table's contract (`data.schema`), times as epoch milliseconds.

```json
{"kind": "event", "event_id": 4194305, "applicant_id": 4, "event_time": 1735689600000,
 "event_type": "mm_in", "amount": 1250.0, "app_category": null}
```

`encode_records` turns rows of a raw table into such records (the publisher, the bootstrap's
quarantine); `decode_records` turns a batch of entries back into one Arrow table per kind, in the
contract's schema, so the batch path's validation rules run on them unchanged. A record that cannot
be decoded (not JSON, unknown kind or field, a value of the wrong type) is reported with a reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson
import pyarrow as pa

from tala_ray.data import schema

VALUE = b"v"
KIND = "kind"
KIND_TABLE = {"event": "events", "loan": "loans", "applicant": "applicants"}
TIME_COLUMN = {"event": "event_time", "loan": "disbursed_time", "applicant": "signup_time"}


def _nullable(table: str) -> pa.Schema:
    return pa.schema([f.with_nullable(True) for f in schema.TABLES[table]])


SCHEMAS = {kind: _nullable(table) for kind, table in KIND_TABLE.items()}


def encode_records(kind: str, table: pa.Table) -> list[bytes]:
    """Each row of a raw table (contract columns) as a wire record."""
    names = SCHEMAS[kind].names
    columns = []
    for name in names:
        column = table.column(name)
        columns.append((column.cast(pa.int64()) if pa.types.is_timestamp(column.type) else column).to_pylist())
    dumps = orjson.dumps
    return [dumps({KIND: kind, **dict(zip(names, row, strict=True))}) for row in zip(*columns, strict=True)]


def record_time(fields: dict[bytes, bytes]) -> int:
    """The time (epoch ms) of a stream entry's record; a record without a readable one counts as earliest."""
    try:
        record = orjson.loads(fields[VALUE])
        value = record[TIME_COLUMN[record[KIND]]]
    except (KeyError, TypeError, orjson.JSONDecodeError):
        return -(1 << 63)
    return value if isinstance(value, int) and not isinstance(value, bool) else -(1 << 63)


def _allowed_types(data_type: pa.DataType) -> frozenset[type]:
    """Python types a JSON value may have in a contract column (None always: the rules judge nulls)."""
    if pa.types.is_boolean(data_type):
        return frozenset({bool, type(None)})
    if pa.types.is_integer(data_type) or pa.types.is_timestamp(data_type):
        return frozenset({int, type(None)})  # type(True) is bool, not int: booleans are refused
    if pa.types.is_floating(data_type):
        return frozenset({int, float, type(None)})
    return frozenset({str, type(None)})


ALLOWED = {kind: {f.name: _allowed_types(f.type) for f in s} for kind, s in SCHEMAS.items()}


@dataclass
class Decoded:
    """A batch of records split by kind: per kind its rows' batch positions and their table; the rest
    (position, reason) for records that could not be decoded."""

    positions: dict[str, list[int]] = field(default_factory=lambda: {kind: [] for kind in KIND_TABLE})
    tables: dict[str, pa.Table] = field(default_factory=dict)
    malformed: list[tuple[int, str]] = field(default_factory=list)


def _parse(payload: bytes) -> tuple[str, dict] | str:
    """(kind, record) of a wire record, or the reason it cannot be one."""
    try:
        record = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return "malformed_record"
    if not isinstance(record, dict):
        return "malformed_record"
    kind = record.pop(KIND, None)
    allowed = ALLOWED.get(kind) if isinstance(kind, str) else None
    if allowed is None:
        return "unknown_kind"
    unknown = record.keys() - allowed.keys()
    if unknown:
        return f"unknown_field:{min(unknown)[:40]}"
    return kind, record


def _array(values: list, data_type: pa.DataType) -> pa.Array | None:
    """The column as Arrow, or None when a value does not fit (wrong type, or an integer out of range)."""
    try:
        if pa.types.is_timestamp(data_type):
            return pa.array(values, pa.int64()).cast(data_type)
        return pa.array(values, data_type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return None


def _misfits(values: list, data_type: pa.DataType, allowed: frozenset[type]) -> list[int]:
    """Rows whose value does not fit the column."""
    return [i for i, v in enumerate(values) if type(v) not in allowed or _array([v], data_type) is None]


def _kind_table(kind: str, records: list[dict]) -> tuple[pa.Table, dict[int, str]]:
    """The contract-schema table of a kind's records and the rows (with a reason) that did not fit it."""
    target, allowed = SCHEMAS[kind], ALLOWED[kind]
    columns = {f.name: [r.get(f.name) for r in records] for f in target}
    misfit: dict[int, str] = {}
    for f in target:
        values = columns[f.name]
        if not set(map(type, values)) <= allowed[f.name] or _array(values, f.type) is None:
            for row in _misfits(values, f.type, allowed[f.name]):
                misfit.setdefault(row, f"wrong_type:{f.name}")
    if misfit:
        columns = {name: [v for i, v in enumerate(values) if i not in misfit] for name, values in columns.items()}
    arrays = [_array(columns[f.name], f.type) for f in target]
    return pa.Table.from_arrays(arrays, schema=target), misfit


def decode_records(payloads: list[bytes]) -> Decoded:
    """Wire records -> one contract-schema table per kind (missing fields are null) and the malformed ones."""
    out = Decoded()
    records: dict[str, list[dict]] = {kind: [] for kind in KIND_TABLE}
    for position, payload in enumerate(payloads):
        parsed = _parse(payload)
        if isinstance(parsed, str):
            out.malformed.append((position, parsed))
        else:
            records[parsed[0]].append(parsed[1])
            out.positions[parsed[0]].append(position)
    for kind, rows in records.items():
        out.tables[kind], misfit = _kind_table(kind, rows)
        if misfit:
            positions = out.positions[kind]
            out.malformed += [(positions[row], reason) for row, reason in misfit.items()]
            out.positions[kind] = [p for row, p in enumerate(positions) if row not in misfit]
    return out
