"""A fake Vertex AI (token endpoint and model endpoints) and a service account it trusts."""

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from relay.adaptors import google_auth
from tests.support.fakes import anthropic_upstream, gemini_upstream
from tests.support.fakes import vertex_upstream as fake
from tests.support.fakes.openai_upstream import FakeOpenAI, start
from tests.support.fakes.vertex_upstream import FakeVertex


@pytest.fixture(scope="session")
def signing_key() -> rsa.RSAPrivateKey:
    return fake.new_private_key()


@pytest.fixture(scope="session")
def fake_vertex_server() -> FakeVertex:
    return fake.start(FakeVertex())


@pytest.fixture
def fake_vertex(fake_vertex_server: FakeVertex, signing_key: rsa.RSAPrivateKey) -> FakeVertex:
    fake_vertex_server.reset(signing_key.public_key())
    google_auth.Tokens.clear()
    return fake_vertex_server


@pytest.fixture
def account_json(fake_vertex: FakeVertex, signing_key: rsa.RSAPrivateKey) -> str:
    return fake.service_account_json(signing_key, fake_vertex.token_uri)


@pytest.fixture(scope="session")
def format_fakes_server() -> dict:
    """Fake Anthropic, OpenAI and Gemini upstreams for the inbound formats' end-to-end tests, by channel type."""
    started = {
        "anthropic": anthropic_upstream.FakeAnthropic(),
        "openai": FakeOpenAI(),
        "gemini": gemini_upstream.FakeGemini(),
    }
    for upstream in started.values():
        start(upstream)
    return started


@pytest.fixture
def format_fakes(format_fakes_server: dict) -> dict:
    """The formats' fake upstreams with nothing scripted or recorded."""
    for upstream in format_fakes_server.values():
        upstream.reset()
    return format_fakes_server
