"""The request path: authenticate, parse once, reserve, pick a channel, call upstream, relay, settle.

Views call `relay` with the inbound format of their endpoint (relay.formats): it reads the key and the body,
renders answers and errors, and converts the request for channels that do not speak it. Everything that
decides money goes through billing, everything that decides routing through channels_app.
"""

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace

import httpx
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import Error as DatabaseError
from django.http import HttpRequest, HttpResponse

from billing import pricing, quota, settlement
from billing.accounts import key_auth, ratelimit
from billing.accounts.key_auth import KeyInfo
from billing.pricing import Quote
from channels_app import affinity, routing, selection
from channels_app.routing import ChannelInfo
from gateway_project.db import run_db
from relay import media, metrics, streaming, tokenizer
from relay.adaptors.base import RelayRequest, UpstreamFailed, UpstreamFailure, Usage
from relay.endpoints import Endpoint, count_prompt, count_usage
from relay.errors import RelayError, body_too_large, database_down
from relay.exchange import Exchange, Waited
from relay.formats.base import InboundFormat, StreamWriter

log = logging.getLogger(__name__)


@dataclass
class Call:
    """One client request on its way through the gateway."""

    request_id: str
    started: float
    key: KeyInfo
    pinned: int | None
    inbound: InboundFormat
    request: RelayRequest  # as the client sent it
    quote: Quote
    media_tokens: int = 0
    prompt_tokens: int = 0  # the byte bound (tokenizer.utf8_bytes) until count_prompt replaces it
    prompt_counted: bool = False
    reserved: bool = False
    waited: Waited = field(default_factory=Waited)  # for upstreams
    tried: list[int] = field(default_factory=list)
    dead_keys: selection.DeadKeys = field(default_factory=set)  # keys that failed as dead credentials
    native: bool = False  # the current attempt passes the client's request through (InboundFormat.native_for)
    hub: RelayRequest | None = None  # the request converted to the hub form, once a channel needed it
    session: str | None = None  # the conversation it continues (channels_app.affinity.session_key), if it names one

    @property
    def endpoint(self) -> Endpoint:
        return self.inbound.endpoint

    def __post_init__(self) -> None:
        self.prompt_tokens = self.endpoint.prompt_tokens(self.request, tokenizer.utf8_bytes) + self.media_tokens

    def add_media_tokens(self, tokens: int) -> None:
        self.media_tokens = tokens
        self.prompt_tokens += tokens

    async def count_prompt(self) -> int:
        """The prompt's exact tokens, counted the first time they are needed."""
        if not self.prompt_counted:
            self.prompt_tokens = await count_prompt(self.endpoint, self.request) + self.media_tokens
            self.prompt_counted = True
        return self.prompt_tokens

    def request_for(self, channel: ChannelInfo) -> RelayRequest:
        """The request this channel is sent: the client's own where the channel speaks its format, else the
        hub form (converted once, on the first channel that needs it)."""
        if self.inbound.is_hub:
            return self.request
        self.native = self.inbound.native_for(channel.type, channel.upstream_model(self.request.model))
        if self.native:
            return self.request
        if self.hub is None:
            self.hub = self.inbound.to_hub(self.request)
        return self.hub

    def stream_writer(self) -> StreamWriter:
        if self.native:
            return self.inbound.native_writer()
        return self.inbound.stream_writer(self.request, self.request_id, self.prompt_tokens)

    def gateway_ms(self) -> float:
        return (time.perf_counter() - self.started - self.waited.seconds) * 1000

    def elapsed_ms(self) -> int:
        return int((time.perf_counter() - self.started) * 1000)

    async def usage_of(
        self, reported: Usage | None, text: str, reported_input: Usage | None = None
    ) -> tuple[Usage, bool]:
        """(usage, counted locally?): the upstream's usage when it reported one, else the answer's `text` counted
        here (off the event loop when large: relay.endpoints.count_usage) with the prompt: its input split as
        the upstream reported it before the end (`reported_input`: a cut stream), or counted here too."""
        if reported is not None:
            return reported, False
        if reported_input is None:
            prompt_tokens = await self.count_prompt()
            return await count_usage(self.endpoint, self.request, prompt_tokens, text), True
        counted = await count_usage(self.endpoint, self.request, reported_input.prompt_tokens, text)
        return replace(reported_input, completion_tokens=counted.completion_tokens, reasoning_tokens=0), True

    async def whole_charge(
        self, channel: ChannelInfo, reported: Usage | None, text: str, ending: str = ""
    ) -> quota.Charge:
        """The charge of an answer read whole; `ending` names how a stream request got one."""
        usage, counted = await self.usage_of(reported, text)
        rule = "usage counted locally (upstream reported none)" if counted else "usage reported by upstream"
        return self.charge(channel, usage, f"{ending}: {rule}" if ending else rule)

    def settle_when_known(self, charging: Awaitable[quota.Charge]) -> asyncio.Task:
        """Work out the charge and settle it in a task that a cancelled request (its client hung up) cannot
        stop (billing.settlement.settle_when_known). The reservation is the settlement's from now on: relay()
        must no longer release it, or a settlement that comes second would find nothing to charge."""
        self.reserved = False
        return settlement.settle_when_known(self.key, charging)

    def charge(self, channel: ChannelInfo, usage: Usage, rule: str) -> quota.Charge:
        """What this call costs, counted in the metrics: a call's charge is worked out once, then settled."""
        cost, formula = self.endpoint.cost(self.quote, self.request, usage)
        metrics.QUOTA.labels(metrics.model_label(self.request.model)).inc(cost)
        return quota.Charge(
            request_id=self.request_id,
            quota=cost,
            model=self.request.model,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            cache_read_tokens=usage.cache_read_tokens,
            cache_write_5m_tokens=usage.cache_write_5m_tokens,
            cache_write_1h_tokens=usage.cache_write_1h_tokens,
            reasoning_tokens=usage.reasoning_tokens,
            channel_id=channel.id,
            token_name=self.key.token_name,
            is_stream=self.request.stream,
            use_time_ms=self.elapsed_ms(),
            content=f"{self.inbound.log_note(self.native)}{rule}; {formula}",
        )


async def relay(request: HttpRequest, inbound: InboundFormat) -> HttpResponse:
    """Serve one relay endpoint from authentication to settlement."""
    request_id = uuid.uuid4().hex
    started = time.perf_counter()
    call = None
    error_response = inbound.error_response
    try:
        key, pinned = await authenticate(inbound.credential(request), request)
        relay_request = inbound.endpoint.parse(read_body(request), request)
        check_model(key, relay_request.model)
        if ratelimit.limits_for_key(key).any:
            await run_db(ratelimit.admit, key)
        prices = await pricing.acurrent()
        quote = prices.quote(relay_request.model, key.group)
        call = Call(request_id, started, key, pinned, inbound, relay_request, quote)
        call.session = conversation(inbound, relay_request, request, key, prices)
        await count_media(call)
        await reserve(call)
        response = await dispatch(call)
    except ratelimit.RateLimited as limited:
        response = error_response(RelayError(429, str(limited), "rate_limit_exceeded", type="rate_limit_error"))
        response["Retry-After"] = str(limited.retry_after)
    except RelayError as error:
        await release_if_held(call)
        response = error_response(error)
    except DatabaseError:
        log.exception("request %s: the database is unavailable", request_id)
        await release_if_held(call)
        response = error_response(database_down())
    except Exception:
        # A bug must not leak a stack trace, nor keep the client's quota until the reconciler runs.
        log.exception("request %s failed inside the gateway", request_id)
        await release_if_held(call)
        response = error_response(RelayError(500, "internal error in the gateway", "internal_error"))
    except asyncio.CancelledError:
        # The client hung up before the answer started: give its quota back now rather than after
        # RESERVATION_STALE_SECONDS (release is idempotent, so a settlement that got there first stands).
        await release_if_held(call)
        raise
    response["X-Request-Id"] = request_id
    observe(inbound.endpoint, call, response, started)
    return response


def observe(endpoint: Endpoint, call: Call | None, response: HttpResponse, started: float) -> None:
    """Metrics of one request; a stream's overhead, first chunk and duration are recorded by relay.streaming."""
    stream = call is not None and call.request.stream and response.status_code == 200
    model = metrics.model_label(call.request.model) if call else ""
    channel = str(call.tried[-1]) if call and call.tried else ""
    metrics.REQUESTS.labels(endpoint.name, model, channel, str(response.status_code), str(stream).lower()).inc()
    if not stream:
        metrics.LATENCY.labels(endpoint.name, "false").observe(time.perf_counter() - started)
        if call is not None and call.tried:
            metrics.OVERHEAD.observe(call.gateway_ms() / 1000)


async def release_if_held(call: Call | None) -> None:
    """Give back what the call holds. When the database is down this fails too; the reconciler then
    releases the reservation once the database is back (nothing is charged twice either way)."""
    if call is not None and call.reserved:
        try:
            await run_db(quota.release, call.request_id)
        except DatabaseError:
            log.warning("request %s: reservation left to the reconciler", call.request_id)
        call.reserved = False


def conversation(
    inbound: InboundFormat, relay_request: RelayRequest, request: HttpRequest, key: KeyInfo, prices: pricing.Prices
) -> str | None:
    """The conversation the request names where the key's group honours its source, scoped to the key's user,
    group and model; None otherwise, or when affinity is off (AFFINITY_TTL 0)."""
    sources = prices.affinity_sources(key.group)
    if not sources or settings.AFFINITY_TTL <= 0:
        return None
    identity = inbound.session_identity(relay_request, request, sources)
    return affinity.session_key(key.user_id, key.group, relay_request.model, identity) if identity else None


def refused(rejected: key_auth.KeyRejected) -> RelayError:
    """What billing.accounts.key_auth refuses (a key, its client's IP, its model), as the client sees it."""
    return RelayError(rejected.status, str(rejected), rejected.code)


async def authenticate(credential: str, request: HttpRequest) -> tuple[KeyInfo, int | None]:
    """The key `credential` names (`Bearer sk-...`) and the channel it pins, if any."""
    try:
        return await key_auth.authenticate(credential, client_ip(request))
    except key_auth.KeyRejected as rejected:
        raise refused(rejected) from None


def check_model(key: KeyInfo, model: str) -> None:
    try:
        key.check_model(model)
    except key_auth.KeyRejected as rejected:
        raise refused(rejected) from None


def client_ip(request: HttpRequest) -> str | None:
    return request.META.get("REMOTE_ADDR")


def read_body(request: HttpRequest) -> bytes:
    try:
        return request.body
    except RequestDataTooBig:
        raise body_too_large(settings.RELAY_MAX_BODY_BYTES) from None
    except ValueError:  # a Content-Length that is no number (daphne refuses those itself; other servers may not)
        raise RelayError(400, "invalid Content-Length", "invalid_body") from None
    except OSError:  # the client went away mid-body
        raise RelayError(400, "could not read the request body", "invalid_body") from None


async def count_media(call: Call) -> None:
    """Add the prompt's images to its tokens. Sizing them takes work (decoding, fetching), so a request whose
    quota cannot even hold its text is refused before any of it; requests without images skip this check."""
    images = call.endpoint.images(call.request)
    if images:
        await within_quota(call, check_hold)
        call.add_media_tokens(await media.image_tokens(images, call.request.model))


async def reserve(call: Call) -> None:
    await within_quota(call, hold)
    call.reserved = True


async def within_quota(call: Call, take: Callable[[Call], Awaitable[None]]) -> None:
    """`take` the cost (hold it, or check that it would fit) with the prompt's byte bound, which needs no
    tokenizer; only when that does not fit is the prompt counted exactly and the smaller amount tried, so
    the bound never refuses a request."""
    try:
        try:
            await take(call)
        except quota.KeyGone:
            raise
        except quota.QuotaExceeded:
            if not await exact_count_lowers_hold(call):
                raise
            await take(call)
    except quota.KeyGone:
        raise RelayError(401, "invalid API key", "invalid_api_key") from None
    except quota.QuotaExceeded as exceeded:
        raise RelayError(403, str(exceeded), "insufficient_quota", type="insufficient_quota") from None


async def exact_count_lowers_hold(call: Call) -> bool:
    """Counts the prompt exactly unless it was, or the price does not depend on it (a fixed price)."""
    bound = call.prompt_tokens
    if call.prompt_counted or hold_amount(call, 0) == hold_amount(call, bound):
        return False
    return await call.count_prompt() < bound


def hold_amount(call: Call, prompt_tokens: int) -> int:
    """The request's worst case; one past what any balance can hold (a huge batch x best_of x max_tokens) is
    held as the most there can be, and refused as such."""
    return min(call.endpoint.reservation(call.quote, call.request, prompt_tokens), quota.MAX_AMOUNT)


async def hold(call: Call) -> None:
    await settlement.reserve(call.request_id, call.key, hold_amount(call, call.prompt_tokens))


async def check_hold(call: Call) -> None:
    key = call.key
    amount = hold_amount(call, call.prompt_tokens)
    await run_db(quota.check_hold, quota.Hold(call.request_id, key.token_id, key.user_id, key.unlimited, amount))


async def dispatch(call: Call) -> HttpResponse:
    """Try channels until one answers; retry only failures that happened before any byte reached the client."""
    index = await routing.aget_index()
    if call.pinned:
        candidates = pinned_channel(index, call.pinned)
    else:
        candidates = index.candidates(call.key.group, call.request.model)
        if call.inbound.stores_answers:
            candidates = await call.inbound.continue_on(call.key, call.request, candidates)
    attempts = 1 if call.pinned else settings.RETRY_TIMES + 1
    session = None if call.pinned else call.session
    recalled = await affinity.recall(session) if session else None
    failure: UpstreamFailure | None = None
    for channel in selection.channels_to_try(candidates, attempts, call.tried, call.dead_keys, recalled):
        try:
            response = await attempt(call, channel)
        except UpstreamFailed as failed:
            failure = failed.failure
            log.warning("request %s: channel %s failed with %s", call.request_id, channel.id, failure.status)
            metrics.UPSTREAM_ERRORS.labels(str(channel.id), str(failure.status)).inc()
            await selection.note_failure(channel, failure, call.dead_keys)
            if not selection.retryable(failure.status):
                break
            metrics.RETRIES.inc()
        else:
            selection.succeeded(channel)
            if session:
                await affinity.remember(session, (channel.id, channel.key_position), recalled)
            return response
    await release_if_held(call)
    if failure is None:
        raise no_channel(index, call.key.group, call.request.model)
    await run_db(quota.record_failure, call.request_id, call.key, call.tried, call.request.model, failure.message)
    raise RelayError(failure.status, failure.message, failure.code, failure.type, failure.param)


def no_channel(index: routing.Index, group: str, model: str) -> RelayError:
    """404 as OpenAI answers an unknown model (SDKs do not retry it); 503 when channels serve it but all are off."""
    if not index.serves_at_all(group, model):
        return RelayError(
            404,
            f"The model `{model}` does not exist or you do not have access to it.",
            "model_not_found",
            param="model",
        )
    return RelayError(503, f"no available channel for model {model} in group {group}", "no_channel")


def pinned_channel(index: routing.Index, channel_id: int) -> list[ChannelInfo]:
    channel = index.by_id.get(channel_id)
    if channel is None:
        raise RelayError(400, f"channel {channel_id} does not exist", "invalid_channel")
    return [channel]


async def attempt(call: Call, channel: ChannelInfo) -> HttpResponse:
    """One try on one channel (relay.exchange). A failure leaves with the channel's secrets scrubbed from its
    message, before the client's answer, the error log, auto-disable or the server log can use it."""
    exchange = Exchange(channel, call.request_for(channel), call.waited)
    try:
        await exchange.prepare()
        response = await exchange.answer(stream=True, status_map=channel.status_code_mapping)
        return await relay_answer(call, exchange, response)
    except UpstreamFailed as failed:
        failed.failure.message = exchange.scrub(failed.failure.message)
        raise


async def relay_answer(call: Call, exchange: Exchange, response: httpx.Response) -> HttpResponse:
    """The client's answer from an upstream answer that is no error: a stream relayed as it comes, or a whole
    answer read, billed and converted."""
    if call.request.stream and not streaming.answered_whole(response):
        return await streaming.start(call, exchange, response)
    content = await exchange.read(response)
    if call.request.stream and not call.native:  # a native JSON answer is the client's format already
        return await streaming.relay_whole(call, exchange, content)
    return await finish_whole(call, exchange, content, response.headers.get("Content-Type"))


async def finish_whole(call: Call, exchange: Exchange, content: bytes, content_type: str | None):
    """Bill and answer a whole answer. Once the upstream has answered, the call is billed even if its client
    hangs up while the charge is worked out (shielded); a call cancelled before that is released by relay()."""
    body, usage, text = exchange.adaptor.convert_response(exchange.request, content)
    charge = await asyncio.shield(call.settle_when_known(call.whole_charge(exchange.channel, usage, text)))
    if not (call.native or call.inbound.is_hub):
        body = call.inbound.whole(call.request, body, call.request_id, streaming.charged_usage(charge))
    elif call.inbound.stores_answers:
        await call.inbound.remember(call.key, exchange.channel, call.request, call.inbound.answer_id(body))
    if not exchange.request.passthrough:
        content_type = "application/json"
    response = HttpResponse(body, content_type=content_type or "application/octet-stream")
    response["X-Gateway-Time-Ms"] = f"{call.gateway_ms():.2f}"
    return response
