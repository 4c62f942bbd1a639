"""Call one upstream once: one request to one channel's upstream, through the channel's adaptor, and its
answer judged as the relay judges it.

The relay's attempts (relay.service) and the channel test (relay.channel_test) go through `Exchange`, the
balance query (relay.channel_balance) sends its plain GETs through `send`: "no answer"
(relay.upstream.failure_of) means the same to all three, an error answer is read by the channel's adaptor
(parse_error) for both attempts and tests, and a failure's message can be rid of every secret of the channel
(relay.adaptors.base.scrub) before anyone sees it.
"""

import dataclasses
import time
from collections.abc import Mapping
from dataclasses import dataclass

import httpx
import orjson

from channels_app import overrides
from channels_app.routing import ChannelInfo
from relay import upstream
from relay.adaptors.base import (
    ANTHROPIC_COUNT_TOKENS,
    MASK,
    MIN_SECRET_LENGTH,
    Adaptor,
    RelayRequest,
    UpstreamFailed,
    UpstreamFailure,
    UpstreamRequest,
    scrub,
)
from relay.adaptors.openai_format import request_json
from relay.adaptors.registry import adaptor_for


class ErrorAnswer(UpstreamFailed):
    """The upstream answered with an error status; the failure is its adaptor's reading of the answer."""


@dataclass
class Waited:
    """Time spent waiting for upstreams, added up over the exchanges of one request."""

    seconds: float = 0.0

    def ms(self) -> int:
        return int(self.seconds * 1000)


async def send(outgoing: UpstreamRequest, *, stream: bool = False, timeout: float | None = None) -> httpx.Response:
    """The upstream's answer on the process's shared client: its headers, and its body too unless `stream`.
    UpstreamFailed when no answer came. `timeout`: the read timeout instead of RELAY_TIMEOUT."""
    client = upstream.client()
    request = client.build_request(
        outgoing.method,
        outgoing.url,
        headers=outgoing.headers,
        content=outgoing.content,
        timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else timeout,
    )
    try:
        return await client.send(request, stream=stream)
    except httpx.HTTPError as exc:
        raise UpstreamFailed(upstream.failure_of(exc)) from None


def overridden(outgoing: UpstreamRequest, config: dict, with_params: bool = True) -> UpstreamRequest:
    """The request with the channel's parameter and header overrides (channels_app.overrides) applied to what
    the adaptor built, i.e. in the upstream's own format; the same request when the channel has none. Only a
    JSON object body takes parameters (not a multipart upload, not a GET), and only `with_params`."""
    params, headers = config.get(overrides.PARAM_OVERRIDE), config.get(overrides.HEADER_OVERRIDE)
    if with_params and params and outgoing.content.lstrip()[:1] == b"{":
        body = overrides.overridden_body(orjson.loads(outgoing.content), params)
        outgoing = dataclasses.replace(outgoing, content=request_json(body))
    if headers:
        outgoing = dataclasses.replace(outgoing, headers=overrides.overridden_headers(outgoing.headers, headers))
    return outgoing


class Exchange:
    """One request to one channel's upstream through the channel's adaptor: `prepare`, then `answer`."""

    def __init__(self, channel: ChannelInfo, request: RelayRequest, waited: Waited | None = None) -> None:
        adaptor = adaptor_for(channel.type)
        if adaptor is None:
            raise UpstreamFailed(UpstreamFailure(500, f"channel type {channel.type} is not supported yet"))
        self.channel = channel
        self.request = request
        self.adaptor: Adaptor = adaptor
        self.waited = waited or Waited()
        self.outgoing: UpstreamRequest | None = None

    async def prepare(self) -> None:
        """Build the upstream request (Vertex first fetches its OAuth token) and sign it (Bedrock). UpstreamFailed
        when the adaptor cannot: a rerank-only type (Jina) refuses chat, Vertex's token request failed."""
        await self.adaptor.prepare(self.channel)
        # A token count takes the prompt's fields only: Anthropic refuses generation parameters there.
        with_params = self.request.endpoint != ANTHROPIC_COUNT_TOKENS
        outgoing = self.adaptor.build_request(self.request, self.channel)
        # Signed last (Bedrock's SigV4): the signature covers the overridden bytes.
        self.outgoing = self.adaptor.sign(overridden(outgoing, self.channel.config, with_params), self.channel)

    async def answer(self, stream: bool, status_map: Mapping[str, int] | None = None) -> httpx.Response:
        """The upstream's answer when it is not an error, with its headers read (and its body unless `stream`).
        UpstreamFailed when no answer came; ErrorAnswer for an error status, after `status_map` (the channel's
        status_code_mapping: the relay's clients see the mapped status, and retries follow it; the channel
        test reports the upstream's own)."""
        assert self.outgoing is not None, "prepare() first"
        sent = time.perf_counter()
        try:
            response = await send(self.outgoing, stream=stream)
        finally:
            self.waited.seconds += time.perf_counter() - sent
        if response.status_code >= 400:
            failure = self.adaptor.error_answer(response.status_code, response.headers, await self.read(response))
            failure.status = (status_map or {}).get(str(failure.status), failure.status)
            raise ErrorAnswer(failure)
        return response

    async def read(self, response: httpx.Response) -> bytes:
        """The rest of the answer's body; the answer is closed after it. UpstreamFailed when it is cut short."""
        started = time.perf_counter()
        try:
            return await response.aread()
        except upstream.AnswerTooLarge as too_large:
            raise UpstreamFailed(UpstreamFailure(502, str(too_large), "upstream_error")) from None
        except httpx.TimeoutException:
            raise UpstreamFailed(
                UpstreamFailure(504, "upstream did not finish its answer in time", "upstream_timeout")
            ) from None
        except httpx.HTTPError:
            raise UpstreamFailed(UpstreamFailure(502, "upstream connection failed while reading the answer")) from None
        finally:
            await upstream.close(response)
            self.waited.seconds += time.perf_counter() - started

    def scrub(self, message: str) -> str:
        """`message` without any secret of the channel: its key and what the request carried (a signed token).
        Upstreams quote what they were sent, and a failure's message reaches the client, the error log,
        auto-disable's reason and the server log."""
        return scrubbed(message, self.channel, self.outgoing)


def scrubbed(message: str, channel: ChannelInfo, sent: UpstreamRequest | None) -> str:
    """`message` without the channel's key, what the request carried, or its header overrides' values: they
    may be tokens of their own (a proxy's, a tenant's)."""
    message = scrub(message, channel.key, sent)
    headers = channel.config.get(overrides.HEADER_OVERRIDE) or {}
    for value in sorted(headers.values(), key=len, reverse=True):
        if len(value) >= MIN_SECRET_LENGTH:
            message = message.replace(value, MASK)
    return message
