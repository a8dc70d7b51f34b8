"""Small type checks for decoding client bodies, each raising a 400 that names
the field (``param``) the way OpenAI's API does.  Shared by every surface."""

from __future__ import annotations

from typing import Any, Final

from interlock.runtime.canonical import Part
from interlock.runtime.errors import RequestError

_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1


def bad(param: str, message: str, *, code: str = "invalid_type") -> RequestError:
    """A 400 ``invalid_request_error`` about ``param`` (returned, for ``raise``)."""
    return RequestError(400, message, param=param, code=code)


def opt_str(obj: dict[str, Any], key: str, param: str | None = None) -> str | None:
    value = obj.get(key)
    if value is None or isinstance(value, str):
        return value
    raise bad(param or key, f"'{param or key}' must be a string")


def opt_bool(obj: dict[str, Any], key: str, param: str | None = None) -> bool | None:
    value = obj.get(key)
    if value is None or isinstance(value, bool):
        return value
    raise bad(param or key, f"'{param or key}' must be a boolean")


def opt_int(
    obj: dict[str, Any], key: str, param: str | None = None, *, minimum: int | None = None,
) -> int | None:
    """An optional integer (booleans and floats such as 1.5 are refused)."""
    value = obj.get(key)
    if value is None:
        return None
    name = param or key
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad(name, f"'{name}' must be an integer")
    if not _INT64_MIN <= value <= _INT64_MAX:
        # a huge JSON integer parses as a float that is_integer(); it could never be
        # re-encoded for an upstream (orjson refuses integers beyond 64 bits)
        raise bad(name, f"'{name}' is out of range (a 64-bit integer)", code="invalid_value")
    if minimum is not None and value < minimum:
        raise bad(name, f"'{name}' must be at least {minimum} (got {value})",
                  code="invalid_value")
    return value


def opt_number(
    obj: dict[str, Any], key: str, lo: float, hi: float, param: str | None = None,
) -> float | None:
    """An optional number within [lo, hi]."""
    value = obj.get(key)
    if value is None:
        return None
    name = param or key
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise bad(name, f"'{name}' must be a number")
    if not lo <= value <= hi:
        raise bad(name, f"'{name}' must be between {lo:g} and {hi:g} (got {value})",
                  code="invalid_value")
    return float(value)


def opt_str_list(obj: dict[str, Any], key: str, param: str | None = None) -> list[str] | None:
    """An optional array of strings."""
    value = obj.get(key)
    if value is None:
        return None
    name = param or key
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise bad(name, f"'{name}' must be an array of strings")
    return value


def image_url_part(url: str, param: str) -> Part:
    """An image part from an http(s) URL or a ``data:<type>;base64,...`` URL."""
    if url.startswith("data:"):
        head, sep, data = url.partition(",")
        if not sep or not head.endswith(";base64"):
            raise bad(param, "image data URLs must look like data:image/png;base64,...",
                      code="invalid_image_url")
        return Part("image", image_url=url, media_type=head[5:-7] or "image/png", data=data)
    if not url.startswith(("http://", "https://")):
        raise bad(param, "image URLs must be http(s) or data: URLs", code="invalid_image_url")
    return Part("image", image_url=url)
