"""The router's own pages: ``/dashboard`` and ``/chat``, and their static assets.

Everything is served by the router itself from ``interlock/runtime/templates``
(shipped in the wheel): no build step, no CDN, no web font, so the pages work
offline and behind an air gap.

* The two HTML pages are Jinja templates (``base.html`` and one per page),
  rendered **once**, when :class:`Pages` is built at start-up, in a
  ``SandboxedEnvironment`` with autoescaping on.  They hold no data: the
  JavaScript fetches it (``/v1/table``, ``/v1/stats``, ``/v1/logs``,
  ``/v1/events``, ``/v1/models``, ``/v1/conversations``).
* The stylesheet and scripts are served verbatim under ``/ui/<name>``.

Every page and asset goes out with a strict Content-Security-Policy (scripts,
styles and connections from the router only, no inline script), ``nosniff`` and
``frame-ancestors 'none'``, so even a value that slipped past the DOM-building
code could not run script or leak data to another origin.
"""

from __future__ import annotations

from importlib import resources
from typing import Final

from interlock import __version__
from interlock.runtime.asgi_types import RawHeaders
from interlock.runtime.context import Ctx
from interlock.runtime.headers import diagnostic_headers
from interlock.runtime.responses import send_bytes
from jinja2 import DictLoader, StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

TEMPLATES: Final = "interlock.runtime.templates"
ASSET_PREFIX: Final = "/ui"

#: path → (template, title, page id)
PAGES: Final[dict[str, tuple[str, str, str]]] = {
    "/dashboard": ("dashboard.html", "Dashboard", "dashboard"),
    "/chat": ("chat.html", "Chat", "chat"),
}
NAV: Final = (("/dashboard", "Dashboard"), ("/chat", "Chat"))

#: asset file → content type
ASSETS: Final[dict[str, bytes]] = {
    "ui.css": b"text/css; charset=utf-8",
    "common.js": b"text/javascript; charset=utf-8",
    "charts.js": b"text/javascript; charset=utf-8",
    "dashboard.js": b"text/javascript; charset=utf-8",
    "chat.js": b"text/javascript; charset=utf-8",
}
HTML: Final = b"text/html; charset=utf-8"

CSP: Final = (
    b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    b"connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_SECURITY: Final[RawHeaders] = [
    (b"content-security-policy", CSP),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-cache"),
]


def read_template(name: str) -> str:
    """A file of ``interlock/runtime/templates`` (works from a wheel too)."""
    return resources.files(TEMPLATES).joinpath(name).read_text(encoding="utf-8")


def render_pages(version: str = __version__) -> dict[str, bytes]:
    """Every page rendered to bytes, keyed by path (a pure function of the templates)."""
    names = {"base.html"} | {template for template, _, _ in PAGES.values()}
    env = SandboxedEnvironment(
        loader=DictLoader({name: read_template(name) for name in sorted(names)}),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    out: dict[str, bytes] = {}
    for path, (template, title, page) in PAGES.items():
        html = env.get_template(template).render(
            title=title, page=page, here=path, nav=NAV, assets=ASSET_PREFIX, version=version
        )
        out[path] = html.encode("utf-8")
    return out


class Pages:
    """The rendered pages and the assets, built once; ``serve`` is the handler."""

    def __init__(self, version: str = __version__) -> None:
        self.bodies: dict[str, tuple[bytes, bytes]] = {
            path: (body, HTML) for path, body in render_pages(version).items()
        }
        for name, content_type in ASSETS.items():
            self.bodies[f"{ASSET_PREFIX}/{name}"] = (
                read_template(name).encode("utf-8"), content_type,
            )

    @property
    def paths(self) -> list[str]:
        return sorted(self.bodies)

    async def serve(self, ctx: Ctx) -> None:
        """``GET`` one page or asset (the app routes only known paths here)."""
        body, content_type = self.bodies[ctx.scope["path"]]
        headers = diagnostic_headers(ctx.diag, ctx.state.table_hash_header)
        headers.extend(_SECURITY)
        await send_bytes(ctx.send, 200, body, headers, content_type)
