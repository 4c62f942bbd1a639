"""POST /v1/rerank: Jina-format requests routed by model to Jina, Cohere or OpenAI-compatible channels,
billed by the upstream's tokens or the local count, one consumption log per call."""

import math

import orjson
import pytest
from django.test import AsyncClient

from billing.models import Log
from billing.pricing import DEFAULT_MODEL_RATIO_TABLE
from relay.adaptors.openai_format import rerank_answer
from relay.channel_test import probe_channel
from relay.tokenizer import count_text
from tests.support.factories import make_channel
from tests.support.fakes import cohere_upstream, jina_upstream
from tests.support.fakes.cohere_upstream import FakeCohere
from tests.support.fakes.jina_upstream import FakeJina
from tests.support.fakes.recording import Behaviour, served
from tests.support.relay_client import chat_request, consume_log, post_chat

pytestmark = pytest.mark.django_db(transaction=True)

JINA_MODEL = "jina-reranker-v2-base-multilingual"
COHERE_MODEL = "rerank-multilingual-v3.0"
QUERY = "how do I reset my router to factory settings"
DOCUMENTS = [
    "Unplug the router for 30 seconds, then plug it back in.",
    "Our office is closed on public holidays.",
    "Hold the reset button for 10 seconds to restore factory settings.",
]


def rerank(key: str, **fields):
    body = {"model": JINA_MODEL, "query": QUERY, "documents": DOCUMENTS, **fields}
    return AsyncClient().post(
        "/v1/rerank", orjson.dumps(body), content_type="application/json", headers={"Authorization": f"Bearer {key}"}
    )


def local_count() -> int:
    return sum(count_text(JINA_MODEL, text) for text in [QUERY, *DOCUMENTS])


async def the_only_log(request_id: str) -> Log:
    log = await consume_log(request_id)
    assert await Log.objects.filter(request_id=request_id).acount() == 1
    return log


fake_jina_server, fake_jina = served(FakeJina, "fake_jina")


fake_cohere_server, fake_cohere = served(FakeCohere, "fake_cohere")


@pytest.fixture
def jina_channel(fake_jina: FakeJina, transactional_db):
    return make_channel(
        fake_jina.url, models=[JINA_MODEL, "reranker"], key=jina_upstream.API_KEY, type="jina",
        model_mapping={"reranker": JINA_MODEL},
    )  # fmt: skip


@pytest.fixture
def cohere_channel(fake_cohere: FakeCohere, transactional_db):
    return make_channel(fake_cohere.url, models=[COHERE_MODEL], key=cohere_upstream.API_KEY, type="cohere")


# --- Jina ---


async def test_it_reranks_on_jina_and_bills_the_tokens_jina_reports(alice_key, jina_channel, fake_jina):
    response = await rerank(alice_key, top_n=2)
    assert response.status_code == 200
    body = orjson.loads(response.content)
    assert [result["index"] for result in body["results"]] == [2, 0]
    assert body["results"][0]["document"] == {"text": DOCUMENTS[2]}
    scores = [result["relevance_score"] for result in body["results"]]
    assert scores == sorted(scores, reverse=True)
    total = jina_upstream.TOTAL_TOKENS
    assert body["usage"] == {"prompt_tokens": total, "completion_tokens": 0, "total_tokens": total}
    sent = fake_jina.requests[0]
    assert sent.path == "/v1/rerank" and sent.headers["Authorization"] == f"Bearer {jina_upstream.API_KEY}"
    assert sent.body == {
        "model": JINA_MODEL,
        "query": QUERY,
        "documents": DOCUMENTS,
        "top_n": 2,
        "return_documents": True,
    }
    log = await the_only_log(response["X-Request-Id"])
    assert (log.model, log.prompt_tokens, log.completion_tokens) == (JINA_MODEL, total, 0)
    assert log.quota == math.ceil(round(total * DEFAULT_MODEL_RATIO_TABLE[JINA_MODEL], 6))


async def test_it_applies_the_model_mapping_and_counts_locally_when_jina_reports_no_usage(
    alice_key, jina_channel, fake_jina
):
    fake_jina.script.append(Behaviour(usage=False))
    response = await rerank(alice_key, model="reranker", return_documents=False)
    body = orjson.loads(response.content)
    assert fake_jina.requests[0].body["model"] == JINA_MODEL
    assert all("document" not in result for result in body["results"])
    assert body["usage"]["prompt_tokens"] == local_count()
    log = await the_only_log(response["X-Request-Id"])
    assert (log.model, log.prompt_tokens) == ("reranker", local_count())
    assert log.content.startswith("usage counted locally")


@pytest.fixture
def jina_channel_with_bad_key(fake_jina: FakeJina, transactional_db):
    return make_channel(fake_jina.url, models=[JINA_MODEL], key="jina_wrong_secret", type="jina")


async def test_it_returns_jinas_error_without_leaking_the_key(alice_key, jina_channel_with_bad_key, fake_jina):
    response = await rerank(alice_key)
    assert response.status_code == 401
    assert orjson.loads(response.content)["error"]["message"] == jina_upstream.INVALID_KEY["detail"]
    assert b"jina_wrong_secret" not in response.content


async def test_jina_channels_refuse_chat(alice_key, jina_channel, fake_jina):
    response = await post_chat(alice_key, {"model": JINA_MODEL, "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 501
    assert fake_jina.requests == []


# --- Cohere ---


async def test_it_reranks_on_cohere_asking_for_every_document_and_bills_the_local_count(
    alice_key, cohere_channel, fake_cohere
):
    response = await rerank(alice_key, model=COHERE_MODEL)
    body = orjson.loads(response.content)
    assert [result["index"] for result in body["results"]] == [2, 0, 1]
    assert body["results"][1]["document"] == {"text": DOCUMENTS[0]}
    assert fake_cohere.requests[0].path == "/v1/rerank"
    assert fake_cohere.requests[0].body == {
        "model": COHERE_MODEL,
        "query": QUERY,
        "documents": DOCUMENTS,
        "top_n": len(DOCUMENTS),  # never Cohere's own small default
        "return_documents": True,
    }
    assert body["usage"]["total_tokens"] == local_count()  # Cohere bills search units, not tokens
    log = await the_only_log(response["X-Request-Id"])
    assert (log.prompt_tokens, log.completion_tokens) == (local_count(), 0)
    assert log.quota == math.ceil(round(local_count() * DEFAULT_MODEL_RATIO_TABLE[COHERE_MODEL], 6))


async def test_it_honours_top_n_and_return_documents_false_on_cohere(alice_key, cohere_channel, fake_cohere):
    response = await rerank(alice_key, model=COHERE_MODEL, top_n=1, return_documents=False)
    [result] = orjson.loads(response.content)["results"]
    assert result.keys() == {"index", "relevance_score"} and result["index"] == 2
    assert fake_cohere.requests[0].body["top_n"] == 1


# --- routing and OpenAI-compatible backends ---


@pytest.fixture
def openai_compatible_rerank(fake_jina: FakeJina, transactional_db):
    return make_channel(fake_jina.url, models=["bge-reranker-v2-m3"], key=jina_upstream.API_KEY, type="openai")


async def test_an_openai_compatible_channel_serves_jina_format_rerank(alice_key, openai_compatible_rerank, fake_jina):
    response = await rerank(alice_key, model="bge-reranker-v2-m3", documents=[{"text": DOCUMENTS[0]}])
    body = orjson.loads(response.content)
    [result] = body["results"]
    assert (result["index"], result["document"]) == (0, {"text": DOCUMENTS[0]})
    assert body["usage"]["total_tokens"] == jina_upstream.TOTAL_TOKENS
    assert fake_jina.requests[0].path == "/v1/rerank"


@pytest.fixture
def dify_before_jina(fake_jina: FakeJina, jina_channel, transactional_db):
    return make_channel("http://127.0.0.1:9", models=[JINA_MODEL], type="dify", priority=10)


async def test_a_channel_that_cannot_rerank_passes_the_call_to_one_that_can(alice_key, dify_before_jina, fake_jina):
    response = await rerank(alice_key)
    assert response.status_code == 200
    assert len(fake_jina.requests) == 1


def test_it_fills_an_empty_returned_document_from_the_request():
    request = chat_request({"model": JINA_MODEL, "messages": []})
    request.body = {"query": QUERY, "documents": [{"text": "a", "id": 7}, "b"]}
    answer, usage, _ = rerank_answer(request, [{"index": 1, "relevance_score": 0.2}, {"index": 0, "document": ""}], 0)
    results = orjson.loads(answer)["results"]
    assert results == [
        {"index": 1, "relevance_score": 0.2, "document": {"text": "b"}},
        {"index": 0, "relevance_score": 0.0, "document": {"text": "a", "id": 7}},
    ]
    assert usage is None


# --- validation ---


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"query": ""}, "invalid_query"),
        ({"query": None}, "invalid_query"),
        ({"documents": []}, "invalid_documents"),
        ({"documents": [1, 2]}, "invalid_documents"),
        ({"top_n": -1}, "invalid_value"),
        ({"return_documents": "yes"}, "invalid_value"),
        ({"model": ""}, "missing_model"),
    ],
)
async def test_it_refuses_invalid_requests_with_a_400(alice_key, jina_channel, fake_jina, fields, code):
    response = await rerank(alice_key, **fields)
    assert response.status_code == 400
    assert orjson.loads(response.content)["error"]["code"] == code
    assert fake_jina.requests == []


def test_a_channel_test_of_a_rerank_only_channel_reports_instead_of_crashing(jina_channel, fake_jina):
    result = probe_channel(jina_channel)
    assert not result.success and "rerank and embeddings only" in result.message
    assert fake_jina.requests == []
