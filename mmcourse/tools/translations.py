"""Translated editions of the notebooks, from gettext catalogs (Babel's ``babel.messages``).

One catalog per notebook and language, ``notebooks/locale/<lang>/LC_MESSAGES/NN_topic.po``, one
entry per non-empty Markdown cell: msgid = the cell's source exactly as in the English
``notebooks/NN_topic.ipynb``, msgstr = the translated cell. The translated notebook
``notebooks/<lang>/NN_topic.ipynb`` is *generated*: every code cell and its outputs, the widget
state and the cell ids come from the English .ipynb; only the Markdown cells come from the
catalog. Nothing is executed twice. A notebook without a catalog is not translated yet (its
edition simply lacks it); a catalog that exists must be complete and in sync.

Commands (``python -m mmcourse.tools.translations <command>``; ``make translations`` = update + build):

- ``update``: extract the English Markdown cells into every existing catalog (``Catalog.update``):
  a changed English cell becomes *fuzzy*, keeping its previous translation and, as a ``#| msgid``
  comment, the previous English text for the translator (Babel writes that comment but does not
  read it back: a later update keeps the flag and the translation, not the comment); a new cell
  is untranslated; cells that are gone are dropped (git keeps their old translation).
- ``build``: write ``notebooks/<lang>/NN_topic.ipynb`` for every catalog (an untranslated or
  fuzzy entry falls back to the English text, as gettext does; ``check`` fails on it) and remove
  generated notebooks whose catalog is gone.
- ``check``: every catalog complete (no empty or fuzzy entry), in sync with its English notebook,
  each translation keeping its English cell's structure (:func:`structure_problems`), the glossary
  terms introduced bilingually (:func:`term_problems`), and every generated notebook identical to
  what ``build`` writes. Exit 1 with one line per problem; notebooks without a catalog are listed
  as not yet translated.
- ``init NN_topic [--lang zh_CN]``: start a catalog for a notebook (every entry untranslated).
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import re
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
LANGUAGES = ("zh_CN",)  # the editions the course has catalogs for
_STEM = re.compile(r"^\d\d_\w+$")


# --------------------------------------------------------------------------------------------
# paths


def english_notebooks(notebooks: Path = NOTEBOOKS) -> list[Path]:
    """The English executed notebooks ``notebooks/NN_topic.ipynb`` (never a translated edition's)."""
    return sorted(p for p in notebooks.glob("[0-9][0-9]_*.ipynb") if _STEM.match(p.stem))


def catalog_path(stem: str, lang: str, notebooks: Path = NOTEBOOKS) -> Path:
    return notebooks / "locale" / lang / "LC_MESSAGES" / f"{stem}.po"


def translated_path(stem: str, lang: str, notebooks: Path = NOTEBOOKS) -> Path:
    return notebooks / lang / f"{stem}.ipynb"


def catalogs(lang: str, notebooks: Path = NOTEBOOKS) -> dict[str, Path]:
    """{notebook stem: catalog path} for every catalog of ``lang``."""
    folder = notebooks / "locale" / lang / "LC_MESSAGES"
    return {p.stem: p for p in sorted(folder.glob("[0-9][0-9]_*.po"))} if folder.is_dir() else {}


def translated_stems(lang: str = "zh_CN", notebooks: Path = NOTEBOOKS) -> list[str]:
    """The notebooks that have a catalog in ``lang`` (translated, or being translated)."""
    return list(catalogs(lang, notebooks))


# --------------------------------------------------------------------------------------------
# catalogs


def markdown_cells(nb: dict) -> list[str]:
    """The source of every non-empty Markdown cell, in order (the msgids)."""
    out = []
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            src = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
            if src.strip():
                out.append(src)
    return out


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def template(stem: str, nb: dict, lang: str):
    """The catalog of ``nb``'s Markdown cells with empty translations (what ``update`` merges in)."""
    from babel.messages.catalog import Catalog

    cat = Catalog(locale=lang, project="mmcourse", fuzzy=False)
    for index, cell in enumerate(nb["cells"]):  # location: the cell's index (Babel omits 0)
        if cell["cell_type"] == "markdown":
            src = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
            if src.strip():
                cat.add(src, "", locations=[(f"{stem}.ipynb", index)])
    return cat


def read_catalog(path: Path):
    from babel.messages.pofile import read_po

    with open(path, "rb") as f:
        return read_po(f)


def write_catalog(path: Path, cat) -> None:
    from babel.messages.pofile import write_po

    buf = io.BytesIO()
    # width=0: no wrapping (the translators' files are written the same way); the previous
    # msgid of a fuzzy entry is kept for the translator; obsolete entries are dropped.
    write_po(buf, cat, width=0, ignore_obsolete=True, include_previous=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_bytes() != buf.getvalue():
        path.write_bytes(buf.getvalue())


def entries(cat) -> list:
    """The catalog's messages without its header entry."""
    return [m for m in cat if m.id]


def update_catalog(path: Path, english: Path, lang: str) -> dict[str, int]:
    """Merge the English notebook's Markdown cells into the catalog at ``path``; returns counts
    of translated, fuzzy and untranslated entries and of the entries dropped."""
    cat = read_catalog(path)
    cat.update(template(english.stem, _read_json(english), lang), update_creation_date=False)
    dropped = len(cat.obsolete)
    cat.fuzzy = False  # the header entry: Babel's skeleton marks it fuzzy; it holds no translation
    for m in entries(cat):
        # The previous msgid is for the translator of a fuzzy entry only; once it is translated
        # again it goes. The catalogs hold no free comments (the English cell is the context):
        # copies of old msgids that other tools left as "# | msgid ..." comments were re-wrapped
        # by Babel on every write, so update was not idempotent.
        m.user_comments = []
        if not m.fuzzy:
            m.previous_id = []
    write_catalog(path, cat)
    ms = entries(cat)
    return {
        "translated": sum(bool(m.string) and not m.fuzzy for m in ms),
        "fuzzy": sum(m.fuzzy for m in ms),
        "untranslated": sum(not m.string for m in ms),
        "dropped": dropped,
    }


def init_catalog(stem: str, lang: str, notebooks: Path = NOTEBOOKS) -> Path:
    path = catalog_path(stem, lang, notebooks)
    if path.exists():
        raise ValueError(f"stem: {path} exists already (use update)")
    english = notebooks / f"{stem}.ipynb"
    if not english.exists():
        raise ValueError(f"stem: no English notebook {english}")
    write_catalog(path, template(stem, _read_json(english), lang))
    return path


# --------------------------------------------------------------------------------------------
# generated notebooks


def translate_notebook(nb: dict, cat, lang: str) -> dict:
    """A copy of the English notebook ``nb`` whose Markdown cells come from ``cat`` (an entry
    untranslated or fuzzy keeps the English text); code cells, outputs and widget state as they are."""
    nb = copy.deepcopy(nb)
    for cell in nb["cells"]:
        if cell["cell_type"] != "markdown":
            continue
        src = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        m = cat.get(src) if src.strip() else None
        if m is not None and m.string and not m.fuzzy:
            cell["source"] = m.string
    meta = nb["metadata"]
    # A generated notebook, not one half of a jupytext pair: without this, the repository's
    # jupytext.toml (formats ipynb,py:percent) would pair it with a new .py when saved in Lab.
    meta["jupytext"] = {"formats": "ipynb"}
    meta["language"] = lang
    return nb


def render(nb: dict) -> str:
    """The notebook as nbformat writes it (one line per source line), newline-terminated."""
    import nbformat

    text = nbformat.writes(nbformat.from_dict(nb))
    return text if text.endswith("\n") else text + "\n"


def built_text(stem: str, lang: str, notebooks: Path = NOTEBOOKS) -> str:
    english = notebooks / f"{stem}.ipynb"
    return render(translate_notebook(_read_json(english), read_catalog(catalog_path(stem, lang, notebooks)), lang))


def build_one(stem: str, lang: str, notebooks: Path = NOTEBOOKS) -> Path:
    dest = translated_path(stem, lang, notebooks)
    dest.parent.mkdir(parents=True, exist_ok=True)
    text = built_text(stem, lang, notebooks)
    if not dest.exists() or dest.read_text(encoding="utf-8") != text:
        dest.write_text(text, encoding="utf-8")
    return dest


def rebuild_for(english: Path) -> list[Path]:
    """Rebuild every translated edition of one English notebook that has a catalog (used by
    ``mmcourse.tools.execute`` after it re-executes the English notebook)."""
    notebooks = english.parent
    return [build_one(english.stem, lang, notebooks) for lang in LANGUAGES
            if catalog_path(english.stem, lang, notebooks).exists()]


# --------------------------------------------------------------------------------------------
# structure: what a translation must keep from its English cell

_FENCE = re.compile(r"^(```+|~~~+)[ \t]*(\S*)[^\n]*\n(.*?)^\1[ \t]*$", re.M | re.S)
_CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.S)
_DISPLAY_MATH = re.compile(r"\$\$(.+?)\$\$", re.S)
_INLINE_MATH = re.compile(r"(?<![\\$])\$(?!\$)(.+?)(?<![\\$])\$(?!\$)", re.S)
_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_AUTOLINK = re.compile(r"<(https?://[^>\s]+)>")
_HREF = re.compile(r"""\b(?:href|src)\s*=\s*["']([^"']+)["']""")
_TAG = re.compile(r"</?([A-Za-z][A-Za-z0-9-]*)\b[^<>]*?/?>")
_HEADING = re.compile(r"^(#{1,6})\s", re.M)


def _split(text: str) -> tuple[list[tuple[str, str]], str]:
    """(fenced blocks as (info, body)), text with the fences removed."""
    blocks = [(m.group(2).lower(), m.group(3)) for m in _FENCE.finditer(text)]
    return blocks, _FENCE.sub("\n", text)


def mermaid_structure(body: str) -> list[str]:
    """A Mermaid diagram without its labels: the diagram line, then each line's node ids and
    edges (labels in quotes, brackets, |pipes| removed; a subgraph keeps its id, not its title)."""
    out = []
    for line in body.splitlines():
        line = line.strip()
        if not line or line.startswith("%%"):
            continue
        if line.startswith("subgraph"):
            m = re.match(r"subgraph\s+([\w-]+)\s*\[", line)
            out.append(f"subgraph {m.group(1)}" if m else "subgraph")
            continue
        s = re.sub(r'"[^"]*"', "", line)
        s = re.sub(r"\|[^|]*\|", "", s)
        prev = None
        while prev != s:  # innermost brackets first: ((…)), [(…)], {{…}}
            prev = s
            s = re.sub(r"\[[^\[\]]*\]|\([^()]*\)|\{[^{}]*\}", "", s)
        s = re.sub(r"(--|==|-\.)\s+(?=-|=|\.)", r"\1", s)  # `A -- "text" --> B` → `A ---> B`
        out.append(" ".join(s.split()))
    return out


def structure(text: str) -> dict[str, list]:
    """What a translation keeps from its English cell: math spans, inline code spans, link
    targets, heading levels (in order), HTML tags, fenced code blocks (verbatim) and Mermaid
    diagrams (ids and edges; labels may be translated)."""
    blocks, prose = _split(text)
    code = [m.group(2).strip() for m in _CODE_SPAN.finditer(prose)]
    prose = _CODE_SPAN.sub(" ", prose)
    display = [" ".join(m.group(1).split()) for m in _DISPLAY_MATH.finditer(prose)]
    prose = _DISPLAY_MATH.sub(" ", prose)
    inline = [" ".join(m.group(1).split()) for m in _INLINE_MATH.finditer(prose)]
    prose = _INLINE_MATH.sub(" ", prose)
    return {
        "math": sorted(display) + sorted(inline),
        "code spans": sorted(code),
        "link targets": sorted(_LINK.findall(prose) + _AUTOLINK.findall(prose) + _HREF.findall(prose)),
        "heading levels": [len(h) for h in _HEADING.findall(prose)],
        "HTML tags": sorted(t.lower() for t in _TAG.findall(prose)),
        "code blocks": [body for info, body in blocks if info != "mermaid"],
        "Mermaid": [mermaid_structure(body) for info, body in blocks if info == "mermaid"],
    }


def _diff(a: list, b: list) -> str:
    if all(isinstance(x, (str, int)) for x in a + b):
        missing, extra = Counter(a) - Counter(b), Counter(b) - Counter(a)
        if missing or extra:
            parts = []
            if missing:
                parts.append("missing " + ", ".join(repr(x) for x in missing.elements()))
            if extra:
                parts.append("extra " + ", ".join(repr(x) for x in extra.elements()))
            return "; ".join(parts)
        return f"order {a!r} became {b!r}"
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return f"block {i + 1}: {x!r} became {y!r}"
    return f"{len(a)} block(s) became {len(b)}"


def structure_problems(english: str, translated: str) -> list[str]:
    """One line per kind of structure the translation does not keep (empty when it keeps all)."""
    want, got = structure(english), structure(translated)
    return [f"{kind}: {_diff(want[kind], got[kind])}" for kind in want if want[kind] != got[kind]]


# --------------------------------------------------------------------------------------------
# terms: the glossary of 00_welcome is the course's one bilingual term list

GLOSSARY_NOTEBOOK = "00_welcome"


def glossary_table(markdown: str) -> list[tuple[str, str]]:
    """The (English, 中文) rows of the glossary table (the section whose heading says Glossary)."""
    m = re.search(r"^#+ .*Glossary.*$", markdown, re.M | re.I)
    if not m:
        return []
    rows, body = [], False
    for line in markdown[m.end():].splitlines():
        if line.startswith("#"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else []
        if len(cells) >= 2 and set(cells[0]) <= set("-: "):
            body = True  # the separator row: the header row is above it
        elif len(cells) >= 2 and body:
            rows.append((cells[0], cells[1]))
    return rows


def _variants(english: str) -> list[str]:
    """'positive / negative sample' → ['positive sample', 'negative sample']; parentheses dropped."""
    english = re.sub(r"\s*\([^)]*\)", "", english).strip()
    parts = [p.strip() for p in english.split("/")]
    if len(parts) > 1:
        tail = parts[-1].split()[1:]
        parts = [p if len(p.split()) > 1 else " ".join([p, *tail]) for p in parts]
    return parts


def glossary_terms(notebooks: Path = NOTEBOOKS) -> list[tuple[str, str]]:
    """(English term, Chinese term) pairs from 00's glossary table: a row "a, b | 甲, 乙" gives
    (a, 甲) and (b, 乙), "positive / negative sample | 正样本 / 负样本" gives both samples."""
    text = "\n\n".join(markdown_cells(_read_json(notebooks / f"{GLOSSARY_NOTEBOOK}.ipynb")))
    pairs = []
    for en, zh in glossary_table(text):
        en_parts = [p.strip() for p in re.sub(r"\s*\([^)]*\)", "", en).split(",")]
        zh_parts = [p.strip() for p in zh.split(",")]
        if len(zh_parts) != len(en_parts):
            en_parts, zh_parts = [", ".join(en_parts)], [zh]
        for e, z in zip(en_parts, zh_parts):
            e_vs, z_vs = _variants(e), [p.strip() for p in z.split("/")]
            if len(e_vs) != len(z_vs):
                e_vs, z_vs = [e], [z]
            pairs += [(a, b) for a, b in zip(e_vs, z_vs) if a and b]
    return pairs


def _plain(text: str) -> str:
    """Markdown where a term can be introduced: no code, math or Mermaid."""
    _, text = _split(text)
    text = _CODE_SPAN.sub(" ", text)
    text = _DISPLAY_MATH.sub(" ", text)
    return _INLINE_MATH.sub(" ", text)


def _english_regex(term: str, prefix: bool = False) -> re.Pattern:
    """The term, singular or plural, its words joined by spaces or hyphens, case ignored
    (``prefix``: its last word may go on, "prompt" in "promptable")."""
    words = re.split(r"[\s\-–]+", term)
    last = words[-1][:-1] if words[-1].endswith("s") and len(words[-1]) > 3 else words[-1]
    words = [re.escape(w) for w in words[:-1]] + [re.escape(last) + (r"\w*" if prefix else r"(?:e?s)?\b")]
    return re.compile(r"\b" + r"[\s\-–]+".join(words), re.I)


def _introduced(chinese: str, i: int, zh: str, en: str) -> bool:
    """Whether the use of ``zh`` at ``chinese[i]`` carries the English term: 对比学习（contrastive
    learning）, or inside a gloss that names it (图文对比学习，contrastive learning), or in a table
    row that holds it (the glossary's own rows)."""
    rx = _english_regex(en, prefix=True)
    j = i + len(zh)
    m = re.match(r"[*_]*\s*[（(]([^）)]*)[）)]", chinese[j: j + 200])
    if m and rx.search(m.group(1)):
        return True
    opened = max(chinese.rfind("（", 0, i), chinese.rfind("(", 0, i))
    closed = max(chinese.rfind("）", 0, i), chinese.rfind(")", 0, i))
    if opened > closed:
        ends = [k for k in (chinese.find("）", j), chinese.find(")", j)) if k >= 0]
        if ends and rx.search(chinese[j: min(ends)]):
            return True
    line = chinese[chinese.rfind("\n", 0, i) + 1:].split("\n", 1)[0]
    return line.lstrip().startswith("|") and bool(rx.search(line))


def term_problems(english_cells: list[str], translated_cells: list[str],
                  terms: list[tuple[str, str]]) -> list[str]:
    """For every glossary term the English notebook uses, the translation's first use of the
    Chinese term must carry the English term in parentheses: 对比学习（contrastive learning）. A use
    in a heading counts when it does; a heading without it (a title) defers to the next use."""
    english = _plain("\n\n".join(english_cells))
    chinese = _plain("\n\n".join(translated_cells))
    problems = []
    for en, zh in terms:
        if not _english_regex(en).search(english):
            continue
        uses = [m.start() for m in re.finditer(re.escape(zh), chinese)]
        if not uses:
            problems.append(f"{zh} ({en}): the English notebook uses '{en}', the translation never says {zh}")
            continue
        for i in uses:
            heading = chinese[chinese.rfind("\n", 0, i) + 1:].lstrip().startswith("#")
            if _introduced(chinese, i, zh, en):
                break
            if not heading:
                problems.append(f"{zh} ({en}): first use «{chinese[max(0, i - 20): i + len(zh) + 20].strip()}» "
                                f"should read {zh}（{en}）")
                break
        else:
            problems.append(f"{zh} ({en}): used only in headings, never introduced as {zh}（{en}）")
    return problems


# --------------------------------------------------------------------------------------------
# check


def catalog_problems(stem: str, lang: str, notebooks: Path = NOTEBOOKS,
                     terms: list[tuple[str, str]] | None = None) -> list[str]:
    """Everything wrong with one notebook's catalog and generated notebook ([] when all is well)."""
    english_path = notebooks / f"{stem}.ipynb"
    path = catalog_path(stem, lang, notebooks)
    if not english_path.exists():
        return [f"{path.name}: no English notebook {english_path.name} (remove the catalog)"]
    cat = read_catalog(path)
    nb = _read_json(english_path)
    want = markdown_cells(nb)
    by_id = {m.id: m for m in entries(cat)}
    problems = []
    for src in want:
        m = by_id.get(src)
        first = src.strip().splitlines()[0][:70]
        if m is None:
            problems.append(f"missing entry (English cell new or changed; run make translations): «{first}»")
        elif m.fuzzy:
            problems.append(f"fuzzy entry (the English cell changed; update the translation, then "
                            f"remove the fuzzy flag): «{first}»")
        elif not m.string.strip():
            problems.append(f"untranslated entry: «{first}»")
        else:
            problems += [f"«{first}»: {p}" for p in structure_problems(src, m.string)]
    for msgid in sorted(set(by_id) - set(want)):
        problems.append(f"obsolete entry (no such English cell; run make translations): "
                        f"«{msgid.strip().splitlines()[0][:70]}»")
    if not problems:  # the terms rule reads the finished translation
        translated = [by_id[s].string for s in want]
        problems += term_problems(want, translated, glossary_terms(notebooks) if terms is None else terms)
        if stem == GLOSSARY_NOTEBOOK and glossary_table("\n\n".join(translated)) != glossary_table("\n\n".join(want)):
            problems.append("the glossary table's English and 中文 columns differ from the English glossary's "
                            "(one bilingual term list: translate the third column only)")
    dest = translated_path(stem, lang, notebooks)
    if not dest.exists():
        problems.append(f"{dest.relative_to(notebooks.parent)} missing: run make translations")
    elif dest.read_text(encoding="utf-8") != built_text(stem, lang, notebooks):
        problems.append(f"{dest.relative_to(notebooks.parent)} differs from what build writes: run make translations")
    return [f"{path.relative_to(notebooks.parent)}: {p}" for p in problems]


def orphan_notebooks(lang: str, notebooks: Path = NOTEBOOKS) -> list[Path]:
    """Generated notebooks in ``notebooks/<lang>/`` whose catalog is gone."""
    have = catalogs(lang, notebooks)
    folder = notebooks / lang
    return [p for p in sorted(folder.glob("*.ipynb")) if p.stem not in have] if folder.is_dir() else []


# --------------------------------------------------------------------------------------------
# command line


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("command", choices=["update", "build", "check", "init"])
    p.add_argument("stems", nargs="*", help="notebooks (NN_topic); default: every one with a catalog")
    p.add_argument("--lang", default=None, help=f"one language (default: {', '.join(LANGUAGES)})")
    p.add_argument("--notebooks", type=Path, default=NOTEBOOKS)
    args = p.parse_args(argv)
    notebooks = args.notebooks
    langs = [args.lang] if args.lang else list(LANGUAGES)
    stems = [Path(s).stem for s in args.stems]

    if args.command == "init":
        if not stems:
            p.error("init needs the notebook(s): init NN_topic")
        for lang in langs:
            for stem in stems:
                print(f"{init_catalog(stem, lang, notebooks).relative_to(notebooks.parent)}: new catalog")
        return 0

    status = 0
    english = {e.stem: e for e in english_notebooks(notebooks)}
    for lang in langs:
        have = catalogs(lang, notebooks)
        todo = [s for s in (stems or list(have)) if s in have]
        for s in stems:
            if s not in have:
                print(f"{s}: no {lang} catalog (not yet translated; start one with init {s})")
        if args.command == "update":
            for stem in todo:
                if stem not in english:
                    print(f"{have[stem]}: no English notebook {stem}.ipynb", file=sys.stderr)
                    status = 1
                    continue
                n = update_catalog(have[stem], english[stem], lang)
                print(f"{have[stem].relative_to(notebooks.parent)}: {n['translated']} translated, "
                      f"{n['fuzzy']} fuzzy, {n['untranslated']} untranslated, {n['dropped']} dropped")
        elif args.command == "build":
            for stem in todo:
                if stem in english:
                    print(f"{build_one(stem, lang, notebooks).relative_to(notebooks.parent)}")
            if not stems:
                for orphan in orphan_notebooks(lang, notebooks):
                    orphan.unlink()
                    print(f"{orphan.relative_to(notebooks.parent)}: removed (no catalog)")
        else:  # check
            terms = glossary_terms(notebooks)
            problems = []
            for stem in todo:
                problems += catalog_problems(stem, lang, notebooks, terms)
            problems += [f"{o.relative_to(notebooks.parent)}: generated notebook without a catalog"
                         for o in orphan_notebooks(lang, notebooks)]
            missing = [s for s in english if s not in have]
            for line in problems:
                print(line)
            print(f"{lang}: {len(todo)} catalog(s) checked, {len(problems)} problem(s)"
                  + (f"; not yet translated: {', '.join(missing)}" if missing else ""))
            status = status or int(bool(problems))
    return status


if __name__ == "__main__":
    sys.exit(main())
