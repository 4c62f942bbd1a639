"""The console in a real headless browser (Debian's chromium + chromedriver, driven by selenium) against the
real server: log in, create a key and see it once, use it and see the usage, pay a top-up and watch the
order turn paid without a reload."""

from collections.abc import Iterator

import httpx
import pytest

from billing.models import ApiKey, TopUpOrder, User, hash_key
from tests.support.browser import By, needs_browser, screenshot, styled, submit, wait
from tests.support.fakes.openai_upstream import FakeOpenAI
from tests.support.live_server import LiveGateway
from tests.support.wechatpay_world import NOTIFY_PATH, wechatpay_server

pytestmark = [pytest.mark.django_db(transaction=True), needs_browser]


@pytest.fixture
def gateway(transactional_db) -> Iterator[LiveGateway]:
    fake = wechatpay_server()
    fake.reset()
    server = LiveGateway(extra_env={**fake.settings, **styled()})
    yield server
    server.stop()


def test_log_in_create_a_key_once_use_it_see_usage_and_top_up(
    gateway, browser, alice: User, openai_channel, fake_openai: FakeOpenAI
):
    browser.get(f"{gateway.url}/")  # where a user lands, and where admin's "View site" leads
    assert wait(browser, lambda d: d.find_element(By.ID, "base-url")).text == f"{gateway.url}/v1"
    screenshot(browser, "console-00-home-page")
    submit(browser, "login-form", login="alice", password="alice-pass")
    wait(browser, lambda d: d.current_url.endswith("/console/"))
    browser.get(f"{gateway.url}/console/keys/")
    wait(browser, lambda d: d.find_elements(By.ID, "create-key"))
    assert not browser.find_elements(By.ID, "admin-link")

    submit(browser, "create-key", name="browser-key", remain_quota="2000000", models="gpt-4o")
    plain = wait(browser, lambda d: d.find_element(By.ID, "new-key")).text
    token = ApiKey.objects.get(user=alice, name="browser-key")
    assert plain.startswith("sk-") and hash_key(plain[3:]) == token.key_hash
    browser.refresh()
    wait(browser, lambda d: "browser-key" in d.find_element(By.ID, "keys").text)
    assert not browser.find_elements(By.ID, "new-key") and plain not in browser.page_source

    answer = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {plain}"},
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text

    def usage_row_shown(driver) -> bool:
        driver.get(f"{gateway.url}/console/usage/")
        return "browser-key" in driver.find_element(By.ID, "usage-log").text

    wait(browser, usage_row_shown)
    row = browser.find_element(By.CSS_SELECTOR, "#usage-log tbody tr").text
    assert "Consume" in row and "gpt-4o" in row
    heights = [
        float(bar.get_attribute("height")) for bar in browser.find_elements(By.CSS_SELECTOR, "#usage-chart rect")
    ]
    assert len(heights) == 30 and heights[-1] > 0

    browser.get(f"{gateway.url}/console/topup/")
    submit(browser, "topup-form", amount="2")
    status = wait(browser, lambda d: d.find_element(By.ID, "order-status"))
    assert status.text == "Pending" and browser.find_element(By.CSS_SELECTOR, "#order-qr svg").is_displayed()
    order = TopUpOrder.objects.get(user=alice)
    fake = wechatpay_server()
    body, headers = fake.keys.notification(fake.pay(order.out_trade_no))
    acked = httpx.post(
        f"{gateway.url}{NOTIFY_PATH}", content=body, headers={**headers, "Content-Type": "application/json"}
    )
    assert acked.status_code == 200, acked.text
    wait(browser, lambda d: d.find_element(By.ID, "order-status").text == "Paid")  # polled, no reload
    assert browser.find_element(By.ID, "order-paid").is_displayed() and not browser.find_elements(By.ID, "order-qr")
