"""An operator's walk through admin in a real headless browser against the real server, with a screenshot of
every step (test-artifacts/screenshots/admin-*.png): sign in, add a channel typing its models as a comma
list (a failed save first), test it, fetch its models and add one, then read the dashboard and the prices."""

import httpx
import pytest

from billing.models import User
from channels_app.models import Channel
from tests.support.browser import By, needs_browser, screenshot, submit, wait
from tests.support.factories import make_channel
from tests.support.fakes.openai_upstream import Behaviour, FakeOpenAI
from tests.support.live_server import consume_logs
from tests.support.relay_client import HELLO

pytestmark = [pytest.mark.django_db(transaction=True), needs_browser]


def fill(driver, **fields: str) -> None:
    for name, value in fields.items():
        field = driver.find_element(By.NAME, name)
        field.clear()
        field.send_keys(value)


def shows_message(driver, expected: str) -> bool:
    """Whether a message containing `expected` appears (the page before may have had other messages)."""
    return wait(driver, lambda d: any(expected in m.text for m in d.find_elements(By.CSS_SELECTOR, ".messagelist li")))


def test_an_operator_adds_tests_and_fills_a_channel_then_reads_dashboard_and_prices(
    styled_gateway, browser, root: User, alice: User, alice_key: str, fake_openai: FakeOpenAI
):
    browser.get(f"{styled_gateway.url}/admin/")
    submit(browser, "login-form", login="root", password="root-pass")
    wait(browser, lambda d: d.find_elements(By.ID, "gateway-module"))
    screenshot(browser, "admin-01-index")

    browser.get(f"{styled_gateway.url}/admin/channels_app/channel/add/")
    fill(browser, name="fake openai", new_key="sk-upstream-secret", base_url=fake_openai.url)
    fill(browser, models="gpt-4o, gpt-4o-mini", groups="default", model_mapping='{"gpt-4o": ')
    browser.find_element(By.NAME, "_save").click()
    key_error = wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, ".field-new_key .errorlist")).text
    assert key_error == "The key was not kept; enter it again."
    assert browser.find_element(By.NAME, "models").get_attribute("value") == "gpt-4o, gpt-4o-mini"
    screenshot(browser, "admin-02-failed-save-keeps-what-was-typed")

    fill(browser, new_key="sk-upstream-secret", model_mapping="{}")
    browser.find_element(By.NAME, "_save").click()
    assert shows_message(browser, "was added successfully")
    channel = Channel.objects.get(name="fake openai")
    assert channel.models == ["gpt-4o", "gpt-4o-mini"] and channel.key == "sk-upstream-secret"
    screenshot(browser, "admin-03-channel-list")

    browser.find_element(By.CSS_SELECTOR, f'button.channel-test[formaction$="/{channel.pk}/test/"]').click()
    assert shows_message(browser, "gpt-4o answered in")
    screenshot(browser, "admin-04-test-passed")

    browser.find_element(By.CSS_SELECTOR, f'a.channel-fetch-models[href$="/{channel.pk}/models/"]').click()
    wait(browser, lambda d: d.find_elements(By.ID, "fetched-models"))
    screenshot(browser, "admin-05-fetched-models")
    browser.find_element(By.CSS_SELECTOR, 'input[name=model][value="text-embedding-3-small"]').click()
    browser.find_element(By.CSS_SELECTOR, "#fetched-models-form input[type=submit]").click()
    assert shows_message(browser, "1 model(s) added")
    channel.refresh_from_db()
    assert channel.models == ["gpt-4o", "gpt-4o-mini", "text-embedding-3-small"]
    screenshot(browser, "admin-06-model-added")

    dead = make_channel(fake_openai.url, name="revoked key", key="sk-revoked-secret")
    refusal = {"error": {"message": "Incorrect API key provided: sk-revoked-secret", "code": "invalid_api_key"}}
    fake_openai.script.append(Behaviour(status=401, body=refusal))
    browser.get(f"{styled_gateway.url}/admin/channels_app/channel/")
    browser.find_element(By.CSS_SELECTOR, f'button.channel-test[formaction$="/{dead.pk}/test/"]').click()
    assert shows_message(browser, "upstream answered 401: Incorrect API key provided: ***")
    assert "sk-revoked-secret" not in browser.page_source
    screenshot(browser, "admin-07-test-failed-auto-disabled")

    answered = httpx.post(
        f"{styled_gateway.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {alice_key}"},
        json=HELLO,
        timeout=30,
    )
    assert answered.status_code == 200, answered.text
    consume_logs(1)
    browser.get(f"{styled_gateway.url}/admin/")
    browser.find_element(By.ID, "dashboard-link").click()
    top_users = wait(browser, lambda d: d.find_element(By.ID, "top-users")).text
    assert "alice" in top_users and "fake openai" in browser.find_element(By.ID, "channel-health").text
    assert "Incorrect API key provided: ***" in browser.find_element(By.ID, "auto-disabled").text
    heights = [
        float(bar.get_attribute("height")) for bar in browser.find_elements(By.CSS_SELECTOR, "#quota-chart rect")
    ]
    assert len(heights) == 7 and heights[-1] > 0
    screenshot(browser, "admin-08-dashboard")
    browser.find_element(By.LINK_TEXT, "Last 30 days").click()
    wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#quota-chart rect")) == 30)
    screenshot(browser, "admin-09-dashboard-30-days")

    browser.get(f"{styled_gateway.url}/admin/billing/pricetable/")
    assert "built-in default prices are in force" in browser.find_element(By.ID, "price-table-note").text
    screenshot(browser, "admin-10-price-tables")
    browser.find_element(By.ID, "model-prices-link").click()
    submit(browser, "model-price-search", q="gpt-4o")
    wait(browser, lambda d: d.current_url.endswith("?q=gpt-4o"))
    row = browser.find_element(By.CSS_SELECTOR, 'tr[data-model="gpt-4o"]').text
    assert "$2.50" in row and "$10.00" in row and "default" in row
    screenshot(browser, "admin-11-model-prices")
    browser.find_element(By.CSS_SELECTOR, 'tr[data-model="gpt-4o"] a.changelink').click()
    fill(browser, input="3", output="12")
    screenshot(browser, "admin-12-edit-model-price")
    browser.find_element(By.CSS_SELECTOR, "#model-price-form input[type=submit]").click()
    assert shows_message(browser, "The price of gpt-4o is saved.")
    row = browser.find_element(By.CSS_SELECTOR, 'tr[data-model="gpt-4o"]').text
    assert "$3.00" in row and "$12.00" in row and "override" in row
    screenshot(browser, "admin-13-model-price-edited")
