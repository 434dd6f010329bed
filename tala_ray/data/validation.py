"""Input contracts of the raw tables and row quarantine.

`check_schema` stops a job whose input lacks a column or has a column of the wrong type, naming
the table and the column. `split_valid` separates the rows that break a rule (negative amounts,
unknown event types, impossible timestamps, missing ids, ...) from the good ones; the bad rows
carry a `reason` column so they can be written to a quarantine table and counted.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tala_ray.data import schema
from tala_ray.core.errors import UserError

RAW_TABLES = ("applicants", "events", "loans", "applications")
REASON = "reason"
EARLIEST = np.datetime64("2000-01-01T00:00:00", "ms")
LATEST = np.datetime64("2100-01-01T00:00:00", "ms")

Rule = Callable[[pa.Table], np.ndarray]


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
    """Raise `SchemaMismatchError` naming the table and column when `actual` breaks the contract."""
    for field in schema.TABLES[table]:
        if field.name not in actual.names:
            raise SchemaMismatchError(f"table {table!r}: required column {field.name!r} is missing")
        found = actual.field(field.name).type
        if not _compatible(found, field.type):
            raise SchemaMismatchError(f"table {table!r}: column {field.name!r} has type {found}, expected {field.type}")


def conform(table: str, batch: pa.Table) -> pa.Table:
    """The contract's columns only, cast to the contract's types (after `check_schema` passed)."""
    target = schema.TABLES[table]
    columns = [batch.column(f.name) for f in target]
    casted = [c.cast(pa.string()) if pa.types.is_dictionary(c.type) else c for c in columns]
    nullable = pa.schema([f.with_nullable(True) for f in target])
    return pa.Table.from_arrays([c.cast(f.type) for c, f in zip(casted, nullable)], schema=nullable)


def _null(column: str) -> Rule:
    return lambda t: t.column(column).is_null().to_numpy(zero_copy_only=False)


def _below(column: str, bound: float) -> Rule:
    return lambda t: pc.fill_null(pc.less(t.column(column), bound), False).to_numpy(zero_copy_only=False)


def _not_in(column: str, allowed: tuple[str, ...], only_if: Rule | None = None) -> Rule:
    def rule(t: pa.Table) -> np.ndarray:
        values = t.column(column)
        bad = (~pc.is_in(values, value_set=pa.array(allowed)).to_numpy(zero_copy_only=False)) & ~values.is_null().to_numpy(
            zero_copy_only=False
        )
        return bad if only_if is None else bad & only_if(t)

    return rule


def _impossible_time(*columns: str) -> Rule:
    def rule(t: pa.Table) -> np.ndarray:
        bad = np.zeros(t.num_rows, dtype=bool)
        for column in columns:
            ms = t.column(column).cast(pa.int64()).to_numpy(zero_copy_only=False)
            values = np.asarray(ms, dtype="float64")
            bad |= (values < EARLIEST.astype(np.int64)) | (values >= LATEST.astype(np.int64))
        return bad

    return rule


def _before(later: str, earlier: str) -> Rule:
    return lambda t: pc.fill_null(pc.less(t.column(later), t.column(earlier)), False).to_numpy(zero_copy_only=False)


def _is_install(t: pa.Table) -> np.ndarray:
    return pc.fill_null(pc.equal(t.column("event_type"), "app_install"), False).to_numpy(zero_copy_only=False)


# Per table, the rules in order; a row takes the reason of the first rule it breaks.
RULES: dict[str, list[tuple[str, Rule]]] = {
    "applicants": [
        ("missing_id", _null("applicant_id")),
        ("missing_time", _null("signup_time")),
        ("impossible_timestamp", _impossible_time("signup_time")),
        ("unknown_country", _null("country")),
        ("unknown_country", _not_in("country", schema.COUNTRIES)),
        ("unknown_device_os", _not_in("device_os", schema.DEVICE_OS)),
        ("negative_amount", _below("device_price_usd", 0)),
        ("negative_device_age", _below("device_age_months", 0)),
    ],
    "events": [
        ("missing_id", _null("event_id")),
        ("missing_id", _null("applicant_id")),
        ("missing_time", _null("event_time")),
        ("impossible_timestamp", _impossible_time("event_time")),
        ("unknown_event_type", _null("event_type")),
        ("unknown_event_type", _not_in("event_type", schema.EVENT_TYPES)),
        ("unknown_app_category", _not_in("app_category", schema.APP_CATEGORIES, only_if=_is_install)),
        ("negative_amount", _below("amount", 0)),
    ],
    "loans": [
        ("missing_id", _null("loan_id")),
        ("missing_id", _null("applicant_id")),
        ("missing_time", _null("disbursed_time")),
        ("missing_time", _null("due_time")),
        ("impossible_timestamp", _impossible_time("disbursed_time", "due_time")),
        ("impossible_timestamp", _before("due_time", "disbursed_time")),
        ("missing_value", _null("amount")),
        ("missing_value", _null("repaid")),
        ("missing_value", _null("days_late")),
        ("negative_amount", _below("amount", 0)),
        ("negative_days_late", _below("days_late", 0)),
    ],
    "applications": [
        ("missing_id", _null("application_id")),
        ("missing_id", _null("applicant_id")),
        ("missing_time", _null("application_time")),
        ("impossible_timestamp", _impossible_time("application_time")),
        ("non_positive_amount", lambda t: pc.fill_null(pc.less_equal(t.column("amount"), 0), True).to_numpy(zero_copy_only=False)),
        ("non_positive_term", lambda t: pc.fill_null(pc.less_equal(t.column("term_days"), 0), True).to_numpy(zero_copy_only=False)),
        ("unknown_cohort", _not_in("cohort", schema.COHORTS)),
    ],
}


def row_reasons(table: str, batch: pa.Table) -> np.ndarray:
    """Per row, the first broken rule's reason, or None for a good row."""
    reasons = np.full(batch.num_rows, None, dtype=object)
    for reason, rule in RULES[table]:
        broken = rule(batch) & (reasons == None)  # noqa: E711 (element-wise)
        reasons[broken] = reason
    return reasons


def split_valid(table: str, batch: pa.Table) -> tuple[pa.Table, pa.Table]:
    """(good rows, bad rows with a `reason` column) of a conformed batch."""
    reasons = row_reasons(table, batch)
    bad = reasons != None  # noqa: E711
    good_rows = batch.filter(pa.array(~bad))
    bad_rows = batch.filter(pa.array(bad)).append_column(REASON, pa.array(reasons[bad], pa.string()))
    return good_rows, bad_rows
