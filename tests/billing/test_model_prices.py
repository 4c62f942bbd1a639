"""Admin's model prices: every model's effective price in USD, editable, and what the relay then charges."""

import math

import pytest
from asgiref.sync import sync_to_async
from django.test import Client

from billing import price_list, pricing
from billing.models import AuditEntry, Log, PriceTable
from tests.support.fakes.openai_upstream import PROMPT_TOKENS
from tests.support.relay_client import HELLO, post_chat

pytestmark = pytest.mark.django_db(transaction=True)

PAGE = "/admin/billing/pricetable/model-prices/"
EDIT = "/admin/billing/pricetable/model-prices/edit/"
COMPLETION_TOKENS = 6  # what the fake upstream answers


def row_of(page, model: str) -> price_list.ModelPrice:
    return next(price for price in page.context["prices"] if price.model == model)


def test_a_default_price_is_shown_in_usd_per_million_tokens(admin_client: Client):
    page = admin_client.get(PAGE, {"q": "gpt-4o"})
    gpt_4o = row_of(page, "gpt-4o")
    # ratio 1.25 = 1.25 quota a token = $2.50 per 1M at 500 000 quota per USD; completion ratio 4, cache read 0.5
    assert (gpt_4o.input, gpt_4o.output, gpt_4o.cache_read, gpt_4o.per_call) == (2.5, 10.0, 1.25, None)
    assert not gpt_4o.overridden
    html = page.content.decode()
    assert '<td class="price">$2.50</td><td class="price">$10.00</td><td class="price">$1.25</td>' in html
    assert all("gpt-4o" in price.model for price in page.context["prices"])


def test_fixed_prices_and_cache_writes_are_shown(admin_client: Client):
    page = admin_client.get(PAGE)
    assert row_of(page, "mj_imagine").per_call == pricing.DEFAULT_MODEL_PRICE_TABLE["mj_imagine"]
    opus = row_of(page, "claude-opus-4-1")  # $15 / $75, cache read 0.1x, writes 1.25x and 2x
    assert (opus.input, opus.output, opus.cache_read, opus.cache_write_5m, opus.cache_write_1h) == (
        15.0,
        75.0,
        1.5,
        18.75,
        30.0,
    )


def test_with_no_overrides_the_price_tables_list_says_defaults_are_in_force(admin_client: Client):
    page = admin_client.get("/admin/billing/pricetable/").content.decode()
    assert "No overrides: the built-in default prices are in force." in page and PAGE in page


async def test_editing_a_row_changes_what_the_relay_charges(admin_client, root, alice_key, openai_channel):
    prices = {"model": "gpt-4o", "input": "10", "output": "30", "cache_read": "", "per_call": ""}
    response = await sync_to_async(admin_client.post)(EDIT + "?model=gpt-4o", prices)
    assert response.status_code == 302 and response["Location"] == PAGE + "?q=gpt-4o"
    answer = await post_chat(alice_key, HELLO)
    log = await Log.objects.aget(request_id=answer["X-Request-Id"])
    assert log.quota == math.ceil((PROMPT_TOKENS + COMPLETION_TOKENS * 3) * 5)  # $10 / 1M = ratio 5; $30 = 3x
    entry = await AuditEntry.objects.aget(object_type="prices")  # the first change saves the whole table
    assert (entry.actor_name, entry.action, entry.changes["model_ratio"][1]["gpt-4o"]) == ("root", "create", 5.0)
    assert "gpt-4o" not in entry.changes["cache_ratio"][1]  # the cache read left empty: billed as input now


def test_an_edited_row_is_marked_as_override_and_others_stay_default(admin_client: Client):
    admin_client.post(EDIT, {"model": "my-model", "per_call": "0.02"})
    page = admin_client.get(PAGE)
    assert row_of(page, "my-model").per_call == 0.02 and row_of(page, "my-model").overridden
    assert not row_of(page, "gpt-4o").overridden and PriceTable.objects.count() == 1
    listing = admin_client.get("/admin/billing/pricetable/").content.decode()
    assert "is in force in place of the built-in default prices" in listing


def test_the_same_price_saved_again_changes_nothing(admin_client: Client):
    admin_client.post(EDIT, {"model": "gpt-4o", "input": "2.5", "output": "10", "cache_read": "1.25"})
    assert not PriceTable.objects.exists() and not AuditEntry.objects.exists()


def test_a_token_price_needs_input_and_output(admin_client: Client):
    response = admin_client.post(EDIT, {"model": "gpt-4o", "input": "-1"})
    errors = response.context["form"].errors
    assert set(errors) == {"input", "output"} and not PriceTable.objects.exists()


def test_staff_without_the_price_permission_cannot_open_the_pages(client: Client, alice):
    alice.is_staff = True
    alice.save()
    client.force_login(alice)
    assert client.get(PAGE).status_code == 403 and client.post(EDIT, {"model": "x", "per_call": "1"}).status_code == 403
