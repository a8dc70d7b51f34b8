"""explain-route's "what would have to change": every claim it makes is checked by
re-scoring with the compiler's own scoring function.

For the runner-up of every score-ordered cell of several profiles' tables: a
suggested quality score, price or latency for it, or a suggested objective
weight, must actually make it outscore the winner - and the change must be
necessary (the gap is real).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from interlock.compiler import api, builtin, explain, score
from interlock.compiler.model import Objectives, Profile
from interlock.compiler.schema import parse
from interlock.runtime.table import Candidate, Cell, DecisionTable, ModelEntry, Price, Speed

CONFIG = """\
profile: {profile}
providers:
  ollama:
    models: ["qwen3:8b", "qwen2.5-coder:7b", "gemma3:12b", "nomic-embed-text"]
  openai: {{}}
  anthropic: {{}}
"""


def compiled(profile: str) -> tuple[DecisionTable, Profile]:
    result = api.compile_text(CONFIG.format(profile=profile), environ={}, discovered={})
    assert result.table is not None, [d.format() for d in result.diagnostics]
    prof, diags = parse("profile", builtin.load_builtin_profile(profile), Profile)
    assert prof is not None, diags
    return result.table, prof


def rescore(table: DecisionTable, prof: Profile, cell: Cell, model: ModelEntry,
            objectives: Objectives | None = None) -> float:
    weights = score.cell_weights(objectives or prof.objectives, cell.complexity)
    task = cell.task if cell.task != "embeddings" else "general"
    s, _ = score.terms_for(model, task, cell.complexity, weights, prof.local)
    return s


def pairs(table: DecisionTable) -> Iterator[tuple[Cell, Candidate, Candidate]]:
    for cell in table.cells.values():
        if cell.policy.strategy != "score" or len(cell.chain) < 2:
            continue
        winner = cell.chain[0]
        other = explain.runner_up(cell.chain, winner)
        if other is None or winner.terms.preference or other.terms.preference:
            continue
        if winner.score <= other.score:
            continue  # placed by a rule, not by score (reported as such)
        yield cell, winner, other


@pytest.mark.parametrize("profile", ["balanced", "quality", "privacy-first"])
def test_every_suggestion_flips_the_order(profile: str) -> None:
    table, prof = compiled(profile)
    checked = {"quality": 0, "cost": 0, "latency": 0, "weight": 0}
    for cell, winner, other in pairs(table):
        wm, om = table.models[winner.model], table.models[other.model]
        # the recomputed scores match the table (the formulas agree)
        assert rescore(table, prof, cell, om) == pytest.approx(other.score, abs=2e-4)
        gap, changes = explain.what_would_change(table, cell, winner, other)
        assert gap == pytest.approx(winner.score - other.score, abs=1e-9)
        for ch in changes:
            if ch.kind == "term" and ch.term in ("quality", "cost", "latency"):
                assert ch.target is not None
                if ch.term == "quality":
                    task = cell.task if cell.task != "embeddings" else "general"
                    q = dict(om.quality)
                    q[task] = ch.target + 0.05  # the text rounds to a whole number
                    moved = om.model_copy(update={"quality": q})
                elif ch.term == "cost":
                    moved = om.model_copy(update={"price": Price(input=ch.target,
                                                                 output=ch.target)})
                else:
                    moved = om.model_copy(update={"speed": Speed(ttft_ms=ch.target,
                                                                 tokens_per_s=1e12)})
                assert rescore(table, prof, cell, moved) > winner.score, (cell.key, ch.text)
                checked[ch.term] += 1
            elif ch.kind == "weight":
                assert ch.target is not None
                o = prof.objectives
                base = {"quality": o.quality, "cost": o.cost, "latency": o.latency}
                total = sum(base.values())
                norm = {k: v / total for k, v in base.items()}
                rest = 1 - norm[ch.term]
                new = {k: (ch.target if k == ch.term else v * (1 - ch.target) / rest)
                       for k, v in norm.items()}
                objectives = Objectives(**new)
                assert rescore(table, prof, cell, om, objectives) > \
                    rescore(table, prof, cell, wm, objectives), (cell.key, ch.text)
                checked["weight"] += 1
    assert checked["weight"] > 3 and sum(checked.values()) > 10, checked  # not vacuous


def test_rule_preference_and_ties_are_explained_not_computed() -> None:
    table, _ = compiled("balanced")
    ruled = [c for c in table.cells.values()
             if c.chain and c.chain[0].terms.preference > 0 and len(c.chain) > 1]
    assert ruled, "balanced has prefer rules"
    cell = ruled[0]
    other = explain.runner_up(cell.chain, cell.chain[0])
    assert other is not None
    _, changes = explain.what_would_change(table, cell, cell.chain[0], other)
    assert [c.kind for c in changes] == ["rule"]
    assert "prefer" in changes[0].text


def test_a_local_winner_can_lose_its_bonus() -> None:
    table, _ = compiled("balanced")
    cell = table.cells["general.low.public.text"]
    winner = cell.chain[0]
    cloud = next(c for c in cell.chain if not c.local and c.role != "escalation")
    assert winner.local
    _, changes = explain.what_would_change(table, cell, winner, cloud)
    bonus = [c for c in changes if c.kind == "profile"]
    assert bonus and "local.bonus" in bonus[0].text
    assert bonus[0].amount == pytest.approx(
        winner.terms.locality - (winner.score - cloud.score) - explain._EPS, abs=1e-6)
