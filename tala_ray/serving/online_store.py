"""The online-store step's logic: applications decided by applicant id read their applicant's raw
tables from the online store (`streaming.store`), and events pushed to `POST /v1/events` are checked
with the consumers' rules and appended to the event topic (`streaming.publisher`).

The step answers with values, never raises for an unknown applicant or a store that is down: a Ray
handle call would re-raise a wrapped exception, and the ingress maps `StoreRead` to 404 or 503 itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, NotRequired

import pyarrow as pa
import redis
from fastapi import HTTPException
from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import TypedDict

from tala_ray.core.settings import get_settings
from tala_ray.data import bounds, schema, validation
from tala_ray.features.columns import Columns
from tala_ray.features.online import AppCategory, ApplicationByIdRequest, EventType, Timestamp, application_columns
from tala_ray.features.timeutil import datetime_ms
from tala_ray.streaming.publisher import append_table
from tala_ray.streaming.server import running_server
from tala_ray.streaming.store import OnlineStore, StoreUnavailableError, UnknownApplicantError
from tala_ray.streaming.topic import StreamConfig, connect

RawTables = dict[str, Columns]
RETRY_AFTER_S = 1
MAX_EVENTS_PER_REQUEST = 10_000


class OnlineStoreConfig(BaseModel):
    """Where the online store and the event topic are: `url` (else `TALA_STREAM_URL`, else the embedded
    server running in `TALA_STREAM_DIR`; serving never starts one) and the keys' prefix."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str | None = Field(None, description="redis:// URL of the store; default TALA_STREAM_URL or the embedded one.")
    prefix: str = Field("tala", min_length=1, description="Key prefix of the stream and the store.")


def resolve_url(config: OnlineStoreConfig) -> str | None:
    """The store's URL, or None when none is configured and no embedded server runs."""
    settings = get_settings()
    if config.url or settings.stream_url:
        return config.url or settings.stream_url
    embedded = running_server(Path(settings.stream_dir))
    return embedded.url if embedded else None


@dataclass
class StoreRead:
    """The raw tables of applications read by id, or why not: ids without a record, or the store down."""

    tables: RawTables | None = None
    missing: list[int] = field(default_factory=list)
    unavailable: str | None = None


def store_error(unavailable: str | None, missing: list[int] | None = None) -> HTTPException:
    """The answer to a failed read or append: 503 with `Retry-After` when the store is down, else 404
    naming the unknown applicant ids."""
    if unavailable is not None:
        detail = [{"loc": ["online_store"], "msg": unavailable}]
        return HTTPException(status_code=503, detail=detail, headers={"Retry-After": str(RETRY_AFTER_S)})
    shown = ", ".join(str(i) for i in (missing or [])[:20])
    return HTTPException(
        status_code=404, detail=[{"loc": ["body", "applicant_id"], "msg": f"unknown applicant_id: {shown}"}]
    )


class StoreClient:
    """The store and topic of one server, connected on first use (a replica may start before the store)."""

    def __init__(self, config: OnlineStoreConfig) -> None:
        self._config = config
        self._store: OnlineStore | None = None

    def _connected(self) -> OnlineStore:
        if self._store is None:
            url = resolve_url(self._config)
            if url is None:
                raise StoreUnavailableError("no online store: set TALA_STREAM_URL or start `tala-ray stream` first")
            client = connect(url, retries=0)  # answer fast: the caller's client retries after Retry-After
            self._store = OnlineStore(client, StreamConfig(url=url, prefix=self._config.prefix))
        return self._store

    def read(self, requests: list[ApplicationByIdRequest]) -> StoreRead:
        """The raw tables of the requests (request i is applicant i and application i)."""
        try:
            tables = self._connected().online_tables([r.applicant_id for r in requests])
        except UnknownApplicantError as error:
            return StoreRead(missing=error.applicant_ids)
        except StoreUnavailableError as error:
            return StoreRead(unavailable=str(error))
        return StoreRead(tables=tables | {"applications": application_columns([r.application for r in requests])})

    def publish(self, table: pa.Table) -> str | None:
        """Append the events (a contract-schema table) to the topic; None once the broker has them all
        (durable: `appendfsync always`), else why not."""
        try:
            store = self._connected()
            append_table(
                store.client, store.config.model_copy(update={"partitions": _partitions(store)}), "event", table
            )
        except StoreUnavailableError as error:
            return str(error)
        except (redis.ConnectionError, redis.TimeoutError) as error:
            return f"the event stream is unavailable: {error}"
        return None


def _partitions(store: OnlineStore) -> int:
    """The topic's partition count as recorded on the server (the default for a new topic)."""
    stored = store.client.hget(store.config.topics_key, store.config.topic)
    return int(stored) if stored is not None else store.config.partitions


class PushedEvent(TypedDict):
    """One raw event an app pushes (the `events` table's contract)."""

    __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]

    event_id: Annotated[int, Field(ge=0, le=2**63 - 1, description="Unique: re-sending an event changes nothing.")]
    applicant_id: Annotated[int, Field(ge=0, le=2**63 - 1)]
    event_time: Timestamp
    event_type: EventType
    amount: NotRequired[Annotated[float | None, Field(**bounds.bound("events", "amount").constraints())]]
    app_category: NotRequired[AppCategory | None]


class EventsRequest(BaseModel):
    """A batch of raw events for the event topic."""

    model_config = ConfigDict(extra="forbid")

    events: list[PushedEvent] = Field(min_length=1, max_length=MAX_EVENTS_PER_REQUEST)


class EventsResponse(BaseModel):
    model_config = ConfigDict(extra="forbid")

    accepted: int = Field(description="Events appended to the topic (durable on the broker).")


def events_table(request: EventsRequest) -> pa.Table:
    """The events as the `events` contract table."""
    events = request.events
    columns = {
        "event_id": pa.array([e["event_id"] for e in events], pa.int64()),
        "applicant_id": pa.array([e["applicant_id"] for e in events], pa.int64()),
        "event_time": pa.array([datetime_ms(e["event_time"]) for e in events], pa.int64()).cast(schema.TS),
        "event_type": pa.array([e["event_type"] for e in events], pa.string()),
        "amount": pa.array([e.get("amount") for e in events], pa.float64()),
        "app_category": pa.array([e.get("app_category") for e in events], pa.string()),
    }
    return pa.Table.from_pydict(columns, schema=schema.EVENTS)


def event_problems(table: pa.Table) -> list[dict[str, object]]:
    """422 details (FastAPI's shape) of the events the consumers would quarantine (their rules, `data.validation`)."""
    _, bad = validation.split_valid("events", table.append_column("_row", pa.array(range(table.num_rows))))
    rows, details = bad.column("_row").to_pylist(), bad.column(validation.DETAIL).to_pylist()
    return [{"loc": ["body", "events", row], "msg": detail} for row, detail in zip(rows, details, strict=True)]
