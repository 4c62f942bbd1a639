"""The console in a real headless browser (Debian's chromium + chromedriver, driven by selenium) against the
real server: log in, create a key and see it once, use it and see the usage, pay a top-up and watch the
order turn paid without a reload."""

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from billing.models import ApiKey, TopUpOrder, User, hash_key
from tests.support.fakes.openai_upstream import FakeOpenAI
from tests.support.live_server import LiveGateway
from tests.support.wechatpay_world import NOTIFY_PATH, wechatpay_server

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path(shutil.which("chromedriver") or "/usr/bin/chromedriver")
INSTALL = "apt-get install -y chromium chromium-driver"

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not CHROMIUM.exists() or not CHROMEDRIVER.exists(),
        reason=f"needs {CHROMIUM} and chromedriver (Debian/Ubuntu: {INSTALL})",
    ),
]
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is in requirements-test.txt")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,1000",
]


@pytest.fixture
def gateway(transactional_db) -> Iterator[LiveGateway]:
    fake = wechatpay_server()
    fake.reset()
    server = LiveGateway(extra_env=fake.settings)
    yield server
    server.stop()


@pytest.fixture
def browser() -> Iterator[object]:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    profile = tempfile.mkdtemp(prefix="console-browser-")
    for flag in [*FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=str(CHROMEDRIVER)), options=options)
    driver.implicitly_wait(0)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def wait(driver, condition, timeout: float = 15):
    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(condition)


def submit(driver, form_id: str, **fields: str) -> None:
    form = driver.find_element(By.ID, form_id)
    for name, value in fields.items():
        field = form.find_element(By.NAME, name)
        field.clear()
        field.send_keys(value)
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()


def test_log_in_create_a_key_once_use_it_see_usage_and_top_up(
    gateway, browser, alice: User, openai_channel, fake_openai: FakeOpenAI
):
    browser.get(f"{gateway.url}/console/keys/")
    wait(browser, lambda d: "/console/login/" in d.current_url)
    submit(browser, "login-form", username="alice", password="alice-pass")
    wait(browser, lambda d: d.current_url.endswith("/console/keys/"))
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
