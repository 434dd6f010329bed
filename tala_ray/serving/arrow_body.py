"""Server side of the Arrow IPC stream bodies of `POST /v1/decisions/batch`
(`Content-Type: application/vnd.apache.arrow.stream`): decoding and validation.

The format (one row per application, `events` and `loans` as `list<struct>` columns) and each
field's rules are in `arrow_schema`; clients build bodies with `tala_ray.traffic.arrow_encode`.
`decode_batch` turns a body into exactly the raw tables `online.request_columns` builds from the
same applications sent as JSON (but the events' strings come as pandas Categoricals of the body's
dictionary, which the feature code reads as codes without a Python string per event), after the
same checks as the pydantic models of `online.py`: types, nulls, choices, finite numbers, and the
ranges of `data.bounds` (numbers, times against the service's clock, an application after its
applicant's sign-up, a loan due within a year of its disbursal) through `bounds.problems`. A
problem's `loc` is the one the JSON batch gives for the same field, e.g.
`["body", "applications", 3, "applicant", "signup_time"]` or `["body", "applications", 3, "events", 12, "amount"]`.

Accepted variants (liberal where the meaning is unambiguous, strict otherwise):

- times: `timestamp` of any unit (s, ms, us, ns), with any time zone or naive (taken as UTC, as
  the JSON path does), floored to epoch milliseconds exactly as `timeutil.datetime_ms` does.
  Strings, dates and plain integers are refused.
- strings: `string`, `large_string`, `string_view`, or a dictionary of one of them (any index type).
- floats (`device_price_usd`, `amount`): any float or integer type; NaN and infinities are refused.
- integers (`device_age_months`, `term_days`, `days_late`): any integer type, or a float type
  holding whole numbers (what pandas makes of an integer column with nulls).
- `repaid`: `bool` only.
- `events`, `loans`: `list`, `large_list`, `list_view` or `large_list_view` of `struct`; a null
  list is an empty one; a null element is an error.
- a column or struct field of type `null` is all nulls; the optional ones (`device_os`,
  `device_price_usd`, `device_age_months`, `events`, `loans`, event `amount` and `app_category`)
  may be left out, as their JSON keys may.
- schema nullability flags and metadata are ignored (actual nulls are checked); several record
  batches are read as one table.

Refused: unknown or duplicate columns and struct fields, any other type, a body that is not an
Arrow IPC stream (the Arrow file format included) or does not pass Arrow's full validation (offsets,
dictionary indices, UTF-8: a corrupted body is refused before any value is read), compressed IPC
buffers (LZ4/ZSTD: pyarrow would inflate them before any check, so a few kB could take GBs), no
rows, more than `max_applications` rows.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from tala_ray.core.errors import UserError
from tala_ray.data import bounds
from tala_ray.features.columns import RAW_COLUMNS, Columns
from tala_ray.features.timeutil import datetime_ms
from tala_ray.serving.arrow_schema import (
    ARROW_STREAM_MEDIA_TYPE,
    ARROW_TYPES,
    LISTS,
    TOP_RECORDS,
    TOP_RULES,
    FieldRule,
    Kind,
    list_type,
)
from tala_ray.serving.error_body import MAX_DETAILS, limited


class ArrowBodyError(UserError):
    """A bad Arrow body. `details` is in FastAPI's 422 shape (`loc`, `msg`): the first problems in
    row order, then, when there were more than `MAX_DETAILS`, one entry counting the rest;
    `total` is the number of problems found."""

    def __init__(self, details: list[dict[str, Any]], total: int | None = None) -> None:
        self.total = len(details) if total is None else total
        self.details = limited(details, self.total)
        first = details[0]
        where = ".".join(str(part) for part in first["loc"])
        super().__init__(f"invalid Arrow request body: {self.total} problem(s), first at {where}: {first['msg']}")


class TooManyApplicationsError(ArrowBodyError):
    """More rows than `max_applications` (an ingress may answer 413); reading stopped at the record
    batch that went over, so `rows` is a lower bound of the count."""

    def __init__(self, max_applications: int, rows: int) -> None:
        self.max_applications, self.rows = max_applications, rows
        msg = f"at most {max_applications} applications per request, got at least {rows}"
        super().__init__([{"loc": ["body"], "msg": msg}])


def _body_error(msg: str) -> ArrowBodyError:
    return ArrowBodyError([{"loc": ["body"], "msg": msg}])


# ---------------------------------------------------------------------------------------------
# Decoding: the schema, read without touching the data.


def _is_string(data_type: pa.DataType) -> bool:
    return pa.types.is_string(data_type) or pa.types.is_large_string(data_type) or pa.types.is_string_view(data_type)


def _is_number(data_type: pa.DataType) -> bool:
    return pa.types.is_integer(data_type) or pa.types.is_floating(data_type)


_ACCEPTS: dict[Kind, Callable[[pa.DataType], bool]] = {
    "str": lambda t: _is_string(t) or (pa.types.is_dictionary(t) and _is_string(t.value_type)),
    "time": pa.types.is_timestamp,
    "float": _is_number,
    "int": _is_number,
    "bool": pa.types.is_boolean,
}
_EXPECTED: dict[Kind, str] = {
    "str": "string (string, large_string, string_view or a dictionary of strings)",
    "time": "timestamp (any unit; with a time zone, or naive for UTC)",
    "float": "float64 (or another float or integer type)",
    "int": "integer (any width, or a float type holding whole numbers)",
    "bool": "bool",
}
_LIST_EXPECTED = "list<struct> (list, large_list, list_view or large_list_view)"


def _is_list(data_type: pa.DataType) -> bool:
    kinds = (pa.types.is_list, pa.types.is_large_list, pa.types.is_list_view, pa.types.is_large_list_view)
    return any(is_kind(data_type) for is_kind in kinds)


def _duplicates(names: list[str]) -> list[str]:
    return sorted({name for name in names if names.count(name) > 1})


def _field_problems(fields: list[pa.Field], rules: tuple[FieldRule, ...], loc: list[str]) -> list[dict[str, Any]]:
    """Schema problems of one level: duplicate, unknown, missing required, or wrongly typed fields."""
    by_name = {rule.name: rule for rule in rules}
    names = [field.name for field in fields]
    problems = [{"loc": [*loc, name], "msg": "duplicate column"} for name in _duplicates(names)]
    problems += [
        {"loc": [*loc, name], "msg": f"unknown column (expected: {', '.join(by_name)})"}
        for name in names
        if name not in by_name
    ]
    problems += [
        {"loc": [*loc, rule.name], "msg": f"missing column, expected {_EXPECTED[rule.kind]}"}
        for rule in rules
        if rule.required and rule.name not in names
    ]
    for field in fields:
        rule = by_name.get(field.name)
        if rule and not (pa.types.is_null(field.type) or _ACCEPTS[rule.kind](field.type)):
            problems.append({"loc": [*loc, field.name], "msg": f"expected {_EXPECTED[rule.kind]}, got {field.type}"})
    return problems


def _list_problems(field: pa.Field, rules: tuple[FieldRule, ...]) -> list[dict[str, Any]]:
    """Schema problems of one list column and of its struct fields."""
    loc = ["body", field.name]
    if pa.types.is_null(field.type):
        return []
    if not (_is_list(field.type) and pa.types.is_struct(field.type.value_type)):
        return [{"loc": loc, "msg": f"expected {_LIST_EXPECTED}, got {field.type}"}]
    return _field_problems(list(field.type.value_type), rules, loc)


def _check_schema(schema: pa.Schema) -> None:
    """Raise `ArrowBodyError` listing every problem of the body's schema."""
    top = [field for field in schema if field.name not in LISTS]
    lists = [field for field in schema if field.name in LISTS]
    problems = _field_problems(top, TOP_RULES, ["body"])
    problems += [{"loc": ["body", name], "msg": "duplicate column"} for name in _duplicates([f.name for f in lists])]
    for field in lists:
        problems += _list_problems(field, LISTS[field.name][0])
    if problems:
        raise ArrowBodyError(problems[:MAX_DETAILS], len(problems))


def _flatbuffer_field(metadata: bytes, table: int, index: int) -> int:
    """The position of field `index` of the flatbuffer table at `table`, 0 when the field is absent
    (the layout of flatbuffers: a table starts with the signed distance back to its vtable, whose
    uint16 entries after the first two are the fields' offsets in the table)."""
    (back,) = struct.unpack_from("<i", metadata, table)
    vtable = table - back
    if not 0 <= vtable <= len(metadata) - 4:
        raise ValueError("flatbuffer vtable out of range")
    (size,) = struct.unpack_from("<H", metadata, vtable)
    entry = vtable + 4 + 2 * index
    if 4 + 2 * index + 2 > size or entry + 2 > len(metadata):
        return 0
    (offset,) = struct.unpack_from("<H", metadata, entry)
    return table + offset if offset else 0


def _flatbuffer_table(metadata: bytes, table: int, index: int) -> int:
    """The position of the table that field `index` (an offset) of `table` points to, 0 if absent."""
    field = _flatbuffer_field(metadata, table, index)
    return field + struct.unpack_from("<I", metadata, field)[0] if field else 0


def _is_compressed(message: pa.ipc.Message) -> bool:
    """Whether a record batch or dictionary message's buffers are compressed: its `RecordBatch`
    table (Message.header, field 2; in a DictionaryBatch its `data`, field 1) has a `compression`
    (field 3), as Arrow's Message.fbs defines them. Arrow has verified the flatbuffer already."""
    metadata = message.metadata.to_pybytes()
    try:
        root = struct.unpack_from("<I", metadata, 0)[0]
        batch = _flatbuffer_table(metadata, root, 2)
        if batch and message.type == "dictionary":
            batch = _flatbuffer_table(metadata, batch, 1)
        return bool(batch) and _flatbuffer_field(metadata, batch, 3) != 0
    except (struct.error, ValueError):
        raise _body_error(f"not an Arrow IPC stream ({ARROW_STREAM_MEDIA_TYPE}): malformed message metadata") from None


def _refuse_compression(body: bytes) -> None:
    """Raise `ArrowBodyError` when a message of the stream has compressed buffers (read before any
    batch is decoded: the messages' metadata only)."""
    for message in pa.ipc.MessageReader.open_stream(pa.py_buffer(body)):
        if message.type in ("record batch", "dictionary") and _is_compressed(message):
            raise _body_error("compressed IPC buffers are not accepted: send the Arrow stream uncompressed")


def _read_table(body: bytes, max_applications: int) -> pa.Table:
    """The body's record batches as one table, stopping as soon as there are too many rows; each
    batch is fully validated (a corrupted offset or dictionary index would otherwise be read out
    of bounds by the compute functions)."""
    try:
        _refuse_compression(body)
        reader = pa.ipc.open_stream(pa.py_buffer(body))
        batches: list[pa.RecordBatch] = []
        rows = 0
        for batch in reader:
            rows += batch.num_rows
            if rows > max_applications:
                raise TooManyApplicationsError(max_applications, rows)
            batch.validate(full=True)
            batches.append(batch)
    except (pa.ArrowException, OSError, ValueError) as error:  # pyarrow raises OSError for a short stream
        raise _body_error(f"not an Arrow IPC stream ({ARROW_STREAM_MEDIA_TYPE}): {error}") from error
    if rows == 0:
        raise _body_error("at least 1 application is required, got 0 rows")
    return pa.Table.from_batches(batches, schema=reader.schema)


# ---------------------------------------------------------------------------------------------
# Decoding: values to numpy, with their problems.


_RECORD_OF = {rule.name: record for record, (_, rules) in TOP_RECORDS.items() for rule in rules}


@dataclass(frozen=True)
class _Level:
    """The rows of one table: the applications (`name` None) or the items of one list column."""

    name: str | None
    rows: np.ndarray  # the application each row belongs to
    items: np.ndarray | None  # its index in that application's list

    def loc(self, k: int, field: str | None) -> list[Any]:
        """The JSON batch's loc of row `k`'s `field` (the row itself for None)."""
        where: list[Any] = ["body", "applications", int(self.rows[k])]
        if self.name is not None:
            where += [self.name, int(self.items[k])]
        elif field in _RECORD_OF:
            where.append(_RECORD_OF[field])
        return where if field is None else [*where, field]

    def key(self, k: int) -> tuple[int, int]:
        return int(self.rows[k]), -1 if self.items is None else int(self.items[k])


class _Problems:
    """Problems found: the first `MAX_DETAILS` of each check, and the count of all."""

    def __init__(self) -> None:
        self.found: list[tuple[tuple[int, int], list[Any], str]] = []
        self.total = 0

    def add(self, level: _Level, field: str | None, bad: np.ndarray, msg: str) -> None:
        """The rows where `bad` (a mask) is true."""
        self.add_rows(level, field, np.flatnonzero(bad), msg)

    def add_rows(self, level: _Level, field: str | None, rows: np.ndarray, msg: str) -> None:
        """The rows at positions `rows`."""
        self.total += len(rows)
        self.found += [(level.key(k), level.loc(k, field), msg) for k in rows[:MAX_DETAILS]]

    def add_bounds(self, table: str, checked: dict[str, np.ndarray], level: _Level, now_ms: int) -> None:
        """The rows of `level` breaking a bound of `table` (`checked`: float64 columns, NaN where a
        value is missing or already refused)."""
        for problem in bounds.problems(table, checked, now_ms):
            self.add_rows(level, problem.bound.field, problem.rows, f"must be {problem.requirement}")

    def raise_if_any(self) -> None:
        if self.total:
            first = sorted(self.found, key=lambda problem: problem[0])[:MAX_DETAILS]
            raise ArrowBodyError([{"loc": loc, "msg": msg} for _, loc, msg in first], self.total)


_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
_UTC = UTC
# Times a JSON datetime can hold (years 1 to 9999): converted exactly; the others (their epoch ms
# could overflow) are out of every time bound, checked as -inf or +inf.
_FIRST_S = datetime_ms(datetime(1, 1, 1, tzinfo=_UTC)) // 1000
_LAST_S = datetime_ms(datetime(9999, 12, 31, 23, 59, 59, tzinfo=_UTC)) // 1000
_INT64 = np.iinfo(np.int64)


@dataclass(frozen=True)
class _Decoded:
    """One field's values as `request_columns` gives them, which rows hold a value, and the float64
    column its bounds are checked on (None for strings and flags)."""

    values: np.ndarray | pd.Categorical
    valid: np.ndarray
    checked: np.ndarray | None = None


def _valid(array: pa.Array) -> np.ndarray:
    return array.is_valid().to_numpy(zero_copy_only=False)


def _times(_rule: FieldRule, array: pa.Array, _level: _Level, _problems: _Problems) -> _Decoded:
    """Epoch milliseconds, floored as `datetime_ms` does, of a timestamp array of any unit."""
    valid = _valid(array)
    per_second = _PER_SECOND[array.type.unit]
    raw = array.cast(pa.int64()).fill_null(0).to_numpy()
    low, high = max(_FIRST_S * per_second, _INT64.min), min((_LAST_S + 1) * per_second - 1, _INT64.max)
    early, late = valid & (raw < low), valid & (raw > high)
    outside = early | late
    if outside.any():
        raw = np.where(outside, 0, raw)
    ms = raw * 1000 if per_second == 1 else raw // (per_second // 1000)
    checked = ms.astype(np.float64)
    if array.null_count:
        checked[~valid] = np.nan
    if outside.any():
        checked[early], checked[late] = -np.inf, np.inf
    return _Decoded(ms, valid, checked)


def _strings(rule: FieldRule, array: pa.Array, level: _Level, problems: _Problems) -> _Decoded:
    """Through a dictionary: an object array (None for null) for top-level fields (they become
    feature values), a Categorical for list items (events: many rows, few distinct values)."""
    encoded = array if pa.types.is_dictionary(array.type) else pc.dictionary_encode(array)
    words = encoded.dictionary.to_pylist()
    codes = encoded.indices.cast(pa.int64()).fill_null(len(words)).to_numpy()
    valid = np.array([word is not None for word in words] + [False])[codes]
    if rule.choices:
        allowed = np.array([word is None or word in rule.choices for word in words] + [True])
        problems.add(level, rule.name, ~allowed[codes], f"must be one of {', '.join(rule.choices)}")
    if level.name is None:
        return _Decoded(np.array([*words, None], dtype=object)[codes], valid)
    return _Decoded(_categorical(words, codes), valid)


def _categorical(words: list[str | None], codes: np.ndarray) -> pd.Categorical:
    """Positions in `words` (`len(words)` and None words: null) as a Categorical; a dictionary may
    repeat a word or hold a null, a Categorical's categories may not."""
    categories = list(dict.fromkeys(word for word in words if word is not None))
    position = {word: i for i, word in enumerate(categories)}
    remap = np.array([-1 if word is None else position[word] for word in words] + [-1], dtype=np.int64)
    return pd.Categorical.from_codes(remap[codes], categories=categories)


def _numbers(rule: FieldRule, array: pa.Array, level: _Level, problems: _Problems) -> _Decoded:
    """float64 values (NaN for null); a NaN or infinite value is refused before its bounds are
    checked, and an integer field given as floats must hold whole numbers."""
    valid = _valid(array)
    values = array.cast(pa.float64(), safe=False).to_numpy(zero_copy_only=False, writable=True)
    if pa.types.is_floating(array.type):
        finite = np.isfinite(values)
        if np.count_nonzero(finite) + array.null_count < len(values):  # NaN or an infinity besides the nulls
            refused = valid & ~finite
            problems.add(level, rule.name, refused, "must be a finite number")
            values[refused] = np.nan  # not checked against the bounds again
        if rule.kind == "int":
            problems.add(level, rule.name, valid & finite & (np.floor(values) != values), "must be a whole number")
    return _Decoded(values, valid, values)


def _booleans(_rule: FieldRule, array: pa.Array, _level: _Level, _problems: _Problems) -> _Decoded:
    return _Decoded(array.fill_null(False).to_numpy(zero_copy_only=False), _valid(array))


_Converter = Callable[[FieldRule, pa.Array, _Level, _Problems], _Decoded]
_CONVERTERS: dict[Kind, _Converter] = {
    "time": _times,
    "str": _strings,
    "float": _numbers,
    "int": _numbers,
    "bool": _booleans,
}


def _decode_field(
    rule: FieldRule, array: pa.Array, present: np.ndarray, level: _Level, problems: _Problems
) -> _Decoded:
    """One field's values as `request_columns` gives them, with every problem but its bounds'
    recorded; `present` marks the rows that exist (False for null list elements)."""
    if pa.types.is_null(array.type):
        array = pa.nulls(len(array), ARROW_TYPES[rule.kind])
    decoded = _CONVERTERS[rule.kind](rule, array, level, problems)
    if rule.required:
        problems.add(level, rule.name, present & ~decoded.valid, "must not be null")
    return decoded


def _decode_level(
    arrays: dict[str, pa.Array], rules: tuple[FieldRule, ...], present: np.ndarray, level: _Level, problems: _Problems
) -> dict[str, _Decoded]:
    """The fields of one level; a left-out optional field is all nulls."""
    missing = pa.nulls(len(present))
    return {rule.name: _decode_field(rule, arrays.get(rule.name, missing), present, level, problems) for rule in rules}


def _checked(decoded: dict[str, _Decoded]) -> dict[str, np.ndarray]:
    return {name: field.checked for name, field in decoded.items() if field.checked is not None}


def _decode_list(column: pa.Array | None, n: int, name: str, top: _Level, problems: _Problems, now_ms: int) -> Columns:
    """One list column as its table (`applicant_id` = application position), its bounds checked; a
    null list is empty. Too long a list is refused before its items are read (a body can claim many
    items of a field without data, such as a null-typed one)."""
    rules, max_items = LISTS[name]
    if column is None or pa.types.is_null(column.type):
        column = pa.nulls(n, list_type(rules))
    lengths = pc.list_value_length(column).fill_null(0).to_numpy().astype(np.int64)
    too_long = lengths > max_items
    if too_long.any():
        problems.add(top, name, too_long, f"must have at most {max_items} items")
        return {}
    items: pa.StructArray = column.flatten()
    present = items.is_valid().to_numpy(zero_copy_only=False)
    starts = np.cumsum(lengths) - lengths
    rows = np.repeat(np.arange(n, dtype=np.int64), lengths)
    level = _Level(name, rows, np.arange(len(rows), dtype=np.int64) - np.repeat(starts, lengths))
    problems.add(level, None, ~present, "must not be null")
    arrays = dict(zip([field.name for field in items.type], items.flatten(), strict=True))
    decoded = _decode_level(arrays, rules, present, level, problems)
    problems.add_bounds(name, _checked(decoded), level, now_ms)
    return {"applicant_id": rows, **{field: value.values for field, value in decoded.items()}}


def decode_batch(body: bytes, max_applications: int) -> dict[str, Columns]:
    """An Arrow IPC stream body as the raw tables `online.request_columns` returns for the same
    applications (same keys, dtypes and values; the events' strings as Categoricals of the same
    values). Raises `ArrowBodyError` on any problem."""
    table = _read_table(body, max_applications)
    try:
        _check_schema(table.schema)
    except UnicodeDecodeError:  # a field's name (pyarrow decodes names when they are read)
        raise _body_error("column and struct field names must be UTF-8") from None
    n, now_ms = table.num_rows, bounds.clock_ms()
    arrays = {name: table.column(name).combine_chunks() for name in table.column_names}
    positions = np.arange(n, dtype=np.int64)
    top = _Level(None, positions, None)
    problems = _Problems()
    decoded = _decode_level(arrays, TOP_RULES, np.ones(n, dtype=bool), top, problems)
    checked = _checked(decoded)  # both records of an application: its bound against the sign-up time
    for table_name, _ in TOP_RECORDS.values():
        problems.add_bounds(table_name, checked, top, now_ms)
    events = _decode_list(arrays.get("events"), n, "events", top, problems, now_ms)
    loans = _decode_list(arrays.get("loans"), n, "loans", top, problems, now_ms)
    problems.raise_if_any()
    top_columns = {"application_id": positions, "applicant_id": positions}
    top_columns |= {name: field.values for name, field in decoded.items()}
    tables = {"applicants": top_columns, "applications": top_columns, "events": events, "loans": loans}
    return {table: {name: columns[name] for name in RAW_COLUMNS[table]} for table, columns in tables.items()}
