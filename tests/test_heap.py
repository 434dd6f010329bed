"""The serving heap freeze: startup objects leave the collector's view, later garbage is still collected."""

from __future__ import annotations

import gc

from tala_ray.serving.heap import freeze_startup_objects


class Node:
    def __init__(self) -> None:
        self.partner: Node | None = None


def test_startup_objects_are_frozen_and_new_cycles_still_collected() -> None:
    startup = [Node() for _ in range(1_000)]
    try:
        freeze_startup_objects()
        assert gc.get_freeze_count() >= len(startup)
        frozen_before = gc.get_freeze_count()
        first, second = Node(), Node()
        first.partner, second.partner = second, first  # a cycle made after the freeze
        del first, second
        assert gc.collect() >= 2, "garbage made after the freeze is collected"
        assert gc.get_freeze_count() == frozen_before
    finally:
        gc.unfreeze()
