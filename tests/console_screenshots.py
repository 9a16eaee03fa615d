"""Screenshots of every console page, for the README: ``python -m tests.console_screenshots
URL FOLDER`` against a running console (``DEMO_CONSOLE=1 make demo`` prints its URL).

The pages are the demo's own: the Record page explains the first lead the Gaps page lists,
the Mapping page compares the file with a copy whose SLA waits eight hours instead of four.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tests.chromium import VIEWPORT, browser, screenshot


def main(url: str, folder: Path) -> None:
    url = url.rstrip("/")
    with browser() as chrome:
        page = chrome.new_page(viewport=VIEWPORT)
        for name, path in (("health", "/health"), ("gaps", "/gaps"), ("funnel", "/funnel"),
                           ("weekly-review", "/weekly")):
            page.goto(url + path)
            screenshot(page, name, folder, full_page=False)
        page.goto(url + "/gaps?kind=cold_lead")
        first = page.locator("#gaps tr.gap a").first.inner_text()
        page.goto(f"{url}/record?q={first}")
        screenshot(page, "record", folder, full_page=False)
        page.goto(url + "/mapping")
        text = "\n".join(page.locator(".file td:not(.n)").all_inner_texts())
        page.locator("textarea[name=text]").fill(
            text.replace("within_business_hours: 4 ", "within_business_hours: 8 "))
        page.get_by_role("button", name="Compare").click()
        screenshot(page, "mapping", folder)  # the file, its problems and the diff
        print(f"screenshots written to {folder}")


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
