"""The Responses API passed through, piece by piece: the request the openai and azure adaptors send, what billing
reads from the answer and the stream, the request's validation and hold, and the table of stored responses."""

import json
from datetime import timedelta

import pytest
from django.test import RequestFactory
from django.utils import timezone

from channels_app.routing import ChannelInfo
from relay import stored_responses
from relay.adaptors.azure import AzureAdaptor
from relay.adaptors.base import (
    OPENAI_RESPONSES,
    OPENAI_STORED_RESPONSE,
    ErrorEventRelayed,
    RelayRequest,
    StreamState,
    UpstreamFailure,
    Usage,
)
from relay.adaptors.openai import OpenAIAdaptor
from relay.adaptors.responses_native import NativeStream, native_answer
from relay.errors import RelayError
from relay.formats.openai_responses import RESPONSES, image_parts
from relay.models import StoredResponse
from tasks.jobs import periodic_jobs
from tests.support.fakes import responses_upstream as fake


def channel(type: str = "openai", **fields) -> ChannelInfo:
    return ChannelInfo(1, "c", type, "upstream-secret", "https://upstream.example", 0, 1, **fields)


def parsed(body: dict) -> RelayRequest:
    raw = json.dumps(body).encode()
    return RESPONSES.endpoint.parse(raw, RequestFactory().post("/v1/responses", raw, "application/json"))


def stored(path: str, method: str = "GET") -> RelayRequest:
    return RelayRequest(OPENAI_STORED_RESPONSE, "", {}, b"", False, False, path, passthrough=True, method=method)


def test_openai_gets_the_clients_bytes_unless_the_model_is_mapped():
    request = parsed({"model": "gpt-5", "input": "hi", "stream": True})
    sent = OpenAIAdaptor().build_request(request, channel())
    assert (sent.url, sent.content, sent.method) == ("https://upstream.example/v1/responses", request.raw, "POST")
    assert sent.headers["Authorization"] == "Bearer upstream-secret"
    mapped = OpenAIAdaptor().build_request(request, channel(model_mapping={"gpt-5": "gpt-5-codex"}))
    assert json.loads(mapped.content) == {"model": "gpt-5-codex", "input": "hi", "stream": True}  # no stream_options
    retrieve = OpenAIAdaptor().build_request(stored("/v1/responses/resp_1/input_items?limit=2"), channel())
    assert (retrieve.url, retrieve.method) == (
        "https://upstream.example/v1/responses/resp_1/input_items?limit=2",
        "GET",
    )


@pytest.mark.parametrize(
    ("api_version", "url"),
    [
        ("", "https://upstream.example/openai/v1/responses/resp_1?include=x"),
        ("2024-10-21", "https://upstream.example/openai/v1/responses/resp_1?include=x"),
        (
            "2025-04-01-preview",
            "https://upstream.example/openai/responses/resp_1?include=x&api-version=2025-04-01-preview",
        ),
    ],
)
def test_azure_takes_the_v1_path_unless_its_api_version_has_the_responses_api(api_version, url):
    azure = channel("azure", config={"api_version": api_version})
    sent = AzureAdaptor().build_request(stored("/v1/responses/resp_1?include=x", "DELETE"), azure)
    assert (sent.url, sent.method, sent.headers["api-key"]) == (url, "DELETE", "upstream-secret")
    created = AzureAdaptor().build_request(parsed({"model": "gpt-4.1", "input": "hi"}), azure)
    assert json.loads(created.content)["model"] == "gpt-41"


def test_billing_reads_the_whole_answer():
    response = fake.response_object("resp_1", {"model": "gpt-5"}, function_call=True)
    content = json.dumps(response).encode()
    assert native_answer(content) == (
        content,
        Usage(fake.INPUT_TOKENS, fake.OUTPUT_TOKENS, cache_read_tokens=fake.CACHED_TOKENS, reasoning_tokens=3),
        fake.TOOL_NAME + fake.ARGUMENTS,
    )


def stream_of(events: list[bytes]) -> NativeStream:
    stream = NativeStream(parsed({"model": "gpt-5", "input": "hi", "stream": True}))
    for event in events:
        payload = event.split(b"data: ", 1)[1].strip()
        assert stream.feed(payload) == [payload]
    return stream


def test_billing_reads_the_stream_events_as_they_pass():
    response = fake.response_object("resp_7", {"model": "gpt-5"}, function_call=False)
    stream = stream_of(fake.stream_events(response))
    state = stream.state
    assert (state.chunk_id, state.text, stream.finish()) == ("resp_7", fake.REPLY, [])
    assert state.usage == Usage(fake.INPUT_TOKENS, fake.OUTPUT_TOKENS, fake.CACHED_TOKENS, reasoning_tokens=3)
    incomplete = {"type": "response.incomplete", "response": {**response, "status": "incomplete"}}
    assert stream_of([b"data: " + json.dumps(incomplete).encode()]).state.usage == state.usage


def test_a_stream_without_its_last_event_or_with_an_error_event_failed():
    response = fake.response_object("resp_7", {"model": "gpt-5"}, function_call=False)
    with pytest.raises(Exception, match="before its last event"):
        stream_of(fake.stream_events(response)[:-1]).finish()
    error = {"type": "error", "code": "server_error", "message": "The server had an error", "param": None}
    with pytest.raises(ErrorEventRelayed, match="The server had an error"):
        stream_of([b"data: " + json.dumps(error).encode()])


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "gpt-5"}, "input"),
        ({"model": "gpt-5", "input": ["text"]}, "input"),
        ({"model": "gpt-5", "input": "hi", "max_output_tokens": 0}, "max_output_tokens"),
        ({"model": "gpt-5", "input": "hi", "stream": "yes"}, "stream"),
        ({"input": "hi"}, "model"),
        ({"model": "gpt-5", "input": "hi", "background": True}, "background"),
    ],
)
def test_invalid_requests_are_refused(body, param):
    with pytest.raises(RelayError) as refused:
        parsed(body)
    assert (refused.value.status, refused.value.param) == (400, param)


def test_the_hold_covers_max_output_tokens(settings):
    assert (
        RESPONSES.endpoint.most_completion_tokens(parsed({"model": "m", "input": "hi", "max_output_tokens": 77}).body)
        == 77
    )
    assert RESPONSES.endpoint.most_completion_tokens({"input": "hi"}) == settings.PRE_CONSUMED_TOKENS
    assert parsed({"model": "m", "input": "x"}).endpoint == OPENAI_RESPONSES


@pytest.mark.backend
@pytest.mark.django_db(transaction=True)
def test_a_stored_response_has_one_owner_the_latest():
    stored_responses.remember("resp_a", 1, 10)
    stored_responses.remember("resp_b", 1, 11)
    assert (stored_responses.owner_channel("resp_a", 1), stored_responses.owner_channel("resp_a", 2)) == (10, None)
    stored_responses.remember("resp_a", 2, 12)  # an id seen again
    assert (stored_responses.owner_channel("resp_a", 1), stored_responses.owner_channel("resp_a", 2)) == (None, 12)
    stored_responses.forget("resp_a")
    assert list(StoredResponse.objects.values_list("response_id", flat=True)) == ["resp_b"]


@pytest.mark.backend
@pytest.mark.django_db(transaction=True)
def test_owners_are_forgotten_once_the_upstream_no_longer_keeps_the_response():
    stored_responses.remember("resp_old", 1, 10)
    stored_responses.remember("resp_new", 1, 10)
    expired = timezone.now() - stored_responses.KEPT_FOR - timedelta(minutes=1)
    StoredResponse.objects.filter(response_id="resp_old").update(created_at=expired)
    assert "forget_expired_responses" in [job.name for job in periodic_jobs()]
    assert stored_responses.forget_expired() == 1
    assert list(StoredResponse.objects.values_list("response_id", flat=True)) == ["resp_new"]


def test_a_passed_through_stream_ends_with_an_error_event_only_for_a_break_it_did_not_relay():
    writer = RESPONSES.native_writer()
    assert writer.relays_bytes and writer.closing(StreamState(), None, None) == b""
    broke = writer.closing(StreamState(), None, UpstreamFailure(502, "upstream connection lost"))
    kind, data = broke.strip().split(b"\n")
    assert kind == b"event: error" and json.loads(data.removeprefix(b"data: ")) == {
        "type": "error",
        "code": "upstream_error",
        "message": "upstream connection lost",
        "param": None,
    }


def test_the_input_images_are_found_for_the_tile_count():
    image = {"type": "input_image", "image_url": "https://example.com/a.png", "detail": "auto"}
    items = [
        {"role": "user", "content": [{"type": "input_text", "text": "What is this?"}, image]},
        {"role": "user", "content": [{"type": "input_image", "file_id": "file_1"}]},  # uploaded: not ours to size
        {"type": "function_call_output", "call_id": "c", "output": "x"},
    ]
    assert image_parts(items) == [{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]
    assert image_parts("just text") == []
