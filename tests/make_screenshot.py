"""Screenshot of the web app with the demo model: python tests/make_screenshot.py [--model outputs]

Starts app.py, uploads a demo photo in headless Chromium, waits for the heatmaps, and saves
docs/webapp.png. Needs `make demo` first, and Debian's chromium and chromium-driver.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from browser import chromium, running_app, upload, wait_for

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="outputs")
    parser.add_argument("--image", default="images/surface_0004.png", help="the photo to upload")
    parser.add_argument("--output", default=str(ROOT / "docs" / "webapp.png"))
    args = parser.parse_args()
    from selenium.webdriver.common.by import By

    with running_app("--model", args.model) as url, chromium(1280, 1100) as driver:
        driver.get(url)
        wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#upload input[type=file]"))
        upload(driver, Path(args.image).resolve())
        wait_for(driver, lambda d: [img for img in d.find_elements(By.CSS_SELECTOR, "#heatmaps img")
                                    if img.get_property("naturalWidth") > 0])
        driver.save_screenshot(args.output)
    print(f"saved {args.output}")


if __name__ == "__main__":
    main()
