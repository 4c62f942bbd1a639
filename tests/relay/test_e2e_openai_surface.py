"""Every OpenAI endpoint end to end: the real server, the official SDK, a fake upstream, exact billing."""

import math

import httpx
import openai
import pytest

from billing.models import Log
from relay.tokenizer import count_text
from tests.support.factories import make_channel, make_key
from tests.support.fakes.openai_upstream import EMBEDDING, PROMPT_TOKENS, REPLY, SPEECH_BYTES, TRANSCRIPT
from tests.support.live_server import LiveGateway, consume_logs

pytestmark = pytest.mark.django_db(transaction=True)

MODELS = [
    "gpt-4o",
    "gpt-3.5-turbo-instruct",
    "text-embedding-3-small",
    "omni-moderation-latest",
    "dall-e-3",
    "tts-1",
    "whisper-1",
]


@pytest.fixture
def world(alice, fake_openai):
    make_channel(fake_openai.url, models=MODELS)
    token, key = make_key(alice)
    server = LiveGateway()
    sent: list[httpx.Request] = []
    http_client = httpx.Client(event_hooks={"request": [lambda request: sent.append(request)]})
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0, http_client=http_client)
    yield client, token, fake_openai, sent, server
    server.stop()


def last_log(model: str) -> Log:
    return consume_logs(1, model=model)[-1]


def test_legacy_completions(world):
    client, _, fake, _, _ = world
    answer = client.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say hello", max_tokens=20)
    assert answer.choices[0].text == REPLY
    log = last_log("gpt-3.5-turbo-instruct")
    assert (log.prompt_tokens, log.completion_tokens) == (PROMPT_TOKENS, 6)
    assert log.quota == math.ceil((PROMPT_TOKENS + 6 * 4 / 3) * 0.75)
    pieces = list(client.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say hello", stream=True))
    assert "".join(p.choices[0].text for p in pieces if p.choices) == REPLY


def test_embeddings_with_strings_lists_and_token_arrays(world):
    client, _, fake, _, _ = world
    for given in ("hello", ["hello", "world"], [[15339, 1917]]):
        answer = client.embeddings.create(model="text-embedding-3-small", input=given)
        assert answer.data[0].embedding == EMBEDDING
        assert fake.requests[-1].body["input"] == given
    log = last_log("text-embedding-3-small")
    assert (log.prompt_tokens, log.completion_tokens, log.quota) == (PROMPT_TOKENS, 0, math.ceil(PROMPT_TOKENS * 0.01))


def test_images_are_billed_per_image_by_size_and_quality(world):
    client, _, _, _, _ = world
    answer = client.images.generate(model="dall-e-3", prompt="a lighthouse", size="1792x1024", quality="hd")
    assert answer.data[0].url == "https://img.example/1.png"
    log = last_log("dall-e-3")
    assert log.quota == 60_000  # $0.12 at 500 000 quota per dollar


def test_speech_bytes_stream_through_and_are_billed_by_characters(world):
    client, _, fake, _, _ = world
    audio = client.audio.speech.create(model="tts-1", voice="alloy", input="Hello there")
    assert audio.content == SPEECH_BYTES
    assert fake.requests[-1].body == {"model": "tts-1", "voice": "alloy", "input": "Hello there"}
    log = last_log("tts-1")
    assert (log.prompt_tokens, log.quota) == (11, math.ceil(11 * 7.5))


def test_transcription_multipart_arrives_byte_identical(world):
    client, _, fake, sent, _ = world
    audio = b"ID3" + bytes(range(256)) * 40
    result = client.audio.transcriptions.create(
        model="whisper-1", file=("talk.mp3", audio), language="en", prompt="names: Ada"
    )
    assert result.text == TRANSCRIPT
    upstream = fake.requests[-1]
    assert upstream.raw == sent[-1].read()
    assert upstream.headers["Content-Type"] == sent[-1].headers["Content-Type"]
    log = last_log("whisper-1")
    assert (log.completion_tokens, log.quota) == (
        count_text("whisper-1", TRANSCRIPT),
        count_text("whisper-1", TRANSCRIPT) * 15,
    )
    client.audio.translations.create(model="whisper-1", file=("talk.mp3", audio))
    assert fake.requests[-1].path == "/v1/audio/translations"


def test_moderations(world):
    client, _, _, _, _ = world
    result = client.moderations.create(model="omni-moderation-latest", input="hello")
    assert result.results[0].flagged is False
    assert last_log("omni-moderation-latest").quota == 0


def test_models_show_only_what_the_key_may_use(world):
    client, _, _, _, _ = world
    assert sorted(m.id for m in client.models.list()) == sorted(MODELS)
    assert client.models.retrieve("tts-1").id == "tts-1"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-5-turbo-max")


def test_key_usage_endpoints_report_dollars(world):
    client, token, _, _, server = world
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    last_log("gpt-4o")
    token.refresh_from_db()
    headers = {"Authorization": f"Bearer {client.api_key}"}
    subscription = httpx.get(f"{server.url}/v1/dashboard/billing/subscription", headers=headers).json()
    assert subscription["hard_limit_usd"] == (token.remain_quota + token.used_quota) / 500_000
    usage = httpx.get(f"{server.url}/dashboard/billing/usage", headers=headers).json()
    assert usage["total_usage"] == pytest.approx(token.used_quota / 500_000 * 100)
    assert subscription["access_until"] == 0


def test_every_relay_answer_carries_a_request_id(world):
    _, _, _, _, server = world
    answers = [
        httpx.get(f"{server.url}/v1/models"),  # no key: 401
        httpx.get(f"{server.url}/v1/no-such-endpoint"),
        httpx.get(f"{server.url}/v1/chat/completions"),  # 405
        httpx.get(f"{server.url}/v1/files"),  # 501
    ]
    assert [answer.status_code for answer in answers] == [401, 404, 405, 501]
    ids = [answer.headers.get("X-Request-Id", "") for answer in answers]
    assert all(len(request_id) == 32 for request_id in ids) and len(set(ids)) == 4


def test_unimplemented_endpoints_answer_501(world):
    client, _, _, _, _ = world
    with pytest.raises(openai.APIStatusError) as raised:
        client.files.list()
    assert raised.value.status_code == 501
