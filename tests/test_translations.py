"""The Chinese edition (mmcourse.tools.translations): catalogs complete and in sync, translations
keeping their English cell's structure, glossary terms introduced bilingually, generated notebooks
identical to what `make translations` writes.

A notebook without a catalog in notebooks/locale/zh_CN/LC_MESSAGES/ is not translated yet: its
test is skipped with that reason. The staleness rule is shown on a temporary copy: one English
sentence changed makes the check fail, and the catalog update keeps the old translation in a
fuzzy entry for the translator.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from mmcourse.tools import translations as tr

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
LANG = "zh_CN"
ENGLISH = [p.stem for p in tr.english_notebooks()]
TRANSLATED = tr.translated_stems(LANG)


def _cells(nb: dict, kind: str) -> list[dict]:
    return [c for c in nb["cells"] if c["cell_type"] == kind]


def _source(cell: dict) -> str:
    return cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])


# --------------------------------------------------------------------------------------------
# the course's catalogs


@pytest.mark.parametrize("stem", ENGLISH)
def test_catalog_complete_in_sync_and_notebook_generated(stem):
    if stem not in TRANSLATED:
        pytest.skip(f"{stem}: not yet translated (no catalog {tr.catalog_path(stem, LANG).relative_to(ROOT)})")
    problems = tr.catalog_problems(stem, LANG)
    assert not problems, "\n".join(problems)


def test_translated_notebooks_each_have_a_catalog_and_english_lists_exclude_them():
    assert not tr.orphan_notebooks(LANG), "generated notebooks without a catalog: run make translations"
    assert ENGLISH and all(re.fullmatch(r"\d\d_\w+", s) for s in ENGLISH)
    assert all(p.parent == NOTEBOOKS for p in tr.english_notebooks())
    assert set(TRANSLATED) <= set(ENGLISH)
    for stem in TRANSLATED:
        assert tr.translated_path(stem, LANG).exists()
        assert not (NOTEBOOKS / LANG / f"{stem}.py").exists(), "a generated notebook has no jupytext pair"


def test_generated_notebook_copies_code_and_outputs_and_translates_every_markdown_cell():
    if not TRANSLATED:
        pytest.skip("no notebook translated yet")
    stem = TRANSLATED[0]
    en = json.loads((NOTEBOOKS / f"{stem}.ipynb").read_text(encoding="utf-8"))
    zh = json.loads(tr.translated_path(stem, LANG).read_text(encoding="utf-8"))
    assert [c["cell_type"] for c in zh["cells"]] == [c["cell_type"] for c in en["cells"]]
    assert [c.get("id") for c in zh["cells"]] == [c.get("id") for c in en["cells"]]
    assert _cells(zh, "code") == _cells(en, "code")  # sources, outputs, execution counts
    assert zh["metadata"]["widgets"] == en["metadata"]["widgets"]
    assert zh["metadata"]["language"] == LANG and zh["metadata"]["jupytext"] == {"formats": "ipynb"}  # no .py pair
    pairs = [(_source(a), _source(b)) for a, b in zip(_cells(en, "markdown"), _cells(zh, "markdown")) if _source(a).strip()]
    assert pairs and all(a != b for a, b in pairs), "a Markdown cell left in English"
    assert all(re.search(r"[\u4e00-\u9fff]", b) for _, b in pairs)


def test_makefile_runs_the_chinese_welcome_under_nbval_and_only_it():
    text = (ROOT / "Makefile").read_text()
    nbval = re.search(r"^NBVAL_NOTEBOOKS := (.*)$", text, re.M).group(1)
    assert "notebooks/[0-9][0-9]_*.ipynb" in nbval and "notebooks/zh_CN/00_*.ipynb" in nbval
    assert "$(NBVAL_NOTEBOOKS)" in text and "tests/nbval_sanitize.cfg notebooks/\n" not in text


# --------------------------------------------------------------------------------------------
# staleness, on a copy


def _copy_course(tmp_path: Path, stem: str) -> Path:
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    for s in {stem, tr.GLOSSARY_NOTEBOOK}:
        shutil.copyfile(NOTEBOOKS / f"{s}.ipynb", nbs / f"{s}.ipynb")
    po = tr.catalog_path(stem, LANG, nbs)
    po.parent.mkdir(parents=True)
    shutil.copyfile(tr.catalog_path(stem, LANG), po)
    tr.build_one(stem, LANG, nbs)
    return nbs


def _edit_first_sentence(nbs: Path, stem: str) -> tuple[str, str]:
    """Change one English sentence (in the longest Markdown cell); returns (old, new) cell text."""
    path = nbs / f"{stem}.ipynb"
    nb = json.loads(path.read_text(encoding="utf-8"))
    cell = max(_cells(nb, "markdown"), key=lambda c: len(_source(c)))
    old = _source(cell)
    new = re.sub(r"\b(the)\b", "the very", old, count=1)
    assert new != old
    cell["source"] = new
    path.write_text(json.dumps(nb, ensure_ascii=False, indent=1), encoding="utf-8")
    return old, new


def test_changed_english_sentence_fails_the_check_and_keeps_the_old_translation_as_fuzzy(tmp_path):
    if not TRANSLATED:
        pytest.skip("no notebook translated yet")
    stem = TRANSLATED[0]
    nbs = _copy_course(tmp_path, stem)
    assert tr.catalog_problems(stem, LANG, nbs, terms=[]) == []  # (the terms: the test above)
    old, new = _edit_first_sentence(nbs, stem)
    old_translation = tr.read_catalog(tr.catalog_path(stem, LANG, nbs)).get(old).string

    # 1. the check fails at once: the edited cell has no entry, the generated notebook is stale
    problems = tr.catalog_problems(stem, LANG, nbs, terms=[])
    assert any("missing entry" in p for p in problems), problems
    assert any("differs from what build writes" in p for p in problems), problems
    # 2. `update`: the entry becomes fuzzy, keeping the old translation and the old English
    counts = tr.update_catalog(tr.catalog_path(stem, LANG, nbs), nbs / f"{stem}.ipynb", LANG)
    assert counts["fuzzy"] == 1 and counts["untranslated"] == 0 and counts["dropped"] == 0, counts
    cat = tr.read_catalog(tr.catalog_path(stem, LANG, nbs))
    entry = cat.get(new)
    assert entry.fuzzy and entry.string == old_translation
    # the previous English is written for the translator (`#| msgid`; Babel writes it, never reads it back)
    previous = [line for line in tr.catalog_path(stem, LANG, nbs).read_text().splitlines() if line.startswith("#| msgid")]
    assert len(previous) == 1 and json.dumps(old.splitlines()[0], ensure_ascii=False)[1:-1] in previous[0]
    problems = tr.catalog_problems(stem, LANG, nbs, terms=[])
    assert any("fuzzy entry" in p for p in problems), problems
    # 3. `build`: a fuzzy entry is not used (gettext's rule): that cell shows the new English
    tr.build_one(stem, LANG, nbs)
    zh = json.loads(tr.translated_path(stem, LANG, nbs).read_text(encoding="utf-8"))
    assert new in [_source(c) for c in zh["cells"]]
    # 4. the translator updates the entry and clears the flag; build; the check passes again
    entry.flags.discard("fuzzy")
    tr.write_catalog(tr.catalog_path(stem, LANG, nbs), cat)
    assert any("differs from what build writes" in p for p in tr.catalog_problems(stem, LANG, nbs, terms=[]))
    tr.build_one(stem, LANG, nbs)
    assert tr.catalog_problems(stem, LANG, nbs, terms=[]) == []


def test_update_adds_new_cells_untranslated_and_drops_removed_ones(tmp_path):
    if not TRANSLATED:
        pytest.skip("no notebook translated yet")
    stem = TRANSLATED[0]
    nbs = _copy_course(tmp_path, stem)
    path = nbs / f"{stem}.ipynb"
    nb = json.loads(path.read_text(encoding="utf-8"))
    md = _cells(nb, "markdown")
    removed = _source(md[-1])
    nb["cells"].remove(md[-1])
    nb["cells"].append({"cell_type": "markdown", "id": "new-cell", "metadata": {}, "source": "A new paragraph, never seen by Babel's fuzzy matcher: zebra quartz."})
    path.write_text(json.dumps(nb, ensure_ascii=False, indent=1), encoding="utf-8")
    counts = tr.update_catalog(tr.catalog_path(stem, LANG, nbs), path, LANG)
    assert counts["untranslated"] == 1 and counts["dropped"] == 1, counts
    cat = tr.read_catalog(tr.catalog_path(stem, LANG, nbs))
    assert cat.get(removed) is None and cat.get(_source(nb["cells"][-1])).string == ""
    assert any("untranslated entry" in p for p in tr.catalog_problems(stem, LANG, nbs, terms=[]))


def test_update_is_idempotent_and_drops_stray_comments(tmp_path):
    if not TRANSLATED:
        pytest.skip("no notebook translated yet")
    stem = TRANSLATED[0]
    nbs = _copy_course(tmp_path, stem)
    po = tr.catalog_path(stem, LANG, nbs)
    text = po.read_text(encoding="utf-8")
    first = text.index("\n#: ")  # the first entry's location line
    stray = "\n# | msgid \"\" \"An old English cell, left behind by another tool, long enough to be wrapped by Babel\"\n# the"
    po.write_text(text[:first] + stray + text[first:], encoding="utf-8")
    english = nbs / f"{stem}.ipynb"
    tr.update_catalog(po, english, LANG)
    once = po.read_bytes()
    assert b"old English cell" not in once and b"\n# the\n" not in once
    tr.update_catalog(po, english, LANG)
    assert po.read_bytes() == once


def test_a_code_change_reaches_the_chinese_notebook_through_rebuild(tmp_path):
    """mmcourse.tools.execute calls rebuild_for after writing the English .ipynb."""
    if not TRANSLATED:
        pytest.skip("no notebook translated yet")
    stem = TRANSLATED[0]
    nbs = _copy_course(tmp_path, stem)
    path = nbs / f"{stem}.ipynb"
    nb = json.loads(path.read_text(encoding="utf-8"))
    code = _cells(nb, "code")[0]
    code["outputs"] = [{"name": "stdout", "output_type": "stream", "text": "a new output\n"}]
    path.write_text(json.dumps(nb, ensure_ascii=False, indent=1), encoding="utf-8")
    assert any("differs from what build writes" in p for p in tr.catalog_problems(stem, LANG, nbs, terms=[]))
    assert tr.rebuild_for(path) == [tr.translated_path(stem, LANG, nbs)]
    assert tr.catalog_problems(stem, LANG, nbs, terms=[]) == []
    zh = json.loads(tr.translated_path(stem, LANG, nbs).read_text(encoding="utf-8"))
    assert "".join(_cells(zh, "code")[0]["outputs"][0]["text"]) == "a new output\n"


def test_cli_check_names_untranslated_notebooks_and_fails_on_a_stale_catalog(tmp_path, capsys):
    if not TRANSLATED:
        pytest.skip("no notebook translated yet")
    stem = TRANSLATED[0]
    nbs = _copy_course(tmp_path, stem)
    rc = tr.main(["check", "--notebooks", str(nbs)])
    out = capsys.readouterr().out
    assert rc == int(bool(tr.catalog_problems(stem, LANG)))  # as the course's own catalog
    assert "1 catalog(s) checked" in out and "missing entry" not in out
    if stem != tr.GLOSSARY_NOTEBOOK:
        assert tr.GLOSSARY_NOTEBOOK in out.split("not yet translated:")[1]
    _edit_first_sentence(nbs, stem)
    assert tr.main(["check", "--notebooks", str(nbs)]) == 1
    assert "missing entry" in capsys.readouterr().out


# --------------------------------------------------------------------------------------------
# structure: each rule fails on a crafted bad translation

ENGLISH_CELL = """## 2. The closed form

One jump takes $x_0$ to $x_t$: $$x_t = \\sqrt{\\bar\\alpha_t}\\,x_0 + \\sqrt{1-\\bar\\alpha_t}\\,\\varepsilon$$
Call `NoiseSchedule.q_sample(x0, t)` (see [the DDPM paper](https://arxiv.org/abs/2006.11239)).<br>
Next: <a href="02_diffusion_reverse.ipynb">notebook 02</a>.

```mermaid
flowchart LR
    x0["x<sub>0</sub><br/>clean data"] -- "step 1" --> x1["x<sub>1</sub>"]
    subgraph tower["image tower"]
        x1 --> xt(("noise"))
    end
```

```python
schedule.q_sample(x0, t)
```
"""

GOOD_CELL = """## 2. 闭式解

一步就能从 $x_0$ 跳到 $x_t$：$$x_t = \\sqrt{\\bar\\alpha_t}\\,x_0 + \\sqrt{1-\\bar\\alpha_t}\\,\\varepsilon$$
调用 `NoiseSchedule.q_sample(x0, t)`（见 [DDPM 论文](https://arxiv.org/abs/2006.11239)）。<br>
下一章：<a href="02_diffusion_reverse.ipynb">笔记本 02</a>。

```mermaid
flowchart LR
    x0["x<sub>0</sub><br/>干净数据"] -- "第 1 步" --> x1["x<sub>1</sub>"]
    subgraph tower["图像塔"]
        x1 --> xt(("噪声"))
    end
```

```python
schedule.q_sample(x0, t)
```
"""


def test_a_faithful_translation_keeps_every_structure():
    assert tr.structure_problems(ENGLISH_CELL, GOOD_CELL) == []
    s = tr.structure(ENGLISH_CELL)
    assert s["math"] == ["x_t = \\sqrt{\\bar\\alpha_t}\\,x_0 + \\sqrt{1-\\bar\\alpha_t}\\,\\varepsilon", "x_0", "x_t"]
    assert s["code spans"] == ["NoiseSchedule.q_sample(x0, t)"]
    assert s["link targets"] == ["02_diffusion_reverse.ipynb", "https://arxiv.org/abs/2006.11239"]
    assert s["heading levels"] == [2] and s["HTML tags"] == ["a", "a", "br"]
    assert s["Mermaid"] == [["flowchart LR", "x0 ----> x1", "subgraph tower", "x1 --> xt", "end"]]


@pytest.mark.parametrize(
    ("kind", "old", "new"),
    [
        ("math", "$x_0$ 跳到", "x0 跳到"),                                        # a math span dropped
        ("math", "\\varepsilon$$", "\\epsilon$$"),                              # a formula changed
        ("code spans", "`NoiseSchedule.q_sample(x0, t)`", "`q_sample(x0, t)`"),  # code span changed
        ("code spans", "`NoiseSchedule.q_sample(x0, t)`", "NoiseSchedule.q_sample(x0, t)"),
        ("link targets", "https://arxiv.org/abs/2006.11239", "https://arxiv.org/abs/2006.11238"),
        ("link targets", 'href="02_diffusion_reverse.ipynb"', 'href="02_reverse.ipynb"'),
        ("heading levels", "## 2. 闭式解", "### 2. 闭式解"),
        ("HTML tags", "。<br>\n", "。\n"),
        ("Mermaid", '-- "第 1 步" --> x1', '--> x1'),                            # edge kind changed
        ("Mermaid", "x1 --> xt", "x0 --> xt"),                                    # edge rewired
        ("Mermaid", 'subgraph tower["图像塔"]', 'subgraph 图像塔["图像塔"]'),     # id translated
        ("code blocks", "schedule.q_sample(x0, t)\n```\n", "schedule.q_sample(x0, t)  # 加噪\n```\n"),
    ],
)
def test_each_structure_rule_fails_on_a_bad_translation(kind, old, new):
    bad = GOOD_CELL.replace(old, new, 1)
    assert bad != GOOD_CELL
    problems = tr.structure_problems(ENGLISH_CELL, bad)
    assert [p.split(":")[0] for p in problems] == [kind], problems


def test_catalog_check_reports_a_structure_problem_in_a_real_entry(tmp_path):
    if not TRANSLATED:
        pytest.skip("no notebook translated yet")
    stem = TRANSLATED[0]
    nbs = _copy_course(tmp_path, stem)
    po = tr.catalog_path(stem, LANG, nbs)
    cat = tr.read_catalog(po)
    span = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
    entry = next(m for m in tr.entries(cat) if span.search(m.string) and "```" not in m.string)
    entry.string = span.sub(r"\1", entry.string, count=1)  # one code span lost
    tr.write_catalog(po, cat)
    assert any("code spans: missing" in p for p in tr.catalog_problems(stem, LANG, nbs, terms=[]))


# --------------------------------------------------------------------------------------------
# terms: 00's glossary table is the one bilingual list


def test_glossary_terms_come_from_the_welcome_notebooks_table():
    terms = tr.glossary_terms()
    assert ("contrastive learning", "对比学习") in terms and ("forward diffusion", "正向扩散") in terms
    assert ("denoising", "去噪") in terms and ("reverse process", "反向过程") in terms  # "a, b | 甲, 乙"
    assert ("positive sample", "正样本") in terms and ("negative sample", "负样本") in terms
    assert ("zero-shot", "零样本") in terms and ("phrase grounding", "短语定位") in terms
    assert all(not re.search(r"[()（）]", e) for e, _ in terms)
    assert len(terms) >= 25


TERMS = [("contrastive learning", "对比学习"), ("zero-shot", "零样本")]


def test_term_rule_wants_the_english_term_at_the_first_chinese_use():
    english = ["# 04 · CLIP\n\nCLIP trains by contrastive learning; then zero-shot classification."]
    good = ["# 04 · CLIP 对比学习\n\nCLIP 用**对比学习**（contrastive learning）训练；然后做零样本（zero-shot）分类。之后的对比学习不再注明。"]
    assert tr.term_problems(english, good, TERMS) == []
    late = ["CLIP 用对比学习训练；零样本（zero-shot）分类。对比学习（contrastive learning）……"]
    assert [p.split(" ")[0] for p in tr.term_problems(english, late, TERMS)] == ["对比学习"]
    missing = ["CLIP 用对照学习训练；零样本（zero-shot）分类。"]
    assert "never says 对比学习" in tr.term_problems(english, missing, TERMS)[0]
    # a term the English notebook does not use is not required
    assert tr.term_problems(["CLIP trains by contrastive learning."], ["CLIP 用对比学习（contrastive learning）训练。"], TERMS) == []
    # plural or hyphenated English in the parentheses counts; the glossary's own table row counts
    assert tr.term_problems(["Zero-shot."], ["零样本（zero shot）。"], TERMS) == []
    assert tr.term_problems(["zero-shot"], ["| zero-shot | 零样本 | 04 |"], TERMS) == []
    # inside a gloss that names the English term
    assert tr.term_problems(english, ["CLIP（图文对比学习，contrastive learning）；零样本（zero-shot）。"], TERMS) == []
    # a title may leave it out (the next use introduces it) or carry it; a title alone is not enough
    titled = ["# 04 · 对比学习\n\n用对比学习（contrastive learning）和零样本（zero-shot）。"]
    assert tr.term_problems(english, titled, TERMS) == []
    assert tr.term_problems(english, ["# 对比学习（contrastive learning）\n\n对比学习；零样本（zero-shot）。"], TERMS) == []
    only_title = tr.term_problems(english, ["# 04 · 对比学习\n\n零样本（zero-shot）。"], TERMS)
    assert len(only_title) == 1 and "only in headings" in only_title[0]


# --------------------------------------------------------------------------------------------
# the Chinese student notebooks


def test_chinese_student_notebook_matches_the_english_one_but_its_prose(tmp_path):
    if not TRANSLATED:
        pytest.skip("no notebook translated yet")
    from mmcourse.tools.student import build_student

    stem = TRANSLATED[0]
    (zh,) = build_student([tr.translated_path(stem, LANG)], tmp_path / "zh")
    (en,) = build_student([NOTEBOOKS / f"{stem}.py"], tmp_path / "en")
    zh, en = (json.loads(p.read_text(encoding="utf-8")) for p in (zh, en))
    strip = lambda cells: [{k: v for k, v in c.items() if k != "metadata"} | {"nbgrader": c["metadata"].get("nbgrader")} for c in cells]  # noqa: E731
    assert strip(_cells(zh, "code")) == strip(_cells(en, "code"))
    assert all(not c["outputs"] for c in _cells(zh, "code"))
    assert zh["metadata"]["language"] == LANG


def test_execute_rebuilds_the_translation_of_the_notebook_it_runs(tmp_path, monkeypatch):
    """`mmcourse.tools.execute` writes the English .ipynb, then its translations from the catalogs
    (the kernel run is replaced by a stub that sets one output: the point is what gets written)."""
    import nbclient

    from mmcourse.tools.execute import execute

    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    (nbs / "99_tiny.py").write_text(
        "# %% [markdown]\n# # 99 · Tiny\n#\n# One sentence.\n\n# %%\nprint(1 + 1)\n", encoding="utf-8")

    def fake_execute(self, **kwargs):
        self.nb.cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="2\n")]
        return self.nb

    import nbformat

    monkeypatch.setattr(nbclient.NotebookClient, "execute", fake_execute)
    execute(nbs / "99_tiny.py")
    assert tr.rebuild_for(nbs / "99_tiny.ipynb") == []  # no catalog: nothing translated
    tr.init_catalog("99_tiny", LANG, nbs)
    cat = tr.read_catalog(tr.catalog_path("99_tiny", LANG, nbs))
    (entry,) = tr.entries(cat)
    entry.string = "# 99 · 小例子\n\n一句话。"
    tr.write_catalog(tr.catalog_path("99_tiny", LANG, nbs), cat)
    execute(nbs / "99_tiny.py")
    zh = json.loads(tr.translated_path("99_tiny", LANG, nbs).read_text(encoding="utf-8"))
    assert _source(zh["cells"][0]) == "# 99 · 小例子\n\n一句话。"
    assert "".join(zh["cells"][1]["outputs"][0]["text"]) == "2\n"
    assert tr.catalog_problems("99_tiny", LANG, nbs, terms=[]) == []


def test_the_chinese_glossary_keeps_the_term_list():
    """One bilingual term list: the translated glossary table has the English one's term columns."""
    if tr.GLOSSARY_NOTEBOOK not in TRANSLATED:
        pytest.skip(f"{tr.GLOSSARY_NOTEBOOK}: not yet translated")
    english = "\n\n".join(tr.markdown_cells(json.loads((NOTEBOOKS / f"{tr.GLOSSARY_NOTEBOOK}.ipynb").read_text(encoding="utf-8"))))
    chinese = "\n\n".join(tr.markdown_cells(json.loads(tr.translated_path(tr.GLOSSARY_NOTEBOOK, LANG).read_text(encoding="utf-8"))))
    rows = tr.glossary_table(english)
    assert len(rows) >= 20 and rows[0] == ("forward diffusion", "正向扩散")
    assert tr.glossary_table(chinese) == rows
