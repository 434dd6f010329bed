"""The serving heap: startup objects frozen, young collections rarer, later garbage still collected."""

from __future__ import annotations

import gc

from tala_ray.serving.heap import YOUNG_COLLECTION_THRESHOLD, prepare_heap_for_serving


class Node:
    def __init__(self) -> None:
        self.partner: Node | None = None


def test_startup_objects_are_frozen_and_new_cycles_still_collected() -> None:
    threshold = gc.get_threshold()
    startup = [Node() for _ in range(1_000)]
    try:
        prepare_heap_for_serving()
        assert gc.get_freeze_count() >= len(startup)
        assert gc.get_threshold() == (YOUNG_COLLECTION_THRESHOLD, *threshold[1:])
        first, second = Node(), Node()
        first.partner, second.partner = second, first  # a cycle made after the freeze
        del first, second
        assert gc.collect() >= 2, "garbage made after the freeze is collected"
        # a collection leaves the startup objects frozen (the count may fall: other threads can
        # free frozen objects by reference counting)
        assert gc.get_freeze_count() >= len(startup)
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
