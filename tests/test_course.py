"""What an instructor checks before adopting the course: the licences, the citation file, the guide (its links, its
run times against docs/timings.md, every notebook in it), the common-mistakes page in step with the fixtures, and
each exercise's heading announcing the points its tests carry."""

import re

import nbformat
import pytest
import yaml

from grader import mistakes
from grader.release import RELEASE, REPO, SOLUTIONS, assignments

GUIDE = REPO / "docs" / "instructor-guide.md"
LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_both_licences_are_there_and_named_in_the_readme():
    assert (REPO / "LICENSE").read_text().startswith("MIT License")
    content = (REPO / "LICENSE-CONTENT").read_text()
    assert content.startswith("Attribution 4.0 International") and "Section 1 -- Definitions." in content
    readme = (REPO / "README.md").read_text()
    assert "## Licence and how to cite" in readme and "CC BY 4.0" in readme and "MIT" in readme


def test_the_citation_file_names_the_course_and_both_licences():
    citation = yaml.safe_load((REPO / "CITATION.cff").read_text())
    assert citation["cff-version"] == "1.2.0" and citation["message"] and citation["title"]
    assert citation["authors"] and all("name" in a or "family-names" in a for a in citation["authors"])
    assert sorted(citation["license"]) == ["CC-BY-4.0", "MIT"]


@pytest.mark.parametrize("folder", [SOLUTIONS, RELEASE])
def test_every_notebook_states_its_licences_first(folder):
    for name in assignments():
        first = nbformat.read(folder / name / f"{name}.ipynb", as_version=4).cells[0]
        assert first.cell_type == "markdown" and "CC BY 4.0" in first.source and "MIT" in first.source, name


def test_the_guide_links_work_and_it_covers_every_notebook():
    text = GUIDE.read_text()
    for target in LINK.findall(text):
        if "://" not in target:
            assert (GUIDE.parent / target.split("#")[0]).exists(), f"{target} does not exist"
    for name in assignments():
        assert re.search(rf"\b{name[:2]}\b", text), f"the guide never mentions notebook {name[:2]}"
    assert "docs/instructor-guide.md" in (REPO / "README.md").read_text()


def test_the_guide_quotes_run_times_as_docs_timings_has_them():
    timings = (REPO / "docs" / "timings.md").read_text().replace(",", "")
    section = timings.split("## Notebooks: seconds per notebook")[1].split("\n## ")[0]
    rows = {line.split("|")[1].strip()[:2]: line for line in section.splitlines() if re.match(r"\| \d\d-", line)}
    guide = GUIDE.read_text().split("## Run times")[1].split("\n## ")[0]
    quoted = [line.split("|") for line in guide.splitlines() if re.match(r"\| \d\d ", line)]
    assert [cells[1].strip()[:2] for cells in quoted] == sorted(rows), "one row per notebook with measured times"
    for cells in quoted:
        number = cells[1].strip()[:2]
        for figure in re.findall(r"\d+(?:\.\d+)?", " ".join(cells[2:4]).replace(",", "")):
            assert figure in rows[number], f"notebook {number}: {figure} is not in docs/timings.md's row"


def test_common_mistakes_is_written_from_the_fixtures():
    assert mistakes.main(["--check"]) == 0, "run python -m grader.mistakes"


@pytest.mark.parametrize("assignment", assignments())
def test_each_exercise_announces_the_points_its_tests_carry(assignment):
    found = mistakes.exercises(assignment)
    assert found and [e["number"] for e in found] == list(range(1, len(found) + 1)), "exercises numbered 1, 2, ..."
    for exercise in found:
        assert exercise["announced"] == exercise["points"] > 0, exercise
