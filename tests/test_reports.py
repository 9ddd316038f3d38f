"""Reports carry student work as text, never as live markup or a spreadsheet formula (grader.reports)."""

import re

import pytest

from grader.reports import safe_markdown2html, spreadsheet_safe

ATTACKS = [
    "[x](javascript:alert(1))", "[x](JaVaScRiPt:alert(1))", "[x](java&#115;cript:alert(1))",
    "[x](<javascript:alert(1)>)",
    "[x][r]\n\n[r]: javascript:alert(1)", "<a href='javascript:alert(1)'>x</a>", "<img src=x onerror=alert(1)>",
    "<script>alert(1)</script>", "<svg onload=alert(1)>", "<iframe src='https://example.org'></iframe>",
    "<details open ontoggle=alert(1)>x</details>", "[x](data:text/html;base64,PHNjcmlwdD4=)",
    "```\nline\n\n<script>alert(1)</script>\n```", "<style>body{display:none}</style>",
]


def render(source: str) -> str:
    return safe_markdown2html({"cell": {}}, source)


@pytest.mark.parametrize("source", ATTACKS)
def test_markdown_from_a_student_renders_without_live_markup(source):
    page = render(source)
    assert not re.search(r"<(script|iframe|svg|style|details)\b", page, re.IGNORECASE), page
    assert not re.search(r"<[^>]*\son\w+\s*=", page, re.IGNORECASE), page
    assert not re.search(r"(href|src)\s*=\s*[\"']?\s*(javascript|data:text)", page, re.IGNORECASE), page


def test_the_course_markdown_still_renders():
    page = render("# Title\n\nSome *text*, `code`, [a link](https://example.org) and ![a plot](data:image/png;"
                  "base64,iVBORw0KGgo=)\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n$x^2$")
    for wanted in ("<h1", "<em>text</em>", "<code>code</code>", 'href="https://example.org"',
                   'src="data:image/png;base64,', "<table", "<td>1</td>", "$x^2$"):
        assert wanted in page, wanted


def test_spreadsheet_cells_never_start_a_formula():
    assert [spreadsheet_safe(v) for v in ("=1+1", "+1", "-x", "@SUM(A1)", "\tx", "fine", 3.5, -2.0)] == [
        "'=1+1", "'+1", "'-x", "'@SUM(A1)", "'\tx", "fine", 3.5, -2.0]
