"""manage.py import_oneapi: a one-api or new-api database, built here with their table layouts, moves over."""

import json
import os
import sqlite3
from io import StringIO
from pathlib import Path

import orjson
import pytest
from allauth.account.models import EmailAddress
from allauth.socialaccount.models import SocialAccount
from asgiref.sync import sync_to_async
from django.apps import apps
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import AsyncClient

from billing import pricing
from billing.accounts import invitations
from billing.models import ApiKey, AuditEntry, PriceTable, SignUp, User, hash_key
from channels_app.channels import type_problems
from channels_app.models import Channel, ChannelKey
from gateway_project.oneapi_import import accounts

pytestmark = pytest.mark.django_db(transaction=True)

# Columns as gorm creates them (reference-new-api.md 2.1, 9.1, 9.2, 6.9; one-api's models of v0.6).
ONE_API = {
    "channels": "id:pk type:int key:text status:int name:text weight:int created_time:int test_time:int"
    " response_time:int base_url:text other:text balance:real balance_updated_time:int models:text group:text"
    " used_quota:int model_mapping:text priority:int config:text system_prompt:text",
    "users": "id:pk username:text password:text display_name:text role:int status:int email:text github_id:text"
    " wechat_id:text access_token:text quota:int used_quota:int request_count:int group:text aff_code:text"
    " inviter_id:int",
    "tokens": "id:pk user_id:int key:text status:int name:text created_time:int accessed_time:int expired_time:int"
    " remain_quota:int unlimited_quota:int used_quota:int models:text subnet:text",
    "options": "key:text value:text",
    "redemptions": "id:pk user_id:int key:text status:int name:text quota:int created_time:int redeemed_time:int",
}
NEW_API = {
    "channels": "id:pk type:int key:text openai_organization:text test_model:text status:int name:text weight:int"
    " created_time:int test_time:int response_time:int base_url:text other:text balance:real"
    " balance_updated_time:int models:text group:text used_quota:int model_mapping:text status_code_mapping:text"
    " priority:int auto_ban:int other_info:text tag:text channel_info:text",
    "users": "id:pk username:text password:text display_name:text role:int status:int email:text github_id:text"
    " wechat_id:text telegram_id:text access_token:text quota:int used_quota:int request_count:int group:text"
    " aff_code:text aff_count:int aff_quota:int aff_history:int inviter_id:int deleted_at:text",
    "tokens": "id:pk user_id:int key:text status:int name:text created_time:int accessed_time:int expired_time:int"
    " remain_quota:int unlimited_quota:int model_limits_enabled:int model_limits:text allow_ips:text"
    " used_quota:int group:text deleted_at:text",
    "options": "key:text value:text",
    "redemptions": "id:pk user_id:int key:text status:int name:text quota:int created_time:int redeemed_time:int"
    " used_user_id:int deleted_at:text",
}
SQL_TYPES = {
    "sqlite": {"pk": "integer primary key", "int": "integer", "text": "text", "real": "real"},
    "mysql": {"pk": "bigint primary key", "int": "bigint", "text": "longtext", "real": "double"},
    "postgresql": {"pk": "bigint primary key", "int": "bigint", "text": "text", "real": "double precision"},
}

ROOT_HASH = "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"
CAROL_KEY = "c" * 44 + "AR01"
DAVE_KEY = "d" * 44 + "AV01"
ERIN_KEY = "e" * 44 + "RN01"
ERIN_APP_KEY = "e" * 44 + "APP1"
ONE_API_ROWS = {
    "users": [
        {"id": 1, "username": "root", "password": ROOT_HASH, "role": 100, "status": 1, "quota": 100_000_000},
        {"id": 2, "username": "carol", "role": 1, "status": 1, "quota": 5_000_000, "used_quota": 1_000,
         "email": "carol@example.com", "github_id": "carol-gh", "aff_code": "Ca7x"},
        {"id": 3, "username": "dave", "role": 1, "status": 2, "quota": 0, "group": "vip", "request_count": 7,
         "inviter_id": 2},
    ],
    "channels": [
        {"id": 1, "type": 1, "name": "openai pool", "key": "sk-one\nsk-two\n", "models": "gpt-4o, gpt-4o-mini",
         "group": "default,vip", "priority": 5, "weight": 3, "status": 1, "base_url": "", "used_quota": 42},
        {"id": 2, "type": 36, "name": "deepseek", "key": "sk-deep", "models": "deepseek-chat", "group": "default",
         "status": 2, "base_url": ""},
        {"id": 3, "type": 3, "name": "azure", "key": "az-key", "models": "gpt-4o", "group": "default", "status": 3,
         "base_url": "https://res.openai.azure.com/", "config": '{"api_version": "2024-02-01"}'},
        {"id": 4, "type": 15, "name": "baidu", "key": "ak|sk", "models": "ERNIE-4.0", "group": "default",
         "status": 1},
        {"id": 5, "type": 35, "name": "cohere", "key": "co-key", "models": "command-r", "group": "default",
         "status": 1, "model_mapping": '{"command": "command-r"}'},
    ],
    "tokens": [
        {"id": 1, "user_id": 2, "key": CAROL_KEY, "status": 1, "name": "carol app", "expired_time": -1,
         "remain_quota": 400_000, "used_quota": 100, "unlimited_quota": 0, "models": "gpt-4o",
         "subnet": "10.0.0.0/8,192.168.1.1", "created_time": 1_700_000_000},
        {"id": 2, "user_id": 3, "key": DAVE_KEY, "status": 2, "name": "old", "expired_time": 1_900_000_000,
         "remain_quota": 0, "unlimited_quota": 1, "models": "", "subnet": ""},
    ],
    "options": [
        {"key": "ModelRatio", "value": '{"gpt-4o": 2.5, "my-model": 3}'},
        {"key": "CompletionRatio", "value": '{"my-model": 2}'},
        {"key": "ModelPrice", "value": '{"my-fixed": 0.2}'},
        {"key": "GroupRatio", "value": '{"default": 1, "vip": 0.8}'},
        {"key": "QuotaPerUnit", "value": "500000"},
        {"key": "SystemName", "value": "One API"},
    ],
    "redemptions": [
        {"id": 1, "user_id": 1, "key": "a" * 32, "status": 1, "name": "gift", "quota": 100},
        {"id": 2, "user_id": 1, "key": "b" * 32, "status": 3, "name": "used", "quota": 100,
         "redeemed_time": 1_710_000_000},
        {"id": 3, "user_id": 1, "key": "d" * 32, "status": 2, "name": "disabled", "quota": 100},
    ],
}  # fmt: skip
VERTEX_KEY = '{"type": "service_account",\n "project_id": "proj",\n "private_key": "-----BEGIN..."}'
AWS_KEY = "AKIAIOSFODNN7EXAMPLE|wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY|us-west-2"  # new-api's AK|SK|Region


def new_api_rows(base_url: str = "http://upstream.invalid") -> dict[str, list[dict]]:
    return {
        "users": [
            {"id": 1, "username": "root", "password": ROOT_HASH, "role": 100, "status": 1, "quota": 1},
            {"id": 7, "username": "erin", "role": 10, "status": 1, "quota": 2_000_000, "group": "default"},
            {"id": 8, "username": "gone", "role": 1, "status": 1, "deleted_at": "2024-05-01 10:00:00"},
        ],
        "channels": [
            {"id": 10, "type": 1, "name": "primary", "key": "sk-upstream-new", "base_url": base_url,
             "models": "gpt-4o", "group": "default", "status": 1, "priority": 0, "weight": 0, "auto_ban": 0,
             "test_model": "gpt-4o-mini", "model_mapping": '{"gpt-4o": "gpt-4o-2024-08-06"}',
             "status_code_mapping": '{"429": "503"}', "openai_organization": "org-imported"},
            {"id": 11, "type": 41, "name": "vertex", "key": VERTEX_KEY, "models": "gemini-1.5-pro",
             "group": "default", "status": 1, "other": '{"default": "us-central1", "claude-3": "europe-west1"}'},
            {"id": 12, "type": 35, "name": "minimax", "key": "mm-key", "models": "abab6.5-chat", "group": "default",
             "status": 1, "base_url": ""},
            {"id": 13, "type": 2, "name": "mj", "key": "mj-key", "models": "mj_imagine", "group": "default",
             "status": 2, "base_url": "http://mj.local", "other_info": '{"status_reason": "manual"}'},
            {"id": 14, "type": 39, "name": "cloudflare", "key": "cf-key", "models": "@cf/llama", "group": "default",
             "status": 1},
            {"id": 15, "type": 24, "name": "gemini", "key": "g-key", "models": "gemini-1.5-flash", "group": "",
             "status": 1, "other": "v1beta", "status_code_mapping": '{"400": "teapot"}'},
            {"id": 16, "type": 33, "name": "aws", "key": AWS_KEY, "models": "anthropic.claude-3-haiku-20240307-v1:0",
             "group": "default", "status": 1, "base_url": ""},
        ],
        "tokens": [
            {"id": 20, "user_id": 7, "key": ERIN_KEY, "status": 1, "name": "erin limited", "expired_time": -1,
             "remain_quota": 1_000_000, "unlimited_quota": 0, "model_limits_enabled": 1,
             "model_limits": "gpt-4o,gpt-4o-mini", "allow_ips": "1.2.3.4\n5.6.7.8", "group": "vip"},
            {"id": 21, "user_id": 8, "key": "g" * 48, "status": 1, "name": "of a deleted user", "expired_time": -1},
            {"id": 22, "user_id": 7, "key": "h" * 48, "status": 1, "name": "deleted", "expired_time": -1,
             "deleted_at": "2024-05-01 10:00:00"},
            {"id": 23, "user_id": 7, "key": "i" * 48, "status": 1, "name": "allows nothing", "expired_time": -1,
             "model_limits_enabled": 1, "model_limits": ""},
            {"id": 24, "user_id": 7, "key": ERIN_APP_KEY, "status": 1, "name": "erin app", "expired_time": -1,
             "unlimited_quota": 1, "model_limits_enabled": 0, "model_limits": "", "allow_ips": "", "group": ""},
        ],
        "options": [
            {"key": "ModelRatio", "value": '{"gpt-4o": 2.5}'},
            {"key": "CacheRatio", "value": '{"gpt-4o": 0.5, "my-cached": 0.2}'},
            {"key": "CreateCacheRatio", "value": '{"my-cached": 1.5}'},
            {"key": "GroupRatio", "value": "not json"},
            {"key": "QuotaPerUnit", "value": "lots"},
        ],
        "redemptions": [
            {"id": 1, "user_id": 1, "key": "c" * 32, "status": 1, "name": "gift", "quota": 500},
            {"id": 2, "user_id": 1, "key": "f" * 32, "status": 3, "name": "spent", "quota": 500, "used_user_id": 7,
             "redeemed_time": 1_710_000_000},
        ],
    }  # fmt: skip


def build(connection, dialect: str, layout: dict[str, str], rows: dict[str, list[dict]]) -> None:
    """Create the layout's tables and insert the rows with a DB-API connection of `dialect`."""
    quote = "`" if dialect == "mysql" else '"'
    mark = "?" if dialect == "sqlite" else "%s"
    cursor = connection.cursor()
    for table, spec in layout.items():
        columns = [item.split(":") for item in spec.split()]
        body = ", ".join(f"{quote}{name}{quote} {SQL_TYPES[dialect][kind]}" for name, kind in columns)
        cursor.execute(f"CREATE TABLE {quote}{table}{quote} ({body})")
        for row in rows.get(table, []):
            names = ", ".join(f"{quote}{name}{quote}" for name in row)
            marks = ", ".join([mark] * len(row))
            cursor.execute(f"INSERT INTO {quote}{table}{quote} ({names}) VALUES ({marks})", list(row.values()))
    connection.commit()


def sqlite_source(path: Path, layout: dict[str, str], rows: dict[str, list[dict]]) -> str:
    connection = sqlite3.connect(path)
    build(connection, "sqlite", layout, rows)
    connection.close()
    return str(path)


@pytest.fixture
def one_api_db(tmp_path: Path) -> str:
    return sqlite_source(tmp_path / "one-api.db", ONE_API, ONE_API_ROWS)


@pytest.fixture
def new_api_db(tmp_path: Path) -> str:
    return f"sqlite://{sqlite_source(tmp_path / 'new-api.db', NEW_API, new_api_rows())}"


def run(*args: str) -> str:
    out = StringIO()
    call_command("import_oneapi", *args, stdout=out)
    return out.getvalue()


def snapshot() -> tuple[list, ...]:
    return (
        list(User.objects.order_by("username").values()),
        list(Channel.objects.order_by("pk").values()),
        list(ApiKey.objects.order_by("pk").values()),
        list(PriceTable.objects.values()),
        list(redemption_model().objects.order_by("pk").values()) if redemption_model() else [],
    )


def redemption_model():
    """billing.Redemption arrived with the redemption-code work; the importer maps codes only when it exists."""
    try:
        return apps.get_model("billing", "Redemption")
    except LookupError:
        return None


def channel(source_id: int, line: int = 0) -> Channel:
    matches = [
        c
        for c in Channel.objects.all()
        if c.config.get("imported_from_oneapi_id") == source_id and c.config.get("imported_from_oneapi_key", 0) == line
    ]
    assert len(matches) == 1
    return matches[0]


def test_it_imports_a_one_api_database(one_api_db):
    printed = run(one_api_db)
    assert "(one-api layout)" in printed
    pool = [channel(1, 0), channel(1, 1)]  # a multi-line key becomes one channel per key
    assert [c.key for c in pool] == ["sk-one", "sk-two"]
    assert all(c.key_encrypted and "sk-" not in c.key_encrypted for c in pool)
    assert {(c.type, c.priority, c.weight, c.status, c.base_url, c.used_quota) for c in pool} == {
        ("openai", 5, 3, "enabled", "", 42)
    }
    assert pool[0].models == ["gpt-4o", "gpt-4o-mini"] and pool[0].groups == ["default", "vip"]
    deepseek = channel(2)  # one-api's 36 is DeepSeek (new-api's 36 is Suno)
    assert (deepseek.type, deepseek.base_url, deepseek.status) == ("deepseek", "", "disabled")  # the preset's host
    azure = channel(3)
    assert (azure.type, azure.status, azure.base_url) == ("azure", "auto_disabled", "https://res.openai.azure.com")
    assert azure.config["api_version"] == "2024-02-01"
    cohere = channel(5)  # one-api's 35 is Cohere
    assert (cohere.type, cohere.model_mapping) == ("cohere", {"command": "command-r"})
    assert "channel #4 'baidu' (type 15): Baidu type" in printed and "skipped" in printed
    assert Channel.objects.count() == 5

    carol, dave, root = User.objects.order_by("username")
    assert (carol.quota, carol.used_quota, carol.is_active, carol.is_staff) == (5_000_000, 1_000, True, False)
    assert (dave.is_active, dave.group, dave.request_count) == (False, "vip", 7)
    assert root.is_staff and root.is_superuser and not root.has_usable_password()
    assert "must be given a new one" in printed

    token = ApiKey.objects.get(key_hash=hash_key(CAROL_KEY))
    assert (token.user, token.name, token.status, token.remain_quota, token.used_quota) == (
        carol,
        "carol app",
        "enabled",
        400_000,
        100,
    )
    assert (token.key_hint, token.expires_at, token.unlimited_quota) == ("sk-cccc...AR01", None, False)
    assert token.model_limits == ["gpt-4o"] and token.allow_ips == ["10.0.0.0/8", "192.168.1.1"]
    old = ApiKey.objects.get(key_hash=hash_key(DAVE_KEY))
    assert (old.status, old.unlimited_quota, old.model_limits, old.expires_at.year) == ("disabled", True, None, 2030)

    prices = pricing.current()
    assert prices.model_ratio["gpt-4o"] == 2.5 and prices.model_ratio["my-model"] == 3
    assert prices.model_ratio["gpt-4o-mini"] == pricing.DEFAULT_MODEL_RATIO_TABLE["gpt-4o-mini"]  # merged
    assert prices.completion_ratio["my-model"] == 2 and prices.model_price["my-fixed"] == 0.2
    assert prices.group_ratio["vip"] == 0.8
    assert "channels: 5 created, 0 updated, 0 kept, 1 skipped" in printed
    assert "users: 3 created" in printed and "tokens: 2 created" in printed


def test_it_imports_a_new_api_database(new_api_db):
    printed = run(new_api_db)
    assert "(new-api layout)" in printed
    primary = channel(10)
    assert (primary.type, primary.auto_ban, primary.test_model, primary.weight) == ("openai", False, "gpt-4o-mini", 0)
    assert primary.model_mapping == {"gpt-4o": "gpt-4o-2024-08-06"}
    assert primary.status_code_mapping == {"429": "503"}
    assert primary.config["organization"] == "org-imported"
    vertex = channel(11)  # a service-account JSON stays one key, newlines and all
    assert (vertex.type, vertex.key) == ("vertex", VERTEX_KEY)
    assert vertex.config["region"] == "us-central1" and vertex.config["regions"]["claude-3"] == "europe-west1"
    minimax = channel(12)
    assert (minimax.type, minimax.base_url) == ("custom", "https://api.minimax.chat/v1/text/chatcompletion_v2")
    mj = channel(13)
    assert (mj.type, mj.status, mj.status_reason, mj.base_url) == (
        "midjourney",
        "disabled",
        "manual",
        "http://mj.local",
    )
    aws = channel(16)  # new-api's AWS Claude: its key is a bedrock channel's key as it is
    assert (aws.type, aws.key, aws.base_url) == ("bedrock", AWS_KEY, "")
    assert type_problems("bedrock", aws.key, aws.config) == {}
    gemini = channel(15)
    assert (gemini.type, gemini.config["api_version"], gemini.groups) == ("gemini", "v1beta", ["default"])
    assert gemini.status_code_mapping == {}
    assert "channel #15 'gemini' (type 24): status_code_mapping entries" in printed
    assert "channel #14 'cloudflare' (type 39): unknown type" in printed

    assert not User.objects.filter(username="gone").exists()  # soft-deleted there
    erin = User.objects.get(username="erin")
    assert (erin.quota, erin.is_staff, erin.is_superuser) == (2_000_000, True, False)
    limited = ApiKey.objects.get(key_hash=hash_key(ERIN_KEY))
    assert limited.model_limits == ["gpt-4o", "gpt-4o-mini"] and limited.allow_ips == ["1.2.3.4", "5.6.7.8"]
    assert limited.group == "vip"
    nothing = ApiKey.objects.get(name="allows nothing")  # empty limits mean "no model" there, "all" here
    assert nothing.status == "disabled" and "imported disabled" in printed
    assert set(ApiKey.objects.values_list("name", flat=True)) == {"erin limited", "allows nothing", "erin app"}
    assert "tokens: 3 created, 0 updated, 0 kept, 2 skipped" in printed
    assert "option GroupRatio is not a JSON object" in printed
    assert "option QuotaPerUnit 'lots' is not a positive number" in printed
    prices = pricing.current()  # new-api's cache prices; it has no 1-hour write price: the default stays
    assert (prices.cache_ratio["my-cached"], prices.create_cache_ratio["my-cached"]) == (0.2, 1.5)
    assert prices.create_cache_ratio_1h == pricing.DEFAULT_CREATE_CACHE_RATIO_1H_TABLE


def test_returning_users_keep_their_email_github_account_and_inviter(one_api_db):
    planned = run(one_api_db, "--dry-run")
    assert "link user 'carol' to GitHub account carol-gh" in planned and not SocialAccount.objects.exists()
    run(one_api_db)
    carol, dave = User.objects.get(username="carol"), User.objects.get(username="dave")
    address = EmailAddress.objects.get(user=carol)
    assert (address.email, address.verified, address.primary) == ("carol@example.com", True, True)
    assert SocialAccount.objects.get(provider="github").user == carol
    assert carol.invite_code == "Ca7x" and SignUp.objects.get(user=dave).inviter == carol
    assert invitations.invited_stats(carol) == {"invitees": 1, "earned": 0}
    assert invitations.credit_sign_up(dave.pk) is False  # one-api paid that invitation
    run(one_api_db)
    assert EmailAddress.objects.count() == SocialAccount.objects.count() == SignUp.objects.count() == 1


@pytest.mark.parametrize("layout", ["one_api_db", "new_api_db"])
def test_a_second_run_changes_nothing(layout, request):
    dsn = request.getfixturevalue(layout)
    first = run(dsn)
    before = snapshot()
    again = run(dsn)
    updated = run(dsn, "--update")  # an identical source leaves nothing to update either
    assert snapshot() == before
    for table in ("channels", "users", "tokens", "options", "redemptions"):
        created, changed, kept, skipped = tally(first, table)
        assert tally(again, table) == tally(updated, table) == (0, 0, created + changed + kept, skipped)


def tally(printed: str, table: str) -> tuple[int, ...]:
    line = next(line for line in printed.splitlines() if line.startswith(f"{table}: "))
    return tuple(int(word) for word in line.split() if word.isdigit())


def test_update_brings_imported_rows_to_the_source(tmp_path):
    rows = new_api_rows()
    dsn = sqlite_source(tmp_path / "first.db", NEW_API, rows)
    run(dsn)
    rows["users"][1]["quota"] = 1_234
    rows["channels"][0]["key"] = "sk-rotated"
    changed = sqlite_source(tmp_path / "second.db", NEW_API, rows)

    kept = run(changed)
    assert User.objects.get(username="erin").quota == 2_000_000  # a balance here is never reset silently
    assert "users: 0 created, 0 updated, 2 kept" in kept

    updated = run(changed, "--update")
    assert User.objects.get(username="erin").quota == 1_234
    assert channel(10).key == "sk-rotated"
    assert "users: 0 created, 1 updated" in updated and "channels: 0 created, 1 updated" in updated


def test_every_row_an_import_writes_has_its_audit_entry(tmp_path):
    rows = new_api_rows()
    dsn = sqlite_source(tmp_path / "first.db", NEW_API, rows)
    run(dsn)
    created = AuditEntry.objects.filter(actor_name="import_oneapi", action=AuditEntry.Action.CREATE)
    assert created.filter(object_type=AuditEntry.Kind.USER).count() == User.objects.count()
    assert created.filter(object_type=AuditEntry.Kind.KEY).count() == ApiKey.objects.count()
    assert created.filter(object_type=AuditEntry.Kind.CHANNEL).count() == Channel.objects.count()
    assert AuditEntry.objects.filter(actor_name="import_oneapi", object_type=AuditEntry.Kind.PRICES).exists()

    rows["channels"][0]["key"] = "sk-rotated"
    run(sqlite_source(tmp_path / "second.db", NEW_API, rows), "--update")
    [rotated] = AuditEntry.objects.filter(actor_name="import_oneapi", action=AuditEntry.Action.UPDATE)
    assert (rotated.object_id, rotated.changes) == (channel(10).pk, {"key_encrypted": "changed"})


def test_dry_run_writes_nothing_and_says_what_it_would_do(one_api_db):
    printed = run(one_api_db, "--dry-run")
    assert snapshot() == ([], [], [], [], [])
    assert "dry run, nothing written" in printed
    assert "create channel #1 'openai pool' (type 1) key 2/2 as openai" in printed
    assert "create key #1 'carol app' (sk-cccc...AR01) of 'carol'" in printed
    assert "add price ModelRatio my-model = 3" in printed
    assert "channels: 5 would be created" in printed
    assert "sk-one" not in printed  # upstream secrets are never printed


async def erin_asks(model: str) -> None:
    """A chat request with erin's imported app key, answered."""
    response = await AsyncClient().post(
        "/v1/chat/completions",
        orjson.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}]}),
        content_type="application/json",
        headers={"Authorization": f"Bearer sk-{ERIN_APP_KEY}"},
    )
    assert response.status_code == 200, response.content


async def test_an_imported_key_works_on_an_imported_channel(tmp_path, fake_openai):
    path = sqlite_source(tmp_path / "new-api.db", NEW_API, new_api_rows(base_url=fake_openai.url))
    await sync_to_async(run)(path)
    await erin_asks("gpt-4o")
    upstream = fake_openai.requests[0]
    headers = {name.lower(): value for name, value in upstream.headers.items()}
    assert headers["authorization"] == "Bearer sk-upstream-new"
    assert headers["openai-organization"] == "org-imported"
    assert upstream.body["model"] == "gpt-4o-2024-08-06"
    erin = await User.objects.aget(username="erin")
    assert erin.quota < 2_000_000  # billed on the imported balance


MULTI_KEYS = ["sk-pool-one-0001", "sk-pool-two-0002", "sk-pool-three-0003"]
MULTI_KEY_INFO = {
    "is_multi_key": True,
    "multi_key_size": 3,
    "multi_key_status_list": {"1": 3},
    "multi_key_disabled_reason": {"1": "status code 401: invalid key"},
    "multi_key_mode": "polling",
}


async def test_a_new_api_multi_key_channel_is_one_channel_whose_keys_keep_working(tmp_path, fake_openai):
    rows = new_api_rows()
    rows["channels"].append(
        {"id": 26, "type": 1, "name": "pool", "key": "\n".join(MULTI_KEYS), "base_url": fake_openai.url,
         "models": "gpt-4o-mini", "group": "default", "status": 1, "channel_info": json.dumps(MULTI_KEY_INFO)}
    )  # fmt: skip
    source = sqlite_source(tmp_path / "new-api.db", NEW_API, rows)
    assert "create channel #26 'pool' (type 1) as openai with 3 keys (polling)" in await sync_to_async(run)(
        source, "--dry-run"
    )
    await sync_to_async(run)(source)
    pool = await sync_to_async(channel)(26)
    assert pool.key_mode == "polling"
    stored = [(row.key, row.status, row.status_reason) async for row in ChannelKey.objects.filter(channel=pool)]
    assert stored == [
        (MULTI_KEYS[0], "enabled", ""),
        (MULTI_KEYS[1], "auto_disabled", "status code 401: invalid key"),
        (MULTI_KEYS[2], "enabled", ""),
    ]
    for _ in range(4):
        await erin_asks("gpt-4o-mini")
    used = [request.headers["Authorization"] for request in fake_openai.requests]
    assert sorted(used) == [f"Bearer {MULTI_KEYS[0]}"] * 2 + [f"Bearer {MULTI_KEYS[2]}"] * 2


def test_passwords_keep_their_bcrypt_hash_when_django_can_check_it(one_api_db, monkeypatch):
    monkeypatch.setattr(accounts, "bcrypt_usable", lambda: True)
    printed = run(one_api_db)
    assert User.objects.get(username="root").password == f"bcrypt${ROOT_HASH}"
    assert not User.objects.get(username="carol").has_usable_password()  # no hash there: still unusable
    assert "2 imported users have no usable password" in printed


def test_redemption_codes_move_over_and_can_be_redeemed(one_api_db, new_api_db):
    model = redemption_model()
    if model is None:
        pytest.skip("this gateway has no billing.Redemption model")
    from billing.payments.redemptions import AlreadyRedeemed, redeem

    one = run(one_api_db)
    assert "redemption code #3 'disabled' (dddd...dddd): disabled: skipped" in one
    assert "redemptions: 2 created, 0 updated, 0 kept, 1 skipped" in one
    gift = model.objects.get(code_hash=hash_key("a" * 32))
    assert (gift.name, gift.quota, gift.status, gift.code_hint) == ("gift", 100, "unused", "aaaa...aaaa")
    assert gift.created_by == User.objects.get(username="root")
    spent = model.objects.get(code_hash=hash_key("b" * 32))
    assert (spent.status, spent.used_at.year) == ("used", 2024)

    carol = User.objects.get(username="carol")
    assert redeem(carol, "a" * 32) == 100
    with pytest.raises(AlreadyRedeemed):
        redeem(carol, "b" * 32)  # used there: not redeemable again here

    run(new_api_db)
    used_here = model.objects.get(code_hash=hash_key("f" * 32))
    assert used_here.used_by == User.objects.get(username="erin")


def test_the_flavour_can_be_named_when_the_columns_do_not_tell(one_api_db):
    printed = run(one_api_db, "--flavour", "new-api")
    assert "(new-api layout)" in printed
    assert channel(2).type == "suno"  # new-api's 36


@pytest.mark.parametrize("dsn", ["/nowhere/one-api.db", "sqlite:///nowhere/one-api.db", "ftp://host/db"])
def test_a_source_that_is_not_there_is_a_clear_error(dsn, db):
    with pytest.raises(CommandError, match="no SQLite database"):
        run(dsn)


# ---- the same import from a server database --------------------------------------------------------------


def scratch_mysql(name: str):
    MySQLdb = pytest.importorskip("MySQLdb")
    try:
        admin = MySQLdb.connect(host="127.0.0.1", port=3306, user="root", password="")
    except MySQLdb.Error as unreachable:
        pytest.skip(f"MariaDB on 127.0.0.1:3306 not reachable: {unreachable}")
    admin.cursor().execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    connection = MySQLdb.connect(host="127.0.0.1", port=3306, user="root", password="", database=name)
    return admin, connection, f"root@tcp(127.0.0.1:3306)/{name}?parseTime=true", f"DROP DATABASE `{name}`"


def scratch_postgres(name: str):
    psycopg = pytest.importorskip("psycopg")
    try:
        admin = psycopg.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres", autocommit=True)
    except psycopg.Error as unreachable:
        pytest.skip(f"PostgreSQL on 127.0.0.1:5432 not reachable: {unreachable}")
    admin.execute(f'CREATE DATABASE "{name}"')
    connection = psycopg.connect(host="127.0.0.1", port=5432, user="postgres", dbname=name)
    return admin, connection, f"postgres://postgres@127.0.0.1:5432/{name}", f'DROP DATABASE "{name}"'


@pytest.mark.backend
@pytest.mark.parametrize(
    ("dialect", "layout", "rows"),
    [("mysql", NEW_API, new_api_rows()), ("postgresql", ONE_API, ONE_API_ROWS)],
    ids=["mariadb-new-api", "postgresql-one-api"],
)
def test_it_imports_from_a_server_database(dialect, layout, rows):
    name = f"oneapi_import_test_{os.getpid()}"
    admin, connection, dsn, drop = (scratch_mysql if dialect == "mysql" else scratch_postgres)(name)
    try:
        build(connection, dialect, layout, rows)
        connection.close()
        printed = run(dsn)
        again = run(dsn)
    finally:
        cursor = admin.cursor()
        cursor.execute(drop)
        admin.close()
    expected = {"mysql": (6, 3, 2), "postgresql": (5, 2, 3)}[dialect]
    assert (Channel.objects.count(), ApiKey.objects.count(), User.objects.count()) == expected
    assert f"channels: {expected[0]} created" in printed and "channels: 0 created, 0 updated" in again
    if dialect == "mysql":
        assert "(new-api layout)" in printed and channel(10).key == "sk-upstream-new"
    else:
        assert "(one-api layout)" in printed and channel(1, 1).key == "sk-two"
        assert ApiKey.objects.get(key_hash=hash_key(CAROL_KEY)).allow_ips == ["10.0.0.0/8", "192.168.1.1"]


# The provider presets: each one-api / new-api type number of DeepSeek, Kimi, Qwen, Doubao, SiliconFlow, OpenRouter,
# xAI, Mistral and Groq becomes its preset, the source's host kept with the API root the preset calls; new-api's
# param_override and header_override come along when this gateway accepts them.
NEW_API_WITH_OVERRIDES = {**NEW_API, "channels": NEW_API["channels"] + " param_override:text header_override:text"}
# flavour -> type number -> (our type, the source's base URL, the base URL imported)
PRESET_NUMBERS = {
    "one-api": {
        36: ("deepseek", "", ""),
        25: ("moonshot", "https://api.moonshot.cn", "https://api.moonshot.cn"),
        17: ("qwen", "https://dashscope.aliyuncs.com", "https://dashscope.aliyuncs.com/compatible-mode/v1"),
        49: ("qwen", "", ""),
        40: ("doubao", "https://ark.cn-beijing.volces.com", "https://ark.cn-beijing.volces.com/api/v3"),
        44: ("siliconflow", "", ""),
        20: ("openrouter", "https://openrouter.ai/api", "https://openrouter.ai/api"),
        45: ("xai", "", ""),
        28: ("mistral", "", ""),
        29: ("groq", "https://api.groq.com/openai", "https://api.groq.com/openai"),
    },
    "new-api": {
        43: ("deepseek", "https://api.deepseek.com", "https://api.deepseek.com"),
        25: ("moonshot", "", ""),
        17: ("qwen", "", ""),
        45: ("doubao", "https://ark.cn-beijing.volces.com", "https://ark.cn-beijing.volces.com/api/v3"),
        40: ("siliconflow", "https://api.siliconflow.cn", "https://api.siliconflow.cn"),
        20: ("openrouter", "", ""),
        48: ("xai", "https://api.x.ai", "https://api.x.ai"),
        42: ("mistral", "https://api.mistral.ai", "https://api.mistral.ai"),
    },
}


def preset_source(tmp_path: Path, flavour: str, channels: list[dict]) -> str:
    layout = ONE_API if flavour == "one-api" else NEW_API_WITH_OVERRIDES
    path = sqlite_source(tmp_path / f"{flavour}.db", layout, {"channels": channels})
    return path if flavour == "one-api" else f"sqlite://{path}"


@pytest.mark.parametrize("flavour", list(PRESET_NUMBERS))
def test_each_presets_type_number_imports_as_the_preset(tmp_path, flavour):
    numbers = PRESET_NUMBERS[flavour]
    rows = [
        {"id": number, "type": number, "name": slug, "key": f"sk-{number}", "models": "m", "group": "default",
         "status": 1, "base_url": base_url}
        for number, (slug, base_url, _) in numbers.items()
    ]  # fmt: skip
    run(preset_source(tmp_path, flavour, rows), "--flavour", flavour)
    imported = {number: (channel(number).type, channel(number).base_url) for number in numbers}
    assert imported == {number: (slug, kept) for number, (slug, _, kept) in numbers.items()}


def test_new_apis_overrides_come_along_and_a_forbidden_one_is_dropped_with_a_note(tmp_path):
    rows = [
        {"id": 1, "type": 43, "name": "deepseek", "key": "sk-1", "models": "deepseek-chat", "status": 1,
         "param_override": '{"temperature": 0.3, "thinking.type": "enabled"}',
         "header_override": '{"X-Team": "search"}'},
        {"id": 2, "type": 43, "name": "stolen", "key": "sk-2", "models": "deepseek-chat", "status": 1,
         "param_override": "not json", "header_override": '{"Authorization": "Bearer other"}'},
    ]  # fmt: skip
    printed = run(preset_source(tmp_path, "new-api", rows))
    assert channel(1).config["param_override"] == {"temperature": 0.3, "thinking.type": "enabled"}
    assert channel(1).config["header_override"] == {"X-Team": "search"}
    assert "param_override" not in channel(2).config and "header_override" not in channel(2).config
    assert "channel #2 'stolen' (type 43): param_override is not a JSON object: dropped" in printed
    assert "header_override dropped: header_override cannot set Authorization" in printed
    assert "Bearer other" not in printed
