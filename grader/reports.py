"""The grading tool's reports, safe to open: the CSV, the text and HTML summaries, and the Markdown filter that
feedback and formgrader pages render with.

Student work reaches these pages as text, never as live markup: CSV cells that a spreadsheet would take for a
formula are quoted, and Markdown is rendered by nbconvert's own renderer, then cleaned with bleach to an allowlist
of tags, attributes and link schemes. (nbconvert's `sanitize_html` alone is not enough: nbgrader's feedback and
formgrade templates render Markdown cells without it, so a `javascript:` link or raw HTML in a student's Markdown
cell would be live there.)
"""

import base64
import csv
import html
import io
from pathlib import Path

import bleach
from jinja2 import pass_context
from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath

MARKUP_TAGS = {*bleach.ALLOWED_TAGS, "p", "h1", "h2", "h3", "h4", "h5", "h6", "img", "br", "hr", "pre", "span",
               "div", "table", "thead", "tbody", "tr", "th", "td", "del", "sub", "sup", "dl", "dt", "dd", "kbd"}
MARKUP_ATTRIBUTES = {"*": ["class", "id", "align", "title"], "a": ["href"], "img": ["src", "alt", "width", "height"],
                     "th": ["colspan", "rowspan"], "td": ["colspan", "rowspan"]}
SCHEMES = ("http", "https", "mailto")
OUTCOMES = {
    "graded": "executed to the end; each test scored by its hidden checks, run outside the kernel",
    "timed out": "a cell ran past --cell-timeout (or the notebook past --wall): later cells and the probes not run",
    "crashed": "the kernel died (or the tool could not grade it: tried twice, not kept)",
    "resource limit": "it broke a limit: memory, processes, CPU time, output or a full folder",
    "malformed notebook": "not a readable notebook, or its test cells' metadata is broken",
    "wrong assignment": "none of its graded cells belongs to this assignment",
    "refused": "not graded: a symbolic link, an oversized or unnamed archive member",
}


def _allowed_attribute(tag: str, name: str, value: str) -> bool:
    """bleach's attribute filter: the allowlist, and data: URLs only as the source of an image."""
    if name not in MARKUP_ATTRIBUTES.get(tag, []) + MARKUP_ATTRIBUTES["*"]:
        return False
    if name in ("href", "src") and ":" in value.split("/", 1)[0]:
        scheme = value.split(":", 1)[0].strip().lower()
        return scheme in SCHEMES or (tag, name, scheme) == ("img", "src", "data")
    return True


def clean_markup(text: str) -> str:
    """HTML with only the allowlisted tags, attributes and link schemes; anything else shown as text."""
    return bleach.clean(text, tags=MARKUP_TAGS, attributes=_allowed_attribute, protocols=[*SCHEMES, "data"])


@pass_context
def safe_markdown2html(context, source: str) -> str:
    """nbconvert's markdown2html filter (attachments included), then `clean_markup`. The course configuration
    installs it for every page nbgrader renders: feedback and formgrader."""
    attachments = context.get("cell", {}).get("attachments", {})
    rendered = MarkdownWithMath(renderer=IPythonRenderer(escape=False, attachments=attachments)).render(source)
    return clean_markup(rendered)


def histogram_png(values: list[float], most: float, title: str) -> str:
    """A small histogram as a base64 PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3.2, 2.2))
    ax.hist(values, bins=max(int(most), 1) + 1, range=(0, most + 1e-9) if most else None, color="#4477aa")
    ax.set(title=title, xlabel="points", ylabel="students")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def spreadsheet_safe(value):
    """A CSV cell that a spreadsheet shows as text: a leading = + - @ (or tab, carriage return) would start a
    formula, so such text gets a leading apostrophe. Numbers stay numbers."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def summarise(results: list, out: Path, assignment: str, sandbox: str) -> str:
    """Write grades.csv, summary.txt and summary.html; return the text summary. `sandbox` is the line that says
    how the kernels were confined; every report carries it."""
    exercises = sorted({e for r in results for e in r.exercises})
    with open(out / "grades.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["student", "score", "max_score", "outcome", "cell", "detail", "notes", "origin", "sandbox",
                         *exercises])
        for r in results:
            row = [r.student, r.score, r.max_score, r.outcome, "" if r.cell is None else r.cell, r.detail,
                   "; ".join(r.notes), r.origin, sandbox, *(r.exercises.get(e, 0.0) for e in exercises)]
            writer.writerow([spreadsheet_safe(value) for value in row])
    counts = {o: sum(r.outcome == o for r in results) for o in OUTCOMES}
    lines = [sandbox,
             f"{assignment}: {len(results)} submission{'s' * (len(results) != 1)}; "
             + ", ".join(f"{n} {o}" for o, n in counts.items() if n)]
    width = max((len(r.student) for r in results), default=7)
    for r in results:
        where = f" in cell {r.cell}" if r.cell is not None else ""
        why = f" ({r.detail})" if r.detail else ""
        notes = f"; {'; '.join(r.notes)}" if r.notes else ""
        lines.append(f"  {r.student:<{width}} {r.score:5.1f} / {r.max_score:4.1f}  {r.outcome}{where}{why}{notes}")
    text = "\n".join(lines)
    (out / "summary.txt").write_text(text + "\n")
    most = {e: max((r.exercise_max.get(e, 0.0) for r in results), default=0.0) for e in exercises}
    figures = "".join(
        f'<img alt="{html.escape(e)}" src="data:image/png;base64,'
        f'{histogram_png([r.exercises.get(e, 0.0) for r in results], most[e], e)}">'
        for e in exercises
    )
    rows = "".join(
        f"<tr><td>{html.escape(r.student)}</td><td>{r.score:g} / {r.max_score:g}</td><td>{html.escape(r.outcome)}</td>"
        f"<td>{'' if r.cell is None else r.cell}</td><td>{html.escape(r.detail)}</td>"
        f"<td>{html.escape('; '.join(r.notes))}</td></tr>"
        for r in results
    )
    (out / "summary.html").write_text(
        f"<!doctype html><meta charset='utf-8'><title>{html.escape(assignment)}</title>"
        f"<h1>{html.escape(assignment)}</h1><p><b>{html.escape(sandbox)}</b></p><p>{html.escape(lines[1])}</p>"
        f"<div>{figures}</div><table border=1 cellpadding=4><tr><th>student</th><th>score</th><th>outcome</th>"
        f"<th>cell</th><th>detail</th><th>notes</th></tr>{rows}</table>\n"
    )
    return text
