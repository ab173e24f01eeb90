#!/usr/bin/env python3
"""The README's dashboard screenshots, from a real run.

    python scripts/screenshots.py --seconds 180 --out docs/images

Starts the test pool, the daemon (embedded store in a temporary directory,
a second pool configured but unreachable so one pool shows down) and hashing
test miners at different paces, some sending bad shares; after ``--seconds``
it opens the dashboard in headless chromium and saves the farm view and one
worker's view.  Needs Debian's chromium and chromium-driver and selenium.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

from stratum_proxy.daemon import serve
from stratum_proxy.logging import configure_logging
from stratum_proxy.settings import load_settings
from stratum_proxy.sim.miner import MinerConfig, TestMiner
from stratum_proxy.sim.pool import TestPool
from stratum_proxy.sim.pool_config import PoolConfig


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _browser(width: int, height: int, profile: Path) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", f"--window-size={width},{height}", f"--user-data-dir={profile}",
        "--hide-scrollbars",
    ):  # fmt: skip
        options.add_argument(flag)
    return webdriver.Chrome(
        options=options,
        service=Service(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver"),
    )


def _shoot(driver: Any, url: str, ready: str, path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    WebDriverWait(driver, 90).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, f"{ready}[data-ready='1']")
    )
    # A run of minutes fills the 5 minute range, not the default hour.
    for button in driver.find_elements(By.XPATH, "//button[normalize-space()='5m']"):
        if button.is_displayed():  # each view has its own range buttons
            button.click()
    time.sleep(3.0)  # charts draw on the next frames
    driver.save_screenshot(str(path))
    print(f"saved {path}")


async def main_async(args: argparse.Namespace) -> None:
    configure_logging("warning", "console")
    work = Path(tempfile.mkdtemp(prefix="sp-shots-"))
    pool = TestPool(PoolConfig())
    await pool.start()
    settings = load_settings(
        None,
        **{
            "listen": ["127.0.0.1:0"],
            "pools": [
                f"main=stratum+tcp://127.0.0.1:{pool.port}",
                f"backup=stratum+tcp://127.0.0.1:{_closed_port()}",
            ],
            "proxy_id": "farm-proxy-1",
            "store.url": f"chdb://{work}/db",
            "store.spool_dir": work / "spool",
            "api.listen": "127.0.0.1:0",
            "api.dashboard_refresh_s": 2.0,
        },
    )
    stop = asyncio.Event()
    ready: dict[str, Any] = {}
    daemon = asyncio.create_task(
        serve(settings, stop=stop, on_ready=lambda s, a: ready.update(server=s, api=a))
    )
    while not ready:
        await asyncio.sleep(0.05)
    port = ready["server"].addresses[0][1]
    miners = [
        TestMiner(
            MinerConfig(
                workers=(f"farm.rig{i:02d}",),
                duration=args.seconds + 60,  # still mining when the pictures are taken
                pause=0.1 + 0.1 * (i % 4),  # light: the daemon shares this process
                bad_share_every=0 if i % 3 else 25,
            )
        )
        for i in range(args.miners)
    ]
    runs = [asyncio.create_task(m.run("127.0.0.1", port)) for m in miners]
    await asyncio.sleep(args.seconds)
    base = f"http://127.0.0.1:{ready['api'][1]}"
    args.out.mkdir(parents=True, exist_ok=True)
    driver = await asyncio.to_thread(_browser, 1366, 1180, work / "chromium")
    try:
        await asyncio.to_thread(
            _shoot, driver, f"{base}/#/", "#farm-view", args.out / "dashboard-farm.png"
        )
        await asyncio.to_thread(
            _shoot,
            driver,
            f"{base}/#/worker/farm.rig01",
            "#worker-view",
            args.out / "dashboard-worker.png",
        )
    finally:
        driver.quit()
        for miner in miners:
            await miner.stop()
        await asyncio.gather(*runs, return_exceptions=True)
        stop.set()
        await daemon
        await pool.close()
        with contextlib.suppress(OSError):
            shutil.rmtree(work)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=180.0, help="how long the miners run")
    parser.add_argument("--miners", type=int, default=8)
    parser.add_argument("--out", type=Path, default=Path("docs/images"))
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
