"""CORS on the relay paths (gateway_project.asgi_handlers.RelayCors), never on admin, console or /api/."""

import httpx
import orjson
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from gateway_project import settings as gateway_settings
from tests.support.asgi_harness import Gateway
from tests.support.live_server import LiveGateway
from tests.support.relay_client import HELLO

pytestmark = pytest.mark.django_db(transaction=True)

APP = "https://chat.example"
ASKED_HEADERS = "authorization, content-type, x-api-key, anthropic-version, anthropic-beta, x-goog-api-key"


def preflight(path: str = "/v1/chat/completions", origin: str = APP) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": ASKED_HEADERS,
    }


@pytest.fixture(scope="module")
def gateway(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        server = LiveGateway({"RELAY_MAX_BODY_BYTES": "1000"})
    yield server
    server.stop()


@pytest.mark.parametrize(
    "path", ["/v1/chat/completions", "/v1/messages", "/dashboard/billing/usage", "/mj/submit/imagine"]
)
def test_a_preflight_is_answered_without_a_key(gateway, path):
    response = httpx.options(f"{gateway.url}{path}", headers=preflight(path))
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "*"
    assert "POST" in response.headers["access-control-allow-methods"]
    assert response.headers["access-control-allow-headers"] == ASKED_HEADERS
    assert int(response.headers["access-control-max-age"]) > 0


def test_answers_errors_and_streams_carry_the_origin_header(gateway, alice_key, openai_channel):
    relay = httpx.Client(base_url=gateway.url, headers={"Origin": APP})
    answer = relay.post("/v1/chat/completions", json=HELLO, headers={"Authorization": f"Bearer {alice_key}"})
    assert answer.status_code == 200
    refused = relay.post("/v1/chat/completions", json=HELLO)
    assert refused.status_code == 401
    too_large = relay.post("/v1/chat/completions", content=b"x" * 2000)  # refused inside daphne, before the app
    assert too_large.status_code == 413
    with relay.stream(
        "POST", "/v1/chat/completions", json={**HELLO, "stream": True}, headers={"Authorization": f"Bearer {alice_key}"}
    ) as stream:
        assert stream.status_code == 200
        assert stream.read().endswith(b"data: [DONE]\n\n")
    for response in (answer, refused, too_large, stream):
        assert response.headers["access-control-allow-origin"] == "*"


@pytest.mark.parametrize("path", ["/api/status", "/api/users", "/accounts/login/", "/admin/login/", "/"])
def test_cookie_paths_never_answer_cors(gateway, path):
    assert "access-control-allow-origin" not in httpx.get(f"{gateway.url}{path}", headers={"Origin": APP}).headers
    asked = httpx.options(f"{gateway.url}{path}", headers=preflight(path))
    assert not any(name.startswith("access-control-") for name in asked.headers)


def test_a_request_without_an_origin_gets_no_cors_headers(gateway):
    response = httpx.get(f"{gateway.url}/v1/models")
    assert response.status_code == 401
    assert not any(name.startswith("access-control-") for name in response.headers)


@override_settings(CORS_ALLOWED_ORIGINS=["https://one.example", APP])
async def test_a_list_echoes_a_listed_origin_and_nothing_for_others():
    allowed = await Gateway().request("OPTIONS", "/v1/chat/completions", headers=preflight())
    assert allowed.status == 204
    assert allowed.headers["access-control-allow-origin"] == APP
    assert allowed.headers["vary"] == "Origin"
    other = await Gateway().request("OPTIONS", "/v1/chat/completions", headers=preflight(origin="https://evil.example"))
    assert other.status == 204
    assert not any(name.startswith("access-control-") for name in other.headers)
    assert other.headers["vary"] == "Origin"

    listed = await Gateway().request("GET", "/v1/models", headers={"Origin": APP})
    assert (listed.status, listed.headers["access-control-allow-origin"]) == (401, APP)
    assert orjson.loads(listed.body)["error"]["code"] == "missing_api_key"
    unlisted = await Gateway().request("GET", "/v1/models", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in unlisted.headers


@override_settings(CORS_ALLOWED_ORIGINS=[])
async def test_an_empty_setting_turns_cors_off():
    answer = await Gateway().request("OPTIONS", "/v1/chat/completions", headers=preflight())
    assert not any(name.startswith("access-control-") for name in answer.headers)


@pytest.mark.parametrize(
    ("configured", "origins"),
    [
        ("*", ["*"]),
        ("", []),
        (" https://a.example/, http://b.example:8080 ", ["https://a.example", "http://b.example:8080"]),
    ],
)
def test_the_setting_reads_a_star_a_list_or_nothing(monkeypatch, configured, origins):
    monkeypatch.setenv("CORS_ALLOWED_ORIGINS", configured)
    assert gateway_settings._cors_origins() == origins


@pytest.mark.parametrize("configured", ["chat.example", "https://chat.example/app", "ftp://chat.example"])
def test_a_malformed_origin_stops_the_start(monkeypatch, configured):
    monkeypatch.setenv("CORS_ALLOWED_ORIGINS", configured)
    with pytest.raises(ImproperlyConfigured, match="CORS_ALLOWED_ORIGINS"):
        gateway_settings._cors_origins()


@override_settings(RELAY_MAX_BODY_BYTES=10)
async def test_a_body_refused_as_it_arrives_carries_the_origin_header_too():
    refused = await Gateway().request("POST", "/v1/chat/completions", b"x" * 11, headers={"Origin": APP})
    assert (refused.status, refused.headers["access-control-allow-origin"]) == (413, "*")
