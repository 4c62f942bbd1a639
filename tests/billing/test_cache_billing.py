"""Cache-aware billing: the cache lanes' prices, the formula to the unit, the hold that assumes no cache hit,
and the split of every consume log (the log row, the daily totals, the stats, the API, the console, the CSV
export and the settlement journal)."""

import csv
import importlib
import io
import json

import orjson
import pytest
from django.apps import apps
from django.test import Client

from billing import journal, pricing, quota
from billing.accounts.access import AccessToken
from billing.models import DailyUsage, Log, PriceTable, User
from billing.pricing import Prices, defaults
from relay.adaptors.base import RelayRequest
from relay.endpoints import CHAT
from tests.support.factories import make_key

PRICES = Prices(**defaults())
SPLIT = {"cache_read": 8000, "cache_write_5m": 600, "cache_write_1h": 400}


def test_every_lane_is_billed_at_its_ratio_to_the_unit():
    # claude-sonnet-4-5: model ratio 1.5, completion ratio 5, read 0.1, write 1.25 (5m) / 2 (1h).
    quote = PRICES.quote("claude-sonnet-4-5", "default")
    # (1000 uncached + 8000 x 0.1 + 600 x 1.25 + 400 x 2 + 200 x 5) x 1.5 = 4350 x 1.5
    assert quote.cost(10_000, 200, **SPLIT) == 6525
    assert quote.explain(10_000, 200, **SPLIT) == (
        "model ratio 1.5, completion ratio 5, cache read ratio 0.1, cache write 5m ratio 1.25, "
        "cache write 1h ratio 2, group ratio 1: (1000 uncached + 8000 cache read x 0.1 + 600 cache write 5m x 1.25"
        " + 400 cache write 1h x 2 + 200 x 5) x 1.5 x 1 = 6525"
    )


def test_the_group_ratio_multiplies_every_lane_and_the_result_is_rounded_up():
    prices = Prices(**{**defaults(), "group_ratio": {"vip": 0.7}})
    # gpt-5: model ratio 0.625, completion ratio 8, read 0.1: (900 + 100 x 0.1 + 3 x 8) x 0.625 x 0.7 = 408.625
    assert prices.quote("gpt-5", "vip").cost(1000, 3, cache_read=100) == 409


def test_the_explanation_shows_only_the_lanes_used():
    quote = PRICES.quote("deepseek-chat", "default")
    assert quote.explain(1000, 10, cache_read=900) == (
        "model ratio 0.14, completion ratio 1.5, cache read ratio 0.1, group ratio 1: "
        "(100 uncached + 900 cache read x 0.1 + 10 x 1.5) x 0.14 x 1 = 29"
    )


def test_without_cached_tokens_the_cost_and_its_explanation_are_as_before():
    quote = PRICES.quote("claude-sonnet-4-5", "default")
    assert quote.cost(1000, 10) == quote.cost(1000, 10, cache_read=0, cache_write_5m=0, cache_write_1h=0) == 1575
    assert quote.explain(1000, 10) == (
        "model ratio 1.5, completion ratio 5, group ratio 1: (1000 + 10 x 5) x 1.5 x 1 = 1575"
    )


def test_a_model_without_cache_prices_bills_cached_tokens_at_the_input_price():
    quote = PRICES.quote("glm-4.6", "default")  # no cache price in the defaults
    assert quote.cache == pricing.CacheRatios(read=1.0, write_5m=1.0, write_1h=1.0)
    assert quote.cost(1000, 10, **{"cache_read": 500, "cache_write_5m": 200, "cache_write_1h": 100}) == quote.cost(
        1000, 10
    )
    unknown = PRICES.quote("some-new-model", "default")
    assert unknown.cost(1000, 0, cache_read=1000) == unknown.cost(1000, 0) == 30_000


def test_more_cached_than_prompt_tokens_bills_no_negative_uncached_part():
    quote = PRICES.quote("gpt-5", "default")
    assert quote.cost(100, 0, cache_read=150) == quote.cost(150, 0, cache_read=150)


def test_a_fixed_price_ignores_the_lanes():
    quote = PRICES.quote("dall-e-3", "default")
    assert quote.cost(100, 0, cache_read=100) == quote.hold(100, 0) == 20_000


def test_cache_prices_are_looked_up_by_exact_name_or_wildcard_never_by_a_bare_prefix():
    prices = Prices(**{**defaults(), "cache_ratio": {"my-model": 0.3, "family-*": 0.2}})
    assert prices.quote("my-model", "default").cache.read == 0.3
    assert prices.quote("my-model-pro", "default").cache.read == 1.0
    assert prices.quote("family-large", "default").cache.read == 0.2
    assert PRICES.quote("claude-opus-4-5-20251101", "default").cache == pricing.CacheRatios(0.1, 1.25, 2.0)


def test_the_hold_assumes_no_cache_hit():
    quote = PRICES.quote("gpt-5", "default")  # cache read 0.1
    assert quote.hold(10_000, 100) == quote.cost(10_000, 100) == 6750
    assert quote.hold(10_000, 100) > quote.cost(10_000, 100, cache_read=9000)


def test_the_hold_prices_the_prompt_at_the_dearest_cache_write():
    quote = PRICES.quote("claude-sonnet-4-5", "default")  # writes 1.25 (5m) and 2 (1h)
    assert quote.hold(1000, 10) == (1000 * 2 + 10 * 5) * 1.5
    for split in ({"cache_write_1h": 1000}, {"cache_write_5m": 1000}, {"cache_read": 1000}, {}):
        assert quote.cost(1000, 10, **split) <= quote.hold(1000, 10)


def test_the_relay_reserves_the_hold():
    request = RelayRequest("chat", "claude-sonnet-4-5", {"max_tokens": 10}, b"", False, False, "/v1/chat/completions")
    quote = PRICES.quote("claude-sonnet-4-5", "default")
    assert CHAT.reservation(quote, request, 1000) == quote.hold(1000, 10)


def test_the_default_tables_have_current_models_with_their_completion_ratios():
    expected = {  # (model ratio, completion ratio): USD per 1M input / 2, output / input
        "gpt-5": (0.625, 8.0),
        "gpt-5-mini": (0.125, 8.0),
        "gpt-4.1-mini": (0.2, 4.0),
        "claude-opus-4-1": (7.5, 5.0),
        "claude-haiku-4-5": (0.5, 5.0),
        "gemini-2.5-flash-lite": (0.05, 4.0),
        "gemini-3-pro-preview": (1.0, 6.0),
        "deepseek-reasoner": (0.14, 1.5),
        "grok-4-fast-reasoning": (0.1, 2.5),
        "mistral-medium-latest": (0.2, 5.0),
    }
    for model, ratios in expected.items():
        quote = PRICES.quote(model, "default")
        assert (quote.model_ratio, quote.completion_ratio, quote.known) == (*ratios, True), model


# The split through the ledger, the API, the console and the journal.


def charge(request_id: str, cost: int, **split: int) -> quota.Charge:
    return quota.Charge(request_id, cost, "claude-sonnet-4-5", 10_000, 200, None, "app", False, 12, "f", **split)


LOGGED = {"cache_read_tokens": 8000, "cache_write_5m_tokens": 600, "cache_write_1h_tokens": 400, "reasoning_tokens": 50}


@pytest.fixture
def settled(alice: User) -> Log:
    token, _ = make_key(alice, remain_quota=100_000)
    quota.reserve("cached", token.pk, alice.pk, False, 40_000)
    assert quota.settle(charge("cached", 6525, **LOGGED))
    return Log.objects.get(type=Log.Type.CONSUME, request_id="cached")


def test_the_consume_log_and_the_daily_totals_store_the_split(settled):
    assert {name: getattr(settled, name) for name in LOGGED} == LOGGED
    assert (settled.prompt_tokens, settled.completion_tokens, settled.quota) == (10_000, 200, 6525)
    day = DailyUsage.objects.get(user_id=settled.user_id)
    assert {name: getattr(day, name) for name in LOGGED} == LOGGED


def test_the_logs_api_and_its_stats_carry_the_split(settled, alice):
    headers = {"Authorization": f"Bearer {AccessToken.issue(alice)[1]}"}
    row = Client().get("/api/logs", headers=headers).json()["items"][0]
    assert {name: row[name] for name in LOGGED} == LOGGED
    stats = Client().get("/api/logs/stats", headers=headers).json()
    assert {name: stats[name] for name in LOGGED} == LOGGED


def test_the_console_shows_the_split_and_exports_it_as_csv(settled, alice):
    console = Client()
    console.force_login(alice)
    page = console.get("/console/usage/").content.decode()
    assert "<th>Cache read</th>" in page and "<td>8000</td>" in page and "8000 read" in page
    header, row = exported(console, model="claude-sonnet-4-5")
    values = dict(zip(header, row, strict=True))
    assert {name: int(values[name]) for name in LOGGED} == LOGGED
    assert (values["prompt_tokens"], values["quota"], values["request_id"]) == ("10000", "6525", "cached")
    assert len(exported(console, type="refund")) == 1  # the filters of the page: only the header here


def exported(console: Client, **filters: str) -> list[list[str]]:
    response = console.get("/console/usage.csv", filters)
    assert response["Content-Type"].startswith("text/csv")
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_a_journal_line_written_before_the_split_still_settles(alice, tmp_path, settings):
    settings.SETTLEMENT_JOURNAL_DIR = tmp_path
    token, _ = make_key(alice, remain_quota=100_000)
    quota.reserve("old-line", token.pk, alice.pk, False, 1000)
    old_line = {key: value for key, value in charge("old-line", 700).__dict__.items() if key not in LOGGED}
    (tmp_path / "otherhost-4242-1-1.jsonl").write_bytes(orjson.dumps(old_line) + b"\n")
    assert journal.replay_orphans() == 1
    log = Log.objects.get(type=Log.Type.CONSUME, request_id="old-line")
    assert (log.quota, log.cache_read_tokens, log.reasoning_tokens) == (700, 0, 0)


def test_the_price_api_reads_and_writes_the_cache_maps(root):
    headers = {"Authorization": f"Bearer {AccessToken.issue(root)[1]}"}

    def send(method: str, body: dict):
        return getattr(Client(), method)("/api/pricing", json.dumps(body), "application/json", headers=headers)

    assert Client().get("/api/pricing", headers=headers).json()["create_cache_ratio_1h"] == {"claude-*": 2.0}
    patched = send("patch", {"cache_ratio": {"my-model": 0.2}, "create_cache_ratio_1h": {"my-model": 3}}).json()
    assert patched["cache_ratio"]["my-model"] == 0.2 and patched["cache_ratio"]["gpt-5"] == 0.1
    # A PUT of a client that knows nothing of the cache maps leaves them as they are.
    table = {"quota_per_unit": 500_000, "model_ratio": {"my-model": 1}, "completion_ratio": {}, "model_price": {}}
    replaced = send("put", {**table, "group_ratio": {}}).json()
    assert replaced["model_ratio"] == {"my-model": 1} and replaced["create_cache_ratio_1h"]["my-model"] == 3
    replaced = send("put", {**table, "group_ratio": {}, "cache_ratio": {}}).json()
    assert replaced["cache_ratio"] == {}
    assert send("patch", {"create_cache_ratio": {"m": -1}}).status_code == 422
    pricing.PRICES.forget()
    assert pricing.current().quote("my-model", "default").cache == pricing.CacheRatios(1.0, 1.0, 3.0)


def test_a_price_table_saved_before_the_cache_lanes_gets_the_default_cache_prices(transactional_db):
    PriceTable.objects.create(pk=1, model_ratio={"m": 1.0})
    migration = importlib.import_module("billing.migrations.0007_cache_lanes")
    migration.default_cache_prices(apps, None)
    row = PriceTable.objects.get(pk=1)
    assert (row.model_ratio, row.cache_ratio) == ({"m": 1.0}, pricing.DEFAULT_CACHE_RATIO_TABLE)
    assert row.create_cache_ratio_1h == pricing.DEFAULT_CREATE_CACHE_RATIO_1H_TABLE
