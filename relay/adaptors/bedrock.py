"""AWS Bedrock: Claude through InvokeModel in Anthropic's own body, every other model through the Converse API
(the Bedrock Runtime API reference; reference-new-api.md 4.13 for new-api's channel type 33).

Decisions worth knowing:
- The channel key is `ACCESS_KEY_ID|SECRET_ACCESS_KEY|REGION` (new-api's `AK|SK|Region`), with `|SESSION_TOKEN`
  after it for temporary credentials, or a Bedrock API key, `API_KEY|REGION`; without the region part, the
  channel's config `region`. A non-empty base_url replaces `https://bedrock-runtime.{region}.amazonaws.com`
  (a VPC endpoint); requests are still signed for the key's region.
- `sign`, the last step before a request leaves (relay.exchange), signs it with SigV4 (botocore, service
  `bedrock`) over the exact bytes sent, once per attempt; an API key goes as `Authorization: Bearer` instead.
- Which API: a model id with `anthropic.` in it (anthropic.claude-*, the us./eu./apac./global. inference
  profiles, an ARN naming one) goes to InvokeModel with Anthropic's Messages body (`anthropic_version`
  bedrock-2023-05-31, no `model` or `stream`), converted by relay.adaptors.anthropic; anything else (Llama,
  Mistral, Nova, DeepSeek, an application inference profile's opaque ARN) to Converse
  (relay.adaptors.bedrock_converse), which serves every chat model Bedrock has, Claude included.
- Streams are AWS's binary event stream. `stream_bytes` decodes it (botocore.eventstream) into server-sent events,
  which the relay reads as every other provider's: InvokeModel's `chunk` events as the Anthropic events they
  carry (`event: <type>` / `data: <json>`, so a Messages client passed through gets Anthropic's own stream),
  Converse's events as `data: {"<event type>": {...}}`. An exception event ends the stream as the error it
  names (before the first byte, the relay may still retry the request elsewhere).
- Errors: the exception named by the `x-amzn-ErrorType` header -> status; an access key that AWS does not
  know, a bad signature, an expired session token or denied access mean a dead credential.
- A client's own Messages request (relay.formats) to a Claude model is passed through: its body without `model`
  and `stream`, with `anthropic_version`, and its `anthropic-beta` header as the body's `anthropic_beta` list.
"""

import base64
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, replace
from urllib.parse import quote

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as SigningKeys
from botocore.eventstream import EventStreamBuffer, EventStreamMessage, ParserError

from channels_app.channel_types import both
from channels_app.routing import ChannelInfo
from relay.adaptors import anthropic, bedrock_converse
from relay.adaptors.base import (
    ANTHROPIC_MESSAGES,
    Adaptor,
    FirstEventStream,
    RelayRequest,
    StreamConverter,
    UpstreamFailed,
    UpstreamFailure,
    UpstreamRequest,
    Usage,
)
from relay.adaptors.openai_format import json_or_none, request_json, require_chat

SLUG = "bedrock"
SIGNING_NAME = "bedrock"  # SigV4's service name for the Bedrock Runtime API
ANTHROPIC_VERSION = "bedrock-2023-05-31"
CLAUDE_MARK = "anthropic."
EVENT_STREAM = "application/vnd.amazon.eventstream"
REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")
ACCESS_KEY_ID = re.compile(r"^[A-Z0-9]{16,128}$")
KEY_FORMS = "ACCESS_KEY_ID|SECRET_ACCESS_KEY|REGION (then |SESSION_TOKEN if temporary), or API_KEY|REGION"
# What admin's Fetch models offers (Bedrock's model list is a control-plane call with other permissions).
DEFAULT_MODELS = (
    "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
    "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
    "us.anthropic.claude-opus-4-1-20250805-v1:0",
    "us.anthropic.claude-haiku-4-5-20251001-v1:0",
    "us.anthropic.claude-sonnet-4-20250514-v1:0",
    "us.anthropic.claude-3-7-sonnet-20250219-v1:0",
    "anthropic.claude-3-5-haiku-20241022-v1:0",
    "anthropic.claude-3-haiku-20240307-v1:0",
    "us.meta.llama4-maverick-17b-instruct-v1:0",
    "us.meta.llama3-3-70b-instruct-v1:0",
    "meta.llama3-1-8b-instruct-v1:0",
    "us.amazon.nova-premier-v1:0",
    "amazon.nova-pro-v1:0",
    "amazon.nova-lite-v1:0",
    "amazon.nova-micro-v1:0",
    "mistral.mistral-large-2407-v1:0",
    "us.deepseek.r1-v1:0",
)
# AWS exception name -> (the status the relay reports, whether it shows a dead credential). Others keep AWS's.
ERRORS = {
    "AccessDeniedException": (403, True),
    "UnrecognizedClientException": (403, True),
    "InvalidSignatureException": (403, True),
    "ExpiredTokenException": (403, True),
    "ValidationException": (400, False),
    "ThrottlingException": (429, False),
    "ServiceQuotaExceededException": (429, False),
    "ModelNotReadyException": (503, False),
    "ServiceUnavailableException": (503, False),
    "ModelTimeoutException": (408, False),
    "InternalServerException": (500, False),
    "ModelErrorException": (502, False),
    "ModelStreamErrorException": (502, False),
}


def is_claude(model: str) -> bool:
    """Whether a Bedrock model id names an Anthropic model (relay.formats.anthropic_messages has the same rule)."""
    return CLAUDE_MARK in model


# --- credentials ---


class InvalidKey(ValueError):
    """The channel's key or region cannot be used; the message never quotes the secret."""


@dataclass(frozen=True)
class Credentials:
    region: str
    api_key: str = ""  # a Bedrock API key, sent as Bearer; else the access key pair signs
    access_key: str = ""
    secret_key: str = ""
    session_token: str = ""


def configured_region(config: Mapping) -> str:
    region = config.get("region")
    return region if isinstance(region, str) else ""


def credentials_of(key: str, config: Mapping) -> Credentials:
    """The channel's credentials; InvalidKey saying what is wrong with them."""
    parts = key.strip().split("|")
    if len(parts) == 1 or (len(parts) == 2 and REGION.match(parts[1])):
        found = Credentials(parts[1] if len(parts) == 2 else configured_region(config), api_key=parts[0])
    elif len(parts) <= 4:
        region = parts[2] if len(parts) > 2 else configured_region(config)
        token = parts[3] if len(parts) == 4 else ""
        found = Credentials(region, access_key=parts[0], secret_key=parts[1], session_token=token)
    else:
        raise InvalidKey(f"a bedrock key is {KEY_FORMS}")
    if not found.region:
        raise InvalidKey(f"no region: write the key as {KEY_FORMS}, or set config.region")
    if not REGION.match(found.region):
        raise InvalidKey(f"{found.region!r} is not an AWS region such as us-east-1")
    if not (found.api_key or found.secret_key):
        raise InvalidKey(f"the key is empty where its secret should be: {KEY_FORMS}")
    if found.access_key and not ACCESS_KEY_ID.match(found.access_key):
        raise InvalidKey("the access key id must be capital letters and digits, such as AKIA...")
    return found


def check_channel(key: str, config: dict) -> dict[str, str]:
    """What is wrong with a bedrock channel's key and config, by field (empty when it can be saved)."""
    region = config.get("region")
    if region is not None and not (isinstance(region, str) and (not region or REGION.match(region))):
        return {"config": "region must be an AWS region such as us-east-1"}
    try:
        credentials_of(key, config)
    except InvalidKey as invalid:
        return {"key": str(invalid)}
    return {}


def credentials_for(channel: ChannelInfo) -> Credentials:
    try:
        return credentials_of(channel.key, channel.config)
    except InvalidKey as invalid:
        # Saved before validation existed, or written around it: the credential cannot work.
        message = f"the bedrock channel's key is unusable: {invalid}"
        raise UpstreamFailed(UpstreamFailure(401, message, "authentication_error", "invalid_key")) from None


def signed(outgoing: UpstreamRequest, credentials: Credentials) -> UpstreamRequest:
    """The request with SigV4's X-Amz-Date, Authorization (and X-Amz-Security-Token) headers, signed over every
    header it has (the host is the URL's) and its body."""
    keys = SigningKeys(credentials.access_key, credentials.secret_key, credentials.session_token or None)
    aws = AWSRequest(outgoing.method, outgoing.url, data=outgoing.content, headers=outgoing.headers)
    SigV4Auth(keys, SIGNING_NAME, credentials.region).add_auth(aws)
    return replace(outgoing, headers=dict(aws.headers.items()))


# --- requests ---


def claude_body(request: RelayRequest, model: str) -> dict:
    """InvokeModel's body: Anthropic's Messages body (the client's own on a pass-through) as Bedrock takes it."""
    if request.endpoint == ANTHROPIC_MESSAGES:
        body = dict(request.body)
        betas = [name.strip() for name in request.headers.get("anthropic-beta", "").split(",") if name.strip()]
        if betas:
            body["anthropic_beta"] = betas
    else:
        body = anthropic.messages_body(request, model)
    # The URL names the model and whether to stream; Bedrock refuses both fields in the body.
    kept = {name: value for name, value in body.items() if name not in ("model", "stream")}
    return {"anthropic_version": ANTHROPIC_VERSION, **kept}


def model_path(model: str) -> str:
    """The model id as one path segment, in the form the HTTP client sends it: the signature covers the path,
    and aiohttp (yarl) writes a `%3A` as the `:` it stands for. A `/` (in an ARN) stays `%2F`."""
    return quote(model, safe=":")


def call_of(request: RelayRequest, model: str) -> tuple[str, dict]:
    """(the model's action, its body)."""
    if is_claude(model):
        return "invoke-with-response-stream" if request.stream else "invoke", claude_body(request, model)
    return "converse-stream" if request.stream else "converse", bedrock_converse.converse_body(request)


# --- answers ---


def failure_of(kind: str, status: int, message: object) -> UpstreamFailure:
    """A Bedrock exception (named as AWS names it, `ThrottlingException`) as the relay's failure."""
    status, dead = ERRORS.get(kind, (status, False))
    text = message if isinstance(message, str) and message else f"bedrock answered {kind or status}"
    return UpstreamFailure(status, text, kind or None, kind or None, permanent=dead)


def error_kind(headers: Mapping[str, str], body: object) -> str:
    """The exception's name from `x-amzn-ErrorType` (`ThrottlingException:http://internal.amazon.com/...`), or
    the body's `__type` as some AWS front ends put it."""
    kind = headers.get("x-amzn-ErrorType") or (body.get("__type") if isinstance(body, dict) else "") or ""
    return str(kind).partition(":")[0].rpartition("#")[2]


def event_failure(message: EventStreamMessage) -> UpstreamFailure:
    """An event stream's exception or error message as the relay's failure."""
    headers = message.headers
    if headers.get(":message-type") == "error":
        return failure_of(str(headers.get(":error-code") or ""), 502, headers.get(":error-message"))
    kind = str(headers.get(":exception-type") or "")
    body = json_or_none(message.payload)
    text = body.get("message") if isinstance(body, dict) else None
    return failure_of(kind[:1].upper() + kind[1:], 502, text)  # the stream names them in lowerCamelCase


def one_line(data: bytes) -> bytes:
    """JSON on one line (a line break is whitespace between tokens): one `data:` line carries it."""
    return data.replace(b"\r", b"").replace(b"\n", b"") if b"\n" in data or b"\r" in data else data


def event_bytes(message: EventStreamMessage) -> bytes:
    """One event stream message as a server-sent event: InvokeModel's chunk as the Anthropic event it carries,
    a Converse event wrapped in an object named by its type; UpstreamFailed for an exception."""
    if message.headers.get(":message-type") != "event":
        raise UpstreamFailed(event_failure(message))
    kind = str(message.headers.get(":event-type") or "")
    payload = one_line(message.payload)
    if kind != "chunk":
        return b'data: {"' + kind.encode() + b'":' + payload + b"}\n\n"
    part = json_or_none(payload)
    encoded = part.get("bytes") if isinstance(part, dict) else None
    try:
        data = one_line(base64.b64decode(encoded or "", validate=True))
    except ValueError:
        data = b""
    event = json_or_none(data)
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        raise UpstreamFailed(UpstreamFailure(502, "bedrock sent a chunk that is no Anthropic event", "upstream_error"))
    return b"event: " + event["type"].encode() + b"\ndata: " + data + b"\n\n"


def decoded(messages: EventStreamBuffer) -> tuple[list[bytes], UpstreamFailed | None]:
    """The events of the complete messages in the buffer, and the failure that ended them (the events before an
    exception still reach the client)."""
    events: list[bytes] = []
    try:
        for message in messages:
            events.append(event_bytes(message))
    except UpstreamFailed as failed:
        return events, failed
    except ParserError:
        return events, UpstreamFailed(UpstreamFailure(502, "bedrock sent a broken event stream", "upstream_error"))
    return events, None


class BedrockAdaptor(Adaptor):
    slug = SLUG
    label = "AWS Bedrock"
    old_types = (both(33),)
    check = staticmethod(check_channel)
    default_models = DEFAULT_MODELS

    def __init__(self) -> None:
        self.claude = anthropic.AnthropicAdaptor()

    def build_request(self, request: RelayRequest, channel: ChannelInfo) -> UpstreamRequest:
        if request.endpoint != ANTHROPIC_MESSAGES:  # a Messages request comes only for Claude (relay.formats)
            require_chat(request, SLUG)
        model = channel.upstream_model(request.model)
        region = credentials_for(channel).region
        host = channel.base_url.rstrip("/") or f"https://bedrock-runtime.{region}.amazonaws.com"
        action, body = call_of(request, model)
        headers = {"Content-Type": "application/json", "Accept": EVENT_STREAM if request.stream else "application/json"}
        return UpstreamRequest(f"{host}/model/{model_path(model)}/{action}", headers, request_json(body))

    def sign(self, outgoing: UpstreamRequest, channel: ChannelInfo) -> UpstreamRequest:
        credentials = credentials_for(channel)
        if credentials.api_key:
            return replace(outgoing, headers={**outgoing.headers, "Authorization": f"Bearer {credentials.api_key}"})
        return signed(outgoing, credentials)

    async def stream_bytes(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        messages = EventStreamBuffer()
        async for chunk in chunks:
            messages.add_data(chunk)
            events, failed = decoded(messages)
            if events:
                yield b"".join(events)
            if failed is not None:
                raise failed

    def convert_response(self, request: RelayRequest, content: bytes) -> tuple[bytes, Usage | None, str]:
        if is_converse_answer(content):
            return bedrock_converse.converse_answer(request, content)
        return self.claude.convert_response(request, content)

    def stream_converter(self, request: RelayRequest) -> StreamConverter:
        if request.endpoint == ANTHROPIC_MESSAGES:
            return anthropic.NativeStream(request)
        return FirstEventStream(request, lambda payload: stream_for(request, payload), SLUG)

    def error_answer(self, status: int, headers: Mapping[str, str], content: bytes) -> UpstreamFailure:
        body = json_or_none(content)
        message = (body.get("message") or body.get("Message")) if isinstance(body, dict) else None
        return failure_of(error_kind(headers, body), status, message)

    def parse_error(self, status: int, content: bytes) -> UpstreamFailure:
        return self.error_answer(status, {}, content)


def is_converse_answer(content: bytes) -> bool:
    """Converse's answers have an `output`; InvokeModel's for Claude are Anthropic messages."""
    answer = json_or_none(content)
    return isinstance(answer, dict) and "output" in answer


def stream_for(request: RelayRequest, first: bytes) -> StreamConverter:
    """Anthropic's events (InvokeModel) carry a `type`; Converse's are named by their only key."""
    event = json_or_none(first)
    if isinstance(event, dict) and isinstance(event.get("type"), str):
        return anthropic.AnthropicStream(request)
    return bedrock_converse.ConverseStream(request)
