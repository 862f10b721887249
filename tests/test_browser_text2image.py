"""08_text_to_image in JupyterLab (headless Chromium): Run All, then type a prompt and press generate.

A new prompt gives a new picture and the judges' verdict for it; a misspelt word gives the
tokenizer's message with the nearest known words, and an empty prompt a message naming
``prompts``, instead of a traceback; the guidance slider starts at the chosen scale. Run alone with::

    .venv/bin/python -m pytest -q -rs -m browser tests/test_browser_text2image.py
"""

from __future__ import annotations

import pytest

from _browser import (  # noqa: F401  (fixtures come from tests/conftest.py)
    WIDGET_TIMEOUT_MS,
    _error_outputs,
    _wait_kernel_idle,
    assert_no_widget_errors,
    image_changes_after,
    run_notebook_in_lab,
    save_screenshot,
    screenshot_on_failure,
    translation,
)

pytestmark = pytest.mark.browser

NOTEBOOK = "08_text_to_image.ipynb"


# The Chinese edition runs too (its group's translated notebook), with the same widget checks.
@pytest.mark.parametrize("name", [NOTEBOOK, translation(NOTEBOOK)])
def test_text2image_notebook_runs_and_its_prompt_widget_draws(page, lab, name):
    from playwright.sync_api import expect

    with screenshot_on_failure(page, lab):
        state = run_notebook_in_lab(page, lab, name)
        print(f"{name}: {state}")
        verdict = page.locator(".mmcourse-verdict").first
        expect(verdict).to_contain_text("shape: judged", timeout=WIDGET_TIMEOUT_MS)
        box = page.locator(".mmcourse-prompt input").first
        box.scroll_into_view_if_needed()
        button = page.locator("button.mmcourse-generate, .mmcourse-generate button").first
        picture = page.locator("img.mmcourse-generated, .mmcourse-generated img").first

        def ask(text: str) -> None:
            box.fill(text)
            button.click()

        image_changes_after(page, picture, lambda: ask("a small red circle at the top left"))
        expect(verdict).to_contain_text("colour: judged", timeout=WIDGET_TIMEOUT_MS)
        ask("a small red cirle")
        expect(verdict).to_contain_text("nearest known words: circle", timeout=WIDGET_TIMEOUT_MS)
        ask("")
        expect(verdict).to_contain_text("prompts must be non-empty strings", timeout=WIDGET_TIMEOUT_MS)
        # the slider starts at the guidance scale chosen on validation draws (the registry's)
        from mmcourse.weights import entry

        w = entry("text2image_shapes").metrics["guidance_scale"]
        expect(page.locator(".mmcourse-guidance .widget-readout").first).to_have_text(f"{w:.2f}",
                                                                                      timeout=WIDGET_TIMEOUT_MS)
        assert_no_widget_errors(page)
        assert not _error_outputs(page), _error_outputs(page)
        _wait_kernel_idle(page, lab, name, 30)
        print(f"screenshot: {save_screenshot(page, name)}")
