"""Simplified Chinese: the browser's Accept-Language or the console's switch picks it for the console, admin
and management API; LANGUAGE_CODE for manage.py; the relay keeps OpenAI's English errors whatever is asked;
and the compiled catalogs are those of their .po files."""

import io
import os
import subprocess
import sys
from pathlib import Path

import orjson
import polib
import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import Client, override_settings

from billing.models import AccessToken, User
from tests.support.asgi_harness import Gateway
from tests.support.factories import make_key

ZH = {"HTTP_ACCEPT_LANGUAGE": "zh-CN,zh;q=0.9,en;q=0.8"}
LOCALE = Path(settings.BASE_DIR) / "locale"


def page(client: Client, path: str, **headers: str) -> str:
    response = client.get(path, **headers)
    assert response.status_code == 200, response
    return response.content.decode()


def test_the_browser_language_picks_the_console_language(alice: User) -> None:
    client = Client()
    assert "<h1>登录</h1>" in page(client, "/accounts/login/", **ZH)
    assert "<h1>Sign In</h1>" in page(client, "/accounts/login/")
    client.force_login(alice)
    make_key(alice, name="app")
    keys = page(client, "/console/keys/", **ZH)
    assert '<html lang="zh-hans">' in keys and "创建令牌" in keys and "启用" in keys
    assert "Create a key" not in keys
    usage = page(client, "/console/usage/", **ZH)
    assert "<h1>用量</h1>" in usage and "下载 CSV" in usage


def test_the_switch_keeps_the_chosen_language_in_a_cookie(alice: User) -> None:
    client = Client()
    client.force_login(alice)
    home = page(client, "/console/")
    assert "<h1>Overview</h1>" in home and 'value="zh-hans"' in home  # the switch offers Chinese
    switched = client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/console/"})
    assert switched.status_code == 302 and switched["Location"] == "/console/"
    assert client.cookies[settings.LANGUAGE_COOKIE_NAME].value == "zh-hans"
    # The cookie wins over the browser's English.
    assert "<h1>概览</h1>" in page(client, "/console/", HTTP_ACCEPT_LANGUAGE="en")
    client.post("/i18n/setlang/", {"language": "en", "next": "/console/"})
    assert "<h1>Overview</h1>" in page(client, "/console/", **ZH)


def test_admin_speaks_chinese(root: User) -> None:
    client = Client()
    client.force_login(root)
    index = page(client, "/admin/", **ZH)
    assert "渠道" in index and "用户控制台" in index and "API 令牌" in index
    form = page(client, "/admin/channels_app/channel/add/", **ZH)
    assert "模型映射" in form and "上游的 API 密钥" in form


def test_management_api_errors_follow_accept_language(alice: User) -> None:
    client = Client()
    assert client.get("/api/me", **ZH).json()["detail"].startswith("缺少访问令牌")
    assert client.get("/api/me").json()["detail"].startswith("missing or invalid access token")
    auth = {"HTTP_AUTHORIZATION": f"Bearer {AccessToken.issue(alice)[1]}"}
    body = orjson.dumps({"name": "x", "allow_ips": ["nowhere"]})
    refused = client.post("/api/tokens", body, content_type="application/json", **auth, **ZH)
    assert refused.status_code == 422
    assert refused.json()["detail"] == "allow_ips: 'nowhere' 不是 IP 地址或 CIDR 网段"


@override_settings(LANGUAGE_CODE="zh-hans")
def test_commands_speak_language_code(transactional_db) -> None:
    out = io.StringIO()
    call_command("bootstrap_admin", "--port", "3000", stdout=out)
    printed = out.getvalue()
    assert "已创建第一个管理员" in printed and "用户控制台：" in printed and "http://localhost:3000/console/" in printed


def test_language_code_comes_from_the_environment() -> None:
    """The variable read at start-up, in the spelling gettext uses too (zh_Hans); before any database work."""
    env = {**os.environ, "LANGUAGE_CODE": "zh_Hans", "SQL_DSN": ""}
    command = [sys.executable, "manage.py", "cleanup_logs", "--before", "someday"]
    failed = subprocess.run(command, cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=60)
    assert failed.returncode == 1 and "--before 需要形如 2024-05-01 的日期" in failed.stderr
    env["LANGUAGE_CODE"] = "klingon"
    refused = subprocess.run(command, cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and "LANGUAGE_CODE must be one of en, zh-hans" in refused.stderr


@override_settings(LANGUAGE_CODE="zh-hans")
async def test_relay_errors_stay_english(transactional_db) -> None:
    """OpenAI's error shape and words, for Chinese browsers and a Chinese LANGUAGE_CODE alike."""
    gateway = Gateway()
    chat = orjson.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]})
    headers = {"authorization": "Bearer sk-" + "x" * 48, "content-type": "application/json", "accept-language": "zh-CN"}
    answer = await gateway.request("POST", "/v1/chat/completions", chat, headers)
    error = orjson.loads(answer.body)["error"]
    assert answer.status == 401 and error["code"] == "invalid_api_key"
    assert error["message"].isascii() and "API key" in error["message"]
    site = await gateway.request("GET", "/api/me", headers={"accept-language": "zh-CN"})
    assert orjson.loads(site.body)["detail"].startswith("缺少访问令牌")  # the same request to the site: Chinese


def catalog(entries: list[polib.POEntry] | list[polib.MOEntry]) -> dict:
    return {(e.msgctxt, e.msgid, e.msgid_plural): e.msgstr or tuple(sorted(e.msgstr_plural.items())) for e in entries}


@pytest.mark.parametrize("po_path", sorted(LOCALE.glob("*/LC_MESSAGES/*.po")), ids=lambda path: path.parts[-3])
def test_each_compiled_catalog_is_its_po(po_path: Path) -> None:
    """A .po edited without compilemessages (or a .mo compiled from an old .po) fails here."""
    po = polib.pofile(str(po_path))
    assert not po.fuzzy_entries() and not po.untranslated_entries() and not po.obsolete_entries()
    mo = polib.mofile(str(po_path.with_suffix(".mo")))
    assert catalog(mo) == catalog(po.translated_entries())
    assert mo.metadata["Plural-Forms"] == po.metadata["Plural-Forms"]


def test_there_is_a_chinese_catalog() -> None:
    assert (LOCALE / "zh_Hans" / "LC_MESSAGES" / "django.mo").exists()
