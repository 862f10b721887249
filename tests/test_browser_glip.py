"""07_glip in JupyterLab (headless Chromium): Run All, then drive the prompt widget.

Typing a prompt and pressing Enter redraws the boxes; a misspelt word names the nearest known
words; the threshold slider changes which boxes are listed. Run alone with::

    .venv/bin/python -m pytest -q -rs -m browser tests/test_browser_glip.py
"""

from __future__ import annotations

import pytest

from _browser import (  # noqa: F401  (fixtures come from tests/conftest.py)
    WIDGET_TIMEOUT_MS,
    _error_outputs,
    _wait_kernel_idle,
    assert_no_widget_errors,
    image_changes_after,
    move_slider,
    run_notebook_in_lab,
    save_screenshot,
    screenshot_on_failure,
    translation,
)

pytestmark = pytest.mark.browser

GLIP_NOTEBOOK = "07_glip.ipynb"


# The Chinese edition runs too (its group's translated notebook), with the same widget checks.
@pytest.mark.parametrize("name", [GLIP_NOTEBOOK, translation(GLIP_NOTEBOOK)])
def test_glip_notebook_runs_and_its_prompt_widget_reacts(page, lab, name):
    from playwright.sync_api import expect

    with screenshot_on_failure(page, lab):
        state = run_notebook_in_lab(page, lab, name)
        print(f"{name}: {state}")
        image = page.locator("img.mmcourse-glip-image, .mmcourse-glip-image img").first
        info = page.locator(".mmcourse-glip-info").first
        box = page.locator(".mmcourse-glip-prompt input").first
        box.scroll_into_view_if_needed()
        expect(info).to_contain_text("phrases: circle | square | triangle | diamond | cross", timeout=WIDGET_TIMEOUT_MS)

        def ask(text: str) -> None:
            box.fill(text)
            box.press("Enter")  # continuous_update=False: the value is sent on Enter

        image_changes_after(page, image, lambda: ask("red circle. blue square."))
        expect(info).to_contain_text("phrases: red circle | blue square", timeout=WIDGET_TIMEOUT_MS)
        ask("a large blu square")
        expect(info).to_contain_text("nearest known words: blue", timeout=WIDGET_TIMEOUT_MS)
        ask("circle. square. triangle. diamond. cross.")
        expect(info).to_contain_text("phrases: circle | square", timeout=WIDGET_TIMEOUT_MS)
        threshold = page.locator(".mmcourse-glip-threshold").first
        threshold.scroll_into_view_if_needed()
        move_slider(page, threshold, -5)  # 0.30 -> 0.05
        expect(info).to_contain_text("boxes with score ≥ 0.05", timeout=WIDGET_TIMEOUT_MS)
        assert_no_widget_errors(page)
        assert not _error_outputs(page), _error_outputs(page)
        _wait_kernel_idle(page, lab, name, 30)
        print(f"screenshot: {save_screenshot(page, name)}")
