"""notebooks/ is exactly what nbgrader makes from solutions/, carries no outputs, and gives nothing away."""

import re

import nbformat
import pytest

from grader.release import MARKER, REPO, SOLUTIONS, assignments, generate

RELEASED = REPO / "notebooks"
HIDDEN = re.compile(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", re.DOTALL)
SOLUTION_REGION = re.compile(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", re.DOTALL)


@pytest.fixture(scope="module")
def fresh_release(tmp_path_factory):
    destination = tmp_path_factory.mktemp("release")
    generate(destination)
    return destination


def notebooks_in(folder):
    return sorted(p.relative_to(folder) for p in folder.glob("*/*.ipynb"))


def graded_cells(path):
    return {c.metadata["nbgrader"]["grade_id"]: c for c in nbformat.read(path, as_version=4).cells
            if "nbgrader" in c.metadata}


def test_there_are_assignments():
    assert "01-backprop" in assignments()


def test_committed_release_is_exactly_what_nbgrader_generates(fresh_release):
    assert notebooks_in(RELEASED) == notebooks_in(fresh_release), "run `make release` and commit notebooks/"
    for name in notebooks_in(fresh_release):
        assert (RELEASED / name).read_bytes() == (fresh_release / name).read_bytes(), (
            f"notebooks/{name} differs from what nbgrader generates: run `make release` and commit it"
        )


@pytest.mark.parametrize("folder", [SOLUTIONS, RELEASED], ids=["solutions", "notebooks"])
def test_committed_notebooks_carry_no_outputs(folder):
    for name in notebooks_in(folder):
        for cell in nbformat.read(folder / name, as_version=4).cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, f"{name}: cell {cell.id} has outputs"


@pytest.mark.parametrize("assignment", assignments())
def test_release_contains_no_solution_code_and_no_hidden_tests(assignment):
    source = graded_cells(SOLUTIONS / assignment / f"{assignment}.ipynb")
    released = graded_cells(RELEASED / assignment / f"{assignment}.ipynb")
    assert source.keys() == released.keys()
    text = nbformat.read(RELEASED / assignment / f"{assignment}.ipynb", as_version=4)
    assert "BEGIN SOLUTION" not in str(text) and "HIDDEN TESTS" not in str(text)
    for grade_id, cell in source.items():
        secret = SOLUTION_REGION.findall(cell.source) + HIDDEN.findall(cell.source)
        visible = MARKER.sub("", HIDDEN.sub("", SOLUTION_REGION.sub("", cell.source))).splitlines()
        lines = {line.strip() for region in secret for line in region.splitlines()} - {""}
        shown = {line.strip() for line in released[grade_id].source.splitlines()}
        leaked = sorted(lines - {v.strip() for v in visible} & shown)
        assert not leaked, f"{assignment}/{grade_id} leaks solution or hidden-test lines: {leaked}"
    assert any(SOLUTION_REGION.search(c.source) for c in source.values()), "no solution regions found"
    assert any(HIDDEN.search(c.source) for c in source.values()), "no hidden tests found"
