"""notebooks/START.ipynb, the page the lab opens on: markdown only, every assignment linked in teaching order,
every link working from notebooks/ (the lab's root)."""

import re
from pathlib import Path

import nbformat

from grader.release import REPO, assignments

PAGE = REPO / "notebooks" / "START.ipynb"
LINK = re.compile(r"\]\(([^)\s]+)\)")


def page():
    return nbformat.read(PAGE, as_version=4)


def links():
    return [target for cell in page().cells for target in LINK.findall(cell.source)]


def test_the_start_page_is_markdown_only():
    notebook = page()
    nbformat.validate(notebook)
    assert notebook.cells and all(cell.cell_type == "markdown" for cell in notebook.cells)


def test_every_assignment_is_linked_in_teaching_order():
    linked = [Path(t).parent.name for t in links() if t.endswith(".ipynb")]
    assert linked == assignments() == sorted(assignments())
    assert all(t == f"{Path(t).parent.name}/{Path(t).name}" for t in links() if t.endswith(".ipynb"))


def test_every_link_leads_to_a_file():
    for target in links():
        assert "://" not in target and not target.startswith("/"), f"{target}: links stay inside the lab"
        path = target.split("#")[0]
        # README.md and docs/ lie outside notebooks/; `make lab` links them in (they are ignored by git there)
        assert (REPO / "notebooks" / path).exists() or (REPO / path).exists(), f"{target} does not exist"


def test_the_page_says_how_to_switch_profile_and_check_work():
    text = "\n".join(cell.source for cell in page().cells)
    for needed in ('workshop.use_profile("quick")', "WORKSHOP_PROFILE", "Validate", "For instructors"):
        assert needed in text
