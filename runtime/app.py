"""The ASGI application: lifespan, routing, and the one place errors become responses.

``InterlockApp`` is a plain class with ``async __call__(scope, receive, send)``.

* **lifespan**: on ``lifespan.startup`` it loads the decision table (the
  ``load`` callable: read a lock file, or compile a config) and builds the one
  :class:`RuntimeState`.  Any failure sends ``lifespan.startup.failed`` with the
  message *and re-raises*, so the server stops instead of serving without a table.
  ``lifespan.shutdown`` closes the upstream session.
* **http**: an exact-path table routes to the endpoint handlers
  (``interlock.runtime.endpoints``); an unknown path is a 404 and a known path
  with the wrong method a 405 (with ``Allow``), both in OpenAI's error shape.

Every response, errors included, carries the ``X-Router-*`` headers
(``interlock.runtime.headers``).  A ``RouterError`` raised before the response
started is answered in OpenAI's error shape; an unexpected exception is a 500
in the same shape (and is re-raised to the server to be logged), and the app
keeps serving either way.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable

from interlock.runtime import endpoints
from interlock.runtime.asgi_types import Receive, Scope, Send
from interlock.runtime.bodies import ClientDisconnected
from interlock.runtime.endpoints import Ctx, Handler
from interlock.runtime.errors import RouterError
from interlock.runtime.headers import diagnostic_headers, scan_headers
from interlock.runtime.responses import error_body, error_from, send_bytes
from interlock.runtime.state import RuntimeState, build_state
from interlock.runtime.table import DecisionTable
from interlock.runtime.trace import Diagnostics

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
    ) -> None:
        self._load = load
        self._probe = probe
        self._fail_threshold = fail_threshold
        self._cooldown_s = cooldown_s
        self.state: RuntimeState | None = None
        self._routes: dict[str, dict[str, Handler]] = {
            "/v1/chat/completions": {"POST": endpoints.chat_completions},
            "/v1/models": {"GET": endpoints.models},
            "/v1/route": {"POST": endpoints.route},
            "/healthz": {"GET": endpoints.healthz},
            "/readyz": {"GET": endpoints.readyz},
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
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
        if state is not None:
            await state.close()

    # -- http --------------------------------------------------------------------

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        diag = Diagnostics()
        state = self.state
        table_hash = state.table_hash_header if state is not None else _NO_TABLE
        methods = self._routes.get(scope["path"])
        if methods is None:
            await _error(send, diag, table_hash, 404,
                         f"no route for {scope['method']} {scope['path']}", "unknown_url")
            return
        handler = methods.get(scope["method"])
        if handler is None:
            allowed = ", ".join(sorted(methods))
            await _error(send, diag, table_hash, 405,
                         f"{scope['method']} is not allowed on {scope['path']} (use {allowed})",
                         "method_not_allowed", [(b"allow", allowed.encode())])
            return
        if state is None:
            await _error(send, diag, table_hash, 503,
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
            status, body = error_from(exc)
            await send_bytes(send, status, body, diagnostic_headers(diag, table_hash))
        except Exception:
            state.counters.errors += 1
            if not ctx.started:
                await _error(send, diag, table_hash, 500,
                             "internal router error (see the server log)", "internal_error")
            raise


async def _error(
    send: Send,
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
    await send_bytes(send, status, error_body(status, message, code=code), headers)


def _why(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"interlock could not load its decision table: {text}"
