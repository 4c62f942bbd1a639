"""A channel's param_override and header_override (channels_app.overrides) reach its upstream: applied to the
body the adaptor built, in the upstream's own format, for every adaptor; a body nothing overrides is sent as
the adaptor built it (a passed-through one byte for byte)."""

import asyncio

import orjson
import pytest

from tests.support.factories import make_channel
from tests.support.fakes import anthropic_upstream
from tests.support.fakes.openai_upstream import Behaviour
from tests.support.fakes.recording import served
from tests.support.relay_client import HELLO, post_chat

pytestmark = pytest.mark.django_db(transaction=True)

fake_anthropic_server, fake_anthropic = served(anthropic_upstream.FakeAnthropic, "fake_anthropic")
CLAUDE = "claude-sonnet-4-5"
MESSAGES_BODY = b'{"model": "claude-sonnet-4-5",  "max_tokens": 64,\n "messages": [{"role": "user", "content": "hi"}]}'


def lowercase(headers: dict) -> dict:
    """Headers by their lowercase name: the transport may send a name in either case."""
    return {name.lower(): value for name, value in headers.items()}


async def channel(base_url: str, **fields) -> None:
    await asyncio.to_thread(make_channel, base_url, **fields)


async def anthropic_channel(fake, **config) -> None:
    await channel(fake.url, models=[CLAUDE], key=anthropic_upstream.API_KEY, type="anthropic", config=config)


async def test_it_sets_removes_and_sets_nested_fields_and_adds_headers(alice_key, fake_openai):
    params = {"temperature": 0.2, "user": None, "response_format.type": "json_object", "metadata.team.name": "ai"}
    headers = {"X-Team": "search", "openai-beta": "assistants=v2"}
    await channel(fake_openai.url, config={"param_override": params, "header_override": headers})
    body = {**HELLO, "user": "alice-42", "response_format": {"type": "text", "strict": True}}
    response = await post_chat(alice_key, body)
    assert response.status_code == 200, response.content
    sent = fake_openai.requests[0]
    assert sent.body == {
        **HELLO,
        "temperature": 0.2,
        "response_format": {"type": "json_object", "strict": True},
        "metadata": {"team": {"name": "ai"}},
    }
    sent_headers = lowercase(sent.headers)
    assert (sent_headers["x-team"], sent_headers["openai-beta"]) == ("search", "assistants=v2")
    assert sent_headers["authorization"] == "Bearer sk-upstream-secret"


async def test_a_header_override_replaces_a_header_the_adaptor_set_whatever_its_case(alice_key, fake_openai):
    await channel(fake_openai.url, config={"header_override": {"content-type": "application/json; charset=utf-8"}})
    await post_chat(alice_key, HELLO)
    assert lowercase(fake_openai.requests[0].headers)["content-type"] == "application/json; charset=utf-8"


async def test_it_applies_after_conversion_in_the_upstreams_format(alice_key, fake_anthropic):
    params = {"thinking.type": "enabled", "thinking.budget_tokens": 1024, "top_k": 5}
    await anthropic_channel(fake_anthropic, param_override=params, header_override={"anthropic-beta": "b-1"})
    response = await post_chat(alice_key, {**HELLO, "model": CLAUDE, "max_tokens": 2048})
    assert response.status_code == 200, response.content
    sent = fake_anthropic.requests[0]
    assert sent.path == "/v1/messages"
    assert sent.body["thinking"] == {"type": "enabled", "budget_tokens": 1024} and sent.body["top_k"] == 5
    assert sent.body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    assert lowercase(sent.headers)["anthropic-beta"] == "b-1"


async def test_a_passed_through_body_goes_byte_for_byte_when_nothing_overrides_it(alice_key, fake_anthropic):
    await anthropic_channel(fake_anthropic)
    response = await post_chat(alice_key, MESSAGES_BODY, path="/v1/messages")
    assert response.status_code == 200, response.content
    assert fake_anthropic.requests[0].raw == MESSAGES_BODY


async def test_a_passed_through_body_takes_the_override(alice_key, fake_anthropic):
    await anthropic_channel(fake_anthropic, param_override={"max_tokens": 16})
    response = await post_chat(alice_key, MESSAGES_BODY, path="/v1/messages")
    assert response.status_code == 200, response.content
    assert fake_anthropic.requests[0].body == {**orjson.loads(MESSAGES_BODY), "max_tokens": 16}


async def test_a_token_count_gets_the_headers_but_no_generation_parameters(alice_key, fake_anthropic):
    overrides = {"param_override": {"temperature": 0.5}, "header_override": {"anthropic-beta": "b"}}
    await anthropic_channel(fake_anthropic, **overrides)
    response = await post_chat(alice_key, MESSAGES_BODY, path="/v1/messages/count_tokens")
    assert response.status_code == 200, response.content
    sent = fake_anthropic.requests[0]
    assert sent.path == "/v1/messages/count_tokens" and "temperature" not in sent.body
    assert lowercase(sent.headers)["anthropic-beta"] == "b"


async def test_an_upstream_that_quotes_a_header_override_does_not_show_it(alice_key, fake_openai):
    token = "proxy-token-0123456789"
    await channel(fake_openai.url, config={"header_override": {"X-Proxy-Token": token}})
    fake_openai.script.append(Behaviour(status=403, body={"error": {"message": f"token {token} has no access"}}))
    response = await post_chat(alice_key, HELLO)
    assert response.status_code == 403
    assert token not in response.content.decode() and "token *** has no access" in response.content.decode()
