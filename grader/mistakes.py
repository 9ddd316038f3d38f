"""docs/common-mistakes.md, written from the mutation gate's fixtures: for every exercise, the plausible wrong answers
the tests are proven to catch (grader/fixtures/*/wrong.py) and the other ways of writing it that score full
(right.py). `python -m grader.mistakes` writes the page; `--check` fails when it is out of date."""

import argparse
import re
import sys

import nbformat

from grader.mutants import RIGHT, WRONG, answers
from grader.release import REPO, SOLUTIONS, assignments

PAGE = REPO / "docs" / "common-mistakes.md"
HEADING = re.compile(r"^#+\s*✏️\s*Exercise\s+(?P<k>\d+)\s*[—–-]\s*(?P<title>.+?)\s*"
                     r"(\((?P<points>[\d.]+) points?\))?\s*$", re.MULTILINE)


def exercises(assignment: str) -> list[dict]:
    """Each exercise in notebook order: its solution cell's grade_id, the heading above it (number, title and the
    points it announces) and the points its test cells carry."""
    notebook = nbformat.read(SOLUTIONS / assignment / f"{assignment}.ipynb", as_version=4)
    found, heading = [], None
    for cell in notebook.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "markdown" and (found_heading := HEADING.search(cell.source)):
            heading = found_heading
        elif meta.get("solution"):
            found.append({"grade_id": meta["grade_id"], "number": heading and int(heading["k"]),
                          "title": heading["title"] if heading else meta["grade_id"],
                          "announced": heading and heading["points"] and float(heading["points"]), "points": 0.0})
            heading = None
        elif meta.get("grade") and found and meta.get("grade_id", "").startswith(found[-1]["grade_id"] + "-test"):
            found[-1]["points"] += float(meta.get("points", 0))
    return found


def render() -> str:
    lines = ["# Common mistakes, exercise by exercise", "",
             "Written by `python -m grader.mistakes` from the mutation gate's fixtures (`grader/fixtures/`); do not "
             "edit by hand.", "",
             "Each mistake is a plausible wrong answer that the mutation gate grades through the real grading path "
             "(sandbox, hidden checks decided outside the student's kernel) and proves to lose points on its own "
             "exercise; each alternative is a correct answer written another way that it proves to score full "
             f"marks. `make test` grades the first {WRONG} mistakes and {RIGHT} alternatives of every exercise; those "
             "marked * only `python -m grader.mutants --every` does. Use the list when you walk the room during "
             "the exercises, and when you review a submission by hand.", ""]
    for assignment in assignments():
        lines += [f"## {assignment}", ""]
        wrong, right = answers(assignment, correct=False), answers(assignment, correct=True)
        for exercise in exercises(assignment):
            grade_id = exercise["grade_id"]
            lines += [f"### {exercise['number']}. {exercise['title']} (`{grade_id}`, {exercise['points']:g} points)",
                      "", "Mistakes the tests catch:"]
            lines += [f"- {a.why}{' *' if a.k > WRONG else ''}" for a in wrong if a.grade_id == grade_id]
            lines += ["", "Also full marks:"]
            lines += [f"- {a.why}{' *' if a.k > RIGHT else ''}" for a in right if a.grade_id == grade_id]
            lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when docs/common-mistakes.md is out of date")
    args = parser.parse_args(argv)
    page = render()
    if args.check:
        if not PAGE.exists() or PAGE.read_text() != page:
            print(f"{PAGE.relative_to(REPO)} is out of date: run python -m grader.mistakes", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(page)
    print(f"wrote {PAGE.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
