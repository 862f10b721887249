"""Sphinx configuration of the course website (`make site`; site/build.py stages the sources).

Sphinx + MyST-NB + the book theme: the committed, executed notebooks are rendered as they were
saved (no execution), with their saved ipywidgets state embedded and drawn by the widget manager,
```mermaid fences drawn by sphinxcontrib-mermaid and $...$ math by MathJax. Every script, style
sheet and font comes from the build: the browser libraries are unpacked from npm packages into
build/site-vendor/vendor/ (site/vendor.json) and copied to _static/vendor/. Nothing is loaded
from a CDN when the site is read.

site/build.py passes the edition through the environment: MMCOURSE_SITE_LANGUAGE (this build's
language) and MMCOURSE_SITE_EDITIONS (every edition, "en=.,zh_CN=zh_CN": language=path of its
root relative to the English root), used by the language switch.
"""

from __future__ import annotations

import os
from pathlib import Path

import sphinx

CONF_DIR = Path(__file__).resolve().parent
REPO = CONF_DIR.parent
VENDOR_STATIC = Path(os.environ.get("MMCOURSE_SITE_VENDOR", REPO / "build" / "site-vendor"))

project = "mmcourse"
author = "the mmcourse authors"
copyright = "mmcourse authors, MIT licence"
language = os.environ.get("MMCOURSE_SITE_LANGUAGE", "en")
EDITIONS = [tuple(e.split("=", 1)) for e in os.environ.get("MMCOURSE_SITE_EDITIONS", "en=.").split(",") if e]
EDITION_NAMES = {"en": "English", "zh_CN": "简体中文"}
# MMCOURSE_SITE_CHAPTERS ("en=00_welcome:01_...;zh_CN=00_welcome"): the chapters of each edition;
# a chapter missing from an edition links to that edition's home page, marked as not translated.
CHAPTERS = {
    lang: set(stems.split(":"))
    for lang, stems in (e.split("=", 1) for e in os.environ.get("MMCOURSE_SITE_CHAPTERS", "").split(";") if "=" in e)
}
NOT_TRANSLATED = {"en": "not available", "zh_CN": "本章尚未翻译"}

extensions = ["myst_nb", "sphinxcontrib.mermaid", "sphinx.ext.mathjax"]
exclude_patterns = ["_files", "**.ipynb_checkpoints"]
templates_path = [str(CONF_DIR / "_templates")]

# --- notebooks: rendered as committed, never executed
nb_execution_mode = "off"
nb_merge_streams = True
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3
myst_fence_as_directive = ["mermaid"]
# Saved widget state: require.js, then the widget manager's AMD bundle (it renders every
# <script type="application/vnd.jupyter.widget-state+json"> on the page), then the ipympl canvas
# module as a named AMD module. An unknown widget module would be looked up under
# data-jupyter-widgets-cdn: a local folder that does not exist, so it fails visibly instead of
# reaching the network.
nb_ipywidgets_js = {
    "vendor/requirejs/require.js": {},
    "widgets-setup.js": {},
    "vendor/html-manager/dist/embed-amd.js": {"data-jupyter-widgets-cdn": "_static/vendor/no-cdn/"},
    "vendor/jupyter-matplotlib/dist/index.js": {},
}
# (widgets-setup.js: where the manager finds its fonts, and MathJax 4 for its label typesetting.)

# --- Mermaid: the UMD bundle loaded as a classic script on pages with a diagram (site_setup
# below); sphinxcontrib-mermaid's module imports it through a one-line shim.
mermaid_use_local = "mermaid-shim.mjs"
mermaid_version = ""
mermaid_d3_zoom = False
mermaid_fullscreen = False
mermaid_height = "auto"

# --- MathJax 4 from the build, its font from the font package beside it.
mathjax_path = "vendor/mathjax/tex-mml-chtml.js"
_mathjax_config = {
    "loader": {"paths": {"fonts": "[mathjax]/../mathjax-fonts"}},
    "options": {"menuOptions": {"settings": {"enrich": False, "speech": False, "braille": False}}},
}
if sphinx.version_info >= (8, 2):
    mathjax4_config = _mathjax_config
else:
    mathjax3_config = _mathjax_config

# --- HTML
html_theme = "sphinx_book_theme"
html_title = "mmcourse"
html_static_path = [str(CONF_DIR / "_static"), str(VENDOR_STATIC)]
html_css_files = ["mmcourse-site.css"]
html_copy_source = False  # the notebooks are offered under notebooks/ and student/ instead
html_show_sourcelink = False
html_last_updated_fmt = None
html_search_language = language
_repo_url = os.environ.get("MMCOURSE_SITE_REPO_URL", "")
html_theme_options = {
    "show_toc_level": 2,
    "use_download_button": False,
    "use_fullscreen_button": False,
    "home_page_in_toc": True,
    "navigation_with_keys": False,
    # no web fonts, analytics or launch buttons: the theme's own assets are local
    "article_header_end": ["language-switch"] if len(EDITIONS) > 1 else [],
}
# Light mode from the start (an unset mode logs a console error; Mermaid picks its theme from it).
html_context = {"default_mode": "light"}
if _repo_url:  # set by the publishing workflow: a link to the repository in the header
    html_theme_options.update(use_repository_button=True, repository_url=_repo_url, path_to_docs="notebooks")

# This edition's root relative to the English root (for the language switch).
_here = dict(EDITIONS).get(language, ".")


if language.startswith("zh"):
    # Sphinx 9.0-9.2's Chinese search pairs English stemming code with `window.Stemmer =
    # ChineseStemmer`, a name that code never defines ("ChineseStemmer is not defined", no
    # results); naming the language English there makes it point at EnglishStemmer, the stemmer
    # the Chinese indexer itself uses for Latin words.
    from sphinx.search.zh import SearchChinese

    if SearchChinese.js_stemmer_rawcode == "english-stemmer.js":
        SearchChinese.language_name = "English"


def _add_mermaid_bundle(app, pagename, templatename, context, doctree):
    from sphinxcontrib.mermaid import mermaid

    # pages without a doctree (search, index) still get sphinxcontrib-mermaid's module
    if doctree is None or doctree.next_node(mermaid) is not None:
        app.add_js_file("vendor/mermaid/dist/mermaid.min.js", priority=400)


def _language_switch(app, pagename, templatename, context, doctree):
    """context["mmcourse_switch"]: (name, url, current, BCP 47 code) for this page in every edition."""
    links = []
    for lang, root in EDITIONS:
        rel = os.path.relpath(root, _here).replace(os.sep, "/")
        up = "../" * pagename.count("/")  # from this page to its edition's root
        name, page = EDITION_NAMES.get(lang, lang), pagename
        if lang in CHAPTERS and pagename[:2].isdigit() and pagename not in CHAPTERS[lang]:
            name, page = f"{name} ({NOT_TRANSLATED.get(lang, 'not translated')})", "index"
        links.append((name, f"{up}{rel}/{page}.html", lang == language, lang.replace("_", "-")))
    context["mmcourse_switch"] = links


def setup(app):
    app.connect("html-page-context", _add_mermaid_bundle)
    app.connect("html-page-context", _language_switch)
