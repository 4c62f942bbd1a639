"""Google Vertex AI: Gemini, Claude and Llama models behind one service account (gemini.md sections 7-8,
reference-new-api.md 4.11).

Decisions worth knowing:
- The channel key is the service-account JSON. `prepare` (awaited by the relay before `build_request`)
  makes sure an OAuth access token is cached (google_auth.Tokens); `build_request` sends it as Bearer.
- The upstream model name (after model_mapping) picks the family: `claude*` -> Anthropic's rawPredict,
  `gemini*` -> generateContent, a name containing `llama` -> the OpenAI-compatible endpoint as
  `meta/<name>`. Requests reuse the gemini and anthropic adaptors' conversions.
- Answers are converted by the family their format shows (`answer_family`), since `convert_response`
  and `stream_converter` are not told the channel: the three formats never overlap.
- Region: config `region`, a string or `{"default": ..., "<client model>": ...}` (new-api's convention),
  default DEFAULT_REGION; project: config `project_id`, else the JSON's. A non-empty base_url replaces
  the regional host.
- A client's own Messages request (relay.formats) to a Claude model is passed through: its body without
  `model`, with `anthropic_version`, and its `anthropic-beta` header; the answer is relayed as it came. A
  client's own Gemini request (generateContent, streamGenerateContent, countTokens) to a Gemini model is
  passed through as it came, to the method it named.
- Anthropic's dash-dated ids become Vertex's `@` ids (claude-3-5-sonnet-20241022 ->
  claude-3-5-sonnet-v2@20241022); `stream_options` is not sent to Llama (the relay adds the usage chunk).
"""

import re
from dataclasses import dataclass
from enum import Enum
from urllib.parse import quote

from channels_app.channel_types import new_api, one_api
from channels_app.routing import ChannelInfo
from gateway_project.safe_text import model_path_segment
from relay.adaptors import anthropic, gemini, google_auth
from relay.adaptors.base import (
    ANTHROPIC_MESSAGES,
    GEMINI_GENERATE,
    GEMINI_METHODS,
    GEMINI_STREAM,
    Adaptor,
    FirstEventStream,
    RelayRequest,
    StreamConverter,
    UpstreamFailed,
    UpstreamFailure,
    UpstreamRequest,
    Usage,
)
from relay.adaptors.openai import OpenAIAdaptor
from relay.adaptors.openai_format import json_or_none, request_json, require_chat

SLUG = "vertex"
DEFAULT_REGION = "us-central1"
GLOBAL_HOST = "https://aiplatform.googleapis.com"  # region `global` has no regional host
ANTHROPIC_VERSION = "vertex-2023-10-16"
# Vertex names that are not simply the Anthropic id with its date after an `@`.
NATIVE_ENDPOINTS = (ANTHROPIC_MESSAGES, *GEMINI_METHODS)
CLAUDE_IDS = {"claude-3-5-sonnet-20241022": "claude-3-5-sonnet-v2@20241022"}
DATED_ID = re.compile(r"^(claude-.+)-(\d{8})$")


class Family(Enum):
    GEMINI = "gemini"
    CLAUDE = "claude"
    LLAMA = "llama"


def family_of(model: str) -> Family:
    if model.startswith("claude"):
        return Family.CLAUDE
    if model.startswith("gemini"):
        return Family.GEMINI
    if "llama" in model:
        return Family.LLAMA
    message = f"vertex channels serve gemini*, claude* and *llama* models, not {model!r}: map it to one of them"
    raise UpstreamFailed(UpstreamFailure(501, message, "unsupported_model"))


def answer_family(answer: object) -> Family:
    """The format of an answer, a stream event or an error: Anthropic's carry a `type`, OpenAI's
    `choices` or `object`, Google's neither."""
    if isinstance(answer, dict):
        if "choices" in answer or "object" in answer:
            return Family.LLAMA
        if isinstance(answer.get("type"), str):
            return Family.CLAUDE
    return Family.GEMINI


def claude_id(model: str) -> str:
    return CLAUDE_IDS.get(model) or DATED_ID.sub(r"\1@\2", model)


def llama_id(model: str) -> str:
    return model if model.startswith("meta/") else f"meta/{model}"


def region_of(config: dict, client_model: str) -> str:
    region = config.get("region")
    if isinstance(region, dict):
        region = region.get(client_model) or region.get("default")
    return region if isinstance(region, str) and region else DEFAULT_REGION


@dataclass(frozen=True)
class Location:
    host: str
    project: str
    region: str

    def url(self, version: str) -> str:
        return f"{self.host}/{version}/projects/{quote(self.project, safe='')}/locations/{quote(self.region, safe='')}"


def location_of(request: RelayRequest, channel: ChannelInfo, account: google_auth.ServiceAccount) -> Location:
    region = region_of(channel.config, request.model)
    host = channel.base_url.rstrip("/")
    if not host:
        host = f"https://{region}-aiplatform.googleapis.com" if region != "global" else GLOBAL_HOST
    return Location(host, channel.config.get("project_id") or account.project_id, region)


def gemini_call(request: RelayRequest, location: Location, model: str) -> tuple[str, bytes]:
    native = request.endpoint in GEMINI_METHODS  # a Gemini client's own request (relay.formats)
    method = request.endpoint if native else GEMINI_STREAM if request.stream else GEMINI_GENERATE
    query = "?alt=sse" if method == GEMINI_STREAM else ""
    url = f"{location.url('v1')}/publishers/google/models/{model_path_segment(model)}:{method}{query}"
    if native:
        return url, gemini.native_body(request, model)
    # Vertex's v1 takes systemInstruction, as AI Studio's v1beta does.
    return url, request_json(gemini.generate_body(request, gemini.DEFAULT_API_VERSION))


def claude_call(request: RelayRequest, location: Location, model: str) -> tuple[str, bytes]:
    action = "streamRawPredict" if request.stream else "rawPredict"
    url = f"{location.url('v1')}/publishers/anthropic/models/{model_path_segment(claude_id(model))}:{action}"
    body = request.body if request.endpoint == ANTHROPIC_MESSAGES else anthropic.messages_body(request, model)
    # Vertex takes the model from the URL only
    without_model = {name: value for name, value in body.items() if name != "model"}
    return url, request_json({"anthropic_version": ANTHROPIC_VERSION, **without_model})


def llama_call(request: RelayRequest, location: Location, model: str) -> tuple[str, bytes]:
    url = f"{location.url('v1beta1')}/endpoints/openapi/chat/completions"
    body = {name: value for name, value in request.body.items() if name != "stream_options"}
    return url, request_json({**body, "model": llama_id(model)})


CALLS = {Family.GEMINI: gemini_call, Family.CLAUDE: claude_call, Family.LLAMA: llama_call}


def check_channel(key: str, config: dict) -> dict[str, str]:
    """What is wrong with a vertex channel's key and config, by field (empty when it can be saved)."""
    problems = {}
    try:
        google_auth.service_account(key)
    except google_auth.InvalidServiceAccount as invalid:
        problems["key"] = str(invalid)
    region = config.get("region")
    if region is not None and not isinstance(region, str | dict):
        problems["config"] = 'region must be a string or an object such as {"default": "us-central1"}'
    elif isinstance(region, dict) and not all(isinstance(value, str) for value in region.values()):
        problems["config"] = "every region in config.region must be a string"
    elif not isinstance(config.get("project_id", ""), str):
        problems["config"] = "project_id must be a string"
    return problems


class VertexAdaptor(Adaptor):
    slug = SLUG
    label = "Google Vertex AI"
    old_types = (new_api(41), one_api(42))
    # The key is a service account's JSON, from which the gateway signs its own token.
    key_in_headers = False
    check = staticmethod(check_channel)

    def __init__(self) -> None:
        self.converters: dict[Family, Adaptor] = {
            Family.GEMINI: gemini.GeminiAdaptor(),
            Family.CLAUDE: anthropic.AnthropicAdaptor(),
            Family.LLAMA: OpenAIAdaptor(),
        }

    async def prepare(self, channel: ChannelInfo) -> None:
        await google_auth.Tokens.ensure(account_of(channel))

    def build_request(self, request: RelayRequest, channel: ChannelInfo) -> UpstreamRequest:
        model = channel.upstream_model(request.model)
        # A client's own Messages or Gemini request: only ever for claude or gemini models (relay.formats).
        native = request.endpoint in NATIVE_ENDPOINTS
        if not native:
            require_chat(request, SLUG)
        account = account_of(channel)
        url, content = CALLS[family_of(model)](request, location_of(request, channel, account), model)
        token = google_auth.Tokens.usable(account)
        if token is None:
            raise UpstreamFailed(UpstreamFailure(500, "no vertex access token: prepare() was not awaited"))
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        if native and "anthropic-beta" in request.headers:
            headers["anthropic-beta"] = request.headers["anthropic-beta"]
        return UpstreamRequest(url=url, headers=headers, content=content)

    def convert_response(self, request: RelayRequest, content: bytes) -> tuple[bytes, Usage | None, str]:
        return self.converter_for(content).convert_response(request, content)

    def stream_converter(self, request: RelayRequest) -> StreamConverter:
        return FirstEventStream(request, lambda payload: self.converter_for(payload).stream_converter(request), SLUG)

    def parse_error(self, status: int, content: bytes) -> UpstreamFailure:
        return self.converter_for(content).parse_error(status, content)

    def converter_for(self, content: bytes) -> Adaptor:
        return self.converters[answer_family(json_or_none(content))]


def account_of(channel: ChannelInfo) -> google_auth.ServiceAccount:
    try:
        return google_auth.service_account(channel.key)
    except google_auth.InvalidServiceAccount as invalid:
        # Saved before validation existed, or written around it: the credential cannot work.
        message = f"the vertex channel's key is unusable: {invalid}"
        raise UpstreamFailed(UpstreamFailure(401, message, "authentication_error", "invalid_service_account")) from None
