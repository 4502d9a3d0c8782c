"""What keeps the HTTP service up under load, slow clients and hostile input.

* :class:`GuardMiddleware` (pure ASGI, outermost): the token, then the body: its
  size is counted while it is read, chunked or not (413 as soon as it passes the
  limit), it must arrive within ``body_timeout_s`` and never stall longer than
  ``idle_timeout_s`` (408), and bodies over 1 MiB draw on a shared
  :class:`ByteBudget`, so the raw bodies held at once stay bounded whatever the
  number of clients.
* :func:`guarded_h11` (uvicorn's protocol): a connection must send a complete
  request head within ``idle_timeout_s`` of connecting or of its previous answer,
  or it is closed; uvicorn itself has no such limit, so a client that never
  finished its headers held its connection for ever.

Parsing and scoring are bounded separately, by the ``max_parallel`` slots of the
app (:mod:`oncopersistnet.serving.app`), which a request takes only once its
body is read: a slow uploader holds a connection and some budget, never a slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import time
from collections import deque
from typing import Any

from starlette.exceptions import HTTPException

# Bodies up to this size are read without drawing on the budget (bounded by the
# number of connections instead): most requests are small and never wait.
UNBUDGETED_BYTES = 1024 * 1024

Scope = dict[str, Any]
Message = dict[str, Any]


class ByteBudget:
    """Bytes of request body the service holds at once; waiters are served first come, first served.

    A request reserves its whole (declared or largest possible) size at once and
    holds nothing while it waits, so waiting requests cannot deadlock each other.
    Used from the event loop only.
    """

    def __init__(self, total: int) -> None:
        self.total = total
        self.free = total
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()

    async def acquire(self, n: int) -> None:
        n = min(n, self.total)
        if not self._waiters and n <= self.free:
            self.free -= n
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (n, future)
        self._waiters.append(entry)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release(n)  # granted just as it was cancelled
            else:
                self._waiters.remove(entry)
                self._wake()
            raise

    def release(self, n: int) -> None:
        self.free += min(n, self.total)
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self._waiters[0][0] <= self.free:
            n, future = self._waiters.popleft()
            if future.done():
                continue
            self.free -= n
            future.set_result(None)


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body over the limit of {limit} bytes")


class BodyTooSlow(HTTPException):
    def __init__(self, detail: str) -> None:
        super().__init__(408, detail, headers={"Connection": "close"})


def bearer_token_ok(header: bytes | None, token: str) -> bool:
    """``Authorization: Bearer <token>``, compared in constant time (any bytes: never raises)."""
    if not header:
        return False
    scheme, _, given = header.partition(b" ")
    if scheme.lower() != b"bearer":
        return False
    return hmac.compare_digest(given.strip(), token.encode("utf-8"))


class GuardMiddleware:
    """Token, body size, body time and body memory, enforced on the raw ASGI messages."""

    def __init__(
        self,
        app: Any,
        *,
        token: str | None,
        public_paths: frozenset[str],
        max_body_bytes: int,
        budget: ByteBudget,
        body_timeout_s: float,
        idle_timeout_s: float,
    ) -> None:
        self.app = app
        self.token = token
        self.public_paths = public_paths
        self.max_body_bytes = max_body_bytes
        self.budget = budget
        self.body_timeout_s = body_timeout_s
        self.idle_timeout_s = idle_timeout_s

    async def _refused(
        self, scope: Scope, send: Any, *, headers: dict[bytes, bytes], length: int | None
    ) -> bool:
        """Answer 401 (token) or 413 (declared size) before reading any body; whether it answered."""
        if (
            self.token
            and scope["path"] not in self.public_paths
            and not bearer_token_ok(headers.get(b"authorization"), self.token)
        ):
            await _answer(
                send,
                401,
                "missing or wrong token (header: Authorization: Bearer <token>)",
                headers=[(b"www-authenticate", b"Bearer")],
            )
            return True
        if length is not None and length > self.max_body_bytes:
            await _answer(send, 413, BodyTooLarge(self.max_body_bytes).detail)
            return True
        return False

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        length = int(declared) if declared is not None and declared.isdigit() else None
        if await self._refused(scope, send, headers=headers, length=length):
            return

        reserved = 0
        started = False

        async def reserve(n: int) -> None:
            nonlocal reserved
            await self.budget.acquire(n)
            reserved = n

        def release() -> None:
            nonlocal reserved
            if reserved:
                self.budget.release(reserved)
                reserved = 0

        if length is not None and length > UNBUDGETED_BYTES:
            await reserve(length)
        received = 0
        deadline: float | None = None

        async def guarded_receive() -> Message:
            nonlocal received, deadline
            now = time.monotonic()
            if deadline is None:
                deadline = now + self.body_timeout_s
            wait = min(self.idle_timeout_s, deadline - now)
            try:
                message = await asyncio.wait_for(receive(), timeout=max(wait, 0.001))
            except TimeoutError:
                late = (
                    "stalled"
                    if deadline - time.monotonic() > 0
                    else f"took longer than {self.body_timeout_s:g} s"
                )
                raise BodyTooSlow(f"request body {late}; send it in one go") from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise BodyTooLarge(self.max_body_bytes)
                if received > UNBUDGETED_BYTES and not reserved and message.get("more_body", False):
                    waited = time.monotonic()
                    await reserve(self.max_body_bytes)  # size unknown (chunked): the most it may be
                    deadline += time.monotonic() - waited  # queueing is not the client's delay
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                release()  # the body has been parsed by now: its bytes are free
            await send(message)

        try:
            await self.app(scope, guarded_receive, guarded_send)
        except (BodyTooLarge, BodyTooSlow) as exc:  # raised where the app does not turn it into an answer
            if started:
                raise
            await _answer(
                send,
                exc.status_code,
                exc.detail,
                headers=[(k.lower().encode(), v.encode()) for k, v in (exc.headers or {}).items()],
            )
        finally:
            release()


async def _answer(
    send: Any, status: int, detail: str, *, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def guarded_h11(head_timeout_s: float) -> type:
    """uvicorn's h11 protocol, closing connections that do not send a whole request head in time."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class GuardedH11Protocol(H11Protocol):
        _head_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._disarm()
            self._head_timer = self.loop.call_later(head_timeout_s, self._head_timeout)

        def _disarm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timeout(self) -> None:
            self._head_timer = None
            busy = self.cycle is not None and not self.cycle.response_complete
            if busy or self.transport.is_closing():
                return  # a request is being served: the app's body limits apply; re-armed when it is answered
            # No complete request head since the connection opened or the last answer (or the
            # unread rest of an answered request's body still trickling in): close.
            if self.conn.our_state is not h11.ERROR:
                with contextlib.suppress(h11.LocalProtocolError):
                    self.conn.send(h11.ConnectionClosed())
            self.transport.close()

    return GuardedH11Protocol
