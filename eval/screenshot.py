"""A PNG picture of a report page in headless Chromium (Debian ``chromium`` + ``chromium-driver``, driven by
selenium, as the end-to-end tests do), e.g. for the README:

    .venv/bin/python -m eval.screenshot reports/eval-zero-shot/report.html docs/img/eval-report.png
"""
from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def chromium_missing() -> str | None:
    """Why a screenshot cannot be taken here (what to install), or None."""
    if not (Path(CHROMIUM).exists() and Path(DRIVER).exists()):
        return "headless Chromium missing: apt-get install -y chromium chromium-driver"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium not installed: pip install selenium (the project's test extra)"
    return None


def screenshot(page: Path, png: Path, width: int = 1280, max_height: int = 2400) -> Path:
    """Open ``page`` (a local HTML file) and save the top of it (up to ``max_height`` pixels) as ``png``."""
    why = chromium_missing()
    if why:
        raise RuntimeError(why)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--hide-scrollbars",
              f"--window-size={width},900", "--lang=zh-CN", "--force-device-scale-factor=1"):
        opts.add_argument(a)
    drv = webdriver.Chrome(service=Service(DRIVER), options=opts)
    try:
        drv.set_page_load_timeout(30)
        drv.get(Path(page).resolve().as_uri())
        for _ in range(100):  # embedded images decode after load: measure the page once they have
            if drv.execute_script("return Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)"):
                break
            time.sleep(0.05)
        height = int(drv.execute_script("return document.documentElement.scrollHeight"))
        target = min(max(height, 400), max_height)
        drv.set_window_size(width, target)
        inner = int(drv.execute_script("return window.innerHeight"))
        if inner != target:  # the window's size includes some browser frame: grow it so the page gets `target`
            drv.set_window_size(width, 2 * target - inner)
        png = Path(png)
        png.parent.mkdir(parents=True, exist_ok=True)
        if not drv.save_screenshot(str(png)):
            raise RuntimeError(f"chromium could not write {png}")
    finally:
        drv.quit()
    return png


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print("usage: python -m eval.screenshot REPORT.html OUT.png [MAX_HEIGHT]", file=sys.stderr)
        return 2
    try:
        out = screenshot(Path(argv[0]), Path(argv[1]), max_height=int(argv[2]) if len(argv) == 3 else 2400)
    except (RuntimeError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(out)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
