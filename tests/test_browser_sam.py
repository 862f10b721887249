"""06_sam in JupyterLab: Run All, then click on the image of the click-to-segment widget (an ipympl
canvas) and see the masks and the status follow; a right click adds a negative point; reset clears."""

from __future__ import annotations

import pytest

from _browser import (  # noqa: F401  (fixtures come from tests/conftest.py)
    WIDGET_TIMEOUT_MS,
    _error_outputs,
    _wait_kernel_idle,
    assert_no_widget_errors,
    run_notebook_in_lab,
    save_screenshot,
    screenshot_on_failure,
)

pytestmark = pytest.mark.browser
SAM = "06_sam.ipynb"


def test_sam_notebook_runs_and_a_click_segments(page, lab):
    from playwright.sync_api import expect

    with screenshot_on_failure(page, lab):
        state = run_notebook_in_lab(page, lab, SAM)
        print(f"{SAM}: {state}")
        widget = page.locator(".mmcourse-sam-click").first
        widget.scroll_into_view_if_needed()
        status = widget.locator(".mmcourse-sam-status").first
        expect(status).to_contain_text("no prompt yet", timeout=WIDGET_TIMEOUT_MS)
        canvas = widget.locator(".jupyter-matplotlib-canvas-div canvas").first
        expect(canvas).to_be_visible(timeout=WIDGET_TIMEOUT_MS)
        before = canvas.screenshot()
        box = canvas.bounding_box()
        # the image panel is the left quarter of the figure; click near its centre
        x, y = box["x"] + 0.13 * box["width"], box["y"] + 0.5 * box["height"]
        page.mouse.click(x, y)
        expect(status).to_contain_text("1 positive, 0 negative point(s)", timeout=WIDGET_TIMEOUT_MS)
        expect(status).to_contain_text("decoder")
        page.wait_for_timeout(500)  # the canvas redraw arrives just after the status
        after = canvas.screenshot()
        assert after != before, "the canvas did not change after a click"
        page.mouse.click(x + 0.06 * box["width"], y - 0.2 * box["height"], button="right")
        expect(status).to_contain_text("1 positive, 1 negative point(s)", timeout=WIDGET_TIMEOUT_MS)
        widget.locator(".mmcourse-sam-reset").first.click()
        expect(status).to_contain_text("no prompt yet", timeout=WIDGET_TIMEOUT_MS)
        assert_no_widget_errors(page)
        assert not _error_outputs(page), _error_outputs(page)
        _wait_kernel_idle(page, lab, SAM, 30)
        print(f"screenshot: {save_screenshot(page, SAM)}")
