"""The student lab (`make lab`): the notebooks, nbgrader's Validate button and nothing of the instructor's."""

from pathlib import Path

c = get_config()  # noqa: F821 (provided by Jupyter when it loads this file)
NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"

c.ServerApp.root_dir = str(NOTEBOOKS)
if (NOTEBOOKS / "START.ipynb").exists():
    c.LabApp.default_url = "/lab/tree/START.ipynb"
# Formgrader and the exchange (assignment and course lists) are the instructor's; only Validate stays, answered by
# workshop.validate (nbgrader's own handler and validator, with a summary first) instead of nbgrader's extension.
# labconfig/page_config.json turns off their buttons and menus.
c.ServerApp.jpserver_extensions = {
    "nbgrader.server_extensions.formgrader": False,
    "nbgrader.server_extensions.assignment_list": False,
    "nbgrader.server_extensions.course_list": False,
    "nbgrader.server_extensions.validate_assignment": False,
    "workshop.validate": True,
}
