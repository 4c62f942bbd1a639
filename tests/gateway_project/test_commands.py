"""manage.py maintenance commands: what each prints, what it changes, and how it fails."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from billing.accounts.access import user_for_access_token
from billing.models import AccessToken, ApiKey, Log, User, hash_key
from channels_app.models import Channel
from tests.support.factories import ALICE_QUOTA, make_channel
from tests.support.fakes.openai_upstream import Behaviour

pytestmark = pytest.mark.django_db(transaction=True)


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue().strip()


def test_create_access_token_prints_a_working_token(alice):
    printed = run("create_access_token", "alice")
    assert len(printed.splitlines()) == 1
    assert user_for_access_token(printed) == alice
    assert AccessToken.objects.get(user=alice).token_hash == hash_key(printed)


def test_channel_add_stores_an_encrypted_channel_and_says_so(db):
    printed = run(
        "channel_add",
        "--type=openai",
        "--key=sk-cli-secret-key",
        "--models=gpt-4o, gpt-4o-mini",
        "--base-url=http://upstream.example",
        "--priority=5",
        "--weight=3",
        "--group=default,vip",
        "--name=primary",
    )
    channel = Channel.objects.get()
    assert printed == f"added channel {channel.pk} 'primary' (openai) for gpt-4o, gpt-4o-mini in default, vip"
    assert "sk-cli-secret-key" not in printed
    assert (channel.models, channel.groups) == (["gpt-4o", "gpt-4o-mini"], ["default", "vip"])
    assert (channel.base_url, channel.priority, channel.weight) == ("http://upstream.example", 5, 3)
    assert channel.key == "sk-cli-secret-key" and channel.key_encrypted != "sk-cli-secret-key"


@pytest.mark.parametrize(
    ("args", "complaint"), [(["--type=pigeon"], "type:"), (["--type=openai", "--weight=-2"], "weight:")]
)
def test_channel_add_refuses_invalid_values(db, args, complaint):
    with pytest.raises(CommandError, match=complaint):
        run("channel_add", "--key=k", "--models=gpt-4o", *args)
    assert not Channel.objects.exists()


def test_token_create_prints_an_unlimited_key_by_default(alice):
    printed = run("token_create", "alice", "--name=cli")
    assert printed.startswith("sk-") and len(printed) == 51
    token = ApiKey.objects.get(key_hash=hash_key(printed[3:]))
    assert (token.user, token.name, token.unlimited_quota) == (alice, "cli", True)


def test_token_create_with_a_quota_limits_the_key(alice):
    printed = run("token_create", "alice", "--quota=1234")
    token = ApiKey.objects.get(key_hash=hash_key(printed[3:]))
    assert (token.remain_quota, token.unlimited_quota) == (1234, False)


def test_user_quota_adds_and_removes_quota_with_a_manage_log(alice):
    assert run("user_quota", "alice", "500") == f"alice: quota +500, now {ALICE_QUOTA + 500}"
    assert run("user_quota", "alice", "-200") == f"alice: quota -200, now {ALICE_QUOTA + 300}"
    alice.refresh_from_db()
    assert alice.quota == ALICE_QUOTA + 300
    logs = Log.objects.filter(type=Log.Type.MANAGE, user_id=alice.pk).order_by("id")
    assert [log.quota for log in logs] == [500, -200]
    assert all("manage.py user_quota" in log.content for log in logs)


def test_user_quota_never_takes_quota_below_zero(alice):
    with pytest.raises(CommandError, match="cannot remove"):
        run("user_quota", "alice", str(-ALICE_QUOTA - 1))
    alice.refresh_from_db()
    assert alice.quota == ALICE_QUOTA
    assert not Log.objects.exists()


@pytest.mark.parametrize(
    "args", [["create_access_token", "nobody"], ["token_create", "nobody"], ["user_quota", "nobody", "5"]]
)
def test_commands_fail_with_a_clear_error_for_an_unknown_user(db, args):
    with pytest.raises(CommandError, match="no user named 'nobody'"):
        run(*args)


def test_channel_test_reports_each_channel_and_fails_if_any_did(fake_openai):
    good = make_channel(fake_openai.url, name="good", response_time_ms=-1)
    bad = make_channel(fake_openai.url, name="bad", response_time_ms=-1)
    fake_openai.script.extend([Behaviour(), Behaviour(status=500, body={"error": {"message": "boom"}})])
    out = StringIO()
    with pytest.raises(CommandError, match="1 of 2 channels failed"):
        call_command("channel_test", "--all", stdout=out)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert {line.split(":")[1].strip() for line in lines} == {"ok", "FAILED"}
    assert any("boom" in line for line in lines)
    assert Channel.objects.filter(pk__in=[good.pk, bad.pk], response_time_ms=-1).count() == 1  # only the failure
    assert run("channel_test", str(good.pk)).startswith(f"channel {good.pk} 'good': ok: gpt-4o answered in")


def test_channel_test_fails_for_an_unknown_channel(db):
    with pytest.raises(CommandError, match="no channel 999"):
        run("channel_test", "999")


def test_bootstrap_admin_prints_working_credentials_once_and_where_to_go_every_time():
    first = run("bootstrap_admin", "--port", "3100")
    password = first.split("password: ")[1].split()[0]
    token = first.split("management access token: ")[1].split()[0]
    admin = User.objects.get(username="admin")
    assert admin.is_superuser and admin.check_password(password) and user_for_access_token(token) == admin
    second = run("bootstrap_admin", "--port", "3100")
    assert "users exist: no admin created" in second and password not in second
    for printed in (first, second):
        assert "http://localhost:3100/v1" in printed and "http://localhost:3100/console/" in printed
        assert "http://localhost:3100/admin/" in printed and "http://localhost:3100/api/docs" in printed
        assert "manage.py changepassword admin" in printed
