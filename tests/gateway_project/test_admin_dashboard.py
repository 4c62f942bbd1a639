"""Admin's dashboard: the last 7 / 30 days of usage by day, model and user, every channel's traffic and health,
and the recent automatic disables; read in a few grouped queries on every database."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from billing import ledger, usage_overview
from billing.models import Log
from channels_app import healing, health_report
from channels_app.models import Channel
from channels_app.routing import channel_info
from tests.support.factories import make_channel

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.backend]

DASHBOARD = "/admin/dashboard/"


def consume(user, channel, model: str, quota: int, ms: int, days_ago: int = 0, request_id: str = "") -> None:
    created = timezone.now() - timedelta(days=days_ago)
    ledger.write(
        Log(
            type=Log.Type.CONSUME,
            user_id=user.pk,
            channel_id=channel.pk,
            model=model,
            quota=quota,
            use_time_ms=ms,
            created_at=created,
            request_id=request_id or f"req-{model}-{quota}-{days_ago}-{ms}",
        )
    )


def failure(user, channel, days_ago: int = 0) -> None:
    created = timezone.now() - timedelta(days=days_ago)
    ledger.write(Log(type=Log.Type.ERROR, user_id=user.pk, channel_id=channel.pk, model="gpt-4o", created_at=created))


@pytest.fixture
def traffic(alice, bob):
    """Two channels' week: fast answers on one, answers and failures on the other, and older traffic."""
    fast = make_channel("http://fast.example", name="fast")
    flaky = make_channel("http://flaky.example", name="flaky", models=["o3"])
    consume(alice, fast, "gpt-4o", 1000, 200)
    consume(alice, fast, "gpt-4o", 3000, 400, days_ago=2)
    consume(bob, flaky, "o3", 500, 900, days_ago=1)
    failure(bob, flaky)
    failure(bob, flaky, days_ago=3)
    consume(bob, flaky, "o3", 100_000, 1000, days_ago=20)  # only in the 30 days
    return fast, flaky


def test_the_week_ranks_models_and_users_by_quota(traffic, alice, bob):
    since = usage_overview.first_day(7)
    assert usage_overview.top_models(since) == [
        usage_overview.Ranked("gpt-4o", 4000, 2),
        usage_overview.Ranked("o3", 500, 1),
    ]
    assert usage_overview.top_users(since) == [
        usage_overview.Ranked("alice", 4000, 2),
        usage_overview.Ranked("bob", 500, 1),
    ]
    assert usage_overview.top_users(usage_overview.first_day(30))[0] == usage_overview.Ranked("bob", 100_500, 2)


def test_each_channel_has_its_failure_rate_and_average_latency(traffic):
    fast, flaky = traffic
    found = {row.channel.name: row.traffic for row in health_report.channel_health(usage_overview.first_day(7))}
    assert found["fast"] == usage_overview.ChannelTraffic(answered=2, failed=0, average_ms=300)
    assert found["flaky"] == usage_overview.ChannelTraffic(answered=1, failed=2, average_ms=900)
    assert found["flaky"].failure_rate == pytest.approx(2 / 3)


def test_auto_disabled_channels_are_listed_with_their_reason_first(traffic):
    fast, flaky = traffic
    healing.auto_disable(channel_info(flaky), "upstream answered 401: invalid key")
    since = usage_overview.first_day(7)
    [disabled] = health_report.recently_auto_disabled(since)
    assert (disabled.channel.pk, disabled.event.reason) == (flaky.pk, "upstream answered 401: invalid key")
    assert [row.channel.name for row in health_report.channel_health(since)][0] == "flaky"
    assert health_report.channel_health(since)[0].channel.status == Channel.Status.AUTO_DISABLED


def test_the_page_switches_between_7_and_30_days_in_a_few_queries(admin_client, traffic):
    week = admin_client.get(DASHBOARD)
    month = admin_client.get(DASHBOARD, {"days": "30"})
    assert week.context["days"] == 7 and len(week.context["quota_chart"]["bars"]) == 7
    assert week.context["quota_chart"]["total"] == 4500 and week.context["requests_chart"]["total"] == 3
    assert month.context["days"] == 30 and month.context["quota_chart"]["total"] == 104_500
    html = week.content.decode()
    assert 'id="quota-chart"' in html and "<rect " in html and "66.7%" in html


def test_the_aggregates_take_one_query_each_however_many_rows(traffic, alice):
    since = usage_overview.first_day(30)
    for number in range(20):
        consume(alice, make_channel(f"http://c{number}.example", name=f"c{number}"), f"m{number}", 10, 100)
    with CaptureQueriesContext(connection) as queries:
        usage_overview.top_models(since)
        health_report.channel_health(since)
        health_report.recently_auto_disabled(since)
    assert len(queries) == 4, [query["sql"] for query in queries]  # models, the channel list, its traffic, the events
    with CaptureQueriesContext(connection) as queries:
        usage_overview.top_users(since)
    assert len(queries) == 2  # the ranking, the names


def test_the_admin_index_has_the_dashboard_box(admin_client, traffic):
    page = admin_client.get("/admin/").content.decode()
    assert DASHBOARD in page and "/admin/billing/pricetable/model-prices/" in page
    assert "Last 7 days: 3 requests, 4500 quota ($0.01)." in page
    assert "Channels: 2 of 2 enabled, 0 auto-disabled." in page


def test_staff_without_log_access_cannot_open_it(client, alice):
    alice.is_staff = True
    alice.save()
    client.force_login(alice)
    assert client.get(DASHBOARD).status_code == 403
    assert DASHBOARD not in client.get("/admin/").content.decode()
