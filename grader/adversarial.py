"""An adversarial class for the grading tool: python -m grader.adversarial ASSIGNMENT FOLDER OUT.

Writes one submission per cheat or failure into FOLDER, built from the released notebook with answers from the
solution (and from grader/fixtures/ASSIGNMENT/wrong.py), and returns what the grading tool must make of each.
"""

import ast
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

from grader.release import RELEASE, REPO, SOLUTIONS
from grader.roundtrip import fill, solution_cells, wrong_answers

# Wrong answers in wrong.py that still pass the visible tests: 01's visible tests use zero biases; 10's check the
# force-matching loss's value, which is right without create_graph, while the hidden ones check its gradient.
PASSES_VISIBLE = {"01-backprop": "forward", "10-energy-nets": "force-matching"}


@dataclass(frozen=True)
class Expected:
    student: str
    what: str
    outcome: str
    honest: bool = False  # may score full marks (a correct answer, whatever else it tried in vain)


def _functions(source: str) -> list[str]:
    return [n.name for n in ast.parse(source).body if isinstance(n, ast.FunctionDef)]


def _with_code(answers: dict[str, str], grade_id: str, before: str = "", after: str = "") -> dict[str, str]:
    return {**answers, grade_id: f"{before}{answers[grade_id]}{after}"}


def build_class(assignment: str, folder: Path, out: Path, other: str, server: str = "http://127.0.0.1:9"
                ) -> list[Expected]:
    """Write the class into `folder`; `out` is where it will be graded (the gradebook the cheats look for),
    `other` another assignment (for the wrong-notebook case), `server` a local URL the network cheat tries."""
    folder.mkdir(parents=True, exist_ok=True)
    released = nbformat.read(RELEASE / assignment / f"{assignment}.ipynb", as_version=4)
    right = solution_cells(nbformat.read(SOLUTIONS / assignment / f"{assignment}.ipynb", as_version=4))
    first = next(iter(right))
    wrong = {w.grade_id: w.source for w in wrong_answers(assignment)}
    name = _functions(right[first])[-1]
    test_id = next(c.metadata["nbgrader"]["grade_id"] for c in released.cells
                   if c.metadata.get("nbgrader", {}).get("grade_id", "").startswith(f"{first}-test"))
    loop_inside = f"\n\n\ndef {name}(*args, **kwargs):\n    while True:\n        pass\n"
    peek = (f"\nfor _path in ['{SOLUTIONS}/{assignment}/{assignment}.ipynb', '{out}/course/gradebook.db']:\n"
            "    with open(_path) as _f:\n        print(_f.read()[:100])\n")
    cheats = {
        "correct": ("the solution, honestly", "graded", True, right),
        "wrong-everywhere": ("a plausible wrong answer in every exercise", "graded", False, wrong),
        "loop-inside": (f"{name}() loops forever", "timed out", False, _with_code(right, first, after=loop_inside)),
        "loop-after": ("a correct definition, then a loop", "timed out", False,
                       _with_code(right, first, after="\nwhile True:\n    pass\n")),
        "ignores-interrupt": ("a loop that ignores SIGINT", "timed out", False, _with_code(right, first, after=(
            "\nimport signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass\n"))),
        "fork-bomb": ("forks until it cannot", "resource limit", False, _with_code(
            right, first, after="\nimport os\nwhile True:\n    os.fork()\n")),
        "memory-bomb": ("allocates memory until stopped", "resource limit", False, _with_code(
            right, first, after="\n_hog = []\nwhile True:\n    _hog.append(bytearray(1 << 26))\n")),
        "exits": ("os._exit() in the middle", "crashed", False,
                  _with_code(right, first, after="\nimport os\nos._exit(0)\n")),
        "network": ("fetches answers from a server", "graded", True, _with_code(right, first, after=(
            "\nimport urllib.request\ntry:\n"
            f"    print(urllib.request.urlopen('{server}/answers', timeout=5).read()[:20])\n"
            "except OSError as error:\n    print('no network:', error)\n"))),
        "reads-solutions": ("reads solutions/ and the gradebook instead of answering", "graded", False,
                            {**wrong, first: f"{peek}\n{right[first]}"}),
        "writes-outside": ("writes into the repository, HOME, /tmp and the other submissions", "graded", True,
                           _with_code(right, first, after=(
                               "\nimport os\n"
                               f"for _path in ['{REPO}/PWNED', '{folder}/PWNED', '/tmp/PWNED', "
                               "os.path.expanduser('~/../PWNED')]:\n"
                               "    try:\n        open(_path, 'w').write('x')\n"
                               "    except OSError as error:\n        print('cannot write', _path, error)\n"))),
        "always-equal": ("returns an object that equals everything", "graded", False, {**right, first: right[first] + (
            "\n\nclass _Anything:\n    def __eq__(self, other):\n        return True\n\n    __hash__ = None\n\n\n"
            f"def {name}(*args, **kwargs):\n    return _Anything()\n")}),
        "monkeypatch": ("wrong answers, and patches the test helpers", "tampering suspected", False, {**wrong, first: (
            wrong[first] + "\n\nimport numpy\nimport workshop.checks\nnumpy.testing.assert_allclose = print\n"
            "workshop.checks.check_close = print\ncheck_close = check_array = print\n")}),
        "output-flood": ("prints without end", "resource limit", False, _with_code(
            right, first, after="\nwhile True:\n    print('spam' * 25_000)\n")),
    }
    if assignment in PASSES_VISIBLE:
        grade_id = PASSES_VISIBLE[assignment]
        cheats["passes-visible"] = ("wrong, but passes the visible tests", "graded", False,
                                    {**right, grade_id: wrong[grade_id]})
    expected = []
    for student, (what, outcome, honest, answers) in cheats.items():
        nbformat.write(fill(released, answers), folder / f"{student}.ipynb")
        expected.append(Expected(student, what, outcome, honest))
    tampered = {
        "deletes-test": ("a wrong answer, and its test cell deleted", lambda cells: [
            c for c in cells if c.metadata.get("nbgrader", {}).get("grade_id") != test_id]),
        "edits-test": ("a wrong answer, and its test cell emptied", lambda cells: [
            {**c, "source": "pass"} if c.metadata.get("nbgrader", {}).get("grade_id") == test_id else c
            for c in cells]),
        "repoints-test": ("a wrong answer, and its test cell made ungraded", lambda cells: [
            {**c, "metadata": {**c.metadata, "nbgrader": {**c.metadata["nbgrader"], "grade": False, "points": 0}}}
            if c.metadata.get("nbgrader", {}).get("grade_id") == test_id else c for c in cells]),
    }
    for student, (what, change) in tampered.items():
        notebook = fill(released, {**right, first: wrong[first]})
        notebook.cells = [nbformat.from_dict(c) for c in change(notebook.cells)]
        nbformat.write(notebook, folder / f"{student}.ipynb")
        expected.append(Expected(student, what, "graded"))
    (folder / "malformed.ipynb").write_text(json.dumps(fill(released, right))[:-40])
    (folder / "empty.ipynb").write_bytes(b"")
    (folder / "wrong-notebook.ipynb").write_bytes((RELEASE / other / f"{other}.ipynb").read_bytes())
    expected += [Expected("malformed", "cut-off JSON", "malformed notebook"),
                 Expected("empty", "an empty file", "malformed notebook"),
                 Expected("wrong-notebook", f"the notebook of {other}", "wrong assignment")]
    return expected


if __name__ == "__main__":
    for e in build_class(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), other="02-cnn"):
        print(f"{e.student:<18} {e.outcome:<20} {e.what}")
