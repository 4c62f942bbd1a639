"""A real headless browser for the browser tests (Debian's chromium + chromedriver, driven by selenium), and
screenshots of what it shows, saved as test artefacts in test-artifacts/screenshots/ (PNG).

A test module starts with `pytestmark = [..., needs_browser]` and imports this module: without chromium,
chromedriver or selenium, its tests are skipped with the command that installs them."""

import functools
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import override_settings

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path(shutil.which("chromedriver") or "/usr/bin/chromedriver")
INSTALL = "apt-get install -y chromium chromium-driver"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
WIDTH, HEIGHT = 1280, 1000
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    f"--window-size={WIDTH},{HEIGHT}",
]

needs_browser = pytest.mark.skipif(
    not CHROMIUM.exists() or not CHROMEDRIVER.exists(),
    reason=f"needs {CHROMIUM} and chromedriver (Debian/Ubuntu: {INSTALL})",
)
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is in requirements-test.txt")
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@contextmanager
def chromium(language: str = "en-US") -> Iterator[object]:
    """A fresh headless chromium (its own profile) that asks for pages in `language`."""
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    profile = tempfile.mkdtemp(prefix="gateway-browser-")
    for flag in [*FLAGS, f"--user-data-dir={profile}", f"--lang={language}"]:
        options.add_argument(flag)
    options.add_experimental_option("prefs", {"intl.accept_languages": language})
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=str(CHROMEDRIVER)), options=options)
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@functools.cache
def styled() -> dict[str, str]:
    """Environment for a LiveGateway that serves admin's and the console's CSS: a DATA_DIR whose static/ holds
    the collected assets, as `make run` collects them (the server reads every other path from its own
    variables)."""
    data = Path(tempfile.mkdtemp(prefix="gateway-static-"))
    with override_settings(STATIC_ROOT=data / "static"):
        call_command("collectstatic", interactive=False, verbosity=0)
    return {"DATA_DIR": str(data)}


def wait(driver, condition, timeout: float = 15):
    """The condition's first true value; an element that vanished with the page it was on counts as not yet."""
    ignored = (NoSuchElementException, StaleElementReferenceException)
    return WebDriverWait(driver, timeout, poll_frequency=0.1, ignored_exceptions=ignored).until(condition)


def submit(driver, form_id: str, **fields: str) -> None:
    """Fill the form's fields by name and press its submit button."""
    form = driver.find_element(By.ID, form_id)
    for name, value in fields.items():
        field = form.find_element(By.NAME, name)
        field.clear()
        field.send_keys(value)
    form.find_element(By.CSS_SELECTOR, "button[type=submit], input[type=submit]").click()


def screenshot(driver, name: str) -> Path:
    """Save the whole page (not only the window) as test-artifacts/screenshots/<name>.png; its path."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page, frame = driver.execute_script(
        "return [document.documentElement.scrollHeight, window.outerHeight - window.innerHeight]"
    )
    driver.set_window_size(WIDTH, max(HEIGHT, page + frame))
    try:
        driver.save_screenshot(str(path))
    finally:
        driver.set_window_size(WIDTH, HEIGHT)
    return path
