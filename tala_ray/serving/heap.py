"""Keeping the garbage collector off a serving process's long-lived startup objects."""

from __future__ import annotations

import gc


def freeze_startup_objects() -> None:
    """Collect once, then move every object alive now (imported modules, loaded models, caches)
    into the collector's permanent generation.

    Serving makes many short-lived dicts and lists a request; each time that triggers a full
    collection, CPython walks the whole heap, and a replica's heap (Ray, pandas, LightGBM, EconML
    and the models) is large. A batch of 1,000 decisions spent ~15 us a decision on that. Frozen
    objects are still freed when their last reference goes; only reference cycles among them
    would stay.
    """
    gc.collect()
    gc.freeze()
