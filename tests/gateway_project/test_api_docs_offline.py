"""/api/docs works with no internet: Swagger UI comes from the installed django-ninja through our static files
(collectstatic + WhiteNoise, as `make run` serves them), and the page names no other host."""

import json
import re

import httpx
import pytest
from django.core.management import call_command
from django.test import override_settings

from tests.support.live_server import LiveGateway

pytestmark = pytest.mark.django_db(transaction=True)

REFERENCE = re.compile(r'(?:src|href)="([^"]+)"')


@pytest.fixture
def gateway(tmp_path):
    with override_settings(STATIC_ROOT=tmp_path / "static"):
        call_command("collectstatic", interactive=False, verbosity=0)
    server = LiveGateway({"DATA_DIR": str(tmp_path)})
    yield server
    server.stop()


def test_the_docs_page_and_every_asset_it_names_come_from_the_gateway(gateway):
    page = httpx.get(f"{gateway.url}/api/docs")
    assert page.status_code == 200
    assets = REFERENCE.findall(page.text)
    assert {"/static/ninja/swagger-ui.css", "/static/ninja/swagger-ui-bundle.js"} <= set(assets)
    assert not re.search(r"https?://|//cdn", page.text)
    for asset in assets:
        assert httpx.get(f"{gateway.url}{asset}").status_code == 200, asset

    swagger = json.loads(re.search(r'id="swagger-settings">(.*?)</script>', page.text, re.S).group(1))
    assert swagger["validatorUrl"] is None  # no badge fetched from validator.swagger.io
    assert httpx.get(f"{gateway.url}{swagger['url']}").json()["info"]["title"] == "LLM gateway management API"
