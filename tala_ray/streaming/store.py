"""The online store: each applicant's recent raw events, loans and attributes on the Valkey server.

Layout (keys under the config's prefix):
- `<prefix>:ev:<applicant_id>`  sorted set of events scored by event time (member: `packing.EVENT`,
  which includes the event id: re-adding an event changes nothing); trimmed to the longest feature
  window (`LOOKBACK_DAYS`, 180 days) before the applicant's newest event, so a late event lands in
  place and an old one past the window goes;
- `<prefix>:ap:<applicant_id>`  hash: `attrs` (the applicant record) and `l:<loan_id>` per loan (a
  newer record of a loan replaces it);
- `<prefix>:stats`  hash of counters (records applied per kind, quarantined, per consumer);
- `<prefix>:format` the packing's fingerprint: a store written with other vocabularies is refused.

Writes go through one Lua script that, for each record of a batch, first XACKs its stream entry and
applies the record only if the XACK removed it from the group's pending list: a batch redelivered
after a crash, or claimed by a second consumer while the first was only slow, changes nothing twice
(counters and quarantine included). The broker and the store being one server is what makes the
acknowledgement and the write one atomic step.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import msgpack
import numpy as np
import redis

from tala_ray.core.errors import UserError
from tala_ray.data import schema
from tala_ray.features.columns import Columns, take
from tala_ray.features.event_aggregates import LOOKBACK_DAYS
from tala_ray.features.timeutil import DAY_MS
from tala_ray.streaming import packing
from tala_ray.streaming.topic import StreamConfig

WINDOW_MS = LOOKBACK_DAYS * DAY_MS
MAX_SCRIPT_RECORDS = 2_000  # records per script call: bounds the time the server is blocked
OPS = {"e": "events", "l": "loans", "a": "applicants", "q": "quarantined"}

# ARGV: group, window ms, prefix, quarantine stream, consumer, and a msgpack array of 6 strings per record:
# stream ('' = no acknowledgement), entry id, op (e/l/a/q), applicant id, score or field or reason, member or value.
_APPLY = """
local group, window, prefix, quarantine, consumer = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5]
local records = cmsgpack.unpack(ARGV[6])
local counts, touched, skipped = {}, {}, 0
for i = 1, #records, 6 do
  local stream, id, op, applicant, a, b = unpack(records, i, i + 5)
  if stream == '' or redis.call('XACK', stream, group, id) == 1 then
    if op == 'e' then
      redis.call('ZADD', prefix .. ':ev:' .. applicant, a, b)
      touched[applicant] = true
    elseif op == 'q' then
      redis.call('XADD', quarantine, '*', 'reason', a, 'record', b, 'source', stream .. '/' .. id)
    else
      redis.call('HSET', prefix .. ':ap:' .. applicant, a, b)
    end
    counts[op] = (counts[op] or 0) + 1
  else
    skipped = skipped + 1
  end
end
for applicant in pairs(touched) do
  local key = prefix .. ':ev:' .. applicant
  local newest = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')[2]
  redis.call('ZREMRANGEBYSCORE', key, '-inf', string.format('(%.0f', tonumber(newest) - window))
end
local applied = 0
for op, n in pairs(counts) do
  redis.call('HINCRBY', prefix .. ':stats', op, n)
  applied = applied + n
end
if consumer ~= '' and applied > 0 then redis.call('HINCRBY', prefix .. ':stats', 'consumer:' .. consumer, applied) end
return {applied, skipped}
"""


def pack(values: list) -> bytes:
    """msgpack as the server's Lua `cmsgpack` reads it (strings as raw bytes)."""
    return msgpack.packb(values, use_bin_type=False)


@dataclass(frozen=True)
class Op:
    """One record to apply: its stream entry (None for the bootstrap) and what to write."""

    source: tuple[bytes | str, bytes | str] | None
    op: str
    applicant_id: int
    a: bytes | str | int
    b: bytes


def format_fingerprint() -> str:
    """Hash of what the packed records mean: their layouts and the vocabularies their codes index."""
    parts = [str(d.descr) for d in (packing.EVENT, packing.LOAN, packing.ATTRS)]
    parts += [",".join(v) for v in (schema.EVENT_TYPES, schema.APP_CATEGORIES, schema.COUNTRIES, schema.DEVICE_OS)]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


class UnknownApplicantError(UserError):
    """An applicant id has no record in the store."""

    def __init__(self, applicant_ids: list[int]) -> None:
        self.applicant_ids = applicant_ids
        shown = ", ".join(str(i) for i in applicant_ids[:5]) + (" ..." if len(applicant_ids) > 5 else "")
        super().__init__(f"unknown applicant_id: {shown}")


class StoreUnavailableError(Exception):
    """The store's server cannot be reached (a retry later may succeed)."""


class OnlineStore:
    """Writes and reads of the online store on one Valkey server."""

    def __init__(self, client: redis.Redis, config: StreamConfig) -> None:
        self.client = client
        self.config = config
        self.prefix = config.prefix
        self._apply = client.register_script(_APPLY)
        self._checked = False

    def _check_format(self) -> None:
        if self._checked:
            return
        key, fingerprint = f"{self.prefix}:format", format_fingerprint()
        self.client.setnx(key, fingerprint)
        stored = self.client.get(key).decode()
        if stored != fingerprint:
            raise UserError(f"the online store {self.prefix!r} was written in format {stored}, not {fingerprint}")
        self._checked = True

    def apply(self, ops: list[Op], consumer: str = "") -> tuple[int, int]:
        """Apply records (each only if its stream entry is still pending, or unconditionally without one);
        (applied, skipped as already applied)."""
        self._check_format()
        applied = skipped = 0
        for start in range(0, len(ops), MAX_SCRIPT_RECORDS):
            flat: list[bytes | str] = []
            for op in ops[start : start + MAX_SCRIPT_RECORDS]:
                stream, entry = op.source or ("", "")
                flat += [stream, entry, op.op, str(op.applicant_id), str(op.a) if isinstance(op.a, int) else op.a, op.b]
            args = [self.config.group, WINDOW_MS, self.prefix, self.config.quarantine_key, consumer, pack(flat)]
            done, already = self._apply(args=args)
            applied, skipped = applied + done, skipped + already
        return applied, skipped

    def counters(self) -> dict[str, int]:
        """Records applied per kind and quarantined, and per consumer (`consumer:<name>`)."""
        raw = self.client.hgetall(f"{self.prefix}:stats")
        return {OPS.get(k.decode(), k.decode()): int(v) for k, v in raw.items()}

    def raw(self, applicant_ids: list[int]) -> tuple[list[list[bytes]], list[dict[bytes, bytes]]]:
        """Each applicant's event members (time order) and hash."""
        pipe = self.client.pipeline(transaction=False)
        for applicant_id in applicant_ids:
            pipe.zrange(f"{self.prefix}:ev:{applicant_id}", 0, -1)
            pipe.hgetall(f"{self.prefix}:ap:{applicant_id}")
        try:
            self._check_format()
            replies = pipe.execute()
        except (redis.ConnectionError, redis.TimeoutError) as error:
            raise StoreUnavailableError(f"the online store is unavailable: {error}") from error
        return replies[0::2], replies[1::2]

    def online_tables(self, applicant_ids: list[int]) -> dict[str, Columns]:
        """The raw tables `feature_columns` takes (as `features.online.request_columns` gives them, without
        `applications`): applicant i of `applicant_ids` has applicant_id i in every table. Raises
        `UnknownApplicantError` naming the ids without an applicant record, `StoreUnavailableError` when
        the server is down."""
        members, hashes = self.raw(applicant_ids)
        missing = [a for a, h in zip(applicant_ids, hashes, strict=True) if packing.ATTRS_FIELD not in h]
        if missing:
            raise UnknownApplicantError(missing)
        positions = np.arange(len(applicant_ids), dtype=np.int64)
        applicants = {"applicant_id": positions} | packing.unpack_applicants([h[packing.ATTRS_FIELD] for h in hashes])
        events = packing.unpack_events([m for per in members for m in per])
        del events["event_id"]
        loan_values = [[v for k, v in h.items() if k.startswith(packing.LOAN_PREFIX)] for h in hashes]
        loans = {"applicant_id": np.repeat(positions, [len(v) for v in loan_values])}
        loans |= packing.unpack_loans([v for per in loan_values for v in per])
        order = np.lexsort((loans.pop("loan_id"), loans["disbursed_time"], loans["applicant_id"]))
        return {
            "applicants": applicants,
            "events": {"applicant_id": np.repeat(positions, [len(m) for m in members])} | events,
            "loans": take(loans, order),  # hash fields come back in no particular order
        }
