"""A Chinese browser's walk through the console and the admin against the real server, with screenshots
(test-artifacts/screenshots/zh-*.png), and the switch back to English."""

from collections.abc import Iterator

import httpx
import pytest

from billing.models import User
from tests.support.browser import By, chromium, needs_browser, screenshot, wait
from tests.support.fakes.openai_upstream import FakeOpenAI

pytestmark = [pytest.mark.django_db(transaction=True), needs_browser]


@pytest.fixture
def browser() -> Iterator[object]:
    with chromium(language="zh-CN") as driver:
        yield driver


def log_in(driver, url: str, username: str, password: str) -> None:
    driver.get(url)
    form = wait(driver, lambda d: d.find_element(By.CSS_SELECTOR, "#login-form, #login-form-container form"))
    form.find_element(By.NAME, "login").send_keys(username)
    form.find_element(By.NAME, "password").send_keys(password)
    form.find_element(By.CSS_SELECTOR, "[type=submit]").click()


def text(driver) -> str:
    return driver.find_element(By.TAG_NAME, "body").text


def test_console_and_admin_in_chinese(
    styled_gateway, browser, alice: User, root: User, openai_channel, fake_openai: FakeOpenAI
) -> None:
    browser.get(f"{styled_gateway.url}/accounts/login/")
    wait(browser, lambda d: "登录" in d.find_element(By.TAG_NAME, "h1").text)
    screenshot(browser, "zh-console-login")
    log_in(browser, f"{styled_gateway.url}/accounts/login/", "alice", "alice-pass")
    wait(browser, lambda d: "概览" in d.find_element(By.TAG_NAME, "h1").text)

    browser.get(f"{styled_gateway.url}/console/keys/")
    form = browser.find_element(By.ID, "create-key")
    form.find_element(By.NAME, "name").send_keys("我的应用")
    form.find_element(By.NAME, "remain_quota").clear()
    form.find_element(By.NAME, "remain_quota").send_keys("2000000")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    plain = wait(browser, lambda d: d.find_element(By.ID, "new-key")).text
    assert "请立即复制" in text(browser) and "启用" in browser.find_element(By.ID, "keys").text
    screenshot(browser, "zh-console-keys")

    chat = {"model": "gpt-4o", "messages": [{"role": "user", "content": "你好"}]}
    answer = httpx.post(
        f"{styled_gateway.url}/v1/chat/completions", headers={"Authorization": f"Bearer {plain}"}, json=chat, timeout=30
    )
    assert answer.status_code == 200, answer.text

    def usage_shown(driver) -> bool:
        driver.get(f"{styled_gateway.url}/console/usage/")
        return "我的应用" in driver.find_element(By.ID, "usage-log").text

    wait(browser, usage_shown)
    assert "消费" in browser.find_element(By.ID, "usage-log").text and "下载 CSV" in text(browser)
    screenshot(browser, "zh-console-usage")
    browser.get(f"{styled_gateway.url}/console/")
    assert "余额" in text(browser) and "每日额度用量" in text(browser)
    screenshot(browser, "zh-console-home")

    browser.delete_all_cookies()
    log_in(browser, f"{styled_gateway.url}/admin/login/", "root", "root-pass")
    wait(browser, lambda d: "渠道" in text(d))
    assert "API 令牌" in text(browser) and "用户控制台" in text(browser)
    screenshot(browser, "zh-admin-index")
    browser.get(f"{styled_gateway.url}/admin/channels_app/channel/")
    assert "启用所选渠道" in browser.page_source and "优先级" in text(browser)
    screenshot(browser, "zh-admin-channels")
    browser.get(f"{styled_gateway.url}/admin/channels_app/channel/add/")
    assert "模型映射" in text(browser) and "上游的 API 密钥" in text(browser)
    screenshot(browser, "zh-admin-channel-add")

    browser.find_element(By.CSS_SELECTOR, "#language-switch button[value=en]").click()
    wait(browser, lambda d: "Model mapping" in text(d))
    assert "/admin/channels_app/channel/add/" in browser.current_url
    browser.get(f"{styled_gateway.url}/console/")
    assert "Overview" in browser.find_element(By.TAG_NAME, "h1").text  # the cookie beats Accept-Language
