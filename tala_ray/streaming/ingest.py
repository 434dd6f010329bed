"""Raw records -> store writes: the batch path's validation rules (`data.validation`) decide, a bad
record becomes a quarantine write with its reason (never dropped), a good one its packed store record."""

from __future__ import annotations

import pyarrow as pa

from tala_ray.data import validation
from tala_ray.streaming import packing
from tala_ray.streaming.codec import KIND_TABLE, decode_records, encode_records
from tala_ray.streaming.store import Op

Source = tuple[bytes | str, bytes | str] | None


def _good_ops(kind: str, good: pa.Table, sources: list[Source]) -> list[Op]:
    applicants = good.column("applicant_id").to_pylist()
    if kind == "event":
        scores = good.column("event_time").cast(pa.int64()).to_pylist()
        members = packing.pack_events(good)
        return [Op(s, "e", a, t, m) for s, a, t, m in zip(sources, applicants, scores, members, strict=True)]
    if kind == "loan":
        fields, values = packing.pack_loans(good)
        return [Op(s, "l", a, f, v) for s, a, f, v in zip(sources, applicants, fields, values, strict=True)]
    values = packing.pack_applicants(good)
    return [Op(s, "a", a, packing.ATTRS_FIELD, v) for s, a, v in zip(sources, applicants, values, strict=True)]


def table_ops(kind: str, table: pa.Table, sources: list[Source], records: list[bytes] | None = None) -> list[Op]:
    """Writes of the rows of one kind's contract-schema table, in row order; `records` are the rows' wire
    records to keep in the quarantine (encoded from the rows when not given)."""
    reasons = validation.row_reasons(KIND_TABLE[kind], table)
    bad = reasons != None  # noqa: E711 (element-wise)
    good_rows = [i for i, is_bad in enumerate(bad) if not is_bad]
    ops: list[Op | None] = [None] * table.num_rows
    good = table.take(pa.array(good_rows, pa.int64()))
    for row, op in zip(good_rows, _good_ops(kind, good, [sources[i] for i in good_rows]), strict=True):
        ops[row] = op
    bad_rows = [i for i, is_bad in enumerate(bad) if is_bad]
    if bad_rows:
        kept = records or encode_records(kind, table)
        for row in bad_rows:
            ops[row] = Op(sources[row], "q", 0, reasons[row], kept[row])
    return ops  # type: ignore[return-value]


def entry_ops(entries: list[tuple[bytes, bytes, bytes]]) -> list[Op]:
    """Writes of a batch of stream entries (partition key, entry id, wire record), one per entry."""
    decoded = decode_records([payload for _, _, payload in entries])
    ops: list[Op | None] = [None] * len(entries)
    for position, reason in decoded.malformed:
        stream, entry_id, payload = entries[position]
        ops[position] = Op((stream, entry_id), "q", 0, reason, payload)
    for kind, positions in decoded.positions.items():
        if not positions:
            continue
        sources: list[Source] = [entries[p][:2] for p in positions]
        records = [entries[p][2] for p in positions]
        for position, op in zip(positions, table_ops(kind, decoded.tables[kind], sources, records), strict=True):
            ops[position] = op
    return ops  # type: ignore[return-value]
