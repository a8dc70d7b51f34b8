"""The ASGI application: lifespan, routing, and the one place errors become responses.

``InterlockApp`` is a plain class with ``async __call__(scope, receive, send)``.

* **lifespan**: on ``lifespan.startup`` it loads the decision table (the
  ``load`` callable: read a lock file, or compile a config) and builds the one
  :class:`RuntimeState`.  Any failure sends ``lifespan.startup.failed`` with the
  message *and re-raises*, so the server stops instead of serving without a table.
  ``lifespan.shutdown`` closes the upstream session.
* **http**: an exact-path table routes to the endpoint handlers
  (``interlock.runtime.endpoints``; the pages and their endpoints from
  ``interlock.runtime.ui``), then a short list of path prefixes (paths that
  carry an id, ``/v1/conversations/{id}``); an unknown path is a 404 and a known path
  with the wrong method a 405 (with ``Allow``), both in the error shape of the
  API the path belongs to (``surfaces.shapes.shape_for_path``: Anthropic's for
  ``/v1/messages*``, Ollama's for ``/api/*``, OpenAI's otherwise).

Every response, errors included, carries the ``X-Router-*`` headers
(``interlock.runtime.headers``).  The generating endpoints answer their own
errors (``interlock.runtime.pipeline``); for the others a ``RouterError`` raised
before the response started is answered here in the path's error shape; an
unexpected exception is a 500 in the same shape (and is re-raised to the server
to be logged), and the app keeps serving either way.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable

from interlock.runtime import endpoints, observe, openapi
from interlock.runtime.asgi_types import Receive, Scope, Send
from interlock.runtime.bodies import ClientDisconnected
from interlock.runtime.endpoints import Ctx, Handler
from interlock.runtime.errors import RouterError
from interlock.runtime.headers import diagnostic_headers, scan_headers
from interlock.runtime.responses import send_bytes
from interlock.runtime.state import RuntimeState, build_state
from interlock.runtime.surfaces.routes import routes as surface_routes
from interlock.runtime.surfaces.shapes import ErrorShape, shape_for_path
from interlock.runtime.table import DecisionTable
from interlock.runtime.trace import Diagnostics
from interlock.runtime.ui import UiRoutes

TableLoader = Callable[[], DecisionTable | Awaitable[DecisionTable]]

_NO_TABLE = b"no-table"


class InterlockApp:
    """The router's raw ASGI app.

    ``load`` returns the decision table (it may be async); it runs once per
    worker in ``lifespan.startup``.  ``probe=False`` skips the start-up provider
    probes (tests that want the first request to reach a dead provider).
    """

    def __init__(
        self,
        load: TableLoader,
        *,
        probe: bool = True,
        fail_threshold: int = 3,
        cooldown_s: float = 10.0,
        on_ready: Callable[[], None] | None = None,
    ) -> None:
        self._load = load
        self._probe = probe
        self._fail_threshold = fail_threshold
        self._cooldown_s = cooldown_s
        #: called once after start-up (server workers: runtime/tuning.py)
        self._on_ready = on_ready
        self.state: RuntimeState | None = None
        self._routes: dict[str, dict[str, Handler]] = {
            "/v1/chat/completions": {"POST": endpoints.chat_completions},
            "/v1/models": {"GET": endpoints.models},
            "/v1/route": {"POST": endpoints.route},
            "/healthz": {"GET": endpoints.healthz},
            "/readyz": {"GET": endpoints.readyz},
        }
        # messages, responses, completions, embeddings (interlock.runtime.surfaces.routes)
        self._routes.update(surface_routes())
        # the request log's endpoints: /v1/stats, /v1/logs, /metrics
        self._routes.update(observe.routes())
        # the dashboard, the chat page and their endpoints (interlock.runtime.ui)
        self.ui = UiRoutes()
        self._routes.update(self.ui.routes)
        #: path prefix -> handlers, for paths with an id in them; exact paths win
        self._prefixes: dict[str, dict[str, Handler]] = dict(self.ui.prefixes)
        # the OpenAPI document of exactly these routes (issue 8, runtime/openapi.py)
        self._routes["/openapi.json"] = {"GET": openapi.handler(self._routes)}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self.http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        # websockets are not served: returning without accepting closes them

    # -- lifespan ----------------------------------------------------------------

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    self.state = await self.startup()
                except BaseException as exc:
                    await send({"type": "lifespan.startup.failed", "message": _why(exc)})
                    raise
                if self._on_ready is not None:
                    self._on_ready()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def startup(self) -> RuntimeState:
        """Load the table and build the state (also usable without a lifespan)."""
        loaded = self._load()
        table = await loaded if inspect.isawaitable(loaded) else loaded
        if not isinstance(table, DecisionTable):
            raise TypeError(f"the table loader returned {type(table).__name__}, not a table")
        return await build_state(
            table, probe=self._probe, fail_threshold=self._fail_threshold,
            cooldown_s=self._cooldown_s,
        )

    async def shutdown(self) -> None:
        state, self.state = self.state, None
        await self.ui.close()
        if state is not None:
            await state.close()

    # -- http --------------------------------------------------------------------

    def _prefixed(self, path: str) -> dict[str, Handler] | None:
        """The handlers of the longest registered prefix of ``path`` (with something
        after it: the bare prefix is not a match)."""
        best: str | None = None
        for prefix in self._prefixes:
            if len(path) > len(prefix) and path.startswith(prefix):
                if best is None or len(prefix) > len(best):
                    best = prefix
        return self._prefixes[best] if best is not None else None

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        """One HTTP request (the gate, ``guard.py``, calls this directly)."""
        diag = Diagnostics()
        state = self.state
        table_hash = state.table_hash_header if state is not None else _NO_TABLE
        path = scope["path"]
        methods = self._routes.get(path) or self._prefixed(path)
        if methods is None:
            await _error(send, shape_for_path(path), diag, table_hash, 404,
                         f"no route for {scope['method']} {path}", "unknown_url")
            return
        handler = methods.get(scope["method"])
        if handler is None:
            allowed = ", ".join(sorted(methods))
            await _error(send, shape_for_path(path), diag, table_hash, 405,
                         f"{scope['method']} is not allowed on {path} (use {allowed})",
                         "method_not_allowed", [(b"allow", allowed.encode())])
            return
        if state is None:
            await _error(send, shape_for_path(path), diag, table_hash, 503,
                         "the router has no decision table loaded yet", "not_ready")
            return
        ctx = Ctx(state, scope, receive, send, scan_headers(scope), diag)
        try:
            await handler(ctx)
        except ClientDisconnected:
            return
        except RouterError as exc:
            state.counters.errors += 1
            if ctx.started:
                raise
            # the error shape is only needed here: not looked up for every request
            status, body = shape_for_path(path).router_error(exc)
            await send_bytes(send, status, body, diagnostic_headers(diag, table_hash))
        except Exception:
            state.counters.errors += 1
            if not ctx.started:
                await _error(send, shape_for_path(path), diag, table_hash, 500,
                             "internal router error (see the server log)", "internal_error")
            raise


async def _error(
    send: Send,
    shape: ErrorShape,
    diag: Diagnostics,
    table_hash: bytes,
    status: int,
    message: str,
    code: str,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = diagnostic_headers(diag, table_hash)
    if extra:
        headers.extend(extra)
    status, body = shape.body(status, message, code=code)
    await send_bytes(send, status, body, headers)


def _why(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"interlock could not load its decision table: {text}"
