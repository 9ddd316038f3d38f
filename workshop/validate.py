"""nbgrader's Validate button with a summary first: a Jupyter server extension for the student lab (`make lab`).

It answers Validate as nbgrader does (its handler, its Validator, the notebook run from top to bottom) and puts one
entry before the failed cells: how many exercises pass their visible tests, the points those are worth, and the
first failure's message, which is what to fix next. The lab turns nbgrader's own validate extension off and this
one on (lab/student/jupyter_server_config.py).
"""

import html
import re

from jupyter_server.utils import url_path_join
from nbgrader import utils
from nbgrader.server_extensions.validate_assignment import handlers
from nbgrader.validator import Validator

SUMMARY = "Summary"
HIDE_FIRST_LABEL = "<style>#validation-message > div:first-child > p { display: none; }</style>"


def exercise_of(grade_id: str) -> str:
    """The exercise a test cell belongs to: test cells are named EXERCISE-test..."""
    return re.sub(r"-test.*$", "", grade_id)


def last_line(cell) -> str:
    """The error a cell ended with, as one line (no traceback): 'Name: message'."""
    for output in cell.get("outputs", []):
        if output.output_type == "error":
            return f"{output.ename}: {output.evalue}"
    return "it did not pass"


def summarise(nb) -> dict:
    """Per exercise, whether its visible tests passed, and the points at stake; the first failure's message."""
    points: dict[str, float] = {}
    failing: dict[str, str] = {}
    for cell in nb.cells:
        if not (utils.is_grade(cell) and not utils.is_solution(cell)):
            continue
        exercise = exercise_of(cell.metadata["nbgrader"]["grade_id"])
        points[exercise] = points.get(exercise, 0.0) + float(cell.metadata["nbgrader"].get("points", 0))
        score, most = utils.determine_grade(cell)
        if score is not None and score < most and exercise not in failing:
            failing[exercise] = last_line(cell)
    passing = [e for e in points if e not in failing]
    return {"exercises": len(points), "passing": passing, "failing": failing,
            "points": sum(points[e] for e in passing), "total": sum(points.values())}


def summary_entry(found: dict) -> dict:
    """The entry the Validate dialog shows first (its `error` is rendered as HTML)."""
    head = (f"{len(found['passing'])} of {found['exercises']} exercises pass their visible tests: "
            f"{found['points']:g} of {found['total']:g} points, if the hidden checks run at grading agree.")
    if found["failing"]:
        exercise, message = next(iter(found["failing"].items()))
        more = [e for e in found["failing"] if e != exercise]
        text = f"Fix first: {exercise}. {message}" + (f"\nStill failing after it: {', '.join(more)}." if more else "")
    else:
        text = "Every exercise passes its visible tests."
    return {"source": f"{SUMMARY}: {head}", "error": HIDE_FIRST_LABEL + html.escape(text), "raw_error": text}


class SummaryValidator(Validator):
    """nbgrader's Validator that also keeps the executed notebook and adds the summary to failed results."""

    def _get_failed_cells(self, nb):
        self.executed = nb
        return super()._get_failed_cells(nb)

    def validate(self, filename: str) -> dict:
        results = super().validate(filename)
        if "failed" in results:
            results["failed"].insert(0, summary_entry(summarise(self.executed)))
        return results


class SummaryHandler(handlers.ValidateAssignmentHandler):
    """nbgrader's validate endpoint, answered by SummaryValidator."""

    def validate_notebook(self, path):
        original = handlers.Validator
        handlers.Validator = SummaryValidator  # the one name nbgrader's handler looks up to build its validator
        try:
            return super().validate_notebook(path)
        finally:
            handlers.Validator = original


def _load_jupyter_server_extension(serverapp) -> None:
    webapp = serverapp.web_app
    webapp.settings["root_dir"] = serverapp.root_dir
    base = webapp.settings["base_url"]
    webapp.add_handlers(".*$", [(url_path_join(base, "/assignments/validate"), SummaryHandler),
                                (url_path_join(base, "/nbgrader_version"), handlers.NbGraderVersionHandler)])
