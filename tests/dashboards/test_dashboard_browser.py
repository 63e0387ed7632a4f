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


def grid_cells(driver, index: int = 0) -> list[list[str]]:
    """The text of every body row of the index-th table (the grid keeps an accessible DOM
    copy of what it draws on its canvas)."""
    from selenium.webdriver.common.by import By

    grid = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stDataFrame"]')
    if len(grid) <= index:
        return []
    rows = grid[index].find_elements(By.CSS_SELECTOR, '[role="row"]')
    return [[c.get_attribute("textContent") for c in r.find_elements(
        By.CSS_SELECTOR, '[role="gridcell"]')] for r in rows[1:]]


def grid_rows(driver, index: int = 0) -> list[dict[str, str]]:
    """The body rows of the index-th table as {column title: text}, for the columns shown."""
    from selenium.webdriver.common.by import By

    grids = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stDataFrame"]')
    if len(grids) <= index:
        return []
    titles = [h.get_attribute("textContent") for h in grids[index].find_elements(
        By.CSS_SELECTOR, '[role="columnheader"]')]
    return [dict(zip(titles, row, strict=False)) for row in grid_cells(driver, index)]


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
    rows = grid_rows(browser)
    assert len(rows) == len(complete)
    assert {row["trial"] for row in rows} == trial_ids
    assert [row["#"] for row in rows] == [str(i) for i in range(1, len(rows) + 1)]  # ranks
    # Each row's mark against its search's champion, as MLflow holds it.
    marks = [row["vs search best"] for row in rows]
    assert marks.count("best") >= 1 and all(
        m == "best" or m.startswith(("tied:", "below:")) for m in marks), rows
    tied = {r.data.tags["tsfmicro.trial_id"] for r in complete
            if r.data.metrics["tied_with_best"] == 1.0}
    assert {row["trial"] for row in rows if not row["vs search best"].startswith("below:")} \
        == tied  # "best" and "tied: ..."
    page = browser.find_element(By.TAG_NAME, "body").text
    assert "Leaderboard" in page and "synthetic-casme2 / 5class" in page
    # one mode and one search: named in the caption, not repeated on every row
    assert "in the final (leak-free) mode, all from search dash1" in page
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


VIEWPORT = {"width": 1600, "height": 1000, "deviceScaleFactor": 1, "mobile": False}
# Records every text drawn on a canvas: the tables (Glide) draw their cells there, and a
# missing value would be drawn as "None"; the accessible DOM copy leaves it empty either way.
RECORD_DRAWN_TEXT = """
window.__drawn = new Set();
const fillText = CanvasRenderingContext2D.prototype.fillText;
CanvasRenderingContext2D.prototype.fillText = function (text, ...rest) {
  window.__drawn.add(String(text));
  return fillText.call(this, text, ...rest);
};
"""
LAYOUT = """
const main = document.querySelector('[data-testid="stMain"]');
return {
  page: document.scrollingElement.scrollWidth,
  main: main ? main.scrollWidth - main.clientWidth : 0,
  tables: [...document.querySelectorAll('[data-testid="stDataFrame"]')].map(g => {
    const s = g.querySelector('.dvn-scroller');
    return s ? s.scrollWidth - s.clientWidth : -1;
  }),
  drawn: [...window.__drawn],
};
"""
EMPTY_WORDS = {"None", "nan", "NaN", "<NA>", "NaT"}  # ("none" is a protocol's name)


def test_every_page_fits_1600_px_and_leaves_empty_cells_blank(dash_store, dashboard, browser):
    """Every page at a 1600x1000 viewport: no horizontal overflow of the page, its main block
    or any table (all columns shown without scrolling), and no cell, drawn or in the DOM,
    reads "None" or "nan". A screenshot per page goes to the test artifacts."""
    from selenium.webdriver.common.by import By

    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", VIEWPORT)
    browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument",
                            {"source": RECORD_DRAWN_TEXT})
    complete = dash_store.trial_runs("complete")
    best = max(complete, key=lambda r: (r.data.metrics["final_uf1"], -r.info.start_time))
    pages = {  # name: (path, text that shows the page has run, tables, charts)
        "leaderboard": ("", "Published reference figures", 2, 1),
        "overview": ("/overview", "One row per MLflow experiment", 1, 1),
        "trial": (f"/trial?run={best.info.run_id}", "Every resolved model", 2, 0),
        "search": ("/search", "Oracle against final", 4, 7),
        "registry": ("/registry", "mlflow models serve", 1, 0),
    }

    def body() -> str:
        return browser.find_element(By.TAG_NAME, "body").text

    def ready(text: str, tables: int, charts: int) -> bool:
        return (text in body()
                and len(browser.find_elements(By.CSS_SELECTOR, '[data-testid="stDataFrame"]'))
                >= tables
                and len(browser.find_elements(By.CSS_SELECTOR,
                                              '[data-testid="stVegaLiteChart"]')) >= charts)

    problems = []
    for name, (path, text, tables, charts) in pages.items():
        browser.get(dashboard + path)
        shown = wait_until(lambda t=text, n=tables, c=charts: ready(t, n, c), 120)
        time.sleep(2)  # let the tables and charts draw
        shot = artifacts_dir() / f"dashboard-1600-{name}.png"
        browser.save_screenshot(str(shot))
        assert shown, f"{name} did not render (screenshot: {shot})"
        assert not browser.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]'), name
        layout = browser.execute_script(LAYOUT)
        if layout["page"] > VIEWPORT["width"] or layout["main"] > 0:
            problems.append(f"{name}: the page is {layout['page']} px wide ({shot})")
        if any(extra > 1 for extra in layout["tables"]):
            problems.append(f"{name}: tables wider than their place by {layout['tables']} px "
                            f"({shot})")
        if name == "search":  # the parallel coordinates, for docs/dashboard.md
            chart = browser.find_elements(By.CSS_SELECTOR, '[data-testid="stVegaLiteChart"]')[3]
            browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", chart)
            time.sleep(1)
            browser.save_screenshot(str(artifacts_dir() / "dashboard-1600-search-parallel.png"))
            layout["drawn"] += browser.execute_script("return [...window.__drawn];")
        drawn = EMPTY_WORDS.intersection(layout["drawn"])
        cells = EMPTY_WORDS.intersection(c.strip() for i in range(len(layout["tables"]))
                                         for row in grid_cells(browser, i) for c in row)
        if drawn or cells:
            problems.append(f"{name}: cells read {sorted(drawn | cells)} ({shot})")
    assert not problems, problems

    # The leaderboard at its widest: every evaluation mode, so the mode column is shown too.
    from selenium.webdriver.common.keys import Keys

    browser.get(dashboard)
    assert wait_until(lambda: len(grid_rows(browser)) == len(complete), 120)
    labels = ["val (leak-free)", "oracle ⚠ optimistic", "published-oracle ⚠ optimistic"]
    for label in labels:
        browser.find_element(By.CSS_SELECTOR, ".st-key-lb_modes input").click()
        options = [o for o in browser.find_elements(By.CSS_SELECTOR, '[role="option"]')
                   if o.text.strip() == label]
        if options:  # a mode the store's trials have
            options[0].click()
            time.sleep(3)
    browser.switch_to.active_element.send_keys(Keys.ESCAPE)
    assert wait_until(lambda: len(grid_rows(browser)) > len(complete), 120)
    time.sleep(2)
    shot = artifacts_dir() / "dashboard-1600-leaderboard-all-modes.png"
    browser.save_screenshot(str(shot))
    layout = browser.execute_script(LAYOUT)
    assert layout["page"] <= VIEWPORT["width"] and max(layout["tables"]) <= 1, (layout, shot)
    assert "mode" in grid_rows(browser)[0]


def test_trial_page_names_worker_hosts_and_registry_shows_load_code(dash_store, dashboard,
                                                                    browser):
    """The fold runs name the host each fold ran on (as MLflow recorded it), not a Ray node
    id; the registry page shows the pyfunc, `tsfmicro pull` and `mlflow models serve` code of
    the chosen version. Screenshots of both, at 1600 px, go to the test artifacts."""
    from selenium.webdriver.common.by import By

    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", VIEWPORT)
    client = dash_store.client()
    best = max(dash_store.trial_runs("complete"),
               key=lambda r: (r.data.metrics["final_uf1"], -r.info.start_time))
    folds = client.search_runs([best.info.experiment_id], filter_string=(
        f"tags.`mlflow.parentRunId` = '{best.info.run_id}' and tags.`tsfmicro.kind` = 'fold'"))
    hosts = {r.data.params["subject"]: r.data.params["host"] for r in folds}
    browser.get(f"{dashboard}/trial?run={best.info.run_id}")
    assert wait_until(lambda: any(t.text == "Folds" for t in browser.find_elements(
        By.CSS_SELECTOR, '[role="tab"]')), 120)
    next(t for t in browser.find_elements(By.CSS_SELECTOR, '[role="tab"]')
         if t.text == "Folds").click()

    def fold_rows() -> list[dict[str, str]]:
        for i in range(len(browser.find_elements(By.CSS_SELECTOR,
                                                 '[data-testid="stDataFrame"]'))):
            rows = grid_rows(browser, i)
            if rows and "Ray node" in rows[0]:
                return rows
        return []

    assert wait_until(lambda: len(fold_rows()) == len(hosts), 60)
    tab = browser.find_element(By.CSS_SELECTOR, '[role="tabpanel"]:not([hidden])')
    browser.execute_script("arguments[0].scrollIntoView({block: 'start'});", tab)
    time.sleep(1)
    browser.save_screenshot(str(artifacts_dir() / "dashboard-1600-trial-folds.png"))
    for row in fold_rows():
        assert row["host"] == hosts[row["subject"]] and row["host"], row
        assert len(row["Ray node"]) == 8, row  # the node id, shortened

    champion = client.get_model_version_by_alias("tsfmicro-synthetic-casme2-5class", "champion")
    model = f"models:/tsfmicro-synthetic-casme2-5class/{champion.version}"
    browser.get(f"{dashboard}/registry")
    assert wait_until(lambda: "mlflow models serve" in browser.find_element(
        By.TAG_NAME, "body").text, 120)
    code = [c.text for c in browser.find_elements(By.CSS_SELECTOR, '[data-testid="stCode"]')]
    assert any(f'mlflow.pyfunc.load_model("{model}")' in c for c in code), code
    assert any(c.startswith("tsfmicro pull tsfmicro-synthetic-casme2-5class/") for c in code)
    assert any(f"mlflow models serve -m {model}" in c for c in code), code
    blocks = browser.find_elements(By.CSS_SELECTOR, '[data-testid="stCode"]')
    browser.execute_script("arguments[0].scrollIntoView({block: 'start'});", blocks[0])
    time.sleep(1)
    browser.save_screenshot(str(artifacts_dir() / "dashboard-1600-registry-code.png"))


def test_a_fresh_server_opens_a_deep_link_on_its_page(dashboard, browser):
    """The first request of a new server goes straight to a page: it must get the app's own
    navigation (with its sidebar), not Streamlit's file-based page discovery."""
    from selenium.webdriver.common.by import By

    browser.get(f"{dashboard}/registry")
    assert wait_until(lambda: "Model registry" in (text := browser.find_element(
        By.TAG_NAME, "body").text) and "Reload from MLflow" in text, 90)  # the sidebar too
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
