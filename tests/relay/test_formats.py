"""The inbound-format layer (relay.formats) and the Anthropic adaptor's pass-through, without a server."""

import orjson
import pytest
from django.test import RequestFactory, override_settings

from channels_app.routing import ChannelInfo
from relay.adaptors.anthropic import API_VERSION, AnthropicAdaptor, NativeStream
from relay.adaptors.base import ErrorEventRelayed, RelayRequest, StreamState, UpstreamFailed, UpstreamFailure, Usage
from relay.errors import RelayError
from relay.formats import openai_chat
from relay.formats.anthropic_convert import MessagesStream
from relay.formats.anthropic_messages import MESSAGES, AnthropicEvents, error_kind, error_response
from tests.support.fakes import anthropic_upstream as fake

PNG = "iVBORw0KGgoAAAANSUhEUg=="
BODY = {"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}


def parsed(body: dict, **headers) -> RelayRequest:
    raw = orjson.dumps(body)
    request = RequestFactory().post("/v1/messages", raw, content_type="application/json", headers=headers)
    return MESSAGES.endpoint.parse(raw, request)


def events(frames: bytes) -> list[dict]:
    lines = frames.split(b"\n")
    return [orjson.loads(line[6:]) for line in lines if line.startswith(b"data: ") and line != b"data: [DONE]"]


def channel(**fields) -> ChannelInfo:
    return ChannelInfo(
        id=1, name="c", type="anthropic", key="sk-ant-key", base_url="http://up/v1", priority=0, weight=1, **fields
    )


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (RelayError(400, "bad"), (400, "invalid_request_error")),
        (RelayError(401, "who"), (401, "authentication_error")),
        (RelayError(403, "no", type="insufficient_quota"), (403, "permission_error")),
        (RelayError(404, "gone"), (404, "not_found_error")),
        (RelayError(413, "big"), (413, "request_too_large")),
        (RelayError(429, "slow"), (429, "rate_limit_error")),
        (RelayError(500, "oops"), (500, "api_error")),
        (RelayError(502, "up"), (502, "api_error")),
        (RelayError(503, "Overloaded", type="overloaded_error"), (529, "overloaded_error")),
        (RelayError(405, "method"), (405, "invalid_request_error")),
    ],
)
def test_errors_take_anthropic_types_and_statuses(error, expected):
    assert error_kind(error) == expected
    response = error_response(error)
    assert response.status_code == expected[0]
    assert orjson.loads(response.content) == {"type": "error", "error": {"type": expected[1], "message": error.message}}


def test_key_from_x_api_key_or_bearer():
    factory = RequestFactory()
    assert MESSAGES.credential(factory.post("/", headers={"x-api-key": "sk-a"})) == "sk-a"
    assert MESSAGES.credential(factory.post("/", headers={"Authorization": "Bearer sk-b"})) == "Bearer sk-b"
    assert openai_chat.CHAT.credential(factory.post("/", headers={"x-api-key": "sk-a"})) == ""


def test_native_channels():
    assert MESSAGES.native_for("anthropic", "anything")
    assert MESSAGES.native_for("vertex", "claude-opus-4-1")
    assert not MESSAGES.native_for("vertex", "gemini-2.5-pro")
    assert not MESSAGES.native_for("openai", "claude-sonnet-4-5")
    assert not openai_chat.CHAT.native_for("openai", "gpt-4.1")


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"max_tokens": None}, "max_tokens"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"messages": []}, "messages"),
        ({"messages": ["hi"]}, "messages"),
        ({"stream": "yes"}, "stream"),
        ({"model": ""}, "model"),
    ],
)
def test_invalid_messages_requests_are_refused(change, param):
    body = {name: value for name, value in {**BODY, **change}.items() if value is not None}
    with pytest.raises(RelayError) as refused:
        parsed(body)
    assert (refused.value.status, refused.value.param) == (400, param)


def test_parsed_request_keeps_the_client_bytes_and_headers():
    request = parsed(
        {**BODY, "stream": True}, **{"anthropic-beta": "b1", "anthropic-version": "2023-06-01", "x-other": "1"}
    )
    assert request.raw == orjson.dumps({**BODY, "stream": True}) and request.stream and request.passthrough
    assert request.headers == {"anthropic-beta": "b1", "anthropic-version": "2023-06-01"}
    assert MESSAGES.endpoint.most_completion_tokens(request.body) == 64


@override_settings(GET_MEDIA_TOKEN=True, GET_MEDIA_TOKEN_NOT_STREAM=True)
def test_images_are_found_in_blocks_and_tool_results():
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
    linked = {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}
    result = {"type": "tool_result", "tool_use_id": "t", "content": [linked]}
    request = parsed(
        {**BODY, "messages": [{"role": "user", "content": [image, result, {"type": "text", "text": "?"}]}]}
    )
    urls = [part.url for part in MESSAGES.endpoint.images(request)]
    assert urls == [f"data:image/png;base64,{PNG}", "https://example.com/a.png"]


def test_hub_request_is_chat():
    hub = MESSAGES.to_hub(parsed({**BODY, "stream": True}))
    assert (hub.endpoint, hub.model, hub.stream, hub.wants_usage) == ("chat", BODY["model"], True, True)
    assert orjson.loads(hub.raw) == hub.body and hub.body["messages"][-1]["role"] == "user"


def test_converted_stream_frames_and_endings():
    writer = AnthropicEvents(MessagesStream("m", "msg_1", 10))
    chunk = {"choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}]}
    opened = events(writer.frames([orjson.dumps(chunk)]))
    assert [event["type"] for event in opened][:2] == ["message_start", "ping"]
    assert opened[-1]["delta"] == {"type": "text_delta", "text": "Hi"}
    assert writer.frames([orjson.dumps(chunk)]).startswith(b"event: content_block_delta")  # no second start
    closed = events(writer.closing(StreamState(), Usage(10, 3), None))
    assert [event["type"] for event in closed] == ["content_block_stop", "message_delta", "message_stop"]
    assert closed[1]["usage"]["output_tokens"] == 3
    failed = writer.closing(StreamState(), None, UpstreamFailure(502, "cut", type="overloaded_error"))
    assert failed.startswith(b"event: error\n") and events(failed)[0]["error"] == {
        "type": "overloaded_error",
        "message": "cut",
    }


def test_passed_through_stream_adds_an_event_only_for_a_break_it_did_not_relay():
    writer = MESSAGES.native_writer()
    assert writer.relays_bytes and writer.closing(StreamState(), None, None) == b""
    broke = writer.closing(StreamState(), None, UpstreamFailure(502, "upstream connection lost"))
    assert events(broke) == [{"type": "error", "error": {"type": "api_error", "message": "upstream connection lost"}}]


def test_openai_stream_ends_with_usage_then_done():
    request = RelayRequest("chat", "gpt-4.1", {}, b"", True, True)
    writer = openai_chat.CHAT.stream_writer(request, "abc", 0)
    state = StreamState(chunk_id="chatcmpl-1", created=5)
    assert writer.wants_usage(state)
    tail = writer.closing(state, Usage(3, 4), None)
    assert tail.endswith(b"data: [DONE]\n\n") and events(tail)[0]["usage"]["total_tokens"] == 7


def test_pass_through_forwards_the_client_bytes_unless_the_model_is_mapped():
    request = parsed(BODY, **{"anthropic-beta": "b1"})
    sent = AnthropicAdaptor().build_request(request, channel())
    assert sent.content is request.raw and sent.url == "http://up/v1/messages"
    assert sent.headers["anthropic-beta"] == "b1" and sent.headers["anthropic-version"] == API_VERSION
    assert sent.headers["x-api-key"] == "sk-ant-key"
    mapped = AnthropicAdaptor().build_request(request, channel(model_mapping={BODY["model"]: "claude-x"}))
    assert orjson.loads(mapped.content) == {**BODY, "model": "claude-x"}
    assert (
        AnthropicAdaptor()
        .build_request(parsed(BODY, **{"anthropic-version": "v9"}), channel())
        .headers["anthropic-version"]
        == "v9"
    )


def test_pass_through_answer_is_kept_and_read_for_usage():
    answer = orjson.dumps(fake.message(BODY, fake.Behaviour(cache_writes=True)))
    body, usage, text = AnthropicAdaptor().convert_response(parsed(BODY), answer)
    assert body is answer and text == fake.REPLY
    assert usage is not None and usage.cache_write_1h_tokens == fake.CACHE_WRITE_1H_TOKENS


def test_native_stream_reads_usage_and_text():
    stream = NativeStream(parsed({**BODY, "stream": True}))
    events_in = fake.stream_events(BODY, fake.Behaviour(tool_call=True))
    for _, data in events_in:
        assert stream.feed(orjson.dumps(data)) == [orjson.dumps(data)]
    assert stream.finish() == []
    assert stream.state.usage == Usage(fake.PROMPT_TOKENS, fake.OUTPUT_TOKENS, fake.CACHE_READ_TOKENS)
    assert stream.state.text == fake.TOOL_TEXT + "".join(fake.TOOL_ARGUMENT_PIECES)
    assert stream.state.max_tool_calls == 1


def test_native_stream_error_event_and_cut():
    stream = NativeStream(parsed({**BODY, "stream": True}))
    with pytest.raises(ErrorEventRelayed) as failed:
        stream.feed(orjson.dumps(fake.OVERLOADED))
    assert failed.value.failure.type == "overloaded_error"
    with pytest.raises(UpstreamFailed):
        NativeStream(parsed(BODY)).finish()


def test_wrong_method_on_messages_answers_in_anthropic_shape(client):
    for path in ("/v1/messages", "/v1/messages/count_tokens"):
        response = client.get(path)
        assert response.status_code == 405 and response["Allow"] == "POST"
        assert response.json()["error"]["type"] == "invalid_request_error"
