"""A fake Bedrock Runtime on 127.0.0.1 (random port) that checks every request's SigV4 signature as AWS does.

`POST /model/{modelId}/invoke` and `/invoke-with-response-stream` answer Claude (InvokeModel: Anthropic's body
in, Anthropic's message or its events out, the events as base64 `chunk`s of AWS's binary event stream);
`/converse` and `/converse-stream` answer any model in the Converse API's shapes. Each stream is written in
the documented event stream framing (prelude, headers, payload, CRC32s), every message split over two writes.

The signature is recomputed with botocore's own signer from what arrived (method, raw path, query, the signed
headers, the body) and the secret of the access key it names: an unknown key gets 403
UnrecognizedClientException, a signature that differs 403 InvalidSignatureException. A Bedrock API key
(`Authorization: Bearer`) must be API_KEY. Errors are AWS's: `{"message"}` with `x-amzn-ErrorType`.
"""

import base64
import json
import re
import struct
import zlib
from dataclasses import dataclass, field
from urllib.parse import unquote

from aiohttp import web
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.support.fakes import anthropic_upstream as claude
from tests.support.fakes.recording import Recorded, RecordingFake

REGION = "us-east-1"
ACCESS_KEY = "AKIAFAKEBEDROCK12345"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYFAKESECRET"
TEMPORARY_ACCESS_KEY = "ASIAFAKEBEDROCK67890"
TEMPORARY_SECRET_KEY = "tEmPoRaRy/K7MDENG/bPxRfiCYFAKESECRET0001"
SESSION_TOKEN = "IQoJb3JpZ2luX2VjEFAKESESSIONTOKEN//////////wEaCXVzLWVhc3QtMSJHMEUCIQ"
API_KEY = "ABSKQmVkcm9ja0FQSUtleS1mYWtlLWtleS0xMjM0NTY3ODkw"
SECRETS = {ACCESS_KEY: (SECRET_KEY, None), TEMPORARY_ACCESS_KEY: (TEMPORARY_SECRET_KEY, SESSION_TOKEN)}
AUTHORIZATION = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request, "
    r"SignedHeaders=(?P<headers>[a-z0-9;-]+), Signature=(?P<signature>[0-9a-f]{64})$"
)

CONVERSE_REPLY_PIECES = ["Hello", " from", " Llama", " on Bedrock!"]
CONVERSE_REPLY = "".join(CONVERSE_REPLY_PIECES)
INPUT_TOKENS = 21  # Converse's uncached input
OUTPUT_TOKENS = 11
CACHE_READ_TOKENS = 300
CACHE_WRITE_5M_TOKENS = 70
CACHE_WRITE_1H_TOKENS = 30
TOOL_ID = "tooluse_fake01"
TOOL_NAME = "lookup_weather"
TOOL_ARGUMENT_PIECES = ['{"city": "Lis', 'bon"}']


@dataclass
class Behaviour:
    error: str = ""  # answer with this AWS exception (`ThrottlingException`) and `status`
    status: int = 400
    exception_after: int | None = None  # stream: send a throttlingException event after this many text deltas
    exception_first: bool = False  # stream: send nothing but a throttlingException event
    tool_call: bool = False
    cached: bool = False  # report cache reads and writes (5-minute and 1-hour)


@dataclass
class FakeBedrock(RecordingFake):
    """Served by `recording.served` (POST on any path); `requests` keep each path as sent, escapes and all."""

    script: list[Behaviour] = field(default_factory=list)  # this fake's own behaviours

    async def handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        self.requests.append(Recorded(request.raw_path, dict(request.headers), json.loads(raw)))
        refusal = refusal_of(request, raw)
        if refusal is not None:
            return refusal
        behaviour = self.script.pop(0) if self.script else Behaviour()
        if behaviour.error:
            return aws_error(behaviour.status, behaviour.error, f"fake {behaviour.error}")
        matched = re.fullmatch(r"/model/([^/]+)/([a-z-]+)", request.raw_path)
        if matched is None:
            return aws_error(404, "UnknownOperationException", "no such operation")
        model, action = unquote(matched[1]), matched[2]
        body = json.loads(raw)
        if behaviour.exception_first:
            return await write_stream(request, [exception("throttlingException", "Too many requests, please wait.")])
        if action in ("invoke", "invoke-with-response-stream"):
            return await invoke(request, model, body, behaviour, action.endswith("stream"))
        if action in ("converse", "converse-stream"):
            if action == "converse":
                return web.json_response(converse_answer(behaviour))
            return await write_stream(request, converse_events(behaviour))
        return aws_error(404, "UnknownOperationException", f"no operation {action}")


def aws_error(status: int, kind: str, message: str) -> web.Response:
    headers = {"x-amzn-ErrorType": f"{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/"}
    return web.json_response({"message": message}, status=status, headers=headers)


def refusal_of(request: web.Request, raw: bytes) -> web.Response | None:
    """AWS's answer to a request whose credentials do not hold, else None."""
    authorization = request.headers.get("Authorization", "")
    if authorization.startswith("Bearer "):
        if authorization.removeprefix("Bearer ") == API_KEY:
            return None
        return aws_error(403, "UnrecognizedClientException", "Authentication failed: the API key is invalid.")
    fields = AUTHORIZATION.match(authorization)
    if fields is None:
        return aws_error(403, "IncompleteSignatureException", "Authorization header requires SigV4 fields.")
    if fields["key"] not in SECRETS:
        return aws_error(403, "UnrecognizedClientException", "The security token included in the request is invalid.")
    secret, token = SECRETS[fields["key"]]
    if token is not None and request.headers.get("X-Amz-Security-Token") != token:
        return aws_error(403, "UnrecognizedClientException", "The security token included in the request is invalid.")
    if (fields["region"], fields["service"]) != (REGION, "bedrock"):
        return aws_error(403, "InvalidSignatureException", "Credential should be scoped to a valid region and service.")
    if signature_of(request, raw, fields, secret, token) != fields["signature"]:
        message = "The request signature we calculated does not match the signature you provided."
        return aws_error(403, "InvalidSignatureException", message)
    return None


def signature_of(request: web.Request, raw: bytes, fields: re.Match, secret: str, token: str | None) -> str:
    """The signature of what arrived, computed by botocore's signer (as a server recomputes it)."""
    names = fields["headers"].split(";")
    if "host" not in names or "x-amz-date" not in names:
        return ""
    headers = {name: request.headers.get(name, "") for name in names}
    aws = AWSRequest(request.method, f"http://{request.host}{request.raw_path}", data=raw, headers=headers)
    aws.context["timestamp"] = request.headers["X-Amz-Date"]
    if not aws.context["timestamp"].startswith(fields["date"]):
        return ""
    signer = SigV4Auth(Credentials(fields["key"], secret, token), fields["service"], fields["region"])
    return signer.signature(signer.string_to_sign(aws, signer.canonical_request(aws)), aws)


# --- AWS's event stream framing ---


def string_header(name: str, value: str) -> bytes:
    encoded = value.encode()
    return bytes([len(name)]) + name.encode() + b"\x07" + struct.pack(">H", len(encoded)) + encoded


def event_message(headers: dict[str, str], payload: bytes) -> bytes:
    """One message: prelude (total and headers length, their CRC32), headers, payload, the message's CRC32."""
    encoded = b"".join(string_header(name, value) for name, value in headers.items())
    prelude = struct.pack(">II", 12 + len(encoded) + len(payload) + 4, len(encoded))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + encoded + payload
    return message + struct.pack(">I", zlib.crc32(message))


def event(kind: str, payload: dict) -> bytes:
    headers = {":event-type": kind, ":content-type": "application/json", ":message-type": "event"}
    return event_message(headers, json.dumps(payload).encode())


def exception(kind: str, message: str) -> bytes:
    headers = {":exception-type": kind, ":content-type": "application/json", ":message-type": "exception"}
    return event_message(headers, json.dumps({"message": message}).encode())


def chunk(data: dict) -> bytes:
    """InvokeModel's streamed event: the model's own event JSON, base64 in `bytes`."""
    return event("chunk", {"bytes": base64.b64encode(json.dumps(data).encode()).decode(), "p": "abcdefgh"})


async def write_stream(request: web.Request, messages: list[bytes]) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "application/vnd.amazon.eventstream"})
    await response.prepare(request)
    for message in messages:
        half = len(message) // 2  # a reader must put messages together across reads
        await response.write(message[:half])
        await response.write(message[half:])
    return response


# --- InvokeModel: Claude ---


def claude_behaviour(behaviour: Behaviour) -> claude.Behaviour:
    return claude.Behaviour(tool_call=behaviour.tool_call, cache_writes=behaviour.cached)


async def invoke(request: web.Request, model: str, body: dict, behaviour: Behaviour, stream: bool):
    extraneous = sorted({"model", "stream"} & set(body))
    if body.get("anthropic_version") != "bedrock-2023-05-31" or extraneous:
        message = f"Malformed input request: extraneous key {extraneous} is not permitted or anthropic_version wrong"
        return aws_error(400, "ValidationException", message)
    if not model.startswith(("anthropic.", "us.anthropic.", "global.anthropic.")):
        return aws_error(400, "ValidationException", f"invoke is for Claude here, not {model}")
    answered = {**body, "model": model}
    if not stream:
        return web.json_response(claude.message(answered, claude_behaviour(behaviour)))
    messages = []
    deltas = 0
    for name, data in claude.stream_events(answered, claude_behaviour(behaviour)):
        if name == "content_block_delta" and deltas == behaviour.exception_after:
            messages.append(exception("throttlingException", "Too many tokens, please wait before trying again."))
            break
        deltas += name == "content_block_delta"
        if name == "message_stop":
            metrics = {"inputTokenCount": claude.INPUT_TOKENS, "outputTokenCount": claude.OUTPUT_TOKENS}
            data = {**data, "amazon-bedrock-invocationMetrics": metrics}
        messages.append(chunk(data))
    return await write_stream(request, messages)


# --- Converse: any model ---


def converse_usage(behaviour: Behaviour) -> dict:
    usage = {"inputTokens": INPUT_TOKENS, "outputTokens": OUTPUT_TOKENS}
    if behaviour.cached:
        written = CACHE_WRITE_5M_TOKENS + CACHE_WRITE_1H_TOKENS
        usage["cacheReadInputTokens"] = CACHE_READ_TOKENS
        usage["cacheWriteInputTokens"] = written
        usage["cacheDetails"] = [
            {"ttl": "1h", "inputTokens": CACHE_WRITE_1H_TOKENS},
            {"ttl": "5m", "inputTokens": CACHE_WRITE_5M_TOKENS},
        ]
    usage["totalTokens"] = sum(value for value in usage.values() if isinstance(value, int))
    return usage


def converse_answer(behaviour: Behaviour) -> dict:
    content: list[dict] = [{"text": CONVERSE_REPLY}]
    if behaviour.tool_call:
        tool_use = {"toolUseId": TOOL_ID, "name": TOOL_NAME, "input": {"city": "Lisbon"}}
        content = [{"text": "Let me check."}, {"toolUse": tool_use}]
    return {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": "tool_use" if behaviour.tool_call else "end_turn",
        "usage": converse_usage(behaviour),
        "metrics": {"latencyMs": 321},
    }


def converse_events(behaviour: Behaviour) -> list[bytes]:
    messages = [event("messageStart", {"role": "assistant"})]
    for number, piece in enumerate(CONVERSE_REPLY_PIECES):
        if number == behaviour.exception_after:
            return [*messages, exception("throttlingException", "Too many requests, please wait.")]
        messages.append(event("contentBlockDelta", {"delta": {"text": piece}, "contentBlockIndex": 0}))
    messages.append(event("contentBlockStop", {"contentBlockIndex": 0}))
    if behaviour.tool_call:
        start = {"toolUse": {"toolUseId": TOOL_ID, "name": TOOL_NAME}}
        messages.append(event("contentBlockStart", {"start": start, "contentBlockIndex": 1}))
        for piece in TOOL_ARGUMENT_PIECES:
            delta = {"toolUse": {"input": piece}}
            messages.append(event("contentBlockDelta", {"delta": delta, "contentBlockIndex": 1}))
        messages.append(event("contentBlockStop", {"contentBlockIndex": 1}))
    messages.append(event("messageStop", {"stopReason": "tool_use" if behaviour.tool_call else "end_turn"}))
    messages.append(event("metadata", {"usage": converse_usage(behaviour), "metrics": {"latencyMs": 321}}))
    return messages
