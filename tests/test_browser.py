"""A real browser (headless Chromium) walks every page of the running app.

Screenshots land in ``.cache/screenshots/`` (ignored by git). Skipped, with the reason, where no
Chromium or chromedriver is installed (Debian: ``apt-get install chromium chromium-driver``;
``.ci/run`` installs them).
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.conftest import ROOT

SHOTS = ROOT / ".cache" / "screenshots"
PAGES = {
    "home": "",
    "explore": "explore",
    "try": "try",
    "compare": "compare",
    "zeroshot": "zeroshot",
    "map": "map",
    "annotate": "annotate",
    "search": "search",
    "neighbours": "neighbours",
}


def _browser_paths() -> tuple[str, str] | None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver") or ("/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").exists() else None)
    return (chromium, driver) if chromium and driver else None


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        _browser_paths() is None,
        reason="no Chromium: install Debian's chromium and chromium-driver to run the real-browser test",
    ),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(env_extra: dict[str, str]):
    port = _free_port()
    env = {**os.environ, **env_extra}
    cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port), "--server.address", "127.0.0.1"]
    cmd += ["--server.headless", "true", "--browser.gatherUsageStats", "false"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("streamlit did not start:\n" + (proc.stdout.read() if proc.stdout else ""))
    return url, proc


def _stop(proc) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:  # a busy server: do not leave it running
        proc.kill()
        proc.wait()


def _demo_env(extended_workspace: Path, cache_dir: Path) -> dict[str, str]:
    """The app opens on the label-scarce demo (``<demo>-labels10``): let the fitted workspace stand for it."""
    demo = extended_workspace.parent / "demo"
    scarce = extended_workspace.parent / "demo-labels10"
    if not scarce.exists():
        scarce.symlink_to(extended_workspace, target_is_directory=True)
    return {"PIXCTX_DEMO_WORKSPACE": str(demo), "PIXCTX_CACHE_DIR": str(cache_dir)}


@pytest.fixture(scope="module")
def server(extended_workspace, cache_dir):
    url, proc = _serve(_demo_env(extended_workspace, cache_dir))
    yield url
    _stop(proc)


@pytest.fixture(scope="module")
def driver():
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    chromium, chromedriver = _browser_paths()  # type: ignore[misc]
    opts = Options()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1440,1800"):
        opts.add_argument(arg)
    d = webdriver.Chrome(service=Service(chromedriver), options=opts)
    yield d
    d.quit()


def _settle(driver, timeout: float = 120.0) -> None:
    """Wait until the page has rendered and the script has stopped running."""
    from selenium.webdriver.common.by import By

    deadline = time.time() + timeout
    quiet_since = None
    while time.time() < deadline:
        app = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stApp"]')
        running = not app or app[0].get_attribute("data-test-script-state") == "running"
        has_title = bool(driver.find_elements(By.CSS_SELECTOR, "h1"))
        if not running and has_title:
            quiet_since = quiet_since or time.time()
            if time.time() - quiet_since > 1.5:  # images and charts get a moment to draw
                return
        else:
            quiet_since = None
        time.sleep(0.25)
    raise AssertionError(f"page did not settle in {timeout:.0f} s: {driver.current_url}")


def _check(driver, name: str) -> None:
    from selenium.webdriver.common.by import By

    _settle(driver)
    SHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SHOTS / f"{name}.png"))
    errors = [e.text for e in driver.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')]
    assert not errors, f"{name}: exception shown on the page: {errors[0][:500]}"


def test_every_page_renders_in_a_real_browser(server, driver, extended_workspace, small_dataset):
    from selenium.webdriver.common.by import By

    for name, path in PAGES.items():
        driver.get(f"{server}/{path}")
        _check(driver, name)
    # the detail view from a shared URL
    from core.workspace import open_workspace

    item = open_workspace(extended_workspace).items.at[0, "item"]
    driver.get(f"{server}/explore?item={item}")
    _check(driver, "explore-detail")
    assert "Generated phrases" in driver.page_source
    # a shared link carrying markdown renders as text: no image request, no link (issue #14, item 7)
    attack = "![x](http://127.0.0.1:9/track.png) [click me](https://evil.example/login)"
    driver.get(f"{server}/explore?item={quote(attack)}")
    _check(driver, "explore-injection")
    # (the app's own links may carry the text in their query string: only the attacker's hosts count)
    assert not driver.find_elements(By.CSS_SELECTOR, 'img[src^="http://127.0.0.1:9"], a[href^="https://evil.example"]')
    assert attack in driver.find_element(By.TAG_NAME, "body").text
    # an upload through the real file input
    driver.get(f"{server}/try")
    _settle(driver)
    image = next((small_dataset / "images").iterdir())
    driver.find_element(By.CSS_SELECTOR, 'input[type="file"]').send_keys(str(image))
    deadline = time.time() + 120
    while "Generated phrases" not in driver.page_source and time.time() < deadline:
        time.sleep(0.5)
    _check(driver, "try-upload")
    assert "Generated phrases" in driver.page_source


def test_a_page_link_as_a_fresh_servers_first_request_gets_the_frame(extended_workspace, cache_dir, driver):
    """A shared link opened first after a (re)start runs the page inside the app's frame (sidebar,
    wide layout), and so does every session after it."""
    from selenium.webdriver.common.by import By

    from core.workspace import open_workspace

    item = open_workspace(extended_workspace).items.at[0, "item"]
    url, proc = _serve(_demo_env(extended_workspace, cache_dir))
    try:
        for path in (f"explore?item={quote(str(item))}", "compare"):
            driver.get(f"{url}/{path}")
            _settle(driver)
            nav = [a.text.split("\n")[-1] for a in driver.find_elements(By.CSS_SELECTOR, '[data-testid="stSidebarNav"] a')]
            assert "Home" in nav and "app" not in nav, nav  # the app's menu, not one built from file names
            assert "Fitted workspace folder" in driver.find_element(By.TAG_NAME, "body").text  # the frame's sidebar
    finally:
        _stop(proc)


def test_user_text_in_a_chart_is_text_not_html(server, driver):
    """Plotly renders ``<a href>`` in chart text (ticks, hovers, legends): a typed zero-shot label
    shows as typed and makes no link (issue #14)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    attack = '<a href="https://evil.example/z">x</a>'
    driver.get(f"{server}/zeroshot")
    _settle(driver)
    box = driver.find_element(By.CSS_SELECTOR, '[data-testid="stTextArea"] textarea')
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(f"bird, {attack}", Keys.CONTROL, Keys.ENTER)
    texts_js = "return Array.from(document.querySelectorAll('.js-plotly-plot svg text')).map(t => t.textContent)"
    deadline = time.time() + 60
    while not any(attack in t for t in driver.execute_script(texts_js)) and time.time() < deadline:
        time.sleep(0.5)
    _check(driver, "zeroshot-chart-injection")
    assert any(attack in t for t in driver.execute_script(texts_js))  # the tick label reads as typed
    links = driver.execute_script(
        "return Array.from(document.querySelectorAll('a')).map(a => a.getAttribute('href') || a.getAttribute('xlink:href'))"
    )
    assert not [h for h in links if h and "evil.example" in h]


def _map_drag(driver, path: list[tuple[float, float]]) -> None:
    """Drag the mouse over the map along ``path`` (fractions of the plot area, from its top left)."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    area = driver.find_element(By.CSS_SELECTOR, '[data-testid="stPlotlyChart"] .nsewdrag')
    w, h = area.size["width"], area.size["height"]
    chain = ActionChains(driver)
    x0, y0 = path[0]
    chain.move_to_element_with_offset(area, int((x0 - 0.5) * w), int((y0 - 0.5) * h)).click_and_hold()
    for (xa, ya), (xb, yb) in itertools.pairwise(path):
        chain.move_by_offset(int((xb - xa) * w), int((yb - ya) * h))
    chain.release().perform()


def _wait_for(driver, text: str, timeout: float = 60.0) -> None:
    deadline = time.time() + timeout
    while text not in driver.page_source and time.time() < deadline:
        time.sleep(0.5)


def _tool(driver, name: str) -> None:
    """Pick a drag tool (``select`` = box, ``lasso``) in the chart's toolbar."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    ActionChains(driver).move_to_element(driver.find_element(By.CSS_SELECTOR, '[data-testid="stPlotlyChart"]')).perform()
    driver.find_element(By.CSS_SELECTOR, f'[data-testid="stPlotlyChart"] .modebar-btn[data-val="{name}"]').click()


def test_prototype_map_lasso_box_and_click_list_phrases(server, driver):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    for colour in ("label", "frequency"):
        driver.get(f"{server}/map")
        _settle(driver)
        if colour == "frequency":
            driver.find_element(By.XPATH, "//label[.//p[text()='Phrase frequency']]").click()
            _settle(driver)
        # a lasso (the toolbar's lasso tool) around the middle of the map
        _tool(driver, "lasso")
        _map_drag(driver, [(0.1, 0.1), (0.9, 0.1), (0.9, 0.9), (0.1, 0.9), (0.1, 0.12)])
        _wait_for(driver, "phrases selected")
        _check(driver, f"map-lasso-{colour}")
        assert "phrases selected" in driver.page_source and "Images nearest to the selected phrases" in driver.page_source
    # a box selection: switch the drag mode in the chart's toolbar, then drag
    driver.get(f"{server}/map")
    _settle(driver)
    _tool(driver, "select")
    _map_drag(driver, [(0.05, 0.05), (0.95, 0.95)])
    _wait_for(driver, "phrases selected")
    _check(driver, "map-box")
    assert "phrases selected" in driver.page_source
    # a click on one point selects that phrase
    driver.get(f"{server}/map")
    _settle(driver)
    x, y = driver.execute_script(
        """const gd = document.querySelector('[data-testid="stPlotlyChart"] .js-plotly-plot');
        const t = gd._fullData[0], xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
        return [xa.l2p(t.x[0]) - xa._length / 2, ya.l2p(t.y[0]) - ya._length / 2];"""
    )
    area = driver.find_element(By.CSS_SELECTOR, '[data-testid="stPlotlyChart"] .nsewdrag')
    ActionChains(driver).move_to_element_with_offset(area, int(x), int(y)).click().perform()
    _wait_for(driver, " selected")
    _check(driver, "map-click")
    assert "1 phrase selected" in driver.page_source  # the clicked point's phrase


def test_closing_the_tab_does_not_stop_a_fit(small_dataset, cache_dir, tmp_path, driver):
    import signal

    from core import jobs

    ws = tmp_path / "demo-ws-labels10"  # the demo the app opens on: 10% of the labels
    demo = tmp_path / "demo-ws"
    env = {"PIXCTX_DEMO_DATA": str(small_dataset), "PIXCTX_DEMO_WORKSPACE": str(demo), "PIXCTX_CACHE_DIR": str(cache_dir)}
    url, proc = _serve(env)
    first = driver.current_window_handle
    try:
        driver.switch_to.new_window("tab")
        driver.get(url)  # a newcomer: the demo fit starts in the background
        _wait_for(driver, "overall", timeout=120)
        SHOTS.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(SHOTS / "first-run-progress.png"))
        deadline = time.time() + 120
        while (jobs.read_status(ws) or {}).get("pid") is None and time.time() < deadline:
            time.sleep(1)  # the job process takes over from the "starting" status once its imports are done
        assert "overall" in driver.page_source and jobs.is_running(ws)
        driver.close()  # close the tab mid-fit
        driver.switch_to.window(first)
        seen = jobs.read_status(ws)["updated"]
        deadline = time.time() + 60
        while jobs.read_status(ws)["updated"] == seen and time.time() < deadline:
            time.sleep(1)
        assert jobs.is_running(ws) and jobs.read_status(ws)["updated"] > seen  # still working, tab gone
        driver.get(url)  # another tab shows the same job (no second one starts)
        _wait_for(driver, "overall", timeout=60)
        assert "overall" in driver.page_source
        assert jobs.read_status(ws)["command"][:1] == ["demo"]
    finally:
        status = jobs.read_status(ws)
        if status and jobs.is_running(ws):
            os.kill(status["pid"], signal.SIGTERM)  # the job this test started
        _stop(proc)


def _nav(driver, url_path: str) -> None:
    """Click a page's link in the sidebar menu (what a user does; the URL is the app's to set)."""
    from selenium.webdriver.common.by import By

    driver.find_element(By.CSS_SELECTOR, f'[data-testid="stSidebarNav"] a[href$="/{url_path}"]').click()
    time.sleep(1.0)
    _settle(driver)


def test_page_state_lives_in_the_url_and_does_not_leak(server, driver, extended_workspace):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    from core.workspace import open_workspace

    item = open_workspace(extended_workspace).items.at[0, "item"]
    driver.get(f"{server}/explore?correct=Wrong&split=test&item={item}")  # a shared link
    _check(driver, "explore-shared-link")
    assert "Generated phrases" in driver.page_source and "Wrong" in driver.page_source
    _nav(driver, "compare")
    assert "item=" not in driver.current_url and "correct=" not in driver.current_url  # nothing leaks
    _nav(driver, "explore")  # back through the menu: the filters and the open image come back
    assert "correct=Wrong" in driver.current_url and "split=test" in driver.current_url and "item=" in driver.current_url
    # the labeler's name survives a reload
    driver.get(f"{server}/annotate")
    _settle(driver)
    box = driver.find_element(By.CSS_SELECTOR, 'input[aria-label="Your name (recorded with every change)"]')
    box.send_keys("ann", Keys.ENTER)
    deadline = time.time() + 30
    while "labeler=ann" not in driver.current_url and time.time() < deadline:
        time.sleep(0.5)
    driver.refresh()
    _settle(driver)
    box = driver.find_element(By.CSS_SELECTOR, 'input[aria-label="Your name (recorded with every change)"]')
    assert box.get_attribute("value") == "ann"
