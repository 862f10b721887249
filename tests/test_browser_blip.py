"""05_blip in JupyterLab (headless Chromium): Run All, then drive the caption and matching widgets.

Moving the scene slider recaptions another scene (greedy, beam and nucleus rows, words marked);
choosing another replacement word rescores the edited caption. Run alone with::

    .venv/bin/python -m pytest -q -rs -m browser tests/test_browser_blip.py
"""

from __future__ import annotations

import pytest

from _browser import (  # noqa: F401  (fixtures come from tests/conftest.py)
    WIDGET_TIMEOUT_MS,
    _error_outputs,
    _wait_kernel_idle,
    assert_no_widget_errors,
    move_slider,
    run_notebook_in_lab,
    save_screenshot,
    screenshot_on_failure,
)

pytestmark = pytest.mark.browser

BLIP_NOTEBOOK = "05_blip.ipynb"


def test_blip_notebook_runs_and_its_widgets_react(page, lab):
    from playwright.sync_api import expect

    with screenshot_on_failure(page, lab):
        state = run_notebook_in_lab(page, lab, BLIP_NOTEBOOK)
        print(f"{BLIP_NOTEBOOK}: {state}")
        captions = page.locator(".mmcourse-caption-text").first
        expect(captions).to_contain_text("beam search", timeout=WIDGET_TIMEOUT_MS)
        seed = page.locator(".mmcourse-caption-seed").first
        seed.scroll_into_view_if_needed()
        before = captions.inner_text()
        move_slider(page, seed, 3)
        expect(captions).not_to_have_text(before, timeout=WIDGET_TIMEOUT_MS)
        expect(captions.locator("span.mm-right").first).to_be_visible(timeout=WIDGET_TIMEOUT_MS)

        matching = page.locator(".mmcourse-match-text").first
        expect(matching).to_contain_text("ITM match probability", timeout=WIDGET_TIMEOUT_MS)
        new = page.locator(".mmcourse-match-new select").first
        new.scroll_into_view_if_needed()
        options = new.locator("option").all_inner_texts()
        before = matching.inner_text()
        if len(options) > 1:
            new.select_option(label=options[-1])
            expect(matching).to_contain_text(options[-1], timeout=WIDGET_TIMEOUT_MS)
        word = page.locator(".mmcourse-match-word select").first
        word_options = word.locator("option").all_inner_texts()
        word.select_option(label=word_options[1])
        expect(matching).not_to_have_text(before, timeout=WIDGET_TIMEOUT_MS)
        assert_no_widget_errors(page)
        assert not _error_outputs(page), _error_outputs(page)
        _wait_kernel_idle(page, lab, BLIP_NOTEBOOK, 30)
        print(f"screenshot: {save_screenshot(page, BLIP_NOTEBOOK)}")
