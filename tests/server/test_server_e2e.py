"""The server with the real things around it (`make test-server`): promtool's linter, a real
Prometheus scraping /metrics, and the dashboard in a real headless Chromium. Screenshots of the pages
are written to docs/img/ when MONITOR_SCREENSHOTS=1 (docs/dashboard.md shows them)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from tests.integration.test_server import TOKEN, Browser, events_for, free_port, serving
from tests.ledger import Ledger

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")
CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")


def need(tool, name):
    if not tool:
        pytest.fail(f"{name} is not installed: `make test-server` installs it (apt-get install prometheus chromium "
                    "chromium-driver)")


def test_metrics_pass_promtool_and_a_real_prometheus_scrapes_them(db, conn, tmp_path):
    need(PROMETHEUS, "prometheus")
    need(PROMTOOL, "promtool")
    events_for(conn)
    with serving(db) as base:
        text = Browser(base).get("/metrics")[1]
        check = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
        target = base.removeprefix("http://")
        (tmp_path / "prometheus.yml").write_text(
            "global: {scrape_interval: 1s}\n"
            f"scrape_configs: [{{job_name: monitorctl, static_configs: [{{targets: ['{target}']}}]}}]\n")
        port = free_port()
        prom = subprocess.Popen([PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}",
                                 f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            query = (f"http://127.0.0.1:{port}/api/v1/query?query="
                     "monitorctl_events_active_by_severity%7Bseverity%3D%22critical%22%7D")
            result = []
            deadline = time.time() + 30
            while not result and time.time() < deadline:
                time.sleep(0.5)
                try:
                    with urllib.request.urlopen(query, timeout=5) as r:
                        result = json.load(r)["data"]["result"]
                except OSError:
                    continue
            assert result, "Prometheus never scraped the series"
            assert result[0]["metric"]["job"] == "monitorctl" and float(result[0]["value"][1]) == 1.0
        finally:
            prom.terminate()
            prom.wait(10)


@pytest.fixture
def browser():
    need(CHROMIUM, "chromium")
    need(CHROMEDRIVER, "chromedriver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(arg)
    profile = tempfile.mkdtemp(prefix="monitorctl-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(5)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def shot(driver, name: str) -> None:
    if os.environ.get("MONITOR_SCREENSHOTS") == "1":
        (ROOT / "docs" / "img").mkdir(exist_ok=True)
        driver.save_screenshot(str(ROOT / "docs" / "img" / f"{name}.png"))


def wait_for(predicate, timeout=10.0):
    """Until predicate() holds. The live updates replace the page's content at any moment, so an
    element found a moment ago may be gone (stale): that is a "not yet", not a failure."""
    from selenium.common.exceptions import WebDriverException

    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if predicate():
                return True
        except WebDriverException:
            pass
        time.sleep(0.1)
    return False


def test_the_dashboard_in_a_real_browser(db, conn, browser):
    from selenium.webdriver.common.by import By

    ids = events_for(conn)
    conn.execute("select monitor.snapshot()")
    with serving(db) as base:
        browser.get(base + "/")
        assert browser.find_element(By.CSS_SELECTOR, '[data-severity="critical"]').text == "1"
        assert "failed_debit" in browser.find_element(By.ID, "detectors").text
        assert wait_for(lambda: "live updates: on" in browser.find_element(By.ID, "live").text)
        shot(browser, "overview")

        # the filters of `monitorctl events`
        browser.get(base + "/events")
        browser.find_element(By.CSS_SELECTOR, 'input[name="severity"][value="critical"]').click()
        browser.find_element(By.CSS_SELECTOR, "#filters button").click()
        assert wait_for(lambda: "severity=critical" in browser.current_url)
        rows = browser.find_elements(By.CSS_SELECTOR, "#events tr[data-event]")
        assert [r.get_attribute("data-event") for r in rows] == [str(ids["failed_debit"])]
        shot(browser, "events")

        # sign in with the operator token, acknowledge from the event page
        browser.get(f"{base}/events/{ids['failed_debit']}")
        assert not browser.find_elements(By.ID, "ack")            # read-only before signing in
        browser.find_element(By.NAME, "token").send_keys(TOKEN)
        browser.find_element(By.CSS_SELECTOR, 'form[action="/login"] button').click()
        assert wait_for(lambda: browser.find_elements(By.ID, "ack"))
        assert wait_for(lambda: browser.find_element(By.ID, "ack").click() or True)
        assert wait_for(lambda: browser.find_element(By.ID, "status").text == "acknowledged")
        assert conn.execute("select status from monitor.events where event_id = %s",
                            (ids["failed_debit"],)).fetchone() == ("acknowledged",)
        shot(browser, "event")

        # a newly opened event appears on the list without a reload
        browser.get(base + "/events")
        assert wait_for(lambda: "live updates: on" in browser.find_element(By.ID, "live").text)
        marker = browser.execute_script("window.__same_page = true; return window.__same_page;")
        ledger = Ledger(conn).recent(30)
        ledger.txn("t9", "C-9", amount=-4, status="failed", before=10, after=6)
        ledger.run("failed_debit")
        new_id = conn.execute("select event_id from monitor.events where dedup_key = 't9'").fetchone()[0]
        assert wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, f'tr[data-event="{new_id}"]'), 15)
        assert marker and browser.execute_script("return window.__same_page === true")   # not reloaded
