"""Validated rows as the online store keeps them: fixed-layout big-endian records, packed and unpacked
for a whole batch at once with numpy (no Python object a field).

- an event is a sorted-set member (score = event time): event id (sign bit flipped, so the bytes sort
  as the numbers do), time, amount (NaN = null), type code, category code (+ the category's UTF-8 when
  it is not one of the vocabulary: only non-install events may carry any string). Members with the same
  time sort by event id, which is the raw table's order: the feature sums add in the same order.
- a loan is a hash field `l:<loan_id>`: loan id, disbursed and due times, amount, days late, repaid.
- the applicant's attributes are the hash field `attrs`: sign-up time, device price and age (NaN =
  null), country code, device OS code.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tala_ray.data import schema
from tala_ray.features.columns import Columns

NULL, OTHER = 255, 254
SIGN = np.uint64(1 << 63)
EVENT = np.dtype(
    [("event_id", ">u8"), ("event_time", ">i8"), ("amount", ">f8"), ("event_type", "u1"), ("app_category", "u1")]
)
LOAN = np.dtype(
    [
        ("loan_id", ">i8"),
        ("disbursed_time", ">i8"),
        ("due_time", ">i8"),
        ("amount", ">f8"),
        ("days_late", ">i4"),
        ("repaid", "u1"),
    ]
)
ATTRS = np.dtype(
    [
        ("signup_time", ">i8"),
        ("device_price_usd", ">f8"),
        ("device_age_months", ">f8"),
        ("country", "u1"),
        ("device_os", "u1"),
    ]
)
ATTRS_FIELD = b"attrs"
LOAN_PREFIX = b"l:"


def _ints(table: pa.Table, name: str) -> np.ndarray:
    column = table.column(name)
    if pa.types.is_timestamp(column.type):
        column = column.cast(pa.int64())
    return column.to_numpy()


def _floats(table: pa.Table, name: str) -> np.ndarray:
    return pc.fill_null(table.column(name).cast(pa.float64()), np.nan).to_numpy()


def _codes(table: pa.Table, name: str, vocabulary: tuple[str, ...]) -> np.ndarray:
    """Vocabulary index of each value; NULL for a null, OTHER for a string outside the vocabulary."""
    column = table.column(name)
    index = pc.index_in(column, value_set=pa.array(vocabulary))
    codes = pc.fill_null(index, OTHER).to_numpy().astype(np.uint8)
    codes[column.is_null().to_numpy(zero_copy_only=False)] = NULL
    return codes


def _split(buffer: bytes, size: int) -> list[bytes]:
    return [buffer[i : i + size] for i in range(0, len(buffer), size)]


def pack_events(events: pa.Table) -> list[bytes]:
    """Sorted-set members of validated event rows (their score is `event_time`)."""
    packed = np.empty(events.num_rows, dtype=EVENT)
    packed["event_id"] = _ints(events, "event_id").astype(np.uint64) ^ SIGN
    packed["event_time"] = _ints(events, "event_time")
    packed["amount"] = _floats(events, "amount")
    packed["event_type"] = _codes(events, "event_type", schema.EVENT_TYPES)
    packed["app_category"] = categories = _codes(events, "app_category", schema.APP_CATEGORIES)
    members = _split(packed.tobytes(), EVENT.itemsize)
    for i in np.flatnonzero(categories == OTHER):
        members[i] += events.column("app_category")[int(i)].as_py().encode()
    return members


def pack_loans(loans: pa.Table) -> tuple[list[bytes], list[bytes]]:
    """(hash field, value) of validated loan rows."""
    packed = np.empty(loans.num_rows, dtype=LOAN)
    for name in ("loan_id", "disbursed_time", "due_time", "days_late"):
        packed[name] = _ints(loans, name)
    packed["amount"] = _floats(loans, "amount")
    packed["repaid"] = loans.column("repaid").to_numpy(zero_copy_only=False).astype(np.uint8)
    fields = [LOAN_PREFIX + str(loan_id).encode() for loan_id in packed["loan_id"].tolist()]
    return fields, _split(packed.tobytes(), LOAN.itemsize)


def pack_applicants(applicants: pa.Table) -> list[bytes]:
    """The `attrs` value of validated applicant rows."""
    packed = np.empty(applicants.num_rows, dtype=ATTRS)
    packed["signup_time"] = _ints(applicants, "signup_time")
    packed["device_price_usd"] = _floats(applicants, "device_price_usd")
    packed["device_age_months"] = _floats(applicants, "device_age_months")
    packed["country"] = _codes(applicants, "country", schema.COUNTRIES)
    packed["device_os"] = _codes(applicants, "device_os", schema.DEVICE_OS)
    return _split(packed.tobytes(), ATTRS.itemsize)


def _words(codes: np.ndarray, vocabulary: tuple[str, ...]) -> np.ndarray:
    """Object array of the vocabulary's strings (None for NULL) of each code below OTHER."""
    lookup = np.array([*vocabulary, *([None] * (OTHER - len(vocabulary))), None, None], dtype=object)
    return lookup[codes]


def unpack_events(members: list[bytes]) -> Columns:
    """Event columns (`event_time`, `event_type`, `amount`, `app_category`, `event_id`) of members."""
    size = EVENT.itemsize
    lengths = np.fromiter(map(len, members), dtype=np.int64, count=len(members))
    extra = np.flatnonzero(lengths > size)
    fixed = b"".join(members) if not len(extra) else b"".join(m[:size] for m in members)
    packed = np.frombuffer(fixed, dtype=EVENT)
    categories = _words(packed["app_category"], schema.APP_CATEGORIES)
    for i in extra:
        categories[i] = members[i][size:].decode()
    return {
        "event_id": (packed["event_id"] ^ SIGN).astype(np.int64),
        "event_time": packed["event_time"].astype(np.int64),
        "event_type": _words(packed["event_type"], schema.EVENT_TYPES),
        "amount": packed["amount"].astype(np.float64),
        "app_category": categories,
    }


def unpack_loans(values: list[bytes]) -> Columns:
    """Loan columns of hash values."""
    packed = np.frombuffer(b"".join(values), dtype=LOAN)
    return {
        "loan_id": packed["loan_id"].astype(np.int64),
        "disbursed_time": packed["disbursed_time"].astype(np.int64),
        "due_time": packed["due_time"].astype(np.int64),
        "amount": packed["amount"].astype(np.float64),
        "repaid": packed["repaid"].astype(bool),
        "days_late": packed["days_late"].astype(np.float64),
    }


def unpack_applicants(values: list[bytes]) -> Columns:
    """Applicant columns of `attrs` values."""
    packed = np.frombuffer(b"".join(values), dtype=ATTRS)
    return {
        "country": _words(packed["country"], schema.COUNTRIES),
        "signup_time": packed["signup_time"].astype(np.int64),
        "device_os": _words(packed["device_os"], schema.DEVICE_OS),
        "device_price_usd": packed["device_price_usd"].astype(np.float64),
        "device_age_months": packed["device_age_months"].astype(np.float64),
    }
