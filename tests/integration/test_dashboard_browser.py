"""The dashboard in a real headless browser (Debian's chromium, driven by selenium).

A daemon fed by the test pool and hashing test miners; the page's numbers (the
``data-value`` of each figure: the raw number the page got) must equal the
store's, the live view must move without a reload, the worker view must draw
its histograms, and the browser's console must stay free of errors.

Skipped, with the reason, where chromium, chromedriver or selenium is missing
(``.ci/run`` installs them).
"""

from __future__ import annotations

import asyncio
import shutil
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from stratum_proxy.sim.miner import MinerConfig, TestMiner
from stratum_proxy.sim.pool import TestPool
from stratum_proxy.sim.pool_config import PoolConfig

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

try:
    from selenium import webdriver
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:  # pragma: no cover - the skip below says why
    webdriver = None

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        webdriver is None or CHROMIUM is None or CHROMEDRIVER is None,
        reason="needs selenium (the test extra) and Debian's chromium and chromium-driver "
        "(apt install chromium chromium-driver)",
    ),
]

# The flags a headless chromium needs on a machine with no display and a closed
# network: without the background-networking ones it keeps trying Google's hosts.
_FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--window-size=1366,900",
)  # fmt: skip


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in _FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium'}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def console_errors(driver: Any) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def wait_for(driver: Any, ready: Callable[[Any], Any], timeout: float = 15.0) -> Any:
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.1).until(ready)
    except TimeoutException:
        raise AssertionError(
            f"the page did not get there in {timeout} s; console: {console_errors(driver)}"
        ) from None


def value(driver: Any, selector: str) -> float:
    return float(driver.find_element(By.CSS_SELECTOR, selector).get_attribute("data-value"))


def ready(selector: str) -> Callable[[Any], bool]:
    def check(driver: Any) -> bool:
        found = driver.find_elements(By.CSS_SELECTOR, f"{selector}[data-ready='1']")
        return bool(found)

    return check


async def _mine(port: int, shares: int, workers: tuple[str, ...]) -> None:
    miners = [
        TestMiner(MinerConfig(workers=(w,), max_submits=shares, bad_share_every=5)) for w in workers
    ]
    async with asyncio.timeout(60):
        await asyncio.gather(*(m.run("127.0.0.1", port) for m in miners))


async def _share_stats(base: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """The API's totals; waits while it answers 503 (the store still opening)."""
    async with aiohttp.ClientSession(headers=headers) as session, asyncio.timeout(30):
        while True:
            async with session.get(f"{base}/api/share-stats?hours=24") as response:
                if response.status != 503:
                    assert response.status == 200, await response.text()
                    return dict(await response.json())
            await asyncio.sleep(0.2)


async def _written(base: str, count: int, headers: dict[str, str] | None = None) -> None:
    async with asyncio.timeout(30):
        while (await _share_stats(base, headers))["total_shares"] < count:
            await asyncio.sleep(0.1)


async def test_the_farm_view_shows_the_stores_numbers_and_follows_new_shares(
    proxy_factory: Any, browser: Any
) -> None:
    pool = TestPool(PoolConfig())
    await pool.start()
    proxy = await proxy_factory(
        [f"main=stratum+tcp://127.0.0.1:{pool.port}"], **{"api.dashboard_refresh_s": 0.5}
    )
    base = f"http://127.0.0.1:{proxy.api[1]}"
    workers = ("farm.rig0", "farm.rig1")
    try:
        await _mine(proxy.port, 5, workers)
        await _written(base, 10)
        await asyncio.to_thread(browser.get, f"{base}/#/")
        await asyncio.to_thread(wait_for, browser, ready("#farm-view"))
        before = await _share_stats(base)
        page = {
            name: await asyncio.to_thread(value, browser, f"#farm-{name}")
            for name in ("total-shares", "accepted", "rejected", "no-response", "best-ever")
        }
        browser.execute_script("window.__same_page = true")  # gone if the page reloads
        # More shares: the page must follow through its event stream.
        await _mine(proxy.port, 3, workers)
        await _written(base, 16)
        after = await _share_stats(base)
        await asyncio.to_thread(
            wait_for,
            browser,
            lambda d: value(d, "#farm-total-shares") == after["total_shares"],
            10,
        )
        assert browser.execute_script("return window.__same_page === true")
        live_accepted = await asyncio.to_thread(value, browser, "#farm-accepted")
        errors = await asyncio.to_thread(console_errors, browser)
    finally:
        await proxy.shutdown()
        await pool.close()
    assert page == {
        "total-shares": before["total_shares"],
        "accepted": before["accepted_shares"],
        "rejected": before["rejected_shares"],
        "no-response": before["no_response_shares"],
        "best-ever": before["best_share"],
    }
    rows = proxy.rows()
    assert after["total_shares"] == len(rows) == 16
    assert live_accepted == sum(r["status"] == "accepted" for r in rows)
    assert errors == []


async def test_the_workers_table_and_a_worker_view(proxy_factory: Any, browser: Any) -> None:
    pool = TestPool(PoolConfig())
    await pool.start()
    proxy = await proxy_factory([f"main=stratum+tcp://127.0.0.1:{pool.port}"])
    base = f"http://127.0.0.1:{proxy.api[1]}"
    # A worker name is whatever a miner sends: it must show as text, never as markup.
    workers = ("farm.rig0", "farm.rig1", "farm.<i>rig2</i>")
    try:
        await _mine(proxy.port, 6, workers)
        await _written(base, 18)
        await asyncio.to_thread(browser.get, f"{base}/#/workers")
        await asyncio.to_thread(wait_for, browser, ready("#workers-view"))
        listed = {
            row.get_attribute("data-worker"): float(
                row.find_element(By.CSS_SELECTOR, "td[data-col='accepted']").get_attribute(
                    "data-value"
                )
            )
            for row in browser.find_elements(By.CSS_SELECTOR, "#workers-table tr[data-worker]")
        }
        markup = len(browser.find_elements(By.CSS_SELECTOR, "#workers-table i"))
        shown_names = {
            cell.text
            for cell in browser.find_elements(
                By.CSS_SELECTOR, "#workers-table td[data-col='worker']"
            )
        }
        # The filter narrows the table to the matching worker.
        box = browser.find_element(By.CSS_SELECTOR, "#workers-filter")
        box.send_keys("rig2")
        await asyncio.to_thread(
            wait_for,
            browser,
            lambda d: len(d.find_elements(By.CSS_SELECTOR, "#workers-table tr[data-worker]")) == 1,
        )
        name = urllib.parse.quote("farm.rig1", safe="")
        await asyncio.to_thread(browser.get, f"{base}/#/worker/{name}")
        await asyncio.to_thread(wait_for, browser, ready("#worker-view"))
        view = browser.find_element(By.CSS_SELECTOR, "#worker-view")
        shown_worker = view.get_attribute("data-worker")
        canvases = {
            hist: len(browser.find_elements(By.CSS_SELECTOR, f"#{hist} canvas"))
            for hist in ("worker-diff-hist", "worker-resp-hist")
        }
        recent = {
            row.get_attribute("data-hash")
            for row in browser.find_elements(By.CSS_SELECTOR, "#worker-recent tr[data-hash]")
        }
        errors = await asyncio.to_thread(console_errors, browser)
    finally:
        await proxy.shutdown()
        await pool.close()
    rows = proxy.rows()
    assert listed == {
        w: float(sum(r["worker"] == w and r["status"] == "accepted" for r in rows)) for w in workers
    }
    assert markup == 0 and "farm.<i>rig2</i>" in shown_names
    assert shown_worker == "farm.rig1"
    assert all(n >= 1 for n in canvases.values()), canvases
    assert recent == {r["share_hash"] for r in rows if r["worker"] == "farm.rig1"}
    assert errors == []


async def test_a_token_protected_api_asks_the_page_for_its_token(
    proxy_factory: Any, browser: Any
) -> None:
    pool = TestPool(PoolConfig())
    await pool.start()
    token = "dashboard-test-token-0123456789"
    proxy = await proxy_factory(
        [f"main=stratum+tcp://127.0.0.1:{pool.port}"], **{"api.token": token}
    )
    base = f"http://127.0.0.1:{proxy.api[1]}"
    headers = {"Authorization": f"Bearer {token}"}
    try:
        await _mine(proxy.port, 3, ("farm.rig0",))
        await _written(base, 3, headers)
        await asyncio.to_thread(browser.get, f"{base}/#/")
        form = await asyncio.to_thread(
            wait_for,
            browser,
            lambda d: (
                d.find_element(By.CSS_SELECTOR, "#token-form").is_displayed()
                and d.find_element(By.CSS_SELECTOR, "#token-form")
            ),
        )
        field = form.find_element(By.CSS_SELECTOR, "input")
        field.send_keys(token)
        form.find_element(By.CSS_SELECTOR, "button, input[type='submit']").click()
        await asyncio.to_thread(wait_for, browser, ready("#farm-view"))
        total = await asyncio.to_thread(value, browser, "#farm-total-shares")
        url = browser.current_url
    finally:
        await proxy.shutdown()
        await pool.close()
    assert total == 3
    assert token not in url  # never in a URL: URLs end up in logs and history


async def test_ten_thousand_workers_page_sort_and_filter_without_a_daemon(
    tmp_path: Path, browser: Any
) -> None:
    """``dashboard --store`` over a store of 10,000 workers: the table draws one page."""
    from stratum_proxy.logging import get_logger
    from stratum_proxy.settings import load_settings
    from stratum_proxy.store.backend import open_store
    from stratum_proxy.store.settings import StoreSettings
    from stratum_proxy.web.browse import browse_store

    url = f"chdb://{tmp_path}/farm"
    store = open_store(url, StoreSettings())
    try:
        store.ensure_schema()
        # Two shares per worker, a minute apart; every 100th worker stopped an hour ago.
        store.query(
            "INSERT INTO mining.shares (ts, worker, upstream, status, pool_difficulty, "
            "share_difficulty, share_hash) SELECT "
            "now64(3) - (number % 2) * 60 - if(intDiv(number, 2) % 100 = 0, 3600, 0), "
            "concat('farm.rig', leftPad(toString(intDiv(number, 2)), 5, '0')), 'main', "
            "'accepted', 1024 * (1 + intDiv(number, 2) % 7), 2048, hex(number) "
            "FROM numbers(20000)"
        )
    finally:
        store.close()
    settings = load_settings(None, **{"store.url": url, "store.spool_dir": tmp_path / "spool"})
    stop = asyncio.Event()
    bound: list[tuple[str, int]] = []
    task = asyncio.create_task(
        browse_store(settings, "127.0.0.1:0", get_logger(), stop=stop, on_ready=bound.append)
    )
    try:
        async with asyncio.timeout(20):
            while not bound:
                await asyncio.sleep(0.02)
        base = f"http://127.0.0.1:{bound[0][1]}"
        await asyncio.to_thread(browser.get, f"{base}/#/workers")
        await asyncio.to_thread(wait_for, browser, ready("#workers-view"), 30)
        rows = browser.find_elements(By.CSS_SELECTOR, "#workers-table tr[data-worker]")
        count = browser.find_element(By.CSS_SELECTOR, "#workers-count").text
        first = rows[0].get_attribute("data-worker")
        # Sort by hashrate (highest first), then filter down to one worker of 10,000.
        browser.find_element(By.CSS_SELECTOR, "#workers-table th[data-sort='hashrate']").click()
        await asyncio.to_thread(
            wait_for,
            browser,
            lambda d: (
                value(d, "#workers-table tr[data-worker] td[data-col='hashrate']")
                == 7 * 1024 * 2 * 2**32 / 60
            ),  # the highest: two shares at 7168, 60 s apart
        )
        browser.find_element(By.CSS_SELECTOR, "#workers-filter").send_keys("rig09999")
        await asyncio.to_thread(
            wait_for,
            browser,
            lambda d: (
                [
                    r.get_attribute("data-worker")
                    for r in d.find_elements(By.CSS_SELECTOR, "#workers-table tr[data-worker]")
                ]
                == ["farm.rig09999"]
            ),
        )
        errors = await asyncio.to_thread(console_errors, browser)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    assert len(rows) == 100  # one page drawn, not 10,000 rows
    assert count == "10,000 workers, 100 down"
    assert first == "farm.rig00000"  # by name at first
    assert errors == []
