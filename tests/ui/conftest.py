"""A failed step leaves a screenshot of the page it failed on: ``.ui-test/screenshots/FAILED-<step>.png``."""

from __future__ import annotations

import pytest


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    page = item.funcargs.get("page") if hasattr(item, "funcargs") else None
    if report.when == "call" and report.failed and page is not None:
        from tests.ui.test_ui_path import SHOTS

        try:
            page.save_screenshot(str(SHOTS / f"FAILED-{item.name}.png"))
        except Exception as err:  # the browser itself may be what failed
            report.sections.append(("screenshot", f"no screenshot of the failure: {err}"))
    return report
