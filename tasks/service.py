"""The asynchronous-task request path (Midjourney, Suno): authenticate, hold the price, pick a channel (the
origin task's channel for follow-ups), submit, and on acceptance store the task and charge it together.

Money: the fixed price is reserved before the submit and becomes the charge only when the upstream
accepts; any refusal releases it. Retries: a submit goes to another channel only when the upstream
certainly did not take it (no connection, a refusal status, queue full). Once a submit may have reached
an upstream without a clear answer (read timeout, broken connection) it is never sent elsewhere, because
that would create, and bill, a second task.
"""

import dataclasses
import time
from collections.abc import Callable

import httpx
import orjson
from django.conf import settings
from django.http import HttpRequest, HttpResponse

from billing import pricing, quota
from billing.accounts.key_auth import KeyInfo
from billing.pricing import Quote
from channels_app import routing, selection
from channels_app.routing import ChannelInfo
from gateway_project.db import run_db
from relay import service, upstream
from relay.adaptors.base import UpstreamRequest, openai_style_error, scrub
from relay.endpoints import load_body
from tasks import polling, records
from tasks.adaptors.base import SubmitSpec, TaskAdaptor, TaskError, Verdict, load
from tasks.adaptors.midjourney import MidjourneyAdaptor
from tasks.models import Task

FALLBACK_PRICE = 0.1  # USD, for a task model missing from the operator's price table (as new-api does)
MAX_FETCH_IDS = 1000


def answer(status: int, body: object) -> HttpResponse:
    return HttpResponse(orjson.dumps(body), status=status, content_type="application/json")


def credential(request: HttpRequest) -> str:
    """`mj-api-secret: sk-...` (the only header many Midjourney clients can send) or `Authorization`."""
    return request.headers.get("mj-api-secret", "").strip() or request.headers.get("Authorization", "")


async def authenticate(request: HttpRequest) -> tuple[KeyInfo, int | None]:
    return await service.authenticate(credential(request), request)


def json_body(request: HttpRequest) -> dict:
    return load_body(service.read_body(request))


def task_quote(prices: pricing.Prices, model: str, group: str) -> Quote:
    quote = prices.quote(model, group)
    if quote.price is None:
        return dataclasses.replace(quote, price=FALLBACK_PRICE, quota_per_unit=prices.quota_per_unit)
    return quote


@dataclasses.dataclass
class Submission:
    """One client submit on its way: who pays, what for, and at what price."""

    adaptor: TaskAdaptor
    public_id: str
    key: KeyInfo
    spec: SubmitSpec
    origin: Task | None
    quote: Quote
    amount: int
    started: float

    def new_task(self, channel: ChannelInfo, verdict: Verdict) -> records.NewTask:
        return records.NewTask(
            public_id=self.public_id,
            platform=self.adaptor.platform,
            action=self.spec.action,
            model=self.spec.model,
            user_id=self.key.user_id,
            token_id=self.key.token_id,
            channel_id=channel.id,
            upstream_id=verdict.upstream_id,
            prompt=self.spec.prompt,
            properties=self.spec.properties,
            quota=self.amount,
            origin_pk=self.origin.pk if self.origin else None,
        )

    def charge(self, channel: ChannelInfo) -> quota.Charge:
        return quota.Charge(
            request_id=self.public_id,
            quota=self.amount,
            model=self.spec.model,
            prompt_tokens=0,
            completion_tokens=0,
            channel_id=channel.id,
            token_name=self.key.token_name,
            is_stream=False,
            use_time_ms=int((time.perf_counter() - self.started) * 1000),
            content=f"{self.adaptor.platform} {self.spec.action} task {self.public_id} accepted by channel "
            f"{channel.id}; {self.quote.explain(0, 0)}",
        )


async def submit(request: HttpRequest, adaptor: TaskAdaptor, parse: Callable[[dict], SubmitSpec]) -> HttpResponse:
    """Serve one submit endpoint; `parse` validates the client's JSON. Raises TaskError, or the RelayError of
    the relay's own checks of the key and the body (relay.service)."""
    started = time.perf_counter()
    key, pinned = await authenticate(request)
    spec = parse(json_body(request))
    service.check_model(key, spec.model)
    origin = await origin_task(adaptor, key, spec)
    candidates = await channels_for(adaptor, key, pinned, spec, origin)
    quote = task_quote(await pricing.acurrent(), spec.model, key.group)
    job = Submission(adaptor, adaptor.new_public_id(), key, spec, origin, quote, quote.cost(0, 0), started)
    await hold(job)
    held = True
    try:
        channel, verdict = await send(adaptor, spec, candidates, may_retry=origin is None and pinned is None)
        if not verdict.accepted:
            return passthrough(verdict.status, verdict.content)
        await run_db(records.record_accepted, job.new_task(channel, verdict), job.charge(channel), verdict.initial)
        held = False
        return answer(verdict.status, adaptor.accepted_body(verdict, job.public_id))
    finally:
        if held:  # refused, or failed on the way: the reservation goes back whole
            await run_db(quota.release, job.public_id)


async def hold(job: Submission) -> None:
    key = job.key
    try:
        await run_db(quota.reserve, job.public_id, key.token_id, key.user_id, key.unlimited, job.amount)
    except quota.KeyGone:
        raise TaskError(401, "invalid API key", "invalid_api_key") from None
    except quota.QuotaExceeded as exceeded:
        raise TaskError(403, str(exceeded), "quota_not_enough") from None


async def origin_task(adaptor: TaskAdaptor, key: KeyInfo, spec: SubmitSpec) -> Task | None:
    """The caller's task that a follow-up acts on; its upstream id replaces the public one in the body."""
    if spec.origin_id is None:
        return None
    origin = await run_db(records.find_own, key.user_id, adaptor.platform, spec.origin_id)
    if origin is None or not origin.upstream_id:
        raise TaskError(404, f"task {spec.origin_id} not found", "task_not_found")
    if spec.origin_must_succeed and origin.status != Task.Status.SUCCESS:
        raise TaskError(400, f"task {spec.origin_id} is {origin.status}, not SUCCESS", "task_status_not_success")
    adaptor.point_at_origin(spec, origin.upstream_id)
    spec.prompt = spec.prompt or origin.prompt
    return origin


def channel_enabled(channel_id: int) -> bool:
    from channels_app.models import Channel

    return Channel.objects.filter(pk=channel_id, status=Channel.Status.ENABLED).exists()


async def channels_for(
    adaptor: TaskAdaptor, key: KeyInfo, pinned: int | None, spec: SubmitSpec, origin: Task | None
) -> list[ChannelInfo]:
    index = await routing.aget_index()
    if origin is not None:
        # The upstream account that ran the original job holds its Discord message (or Suno clip).
        channel = index.by_id.get(origin.channel_id) if origin.channel_id else None
        if channel is None or not await run_db(channel_enabled, channel.id):
            message = f"the channel that ran task {origin.public_id} is not available"
            raise TaskError(503, message, "channel_unavailable")
        return [channel]
    if pinned is not None:
        channel = index.by_id.get(pinned)
        if channel is None or channel.type != adaptor.slug:
            raise TaskError(400, f"channel {pinned} is not a {adaptor.platform} channel", "invalid_channel")
        return [channel]
    found = [c for c in index.candidates(key.group, spec.model) if c.type == adaptor.slug]
    if not found:
        raise TaskError(503, f"no available channel for model {spec.model} in group {key.group}", "no_channel")
    return found


async def send(
    adaptor: TaskAdaptor, spec: SubmitSpec, candidates: list[ChannelInfo], may_retry: bool
) -> tuple[ChannelInfo, Verdict]:
    """Submit on one channel after another until one accepts or refuses for good."""
    attempts = settings.RETRY_TIMES + 1 if may_retry else 1
    outcome: tuple[ChannelInfo, Verdict] | None = None
    for channel in selection.channels_to_try(candidates, attempts):
        verdict = adaptor.read_submit(*await call(adaptor.submit_request(channel, spec)))
        outcome = (channel, verdict)
        if verdict.accepted:
            selection.succeeded(channel)
            return outcome
        if verdict.status >= 400:
            await selection.note_failure(channel, openai_style_error(verdict.status, verdict.content))
        if not (verdict.retry_elsewhere or selection.retryable(verdict.status)):
            return outcome
    assert outcome is not None  # candidates is never empty
    return outcome


async def call(outgoing: UpstreamRequest, timeout: float | None = None) -> tuple[int, bytes]:
    """(status, body) of one request. A connection that never opened is a retryable 502; an answer that may
    have been lost after the upstream acted raises, so nobody retries it."""
    try:
        response = await upstream.client().request(
            outgoing.method,
            outgoing.url,
            headers=outgoing.headers,
            content=outgoing.content,
            timeout=timeout or settings.TASK_SUBMIT_TIMEOUT,
        )
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout):
        return 502, b""
    except httpx.TimeoutException:
        message = "the upstream did not answer in time; not retried elsewhere and not charged"
        raise TaskError(504, message, "upstream_timeout") from None
    except httpx.HTTPError:
        message = "the connection to the upstream broke before it answered; not retried and not charged"
        raise TaskError(502, message, "upstream_error") from None
    return response.status_code, scrubbed(response.content, outgoing)


def scrubbed(content: bytes, outgoing: UpstreamRequest) -> bytes:
    """The answer without the credential it was sent: refusals go back to the client as the upstream gave
    them, and feed auto-disable's reason. surrogateescape keeps any other byte as it was."""
    text = content.decode("utf-8", "surrogateescape")
    return scrub(text, "", outgoing).encode("utf-8", "surrogateescape")


def passthrough(status: int, content: bytes) -> HttpResponse:
    """An upstream answer the client can act on goes back as the upstream gave it (a refused prompt, a
    missing task); credential trouble and server errors become the gateway's own error."""
    if status < 500 and status not in (401, 403) and isinstance(load(content), dict):
        return HttpResponse(content, status=status, content_type="application/json")
    raise TaskError(status if status >= 500 else 502, f"the upstream failed (status {status})", "upstream_error")


async def fetch_one(request: HttpRequest, adaptor: TaskAdaptor, public_id: str) -> HttpResponse:
    """One of the caller's tasks, from the gateway's own records."""
    key, _ = await authenticate(request)
    task = await run_db(records.find_own, key.user_id, adaptor.platform, public_id)
    if task is None:
        raise TaskError(404, f"task {public_id} not found", "task_not_found")
    return answer(200, adaptor.found_body(adaptor.client_task(task)))


async def fetch_many(request: HttpRequest, adaptor: TaskAdaptor) -> HttpResponse:
    """`{"ids": [...]}` -> the caller's tasks among them, in that order; unknown ids are left out."""
    key, _ = await authenticate(request)
    ids = json_body(request).get("ids")
    if not isinstance(ids, list) or not all(isinstance(one, str) for one in ids) or len(ids) > MAX_FETCH_IDS:
        raise TaskError(400, f"ids must be an array of at most {MAX_FETCH_IDS} task ids", "invalid_ids")
    tasks = await run_db(records.own_tasks, key.user_id, adaptor.platform, ids)
    return answer(200, adaptor.found_body([adaptor.client_task(task) for task in tasks]))


async def image_seed(request: HttpRequest, adaptor: MidjourneyAdaptor, public_id: str) -> HttpResponse:
    """Asked of the channel that ran the task (only its upstream has the Discord message); free."""
    key, _ = await authenticate(request)
    task = await run_db(records.find_own, key.user_id, adaptor.platform, public_id)
    if task is None or not task.upstream_id:
        raise TaskError(404, f"task {public_id} not found", "task_not_found")
    channel = (await routing.aget_index()).by_id.get(task.channel_id) if task.channel_id else None
    if channel is None:
        raise TaskError(503, f"the channel that ran task {public_id} is gone", "channel_unavailable")
    outgoing = adaptor.image_seed_request(channel, task.upstream_id)
    return passthrough(*await call(outgoing, settings.TASK_FETCH_TIMEOUT))


async def notify(request: HttpRequest) -> HttpResponse:
    """Midjourney-Proxy's notifyHook: no API key, but it must name an open task of the claimed channel."""
    try:
        channel_id = int(request.GET.get("channel", ""))
    except ValueError:
        raise TaskError(400, "the channel query parameter is required", "invalid_channel") from None
    body = json_body(request)
    if not await polling.take_notice(channel_id, body):
        raise TaskError(404, "no open task with this id on this channel", "task_not_found")
    return answer(200, {"code": 1, "description": "success", "result": None})
