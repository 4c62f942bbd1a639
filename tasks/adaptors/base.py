"""What the Midjourney and Suno adaptors share: the validated submit, the upstream's verdict on it, and
timestamps (the normalised task report the poller applies is tasks.updates.TaskUpdate).

A task adaptor only speaks a wire format: tasks.service moves the bytes, tasks.records moves the money.
"""

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import orjson

from channels_app.routing import ChannelInfo
from relay.adaptors.base import Provider, UpstreamRequest
from relay.errors import RelayError
from tasks.updates import TaskUpdate

if TYPE_CHECKING:
    from tasks.models import Task


class TaskError(Exception):
    """A refusal by the gateway, shaped by the platform's adaptor (`code` is a short slug)."""

    def __init__(self, status: int, message: str, code: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code

    @classmethod
    def of(cls, error: RelayError) -> "TaskError":
        """A refusal of the relay's own checks (the key, the body: relay.service) in the platform's terms."""
        return cls(error.status, error.message, str(error.code))

    def openai_error(self) -> dict:
        return RelayError(self.status, self.message, self.code).body()["error"]


@dataclass
class SubmitSpec:
    """A client's submit after validation: where it goes upstream, what it costs, which task it acts on."""

    action: str
    model: str
    path: str  # upstream path, e.g. /mj/submit/imagine
    body: dict  # upstream JSON body; the origin's id is still the public one until pointed upstream
    prompt: str = ""
    origin_id: str | None = None  # public id of the task this one acts on (routes to its channel)
    origin_must_succeed: bool = False
    properties: dict = field(default_factory=dict)


@dataclass
class Verdict:
    """The upstream's answer to a submit: accepted (a task now exists upstream and is billed) or not."""

    status: int
    content: bytes
    accepted: bool
    upstream_id: str = ""
    body: dict | None = None
    retry_elsewhere: bool = False  # a refusal another channel may not give (queue full, no account)
    initial: TaskUpdate | None = None  # the submit finished at once (Midjourney image upload)


class TaskAdaptor(Provider):
    platform = ""  # Task.platform; the channel type is `slug`

    def new_public_id(self) -> str:
        raise NotImplementedError

    def auth_headers(self, channel: ChannelInfo) -> dict[str, str]:
        raise NotImplementedError

    def point_at_origin(self, spec: SubmitSpec, upstream_id: str) -> None:
        """Swap the origin's public id in the body for the id its upstream knows."""
        raise NotImplementedError

    def read_submit(self, status: int, content: bytes) -> Verdict:
        raise NotImplementedError

    def accepted_body(self, verdict: Verdict, public_id: str) -> dict:
        raise NotImplementedError

    def fetch_request(self, channel: ChannelInfo, upstream_ids: list[str]) -> UpstreamRequest:
        raise NotImplementedError

    def read_fetch(self, content: bytes) -> list[TaskUpdate]:
        raise NotImplementedError

    def client_task(self, task: "Task") -> dict:
        raise NotImplementedError

    def found_body(self, payload: object) -> object:
        """How a fetch answer (one task or a list) is wrapped for the client."""
        return payload

    def error_body(self, error: TaskError) -> dict:
        raise NotImplementedError

    def submit_request(self, channel: ChannelInfo, spec: SubmitSpec) -> UpstreamRequest:
        return json_request(channel.base_url + spec.path, self.auth_headers(channel), spec.body)


def json_request(url: str, headers: dict[str, str], body: dict) -> UpstreamRequest:
    headers = {**headers, "Content-Type": "application/json", "Accept": "application/json"}
    return UpstreamRequest(url, headers, orjson.dumps(body))


def load(content: bytes) -> object:
    try:
        return orjson.loads(content) if content else None
    except orjson.JSONDecodeError:
        return None


def millis_id() -> str:
    """Midjourney-Proxy's id style (Unix ms + random digits), which MJ clients expect."""
    return f"{int(datetime.now(UTC).timestamp() * 1000)}{random.randrange(10**6):06d}"


def from_epoch(value: object, per_second: int) -> datetime | None:
    """A Unix timestamp in seconds (per_second=1) or milliseconds (1000); None for 0, null or junk."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return None
    try:
        return datetime.fromtimestamp(value / per_second, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def to_epoch(moment: datetime | None, per_second: int) -> int:
    return int(moment.timestamp() * per_second) if moment else 0
