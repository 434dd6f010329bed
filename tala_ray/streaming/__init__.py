"""The streaming path: raw records flow through a topic into the online store that decisions read by id.

```
publisher (world replay; later POST /v1/events) ─► topic `raw`: N partitions keyed by applicant id
   ─► consumer group `online-store`: Ray actors (supervisor scales them with the backlog)
        decode ─► the batch path's validation rules ─► bad: quarantine stream, with the reason
   ─► online store: per applicant events (180-day window), loans, attributes
   ─► OnlineStore.online_tables(ids) ─► the raw tables `feature_columns` takes ─► the one feature code
```

Modules: `server` (embedded Valkey), `topic` (config, partitions, group, offsets), `partitioner`, `codec`
(wire records), `packing` (store records), `store` (writes and reads), `ingest` (validation to writes),
`publisher`, `consumer`, `supervisor`, `status`, `bootstrap`.

One Valkey server is both the broker (streams) and the store (sorted sets and hashes): Feast's usual
online store, embedded by default, and the reason a record's acknowledgement and its store write can be
one atomic script (see `store`): delivery is at least once, the store's state is exactly once.

Mapping to Kafka (confluent-kafka), for a cluster where Kafka is the log and Valkey only the store:

| here (Valkey)                                   | Kafka / confluent-kafka                                     |
| ----------------------------------------------- | ----------------------------------------------------------- |
| topic `raw` = streams `<prefix>:raw:<p>`        | topic `raw` with N partitions                               |
| partition = murmur2(str(applicant_id)) % N      | the default partitioner with `key=str(applicant_id)`        |
| entry field `v` = JSON record (`codec`)         | message value (JSON; Avro/Protobuf with a schema registry)  |
| offset = entry id `<ms>-<seq>`                  | offset (int64 per partition); entry ms = LogAppendTime      |
| XADD batch in one script (`publisher`)          | `Producer.produce` + `flush`, `acks=all`, retries           |
| XGROUP group `online-store`                     | `group.id=online-store`                                     |
| XREADGROUP (each entry to one consumer)         | `Consumer.consume` (each partition to one consumer)         |
| XACK in the store-write script                  | `commit(offsets)` after the store write (at least once)     |
| XAUTOCLAIM after `claim_idle_ms`                | rebalance after `session.timeout.ms`: partitions reassigned |
| XGROUP SETID (`topic.seek`)                     | `Consumer.seek` / `assign` with `TopicPartition` offsets    |
| `topic.offset_before_time` (bisects on time)    | `Consumer.offsets_for_times`                                |
| group lag + pending (`status`)                  | consumer lag (committed vs high watermark)                  |
| quarantine stream `<prefix>:raw:quarantine`     | a dead-letter topic                                         |
| AOF with `appendfsync always`                   | replication factor, `min.insync.replicas`                   |

With Kafka the store write is no longer atomic with the commit: a redelivered batch is written again.
The store stays exact (its writes are idempotent by event id, loan id and applicant id) but the
counters in `<prefix>:stats` and the dead-letter topic become at least once.
"""
