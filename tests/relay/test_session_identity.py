"""Where each inbound format finds the conversation a request continues (InboundFormat.session_identity), among
the sources the key's group honours."""

import orjson
import pytest
from django.conf import settings
from django.test import RequestFactory

from relay.formats.anthropic_messages import MESSAGES
from relay.formats.base import InboundFormat
from relay.formats.openai_chat import CHAT

EVERY_SOURCE = settings.AFFINITY_SOURCE_NAMES
CHAT_BODY = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
MESSAGES_BODY = {"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}


def identity(inbound: InboundFormat, body: dict, sources=EVERY_SOURCE, **headers) -> str | None:
    raw = orjson.dumps(body)
    request = RequestFactory().post("/v1/x", raw, content_type="application/json", headers=headers)
    return inbound.session_identity(inbound.endpoint.parse(raw, request), request, sources)


def test_chat_names_its_conversation_by_prompt_cache_key():
    assert identity(CHAT, {**CHAT_BODY, "prompt_cache_key": "pck-1"}) == "pck-1"


def test_the_session_header_comes_first():
    body = {**CHAT_BODY, "prompt_cache_key": "pck-1"}
    assert identity(CHAT, body, **{"X-Session-Id": "s-1"}) == "s-1"
    assert identity(MESSAGES, {**MESSAGES_BODY, "metadata": {"user_id": "u-1"}}, **{"X-Session-Id": "s-1"}) == "s-1"


def test_messages_names_its_conversation_by_metadata_user_id():
    assert identity(MESSAGES, {**MESSAGES_BODY, "metadata": {"user_id": "user_x_session_y"}}) == "user_x_session_y"


def test_only_the_groups_sources_count():
    body = {**MESSAGES_BODY, "metadata": {"user_id": "u-1"}}
    assert identity(MESSAGES, body, ["X-Session-Id"]) is None
    assert identity(MESSAGES, body, ["metadata.user_id"], **{"X-Session-Id": "s-1"}) == "u-1"
    assert identity(CHAT, {**CHAT_BODY, "prompt_cache_key": "pck-1"}, [], **{"X-Session-Id": "s-1"}) is None


@pytest.mark.parametrize("value", ["", 7, None, ["a"], {"k": "v"}])
def test_a_field_that_is_no_text_names_nothing(value):
    assert identity(CHAT, {**CHAT_BODY, "prompt_cache_key": value}) is None
    assert identity(MESSAGES, {**MESSAGES_BODY, "metadata": {"user_id": value}}) is None


def test_a_request_without_a_conversation_names_none():
    assert identity(CHAT, CHAT_BODY) is None
    assert identity(MESSAGES, {**MESSAGES_BODY, "metadata": "not an object"}) is None
