"""End to end: `tsfmicro dashboard` (streamlit run) on 127.0.0.1 over the dash_store search,
loaded in headless Chromium (Debian's, installed by scripts/install_browser.sh). The leaderboard
rows must render; screenshots are kept in the test artifacts folder."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import pytest
from dashboard_support import ROOT, artifacts_dir

from services import free_port, served

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-quic", "--window-size=1600,1300"]


@pytest.fixture
def dashboard(dash_store, tmp_path):
    """The dashboard as a user starts it, on a free loopback port; yields its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "tsfmicro.cli", "dashboard", "--tracking-uri",
               dash_store.uri, "--host", "127.0.0.1", "--port", str(port)]
    with served(command, tmp_path / "dashboard.log", f"{url}/_stcore/health", cwd=ROOT):
        yield url


@pytest.fixture
def browser(tmp_path):
    if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        pytest.fail(f"{CHROMIUM} or {CHROMEDRIVER} is missing: scripts/test.sh installs them "
                    "through scripts/install_browser.sh (Debian's chromium, chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in [*FLAGS, f"--user-data-dir={tempfile.mkdtemp(dir=tmp_path)}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def grid_cells(driver) -> list[list[str]]:
    """The text of every body row of the first table (the grid keeps an accessible DOM copy
    of what it draws on its canvas)."""
    from selenium.webdriver.common.by import By

    grid = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stDataFrame"]')
    if not grid:
        return []
    rows = grid[0].find_elements(By.CSS_SELECTOR, '[role="row"]')
    return [[c.get_attribute("textContent") for c in r.find_elements(
        By.CSS_SELECTOR, '[role="gridcell"]')] for r in rows[1:]]


def wait_until(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.5)
    return False


def test_leaderboard_renders_in_chromium(dash_store, dashboard, browser):
    from selenium.webdriver.common.by import By

    complete = dash_store.trial_runs("complete")
    trial_ids = {r.data.tags["tsfmicro.trial_id"] for r in complete}
    browser.get(dashboard)
    rendered = wait_until(lambda: len(grid_cells(browser)) >= len(complete), 90)
    shot = artifacts_dir() / "dashboard-leaderboard.png"
    browser.save_screenshot(str(shot))
    assert rendered, f"the leaderboard rows did not render (screenshot: {shot})"
    rows = grid_cells(browser)
    assert len(rows) == len(complete)
    assert {row[3] for row in rows} == trial_ids  # the trial column
    assert [row[0] for row in rows] == [str(i) for i in range(1, len(rows) + 1)]  # ranks
    assert {row[2] for row in rows} == {"final (leak-free)"}
    # Each row's mark against its search's champion, as MLflow holds it.
    marks = [next((c for c in row if c == "best" or c.startswith(("tied:", "below:"))), None)
             for row in rows]
    assert marks.count("best") >= 1 and None not in marks, rows
    tied = {r.data.tags["tsfmicro.trial_id"] for r in complete
            if r.data.metrics["tied_with_best"] == 1.0}
    assert {row[3] for row, mark in zip(rows, marks, strict=True)
            if not mark.startswith("below:")} == tied  # "best" and "tied: ..."
    page = browser.find_element(By.TAG_NAME, "body").text
    assert "Leaderboard" in page and "synthetic-casme2 / 5class" in page
    assert not browser.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')
    assert shot.stat().st_size > 10_000

    best = max(complete, key=lambda r: (r.data.metrics["final_uf1"], -r.info.start_time))
    browser.get(f"{dashboard}/trial?run={best.info.run_id}")
    assert wait_until(lambda: best.info.run_id in browser.find_element(
        By.TAG_NAME, "body").text and browser.find_elements(
        By.CSS_SELECTOR, '[data-testid="stVegaLiteChart"]'), 90)
    tab = next(t for t in browser.find_elements(By.CSS_SELECTOR, '[role="tab"]')
               if t.text == "Confusion matrix")
    tab.click()
    time.sleep(2)  # let the heatmap draw before the picture
    browser.save_screenshot(str(artifacts_dir() / "dashboard-trial.png"))
    assert not browser.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')


def test_search_page_shows_the_three_figures_in_chromium(dash_store, dashboard, browser):
    from selenium.webdriver.common.by import By

    client = dash_store.client()
    exp = client.get_experiment_by_name("tsfmicro/synthetic-casme2/5class")
    (run,) = client.search_runs([exp.experiment_id],
                                filter_string="tags.`tsfmicro.kind` = 'search'")
    bbc = f"{run.data.metrics['bbc_uf1']:.3f}"
    browser.get(f"{dashboard}/search")

    def body() -> str:
        return browser.find_element(By.TAG_NAME, "body").text

    shown = wait_until(lambda: "bias-corrected (BBC-CV)" in body() and bbc in body(), 90)
    panel = browser.find_elements(By.CSS_SELECTOR, '[data-testid="stMetric"]')
    if panel:
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'});",
                               next((p for p in panel if "search-best" in p.text), panel[0]))
        time.sleep(1)
    shot = artifacts_dir() / "dashboard-search.png"
    browser.save_screenshot(str(shot))
    assert shown, f"the honest estimates did not render (screenshot: {shot})"
    text = body()
    assert "search-best" in text and "optimistic" in text
    assert "nested" in text and "not run" in text
    assert f"{run.data.metrics['search_best_uf1']:.3f}" in text
    assert not browser.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')


def test_a_fresh_server_opens_a_deep_link_on_its_page(dashboard, browser):
    """The first request of a new server goes straight to a page: it must get the app's own
    navigation (with its sidebar), not Streamlit's file-based page discovery."""
    from selenium.webdriver.common.by import By

    browser.get(f"{dashboard}/registry")
    assert wait_until(lambda: "Model registry" in browser.find_element(By.TAG_NAME, "body").text,
                      90)
    body = browser.find_element(By.TAG_NAME, "body").text
    assert "MLflow store:" in body and "Reload from MLflow" in body  # app.py's sidebar ran
    nav = browser.find_element(By.CSS_SELECTOR, '[data-testid="stSidebarNav"]').text
    titles = [word for word in nav.split() if word[:1].isupper()]  # icons are lower-case words
    assert titles == ["Leaderboard", "Overview", "Trial", "Search", "Registry"]


def test_a_store_damaged_while_the_dashboard_runs_shows_a_message_in_chromium(browser, tmp_path):
    """The store passes `tsfmicro dashboard`'s check, then is overwritten with garbage: each
    page shows one plain message, with no traceback and no source file paths."""
    import os
    import sqlite3

    from selenium.webdriver.common.by import By

    db = tmp_path / "mlflow.db"
    with sqlite3.connect(db) as connection:
        connection.execute("CREATE TABLE experiments (id INTEGER)")  # looks like MLflow's
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "tsfmicro.cli", "dashboard", "--tracking-uri",
               f"sqlite:///{db}", "--host", "127.0.0.1", "--port", str(port)]
    with served(command, tmp_path / "dashboard.log", f"{url}/_stcore/health", cwd=ROOT):
        db.write_bytes(os.urandom(8192))
        for page in ("", "/search"):
            browser.get(url + page)

            def body() -> str:
                return browser.find_element(By.TAG_NAME, "body").text

            shown = wait_until(lambda: "cannot be read" in body(), 60)
            shot = artifacts_dir() / f"dashboard-damaged-store{page.replace('/', '-')}.png"
            browser.save_screenshot(str(shot))
            assert shown, f"no message for a damaged store (screenshot: {shot})"
            text = body()
            assert "it is not an SQLite database, or it is damaged" in text
            assert not browser.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')
            for sign in ("Traceback", 'File "', "site-packages", "sqlalchemy"):
                assert sign not in text, text
