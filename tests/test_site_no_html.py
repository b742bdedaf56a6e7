"""No HTML is made in Python: every page is a jinja2 template with autoescape.

The syntax tree of every module of the reconciler package is walked for string
constants that hold an HTML tag (an HTML element's name after `<` or `</`) or an
HTML entity (docstrings are prose and may show markup), and for escaping of its
own: a function named like an escaper, a call of markupsafe's, html's or
xml.sax.saxutils' escape, and `str.replace` of `<`, `>`, `&` or a quote by an
entity. A check that sees nothing proves little, so the checker is also run on a
snippet that does each of these.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "reconciler"

# The elements of HTML. A tag is `<name` with an attribute, `<name/>`, `</name>`, or
# `<name>` of an element no message writes as a placeholder ("<data>", "<time>" or
# "<slot>" are placeholders in messages; "<td>" never is).
ELEMENTS = [
    "a",
    "abbr",
    "address",
    "area",
    "article",
    "aside",
    "audio",
    "b",
    "base",
    "bdi",
    "bdo",
    "blockquote",
    "body",
    "br",
    "button",
    "canvas",
    "caption",
    "cite",
    "code",
    "col",
    "colgroup",
    "data",
    "datalist",
    "dd",
    "del",
    "details",
    "dfn",
    "dialog",
    "div",
    "dl",
    "dt",
    "em",
    "embed",
    "fieldset",
    "figcaption",
    "figure",
    "footer",
    "form",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "head",
    "header",
    "hgroup",
    "hr",
    "html",
    "i",
    "iframe",
    "img",
    "input",
    "ins",
    "kbd",
    "label",
    "legend",
    "li",
    "link",
    "main",
    "map",
    "mark",
    "meta",
    "meter",
    "nav",
    "noscript",
    "object",
    "ol",
    "optgroup",
    "option",
    "output",
    "p",
    "picture",
    "pre",
    "progress",
    "q",
    "rp",
    "rt",
    "ruby",
    "s",
    "samp",
    "script",
    "section",
    "select",
    "small",
    "source",
    "span",
    "strong",
    "style",
    "sub",
    "summary",
    "sup",
    "svg",
    "table",
    "tbody",
    "td",
    "template",
    "textarea",
    "tfoot",
    "th",
    "thead",
    "time",
    "title",
    "tr",
    "track",
    "u",
    "ul",
    "var",
    "video",
    "wbr",
]
NEVER_PLACEHOLDERS = [
    "a",
    "b",
    "br",
    "div",
    "em",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "html",
    "li",
    "ol",
    "p",
    "pre",
    "script",
    "span",
    "strong",
    "style",
    "table",
    "tbody",
    "td",
    "tfoot",
    "th",
    "thead",
    "tr",
    "ul",
]
_NAMES = "|".join(ELEMENTS)
TAG = re.compile(
    rf"<\s*({_NAMES})(\s[^<>]*)?/>"  # self-closing
    rf"|<\s*({_NAMES})\s+[a-zA-Z-]+\s*="  # opening, with an attribute
    rf"|</\s*({_NAMES})\s*>"  # closing
    rf"|<({'|'.join(NEVER_PLACEHOLDERS)})>",  # opening, of an element no placeholder names
    re.IGNORECASE,
)
ENTITY = re.compile(r"&(#[0-9]+|#x[0-9a-fA-F]+|[a-zA-Z][a-zA-Z0-9]*);")
ESCAPER_NAMES = {
    "esc",
    "escape",
    "html_escape",
    "escape_html",
    "htmlescape",
    "xml_escape",
    "escape_xml",
    "quote_html",
}
ESCAPE_MODULES = {"markupsafe", "html", "xml.sax.saxutils", "cgi"}
HTML_SPECIAL = {"<", ">", "&", '"', "'"}


def docstrings(tree: ast.AST) -> set[int]:
    """id() of the string constants that are docstrings."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                found.add(id(body[0].value))
    return found


def escape_imports(tree: ast.AST) -> set[str]:
    """Local names bound to an escape function of ESCAPE_MODULES, and those modules."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module in ESCAPE_MODULES:
            names.update(a.asname or a.name for a in node.names if a.name == "escape")
        elif isinstance(node, ast.Import):
            names.update(
                a.asname or a.name.split(".")[0] for a in node.names if a.name in ESCAPE_MODULES
            )
    return names


def dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{dotted(node.value)}.{node.attr}"
    return ""


def problems(source: str) -> list[str]:
    """What makes or escapes HTML in Python, as "line N: what"."""
    tree = ast.parse(source)
    skip = docstrings(tree)
    imported = escape_imports(tree)
    found: list[tuple[tuple[int, int], str]] = []
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        place = (line, getattr(node, "col_offset", 0))
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            for pattern, what in ((TAG, "an HTML tag"), (ENTITY, "an HTML entity")):
                match = pattern.search(node.value)
                if match:
                    found.append((place, f"line {line}: {what} {match.group(0)!r}"))
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            if node.name.lstrip("_").lower() in ESCAPER_NAMES:
                found.append((place, f"line {line}: an escaping function {node.name}()"))
        elif isinstance(node, ast.Call):
            name = dotted(node.func)
            head = name.split(".")[0]
            if name in imported or (
                name.endswith("escape")
                and (head in imported or name.startswith(("Markup.", "markupsafe.")))
            ):
                found.append((place, f"line {line}: a call of {name}()"))
            elif name.endswith(".replace") and node.args:
                first = node.args[0]
                second = node.args[1] if len(node.args) > 1 else None
                if isinstance(first, ast.Constant) and first.value in HTML_SPECIAL:
                    entity = (
                        isinstance(second, ast.Constant)
                        and isinstance(second.value, str)
                        and ENTITY.search(second.value)
                    )
                    if first.value in "<>&" or entity:
                        found.append((place, f"line {line}: .replace({first.value!r}, ...)"))
    return [what for _, what in sorted(found)]


def test_the_checker_sees_what_it_forbids() -> None:
    source = (
        '"""A docstring may show <b>markup</b> &amp; entities."""\n'
        "import html\n"
        "from markupsafe import Markup, escape\n"
        "from markupsafe import escape as e2\n"
        "def esc(text):\n"
        "    return text\n"
        "def _escape_html(text):\n"
        "    return text\n"
        "def f(x):\n"
        "    a = '<td class=\"x\">'\n"
        "    b = f'</span>{x}'\n"
        "    c = '&mdash;'\n"
        "    escape(x); e2(x); html.escape(x); Markup.escape(x)\n"
        "    x.replace('<', '&lt;'); x.replace('\"', '&quot;')\n"
        "    ok = ['a < b', 'x <= y', '<branch>/<arch>', '<embedded defaults>', 'R&D']\n"
        "    ok2 = x.replace('\\\\', '\\\\\\\\').replace('\"', '\\\\\"')\n"
        "    return ok, ok2\n"
    )
    assert problems(source) == [
        "line 5: an escaping function esc()",
        "line 7: an escaping function _escape_html()",
        "line 10: an HTML tag '<td class='",
        "line 11: an HTML tag '</span>'",
        "line 12: an HTML entity '&mdash;'",
        "line 13: a call of escape()",
        "line 13: a call of e2()",
        "line 13: a call of html.escape()",
        "line 13: a call of Markup.escape()",
        "line 14: .replace('<', ...)",
        "line 14: an HTML entity '&lt;'",
        "line 14: .replace('\"', ...)",
        "line 14: an HTML entity '&quot;'",
    ]


def test_no_module_of_the_package_makes_or_escapes_html() -> None:
    modules = sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)
    assert len(modules) > 50
    found = []
    for path in modules:
        found += [
            f"{path.relative_to(ROOT)}: {p}" for p in problems(path.read_text(encoding="utf-8"))
        ]
    assert found == []


def test_the_site_templates_are_where_the_html_is() -> None:
    """The HTML that left Python is in the templates: the package page and the grid
    have their own macros, rendered with autoescape."""
    templates = ROOT / "site_templates"
    assert "{% macro package_page(" in (templates / "_package.html").read_text(encoding="utf-8")
    grid = (templates / "_grid.html").read_text(encoding="utf-8")
    for macro in ("cells", "grid_rows", "grid_table"):
        assert "{% macro " + macro + "(" in grid
    assert "autoescape=jinja2.select_autoescape" in (PACKAGE / "site" / "writer.py").read_text()
    for path in templates.glob("*.html"):
        assert "|safe" not in path.read_text(encoding="utf-8"), f"{path.name} bypasses escaping"
