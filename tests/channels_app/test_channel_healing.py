"""Channel tests heal: an auto-disabled channel that passes comes back; manual disables stay."""

import pytest
from django.test import override_settings

from billing.models import Log
from channels_app.models import Channel
from relay.channel_test import probe_all_channels
from tasks.jobs import periodic_jobs
from tests.support.factories import make_channel
from tests.support.fakes.openai_upstream import Behaviour

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.backend, pytest.mark.cache]

DEAD_KEY = Behaviour(status=401, body={"error": {"message": "Incorrect API key provided", "code": "invalid_api_key"}})


def test_the_periodic_test_re_enables_an_auto_disabled_channel_that_passes(fake_openai):
    channel = make_channel(fake_openai.url, status="auto_disabled", status_reason="401 earlier")
    assert probe_all_channels() == 1
    channel.refresh_from_db()
    assert (channel.status, channel.status_reason) == ("enabled", "")
    assert channel.response_time_ms >= 0
    assert Log.objects.filter(type="manage", channel_id=channel.pk, content__contains="re-enabled").exists()


def test_a_manually_disabled_channel_is_never_touched(fake_openai):
    channel = make_channel(fake_openai.url, status="disabled")
    assert probe_all_channels() == 0
    assert not fake_openai.requests
    channel.refresh_from_db()
    assert channel.status == "disabled"


def test_a_test_that_shows_a_dead_key_disables_the_channel(fake_openai):
    channel = make_channel(fake_openai.url)
    fake_openai.script.append(DEAD_KEY)
    assert probe_all_channels() == 0
    channel.refresh_from_db()
    assert channel.status == "auto_disabled" and "channel test" in channel.status_reason


def test_auto_ban_off_keeps_the_channel_enabled(fake_openai):
    channel = make_channel(fake_openai.url, auto_ban=False)
    fake_openai.script.append(DEAD_KEY)
    probe_all_channels()
    channel.refresh_from_db()
    assert channel.status == Channel.Status.ENABLED


def test_a_transient_failure_does_not_disable(fake_openai):
    channel = make_channel(fake_openai.url, status="auto_disabled")
    fake_openai.script.append(Behaviour(status=503, body={"error": {"message": "overloaded"}}))
    probe_all_channels()
    channel.refresh_from_db()
    assert channel.status == "auto_disabled"


def test_a_test_answered_400_never_disables_whatever_it_says(fake_openai):
    channel = make_channel(fake_openai.url)
    error = {"message": "'permission denied' is not a valid role", "code": "invalid_api_key"}
    fake_openai.script.append(Behaviour(status=400, body={"error": error}))
    assert probe_all_channels() == 0
    channel.refresh_from_db()
    assert channel.status == Channel.Status.ENABLED


def test_the_channel_test_job_runs_only_when_configured():
    assert "test_channels" not in {job.name for job in periodic_jobs()}
    with override_settings(CHANNEL_TEST_FREQUENCY=5):
        job = next(job for job in periodic_jobs() if job.name == "test_channels")
    assert job.every_seconds == 300
