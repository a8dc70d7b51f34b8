"""Request-level routing controls in OpenRouter's shape, validated.

``parse_controls(req.controls, table)`` turns the client's ``models``,
``allowed_models`` and ``provider: {order, only, ignore, sort, allow_fallbacks,
require_parameters, max_price, data_collection, zdr, ...}`` into a frozen
:class:`Controls`; any bad value raises ``RequestError(400)`` naming the field
(``provider.order[0]``, ``provider.max_price.prompt`` ...).  ``decide`` applies
them (see its docstring for the semantics kept from OpenRouter).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from interlock.runtime.errors import RequestError
from interlock.runtime.table import DecisionTable

__all__ = ["Controls", "SortBy", "did_you_mean", "parse_controls"]

SortBy = Literal["price", "latency", "throughput"]
_SORTS: Final = ("price", "latency", "throughput")
_PROVIDER_KEYS: Final = frozenset({
    "order", "only", "ignore", "sort", "allow_fallbacks", "require_parameters", "max_price",
    "data_collection", "zdr", "quantizations", "enforce_distillable_text",
    "preferred_min_throughput", "preferred_max_latency",
})
_PRICE_KEYS: Final = ("prompt", "completion", "request", "image")
_PERCENTILES: Final = frozenset({"p50", "p75", "p90", "p99"})
_CONTROL_KEYS: Final = frozenset({"models", "allowed_models", "provider"})


@dataclass(frozen=True, slots=True)
class Controls:
    """Validated request-level controls (OpenRouter's ``models`` / ``provider`` shape)."""

    models: tuple[str, ...] = ()
    allowed_models: tuple[str, ...] = ()
    order: tuple[str, ...] = ()
    only: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    sort: SortBy | None = None
    allow_fallbacks: bool = True
    require_parameters: bool = False
    max_price_prompt: float | None = None
    max_price_completion: float | None = None
    deny_data_collection: bool = False
    zdr: bool = False
    #: sort partition: "model" keeps a client's models list in its order
    sort_partition: Literal["model", "none"] = "model"


#: the controls of a request that sets none (shared: Controls is frozen)
NO_CONTROLS: Final = Controls()


def _str_list(value: Any, param: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise RequestError(400, f"{param} must be a list of non-empty strings", param=param)
    return tuple(value)


def _providers(value: Any, param: str, table: DecisionTable) -> tuple[str, ...]:
    names = _str_list(value, param)
    lower = {p.lower(): p for p in table.providers}
    out: list[str] = []
    for i, n in enumerate(names):
        name = n if n in table.providers else lower.get(n.lower())
        if name is None:
            hint = did_you_mean(n, table.providers)
            raise RequestError(400, f"{param}[{i}]: unknown provider {n!r}{hint}",
                               param=f"{param}[{i}]")
        out.append(name)
    return tuple(out)


def _preference(value: Any, param: str) -> None:
    """``preferred_min_throughput`` / ``preferred_max_latency``: a number or percentiles."""
    if isinstance(value, Mapping):
        for key, v in value.items():
            if key not in _PERCENTILES:
                raise RequestError(400, f"{param}: unknown percentile {key!r} "
                                   "(p50, p75, p90, p99)", param=f"{param}.{key}")
            _number(v, f"{param}.{key}")
        return
    _number(value, param)


def _number(value: Any, param: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise RequestError(400, f"{param} must be a non-negative number", param=param)
    return float(value)


def _bool(value: Any, param: str) -> bool:
    if not isinstance(value, bool):
        raise RequestError(400, f"{param} must be true or false", param=param)
    return value


def _price(value: Any, param: str) -> float:
    if isinstance(value, str):
        try:
            value = float(value)  # OpenRouter accepts prices as strings too
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise RequestError(400, f"{param} must be a non-negative number (USD per Mtok)",
                           param=param)
    return float(value)


def parse_controls(raw: Mapping[str, Any], table: DecisionTable) -> Controls:
    """Validate ``req.controls``; a bad value raises ``RequestError(400, param=...)``."""
    if not raw:
        return NO_CONTROLS
    for key in raw:
        if key not in _CONTROL_KEYS:
            raise RequestError(400, f"unknown routing control {key!r}", param=key)
    kw: dict[str, Any] = {}
    if raw.get("models") is not None:
        kw["models"] = _str_list(raw["models"], "models")
    if raw.get("allowed_models") is not None:
        kw["allowed_models"] = _str_list(raw["allowed_models"], "allowed_models")
    prov = raw.get("provider")
    if prov is not None:
        if not isinstance(prov, Mapping):
            raise RequestError(400, "provider must be an object", param="provider")
        for key in prov:
            if key not in _PROVIDER_KEYS:
                supported = ", ".join(sorted(_PROVIDER_KEYS))
                raise RequestError(400, f"unsupported provider control {key!r} "
                                   f"(supported: {supported})", param=f"provider.{key}")
        for key in ("order", "only", "ignore"):
            if prov.get(key) is not None:
                kw[key] = _providers(prov[key], f"provider.{key}", table)
        if prov.get("sort") is not None:
            kw.update(_sort(prov["sort"]))
        for key in ("allow_fallbacks", "require_parameters", "zdr", "enforce_distillable_text"):
            if prov.get(key) is not None:
                value = _bool(prov[key], f"provider.{key}")
                if key != "enforce_distillable_text":
                    kw[key] = value
        if prov.get("quantizations") is not None:
            _str_list(prov["quantizations"], "provider.quantizations")
        for key in ("preferred_min_throughput", "preferred_max_latency"):
            if prov.get(key) is not None:
                _preference(prov[key], f"provider.{key}")
        dc = prov.get("data_collection")
        if dc is not None:
            if dc not in ("allow", "deny"):
                raise RequestError(400, "provider.data_collection must be 'allow' or 'deny'",
                                   param="provider.data_collection")
            kw["deny_data_collection"] = dc == "deny"
        mp = prov.get("max_price")
        if mp is not None:
            if not isinstance(mp, Mapping):
                raise RequestError(400, "provider.max_price must be an object",
                                   param="provider.max_price")
            for key, val in mp.items():
                if key not in _PRICE_KEYS:
                    raise RequestError(400, f"unsupported max_price field {key!r} "
                                       f"(supported: {', '.join(_PRICE_KEYS)})",
                                       param=f"provider.max_price.{key}")
                price = _price(val, f"provider.max_price.{key}")
                if key in ("prompt", "completion"):
                    kw[f"max_price_{key}"] = price
    return Controls(**kw)


def _sort(value: Any) -> dict[str, Any]:
    """``provider.sort``: ``"price"`` or ``{"by": "price", "partition": "model"|"none"}``."""
    by, partition = value, "model"
    if isinstance(value, Mapping):
        for key in value:
            if key not in ("by", "partition"):
                raise RequestError(400, f"unsupported provider.sort field {key!r} "
                                   "(by, partition)", param=f"provider.sort.{key}")
        by = value.get("by")
        partition = value.get("partition") or "model"
        if partition not in ("model", "none"):
            raise RequestError(400, "provider.sort.partition must be 'model' or 'none'",
                               param="provider.sort.partition")
        param = "provider.sort.by"
    else:
        param = "provider.sort"
    if by not in _SORTS:
        raise RequestError(400, f"{param} must be one of {', '.join(_SORTS)}", param=param)
    return {"sort": by, "sort_partition": partition}


def did_you_mean(name: str, choices: Mapping[str, Any]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
