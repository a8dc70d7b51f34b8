"""The hot-path speed-ups of issue 6 change no result: each is checked against the
slow form it replaced (the README's Performance section)."""

from __future__ import annotations

import gc
import random
import sys

import pytest
from interlock.runtime import metrics, tuning, verify
from interlock.runtime.decide import _reason
from interlock.runtime.record import RequestRecord

# one sample per branch of verify._REFUSAL, in its order
BRANCH_SAMPLES = [
    "I am afraid I cannot do this.",
    "Sorry, I won't write that.",
    "As an AI, I don't have opinions.",
    "I am unable to assist with that.",
    "I must respectfully decline.",
    "Je ne suis pas en mesure de vous aider.",
    "Désolé, mais je ne peux pas.",
    "Lo siento, no puedo.",
    "No puedo ayudar con eso.",
    "Es tut mir leid, aber ich kann das nicht.",
    "Ich kann Ihnen dabei nicht helfen.",
    "Mi dispiace, ma non posso.",
    "Non posso aiutarti.",
    "Lamento, mas não posso.",
    "Não posso ajudar.",
    "Het spijt me, maar ik kan dat niet.",
    "Ik kan je daar niet mee helpen.",
    "К сожалению, я не могу это сделать.",
    "Я не могу помочь.",
    "很抱歉，我不能这样做。",
    "我不能回答这个问题。",
    "申し訳ございませんが、お手伝いできません。",
]


def _slow_is_refusal(text: str) -> bool:
    head = text[:verify._HEAD].replace("\u2019", "'").lower()
    return verify._REFUSAL.search(head) is not None


def test_every_refusal_branch_has_a_sample_and_passes_the_cue_filter() -> None:
    branches = verify._REFUSAL.pattern.count("|\\b") + 1  # rough: most branches open \b
    assert len(BRANCH_SAMPLES) >= branches
    for text in BRANCH_SAMPLES:
        assert _slow_is_refusal(text), text
        assert verify.is_refusal(text), text


def test_cue_filter_agrees_with_the_regex_on_random_text() -> None:
    rng = random.Random(6)
    words = ["i", "am", "sorry", "but", "can't", "help", "the", "answer", "is", "42",
             "je", "ne", "peux", "pas", "aider", "я", "не", "могу", "помочь", "unable",
             "to", "assist", "must", "decline", "as", "an", "ai", "no", "puedo"]
    for _ in range(3000):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(1, 12)))
        assert verify.is_refusal(text) == _slow_is_refusal(text), text


def _slow_totals(batch: list[RequestRecord]) -> metrics.Totals:
    """metrics.totals_for as it was: one key per record and bucket."""
    t: metrics.Totals = {}
    fast = metrics.totals_for(batch)
    dur, ttft, over = metrics.HISTOGRAMS
    for r in batch:
        loc = r.locality or "none"
        metrics._observe(t, dur, r.latency_ms / 1000.0, surface=r.surface, locality=loc)
        if r.ttft_ms is not None:
            metrics._observe(t, ttft, r.ttft_ms / 1000.0, locality=loc)
        metrics._observe(t, over, r.overhead_ms / 1000.0)
    # the counters did not change: take them from the new function
    for key, value in fast.items():
        if not key[0].startswith(tuple(h.name for h in metrics.HISTOGRAMS)):
            t[key] = value
    return t


def test_histogram_totals_equal_the_per_record_form() -> None:
    rng = random.Random(7)
    batch = []
    for i in range(300):
        rec = RequestRecord(id=str(i), ts=0.0, surface=rng.choice(["chat", "messages"]),
                            status=rng.choice([200, 502]), table_hash="h", worker=1)
        rec.locality = rng.choice(["local", "cloud", None])
        rec.latency_ms = rng.choice([0.0, 0.1, 1.0, 5.0, 25.0, 250.0, 1e6, rng.random() * 3e4])
        rec.overhead_ms = rng.choice([0.1, 0.25, 0.5, rng.random() * 200])
        rec.ttft_ms = rng.choice([None, 10.0, rng.random() * 5e3])
        batch.append(rec)
    assert metrics.totals_for(batch) == _slow_totals(batch)
    assert metrics.totals_for([]) == {}


@pytest.mark.parametrize("key", ["code.low.public.text", "chat.h\u00e9.x\ty"])
def test_reason_is_header_safe_with_and_without_the_fast_path(key: str) -> None:
    text = _reason(key, [], [], None, None)
    assert all(" " <= ch <= "~" for ch in text)
    assert text.startswith("cell ")
    assert ("?" in text) == (not key.isascii() or not key.isprintable())


def test_tune_worker_freezes_and_raises_thresholds() -> None:
    saved_threshold, saved_switch = gc.get_threshold(), sys.getswitchinterval()
    try:
        tuning.tune_worker()
        assert gc.get_threshold() == tuning.GC_THRESHOLDS
        assert sys.getswitchinterval() == pytest.approx(tuning.SWITCH_INTERVAL_S)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*saved_threshold)
        sys.setswitchinterval(saved_switch)


def test_every_egress_header_part_contains_a_cue() -> None:
    from interlock.runtime import egress

    for part in egress._HEADER_PARTS + egress._KEY_PARTS:
        assert any(cue in part for cue in egress._PART_CUES), part
    assert egress.forbidden_header([(b"host", b"x"), (b"x-upstream-url", b"y")]) == \
        "x-upstream-url"
    assert egress.forbidden_header([(b"content-type", b"x"), (b"user-agent", b"y")]) is None


def _lifespan(app: object) -> list[str]:
    import asyncio

    inbox = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[str] = []

    async def receive() -> dict[str, str]:
        return inbox.pop(0)

    async def send(message: dict[str, str]) -> None:
        sent.append(message["type"])

    try:
        asyncio.run(app({"type": "lifespan"}, receive, send))  # type: ignore[operator]
    except RuntimeError:
        pass
    return sent


def test_on_ready_runs_once_after_a_successful_start_up_only() -> None:
    from interlock.runtime.app import InterlockApp

    calls: list[str] = []

    class Started(InterlockApp):
        async def startup(self) -> object:  # type: ignore[override]
            calls.append("startup")
            return object()

        async def shutdown(self) -> None:
            calls.append("shutdown")

    app = Started(lambda: None, on_ready=lambda: calls.append("ready"))  # type: ignore[arg-type]
    sent = _lifespan(app)
    assert calls == ["startup", "ready", "shutdown"]
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]

    def broken() -> None:
        raise RuntimeError("no table")

    calls.clear()
    app = InterlockApp(broken, on_ready=lambda: calls.append("ready"))  # type: ignore[arg-type]
    sent = _lifespan(app)
    assert calls == [] and sent == ["lifespan.startup.failed"]
