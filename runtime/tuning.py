"""Interpreter settings for a long-lived server worker (issue 6, the benchmark).

Called once per Granian worker, after the lifespan start-up built the state
(``server.app_factory`` passes it to ``InterlockApp(on_ready=...)``), never in
tests that build apps in-process:

* ``gc.freeze()``: everything alive after start-up (the decision table, the
  pydantic models, every imported module) moves to the permanent generation, so
  the collector stops re-scanning it - the full collections that showed up as
  multi-millisecond p99 spikes become short.
* a larger generation-0 threshold: a request allocates a few hundred container
  objects; collecting every 700 allocations ran the collector several times per
  request under load.
* a shorter GIL switch interval: the worker's other threads (the request log's
  acknowledgement reader and span sink, ``to_thread`` reads of the log) would
  otherwise keep the event loop waiting up to 5 ms for the GIL.
"""

from __future__ import annotations

import gc
import sys

#: (gen0, gen1, gen2) thresholds: gen0 in allocations, the others in collections
GC_THRESHOLDS = (10_000, 20, 10)
#: seconds a thread may hold the GIL while another waits for it (CPython default 0.005)
SWITCH_INTERVAL_S = 0.0005


def tune_worker() -> None:
    """Apply the settings above to this process (idempotent)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    sys.setswitchinterval(SWITCH_INTERVAL_S)
