"""Kafka's default partitioner on numpy: murmur2 of the key's bytes, made positive, modulo the partitions.

The key is the applicant id's decimal string, so a Kafka producer keyed by `str(applicant_id)` puts
every applicant on the same partition as this code does (the test checks kafka-python's reference
values from the Java client). Python's `hash()` is salted per process and would not do.
"""

from __future__ import annotations

import numpy as np

_SEED = np.uint32(0x9747B28C)
_M = np.uint32(0x5BD1E995)


def murmur2(data: np.ndarray) -> np.ndarray:
    """Java `Utils.murmur2` (as uint32) of each row of a (keys, length) uint8 matrix of equal-length keys."""
    count, length = data.shape
    data = data.astype(np.uint32)
    with np.errstate(over="ignore"):
        h = np.full(count, _SEED ^ np.uint32(length), dtype=np.uint32)
        tail = length - length % 4
        for i in range(0, tail, 4):
            k = data[:, i] | (data[:, i + 1] << 8) | (data[:, i + 2] << 16) | (data[:, i + 3] << 24)
            k = k * _M
            k ^= k >> 24
            h = (h * _M) ^ (k * _M)
        if length % 4:
            for j in range(length % 4):
                h ^= data[:, tail + j] << (8 * j)
            h = h * _M
        h ^= h >> 13
        h = h * _M
        h ^= h >> 15
    return h


def key_partitions(keys: list[bytes], partitions: int) -> np.ndarray:
    """Partition of each key: `(murmur2(key) & 0x7fffffff) % partitions`, as Kafka's producer picks it."""
    out = np.empty(len(keys), dtype=np.int64)
    lengths = np.fromiter(map(len, keys), dtype=np.int64, count=len(keys))
    for length in np.unique(lengths):
        rows = np.flatnonzero(lengths == length)
        data = np.frombuffer(b"".join(keys[i] for i in rows), dtype=np.uint8).reshape(len(rows), int(length))
        out[rows] = (murmur2(data) & np.uint32(0x7FFFFFFF)).astype(np.int64) % partitions
    return out


def applicant_partitions(applicant_ids: np.ndarray, partitions: int) -> np.ndarray:
    """Partition of each applicant id (its decimal string is the key)."""
    ids = np.asarray(applicant_ids, dtype=np.int64)
    unique, inverse = np.unique(ids, return_inverse=True)
    return key_partitions([str(int(i)).encode() for i in unique], partitions)[inverse]
