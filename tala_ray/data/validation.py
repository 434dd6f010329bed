"""Input contracts of the raw tables and row quarantine.

`check_schema` stops a job whose input lacks a column or has a column of the wrong type, naming
the table and the column. `split_valid` separates the rows that break a rule (missing ids, unknown
event types, NaN numbers, and every range of `data.bounds`: impossible or future timestamps,
negative or absurd amounts, ...) from the good ones; the bad rows carry a `reason` code (counted
in the feature table's manifest) and a `detail` naming the field and the bound, so they can be
written to a quarantine table. `split_joined` applies the checks that need each application's
applicant (it exists; the application is not before the sign-up).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tala_ray.core.errors import UserError
from tala_ray.data import bounds, schema

RAW_TABLES = ("applicants", "events", "loans", "applications")
REASON = "reason"
DETAIL = "detail"


class SchemaMismatchError(UserError):
    """An input table lacks a required column or has one of the wrong type."""


def _compatible(actual: pa.DataType, expected: pa.DataType) -> bool:
    if pa.types.is_timestamp(expected):
        return pa.types.is_timestamp(actual) or pa.types.is_date(actual)
    if pa.types.is_integer(expected):
        return pa.types.is_integer(actual)
    if pa.types.is_floating(expected):
        return pa.types.is_floating(actual) or pa.types.is_integer(actual) or pa.types.is_decimal(actual)
    if pa.types.is_string(expected):
        return pa.types.is_string(actual) or pa.types.is_large_string(actual) or pa.types.is_dictionary(actual)
    return actual.equals(expected)


def check_schema(table: str, actual: pa.Schema) -> None:
    """Raise `SchemaMismatchError` naming the table and column when `actual` breaks the contract
    (an optional column, `schema.OPTIONAL_COLUMNS`, is checked when present)."""
    for field in _contract(table, actual):
        if field.name not in actual.names:
            raise SchemaMismatchError(f"table {table!r}: required column {field.name!r} is missing")
        found = actual.field(field.name).type
        if not _compatible(found, field.type):
            raise SchemaMismatchError(f"table {table!r}: column {field.name!r} has type {found}, expected {field.type}")


def _contract(table: str, actual: pa.Schema) -> pa.Schema:
    """The contract's columns, then the optional columns `actual` has."""
    optional = [f for f in schema.OPTIONAL_COLUMNS.get(table, pa.schema([])) if f.name in actual.names]
    return pa.schema([*schema.TABLES[table], *optional])


def conform(table: str, batch: pa.Table) -> pa.Table:
    """The contract's columns (and the optional ones present) only, cast to the contract's types
    (after `check_schema` passed)."""
    target = _contract(table, batch.schema)
    columns = [batch.column(f.name) for f in target]
    casted = [c.cast(pa.string()) if pa.types.is_dictionary(c.type) else c for c in columns]
    nullable = pa.schema([f.with_nullable(True) for f in target])
    return pa.Table.from_arrays([c.cast(f.type) for c, f in zip(casted, nullable, strict=True)], schema=nullable)


Mask = Callable[[pa.Table], np.ndarray]


@dataclass(frozen=True)
class Check:
    """A rule of one table: rows for which `broken` is true get `reason` and `detail`."""

    reason: str
    detail: str
    broken: Mask


def _flags(values: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return np.asarray(values.to_numpy(zero_copy_only=False), dtype=bool)


def _missing(table: str, column: str, reason: str) -> Check:
    return Check(reason, f"{table}.{column} is missing", lambda t: _flags(t.column(column).is_null()))


def _unknown(table: str, column: str, allowed: tuple[str, ...], reason: str, only_if: Mask | None = None) -> Check:
    def broken(t: pa.Table) -> np.ndarray:
        values = t.column(column)
        bad = ~_flags(pc.is_in(values, value_set=pa.array(allowed))) & ~_flags(values.is_null())
        return bad if only_if is None else bad & only_if(t)

    return Check(reason, f"{table}.{column} is not one of {', '.join(allowed)}", broken)


def _not_a_number(table: str, column: str) -> Check:
    detail = f"{table}.{column} is NaN (a missing value is null)"
    return Check("not_a_number", detail, lambda t: _flags(pc.fill_null(pc.is_nan(t.column(column)), False)))


def _is_install(t: pa.Table) -> np.ndarray:
    return _flags(pc.fill_null(pc.equal(t.column("event_type"), "app_install"), False))


_PRESENCE: dict[str, list[Check]] = {
    "applicants": [
        _missing("applicants", "applicant_id", "missing_id"),
        _missing("applicants", "signup_time", "missing_time"),
        _missing("applicants", "country", "unknown_country"),
        _unknown("applicants", "country", schema.COUNTRIES, "unknown_country"),
        _unknown("applicants", "device_os", schema.DEVICE_OS, "unknown_device_os"),
    ],
    "events": [
        _missing("events", "event_id", "missing_id"),
        _missing("events", "applicant_id", "missing_id"),
        _missing("events", "event_time", "missing_time"),
        _missing("events", "event_type", "unknown_event_type"),
        _unknown("events", "event_type", schema.EVENT_TYPES, "unknown_event_type"),
        _unknown("events", "app_category", schema.APP_CATEGORIES, "unknown_app_category", only_if=_is_install),
    ],
    "loans": [
        _missing("loans", "loan_id", "missing_id"),
        _missing("loans", "applicant_id", "missing_id"),
        _missing("loans", "disbursed_time", "missing_time"),
        _missing("loans", "due_time", "missing_time"),
        _missing("loans", "amount", "missing_value"),
        _missing("loans", "repaid", "missing_value"),
        _missing("loans", "days_late", "missing_value"),
    ],
    "applications": [
        _missing("applications", "application_id", "missing_id"),
        _missing("applications", "applicant_id", "missing_id"),
        _missing("applications", "application_time", "missing_time"),
        _missing("applications", "amount", "missing_value"),
        _missing("applications", "term_days", "missing_value"),
        _unknown("applications", "cohort", schema.COHORTS, "unknown_cohort"),
    ],
}


def _nan_checks(table: str) -> list[Check]:
    """NaN in a float column with a number bound (NaN is never a value: missing is null)."""
    fields = schema.TABLES[table]
    return [_not_a_number(table, b.field) for b in bounds.of(table) if pa.types.is_floating(fields.field(b.field).type)]


# Per table, the rules checked before the ranges of `data.bounds` (presence and vocabularies, then
# NaN), in order; a row takes the reason of the first rule it breaks.
RULES: dict[str, list[Check]] = {table: [*checks, *_nan_checks(table)] for table, checks in _PRESENCE.items()}


def _numbers(values: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """The numpy form `bounds.problems` reads: float64, times as epoch ms, null as NaN."""
    if pa.types.is_timestamp(values.type):
        values = values.cast(schema.TS, safe=False).cast(pa.int64())
    return np.asarray(values.to_numpy(zero_copy_only=False), dtype=np.float64)


class _Verdicts:
    """Per row, the first reason and detail given (None for a good row)."""

    def __init__(self, rows: int) -> None:
        self.reasons = np.full(rows, None, dtype=object)
        self.details = np.full(rows, None, dtype=object)

    def mark(self, broken: np.ndarray, reason: str, detail: str) -> None:
        new = broken & (self.reasons == None)  # noqa: E711 (element-wise)
        self.reasons[new] = reason
        self.details[new] = detail

    def mark_problems(self, table: str, found: list[bounds.Problem]) -> None:
        for problem in found:
            broken = np.zeros(len(self.reasons), dtype=bool)
            broken[problem.rows] = True
            self.mark(broken, problem.reason, f"{table}.{problem.bound.field} must be {problem.requirement}")

    def split(self, batch: pa.Table) -> tuple[pa.Table, pa.Table]:
        bad = self.reasons != None  # noqa: E711
        bad_rows = batch.filter(pa.array(bad))
        bad_rows = bad_rows.append_column(REASON, pa.array(self.reasons[bad], pa.string()))
        return batch.filter(pa.array(~bad)), bad_rows.append_column(DETAIL, pa.array(self.details[bad], pa.string()))


def _verdicts(table: str, batch: pa.Table, now_ms: int | None) -> _Verdicts:
    verdicts = _Verdicts(batch.num_rows)
    for check in RULES[table]:
        verdicts.mark(check.broken(batch), check.reason, check.detail)
    own = {name for b in bounds.of(table) if not b.joined for name in b.reads}
    verdicts.mark_problems(table, bounds.problems(table, {name: _numbers(batch.column(name)) for name in own}, now_ms))
    return verdicts


def row_reasons(table: str, batch: pa.Table, now_ms: int | None = None) -> np.ndarray:
    """Per row of a conformed batch, the first broken rule's reason, or None for a good row."""
    return _verdicts(table, batch, now_ms).reasons


def split_valid(table: str, batch: pa.Table, now_ms: int | None = None) -> tuple[pa.Table, pa.Table]:
    """(good rows, bad rows with `reason` and `detail` columns) of a conformed batch; times are
    checked against the clock `now_ms` (epoch ms, default now)."""
    return _verdicts(table, batch, now_ms).split(batch)


def split_joined(applications: pa.Table, applicants: pa.Table, now_ms: int | None = None) -> tuple[pa.Table, pa.Table]:
    """(good, bad with `reason` and `detail`) applications of validated tables, by the checks that
    need the applicant: `missing_applicant`, then the joined bounds (an application before sign-up)."""
    ids = applicants.column("applicant_id").combine_chunks()
    at = pc.index_in(applications.column("applicant_id"), value_set=ids)
    verdicts = _Verdicts(applications.num_rows)
    verdicts.mark(_flags(at.is_null()), "missing_applicant", "applications.applicant_id has no row in applicants")
    columns = {
        "application_time": _numbers(applications.column("application_time")),
        "signup_time": _numbers(applicants.column("signup_time").take(at)),
    }
    found = bounds.problems("applications", columns, now_ms)
    verdicts.mark_problems("applications", [p for p in found if p.bound.joined])
    return verdicts.split(applications)
