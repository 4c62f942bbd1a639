"""One shared HTTP client per process (per event loop): httpx's API over aiohttp's connection pool.

aiohttp's read timeout restarts with every byte received, so on its own it never stops an upstream that
trickles its answer (slowloris) or answers without end. The transport bounds every exchange: the headers,
and a whole answer, must arrive within the request's read timeout (RELAY_TIMEOUT unless the caller sets
its own), and no answer may be longer than MAX_UPSTREAM_RESPONSE_BYTES. A relayed stream lifts the
deadline (`lift_deadline`): relay.streaming bounds it by STREAMING_TIMEOUT between events instead.

httpx-aiohttp turns every aiohttp connection error into httpx.ConnectTimeout, so a refused connection looked
like a timeout. The transport tells apart an upstream it could not reach (`Unreachable`: nothing was sent,
another channel may take the request) from one that broke the connection before answering, and both from
a real timeout.
"""

import asyncio
import os
from collections.abc import AsyncIterator

import aiohttp
import httpx
from django.conf import settings
from httpx_aiohttp import AiohttpTransport

from relay.adaptors.base import UpstreamFailure

BODY = "gateway_bounded_body"  # the response extension that holds its BoundedBody


class AnswerTooLarge(httpx.ReadError):
    """The upstream's answer went past MAX_UPSTREAM_RESPONSE_BYTES (the message is safe to show)."""


class BoundedBody(httpx.AsyncByteStream):
    def __init__(self, body: httpx.AsyncByteStream, deadline: float | None, limit: int) -> None:
        self.body = body
        self.deadline = deadline  # loop time by which the whole answer must be in; None: no limit
        self.limit = limit

    async def __aiter__(self) -> AsyncIterator[bytes]:
        received = 0
        chunks = aiter(self.body)
        while True:
            try:
                chunk = await self.next_chunk(chunks)
            except StopAsyncIteration:
                return
            except TimeoutError:
                raise httpx.ReadTimeout("upstream did not finish its answer in time") from None
            received += len(chunk)
            if received > self.limit:
                raise AnswerTooLarge(f"upstream answer is larger than MAX_UPSTREAM_RESPONSE_BYTES ({self.limit} bytes)")
            yield chunk

    async def next_chunk(self, chunks: AsyncIterator[bytes]) -> bytes:
        if self.deadline is None:  # a relayed stream: no timer to arm and disarm for every chunk
            return await anext(chunks)
        async with asyncio.timeout_at(self.deadline):
            return await anext(chunks)

    async def aclose(self) -> None:
        await self.body.aclose()


class Unreachable(httpx.ConnectError):
    """No connection to the upstream could be opened, so it never got the request. The message says why
    without naming the host, which may be internal (or, in a URL, carry a key)."""


def unreachable_reason(cause: BaseException | None) -> str | None:
    """Why no connection was made, read from the aiohttp error; None if one was."""
    if isinstance(cause, aiohttp.ClientConnectorDNSError):
        return "name not resolved"
    if isinstance(cause, aiohttp.ClientConnectorCertificateError):
        return "TLS certificate not accepted"
    if isinstance(cause, aiohttp.ClientSSLError):
        return "TLS handshake failed"
    if isinstance(cause, aiohttp.ClientConnectorError):
        # The system's words for the errno ("connection refused", "no route to host"): the error's own
        # text names the address.
        code = cause.os_error.errno
        return os.strerror(code).lower() if code else "connection failed"
    if isinstance(cause, aiohttp.ConnectionTimeoutError):
        return "connect timed out"
    return None


def connection_error(mapped: httpx.ConnectTimeout, request: httpx.Request) -> httpx.TransportError:
    """What httpx-aiohttp's ConnectTimeout really was (see the module docstring)."""
    reason = unreachable_reason(mapped.__cause__)
    if reason is not None:
        return Unreachable(f"upstream unreachable: {reason}", request=request)
    if isinstance(mapped.__cause__, aiohttp.ServerTimeoutError):
        return mapped
    # Connected, then the connection closed or broke (a stale pooled connection, an upstream that died).
    return httpx.RemoteProtocolError("the upstream closed the connection before it answered", request=request)


def failure_of(exc: httpx.HTTPError) -> UpstreamFailure:
    """What the client, or the channel test, is told when a request got no answer. Only an unreachable
    upstream never saw the request; one that did not answer in time may still be working (and charging)."""
    if isinstance(exc, Unreachable):
        return UpstreamFailure(502, str(exc), "upstream_error", "upstream_unreachable")
    if isinstance(exc, httpx.TimeoutException):
        return UpstreamFailure(504, "upstream did not answer in time", "upstream_timeout", "upstream_timeout")
    return UpstreamFailure(502, f"upstream connection failed: {type(exc).__name__}", "upstream_error")


class BoundedTransport(AiohttpTransport):
    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        read_timeout = request.extensions.get("timeout", {}).get("read")
        deadline = None if read_timeout is None else asyncio.get_running_loop().time() + read_timeout
        try:
            async with asyncio.timeout_at(deadline):
                response = await super().handle_async_request(request)
        except TimeoutError:
            raise httpx.ReadTimeout("upstream sent no complete headers in time", request=request) from None
        except httpx.ConnectTimeout as mapped:
            raise connection_error(mapped, request) from mapped.__cause__
        assert isinstance(response.stream, httpx.AsyncByteStream)  # an async transport's answer, as httpx asserts
        body = BoundedBody(response.stream, deadline, settings.MAX_UPSTREAM_RESPONSE_BYTES)
        response.stream = body
        response.extensions[BODY] = body
        return response


CLOSED = httpx.ByteStream(b"")


async def close(response: httpx.Response) -> None:
    """Close an upstream answer and cut httpx's reference cycle between a response and its stream, so the
    answer (aiohttp's objects with it) is freed at once rather than by the cyclic collector's full pass,
    which stopped the process for 90-130 ms every few seconds at 200 concurrent streams."""
    await response.aclose()
    response.stream = CLOSED


def lift_deadline(response: httpx.Response) -> None:
    """Let a stream last as long as events keep coming (the size limit stays)."""
    body = response.extensions.get(BODY)
    if body is not None:
        body.deadline = None


class _NoCookies(httpx.Cookies):
    """The client is shared by every request of the process, so an upstream's Set-Cookie must not ride along
    with other users' requests (and keeping it costs a cookie-jar walk per answer)."""

    def extract_cookies(self, response: httpx.Response) -> None:
        pass


class _Shared:
    client: httpx.AsyncClient | None = None
    loop: asyncio.AbstractEventLoop | None = None


def client() -> httpx.AsyncClient:
    loop = asyncio.get_running_loop()
    if _Shared.client is None or _Shared.loop is not loop:
        limits = httpx.Limits(
            max_connections=settings.RELAY_MAX_CONNECTIONS,
            max_keepalive_connections=settings.RELAY_MAX_CONNECTIONS,
            keepalive_expiry=60,
        )
        timeout = httpx.Timeout(settings.RELAY_TIMEOUT, connect=settings.RELAY_CONNECT_TIMEOUT)
        _Shared.client = httpx.AsyncClient(transport=BoundedTransport(limits=limits), timeout=timeout)
        _Shared.client._cookies = _NoCookies()  # httpx has no switch; its `cookies` setter copies into a plain jar
        _Shared.loop = loop
    return _Shared.client
