"""Headless Chromium (Debian's chromium + chromedriver, driven by selenium) for browser tests, in a chosen
browser language, and screenshots saved as test artefacts for people to look at."""

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path(shutil.which("chromedriver") or "/usr/bin/chromedriver")
INSTALL = "apt-get install -y chromium chromium-driver"
SCREENSHOTS = Path(settings.BASE_DIR) / "test-artifacts" / "screenshots"
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

needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists() or not CHROMEDRIVER.exists(),
    reason=f"needs {CHROMIUM} and chromedriver (Debian/Ubuntu: {INSTALL})",
)


@contextmanager
def chromium(accept_language: str = "en") -> Iterator[object]:
    """A browser whose requests send `Accept-Language: accept_language`, with a profile of its own."""
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    options.add_experimental_option("prefs", {"intl.accept_languages": accept_language})
    profile = tempfile.mkdtemp(prefix="browser-")
    for flag in [*FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=str(CHROMEDRIVER)), options=options)
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def collect_static() -> None:
    """The admin's and the console's CSS where the server's WhiteNoise serves them from (STATIC_ROOT), as
    `make run` does, so screenshots show the pages as styled."""
    call_command("collectstatic", interactive=False, verbosity=0)


def wait(driver, condition, timeout: float = 15):
    """`condition(driver)` once it is true; an element replaced meanwhile (the page changed) is tried again."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    patient = WebDriverWait(driver, timeout, poll_frequency=0.1, ignored_exceptions=[StaleElementReferenceException])
    return patient.until(condition)


def screenshot(driver, name: str) -> Path:
    """The whole page as test-artifacts/screenshots/<name>.png (the window grown to the page's height)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page, frame = driver.execute_script(
        "return [document.documentElement.scrollHeight, window.outerHeight - window.innerHeight]"
    )
    driver.set_window_size(1280, max(page, 600) + frame)
    path = SCREENSHOTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path
