"""Prometheus metrics, computed from the store (``GET /metrics``).

Why from the store and not prometheus-client's in-process counters: Granian runs
several worker processes and a scrape reaches only one of them.
prometheus-client's multiprocess mode would need a shared directory set before
import and files per worker; the store is already shared.  So the log's writer
adds each batch's deltas to ``metric_totals`` (:func:`totals_for`) in the same
transaction as the batch's rows, and ``/metrics`` reads those totals: every worker
reports the same numbers, counters survive restarts and never go down when
retention deletes old rows.  The price: a sample lags the request by up to one
flush interval (0.25 s by default).

Families (``_total`` is added by the exposition for counters):

=============================================  ==========================================
interlock_requests_total                        surface, cell, locality, status
interlock_upstream_attempts_total               provider, model, outcome
interlock_tokens_total                          direction (input|output), locality
interlock_cost_usd_total                        provider
interlock_baseline_cost_usd_total               (cloud-only baseline of the same requests)
interlock_savings_usd_total                     (baseline - cost)
interlock_fallbacks_total                       cell
interlock_escalations_total                     cell
interlock_recorder_dropped_records_total        (records dropped: queue full)
interlock_request_duration_seconds              histogram: surface, locality
interlock_time_to_first_token_seconds           histogram: locality (streams)
interlock_router_overhead_seconds               histogram: the router's own time
interlock_table_info                            gauge: hash, profile (this worker's table)
interlock_recorder_queue_records                gauge: records waiting (this worker)
=============================================  ==========================================

``locality`` is ``local``/``cloud`` for the model that answered, ``none`` when
none did; ``status`` is the HTTP status code.
"""

from __future__ import annotations

import bisect
import functools
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import orjson
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from interlock.runtime.record import Recorder, RequestRecord

Totals = dict[tuple[str, str], float]

DURATION_BUCKETS: Final = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
TTFT_BUCKETS: Final = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
OVERHEAD_BUCKETS: Final = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1)


@dataclass(frozen=True, slots=True)
class Family:
    name: str
    doc: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()  # non-empty: a histogram


COUNTERS: Final = (
    Family("interlock_requests", "Requests served, by surface, cell, locality of the model "
           "that answered (none: no answer) and HTTP status.",
           ("surface", "cell", "locality", "status")),
    Family("interlock_upstream_attempts", "Upstream attempts, by provider, model and outcome "
           "(ok, error, skipped).", ("provider", "model", "outcome")),
    Family("interlock_tokens", "Tokens processed, by direction (input, output) and locality.",
           ("direction", "locality")),
    Family("interlock_cost_usd", "Estimated spend in US dollars (table prices), by provider.",
           ("provider",)),
    Family("interlock_baseline_cost_usd", "What the same requests would have cost on each "
           "cell's cloud-only baseline model, in US dollars."),
    Family("interlock_savings_usd", "Baseline cost minus estimated spend, in US dollars."),
    Family("interlock_fallbacks", "Requests answered after at least one failed attempt.",
           ("cell",)),
    Family("interlock_escalations", "Requests answered by an escalation candidate.", ("cell",)),
    Family("interlock_recorder_dropped_records", "Request records dropped because the "
           "writer's queue was full."),
)
HISTOGRAMS: Final = (
    Family("interlock_request_duration_seconds", "Request latency, arrival to last byte.",
           ("surface", "locality"), DURATION_BUCKETS),
    Family("interlock_time_to_first_token_seconds", "Streams: time until the upstream's "
           "first delta.", ("locality",), TTFT_BUCKETS),
    Family("interlock_router_overhead_seconds", "Time spent in the router itself "
           "(upstream time excluded).", (), OVERHEAD_BUCKETS),
)


def _key(name: str, **labels: str) -> tuple[str, str]:
    return _key_of(name, tuple(labels.items()))


@functools.lru_cache(maxsize=4096)
def _key_of(name: str, labels: tuple[tuple[str, str], ...]) -> tuple[str, str]:
    # label sets repeat endlessly (a few cells, statuses, providers): serialising
    # them once instead of per record and bucket halved the writer's work
    return name, orjson.dumps(dict(labels), option=orjson.OPT_SORT_KEYS).decode()


def _add(totals: Totals, key: tuple[str, str], value: float) -> None:
    totals[key] = totals.get(key, 0.0) + value


def _observe(totals: Totals, family: Family, value: float, **labels: str) -> None:
    for le in family.buckets:
        if value <= le:
            _add(totals, _key(family.name + "_bucket", le=_le(le), **labels), 1.0)
    _add(totals, _key(family.name + "_bucket", le="+Inf", **labels), 1.0)
    _add(totals, _key(family.name + "_sum", **labels), value)
    _add(totals, _key(family.name + "_count", **labels), 1.0)


def _le(value: float) -> str:
    return repr(float(value))


# How totals_for stays cheap (issue 6: it runs per record in the log's writer, on a
# CPU it shares with the workers): a record only adds to a dict keyed by its *raw* label values,
# tagged with a small int for the family; the stored keys (name, labels as JSON)
# are made once per distinct label set of the batch, from caches.  Per key, the
# values are still added in batch order, so the sums are the same floats as
# when every record added to the stored key directly (``_observe``).

#: the counters whose raw keys totals_for collects: (name, label names), by tag
_COUNTED: Final = (
    ("interlock_requests", ("surface", "cell", "locality", "status")),
    ("interlock_upstream_attempts", ("provider", "model", "outcome")),
    ("interlock_tokens", ("direction", "locality")),
    ("interlock_cost_usd", ("provider",)),
    ("interlock_baseline_cost_usd", ()),
    ("interlock_savings_usd", ()),
    ("interlock_fallbacks", ("cell",)),
    ("interlock_escalations", ("cell",)),
)
_REQUESTS, _ATTEMPTS, _TOKENS, _COST, _BASELINE, _SAVINGS, _FALLBACKS, _ESCALATIONS = range(8)
_BASELINE_RAW: Final = (_BASELINE,)
_SAVINGS_RAW: Final = (_SAVINGS,)
#: the histograms' raw keys start with their index in HISTOGRAMS
_DURATION, _TTFT, _OVERHEAD = range(3)
_OVERHEAD_RAW: Final = (_OVERHEAD,)

#: a histogram series' stored keys: one per finite bucket, then +Inf, _sum, _count
_SeriesKeys = tuple[tuple[tuple[str, str], ...], tuple[str, str], tuple[str, str],
                    tuple[str, str]]


@functools.lru_cache(maxsize=4096)
def _counter_key(raw: tuple[Any, ...]) -> tuple[str, str]:
    """The stored key of a raw counter key ``(tag, *label values)``."""
    name, labels = _COUNTED[raw[0]]
    return _key_of(name, tuple(zip(labels, map(str, raw[1:]), strict=True)))


@functools.lru_cache(maxsize=1024)
def _series_keys(raw: tuple[Any, ...]) -> _SeriesKeys:
    """The stored keys of a raw histogram key ``(index, *label values)``."""
    family = HISTOGRAMS[raw[0]]
    labels = tuple(zip(family.labels, map(str, raw[1:]), strict=True))
    bucket = family.name + "_bucket"
    return (tuple(_key_of(bucket, (("le", _le(le)), *labels)) for le in family.buckets),
            _key_of(bucket, (("le", "+Inf"), *labels)),
            _key_of(family.name + "_sum", labels), _key_of(family.name + "_count", labels))


def totals_for(batch: Sequence[RequestRecord], *, dropped: int = 0) -> Totals:
    """The counter and histogram deltas of one batch of records (the writer process;
    ``batch`` may hold any objects with the record's attribute names)."""
    counts: dict[tuple[Any, ...], float] = {}
    count = counts.get
    #: raw key -> [observations per bucket slot (last but one: +Inf only), sum]
    hist: dict[tuple[Any, ...], list[float]] = {}
    series = hist.get
    bisect_left = bisect.bisect_left
    for r in batch:
        loc = r.locality or "none"
        cell = r.cell or "none"
        k: tuple[Any, ...] = (_REQUESTS, r.surface, cell, loc, r.status)
        counts[k] = count(k, 0.0) + 1.0
        for a in r.attempts:
            k = (_ATTEMPTS, a["provider"], a["model"], a["outcome"])
            counts[k] = count(k, 0.0) + 1.0
        if r.tokens_in:
            k = (_TOKENS, "input", loc)
            counts[k] = count(k, 0.0) + r.tokens_in
        if r.tokens_out:
            k = (_TOKENS, "output", loc)
            counts[k] = count(k, 0.0) + r.tokens_out
        if r.provider and r.cost_usd:
            k = (_COST, r.provider)
            counts[k] = count(k, 0.0) + r.cost_usd
        if r.baseline_usd:
            counts[_BASELINE_RAW] = count(_BASELINE_RAW, 0.0) + r.baseline_usd
        if r.saved_usd:
            counts[_SAVINGS_RAW] = count(_SAVINGS_RAW, 0.0) + r.saved_usd
        if r.fallback:
            k = (_FALLBACKS, cell)
            counts[k] = count(k, 0.0) + 1.0
        if r.escalated:
            k = (_ESCALATIONS, cell)
            counts[k] = count(k, 0.0) + 1.0
        # histograms: one count in the slot of the first bucket with value <= le
        value = r.latency_ms / 1000.0
        k = (_DURATION, r.surface, loc)
        acc = series(k)
        if acc is None:
            acc = hist[k] = [0.0] * (len(DURATION_BUCKETS) + 2)
        acc[bisect_left(DURATION_BUCKETS, value)] += 1.0
        acc[-1] += value
        if r.ttft_ms is not None:
            value = r.ttft_ms / 1000.0
            k = (_TTFT, loc)
            acc = series(k)
            if acc is None:
                acc = hist[k] = [0.0] * (len(TTFT_BUCKETS) + 2)
            acc[bisect_left(TTFT_BUCKETS, value)] += 1.0
            acc[-1] += value
        value = r.overhead_ms / 1000.0
        acc = series(_OVERHEAD_RAW)
        if acc is None:
            acc = hist[_OVERHEAD_RAW] = [0.0] * (len(OVERHEAD_BUCKETS) + 2)
        acc[bisect_left(OVERHEAD_BUCKETS, value)] += 1.0
        acc[-1] += value
    t: Totals = {}
    for raw, delta in counts.items():
        _add(t, _counter_key(raw), delta)
    for raw, acc in hist.items():
        _spill(t, _series_keys(raw), acc)
    if dropped:
        _add(t, _key("interlock_recorder_dropped_records"), float(dropped))
    return t


def _spill(totals: Totals, keys: _SeriesKeys, acc: list[float]) -> None:
    """The same deltas ``_observe`` gives, once per histogram series of a batch."""
    buckets, inf, sum_key, count_key = keys
    cumulative = 0.0
    for key, n in zip(buckets, acc, strict=False):
        cumulative += n
        if cumulative:
            _add(totals, key, cumulative)
    count = cumulative + acc[-2]
    _add(totals, inf, count)
    _add(totals, sum_key, acc[-1])
    _add(totals, count_key, count)


class StoreCollector(Collector):
    """Reads ``metric_totals`` at each scrape and builds the metric families."""

    def __init__(self, rows: Iterable[tuple[str, str, float]],
                 recorder: Recorder | None = None) -> None:
        self._rows = list(rows)
        self._recorder = recorder

    def collect(self) -> Iterator[Metric]:
        by_name: dict[str, list[tuple[dict[str, str], float]]] = {}
        for name, labels, value in self._rows:
            by_name.setdefault(name, []).append((orjson.loads(labels), value))
        for fam in COUNTERS:
            yield _counter(fam, by_name.get(fam.name, []))
        for fam in HISTOGRAMS:
            yield _histogram(fam, by_name)
        yield from self._live()

    def _live(self) -> Iterator[Metric]:
        rec = self._recorder
        if rec is None:
            return
        info = GaugeMetricFamily("interlock_table_info", "The decision table this worker "
                                 "serves (value 1).", labels=["hash", "profile"])
        info.add_metric([rec.table_hash, rec.table.profile], 1.0)
        yield info
        store = rec.store
        queued = GaugeMetricFamily("interlock_recorder_queue_records",
                                   "Request records waiting for the writer (this worker).")
        queued.add_metric([], float(store.pending if store is not None else 0))
        yield queued
        if store is None:
            return
        up = GaugeMetricFamily("interlock_recorder_writer_up", "1 while this worker's "
                               "request-log writer process runs, 0 while it is restarted.")
        up.add_metric([], 1.0 if store.writer_up else 0.0)
        yield up
        failed = CounterMetricFamily("interlock_recorder_failed_records",
                                     "Request records lost by this worker's log since it "
                                     "started (a refused batch, a writer that died).")
        failed.add_metric([], float(store.failed))
        yield failed


def _counter(fam: Family, samples: list[tuple[dict[str, str], float]]) -> Metric:
    m = CounterMetricFamily(fam.name, fam.doc, labels=list(fam.labels) if fam.labels else None)
    if not fam.labels and not samples:
        m.add_metric([], 0.0)
    for labels, value in sorted(samples, key=lambda s: sorted(s[0].items())):
        m.add_metric([labels.get(n, "") for n in fam.labels], value)
    return m


def _histogram(fam: Family, by_name: dict[str, list[tuple[dict[str, str], float]]]) -> Metric:
    m = HistogramMetricFamily(fam.name, fam.doc, labels=list(fam.labels))
    series: dict[tuple[str, ...], dict[str, float]] = {}
    for labels, value in by_name.get(fam.name + "_bucket", []):
        key = tuple(labels.get(n, "") for n in fam.labels)
        series.setdefault(key, {})[labels["le"]] = value
    sums = {tuple(lab.get(n, "") for n in fam.labels): v
            for lab, v in by_name.get(fam.name + "_sum", [])}
    for key in sorted(series):
        buckets = series[key]
        ordered = [(_le(le), buckets.get(_le(le), 0.0)) for le in fam.buckets]
        ordered.append(("+Inf", buckets.get("+Inf", 0.0)))
        m.add_metric(list(key), ordered, sums.get(key, 0.0))
    return m


def read_totals(conn: sqlite3.Connection) -> list[tuple[str, str, float]]:
    return [(r[0], r[1], r[2]) for r in
            conn.execute("SELECT name, labels, value FROM metric_totals ORDER BY name, labels")]


def render(rows: Iterable[tuple[str, str, float]], recorder: Recorder | None = None) -> bytes:
    """The Prometheus text exposition of the given totals (plus this worker's gauges)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(rows, recorder))
    return generate_latest(registry)
