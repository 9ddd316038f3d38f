"""The grader's side of the hidden checks (workshop.grading): probes in, verdicts out.

- `hidden(source)` reads each graded test cell's probe and check from a source notebook;
- `probe_cells(...)` are the cells a graded run appends (the probes, after every other cell);
- `collect(nb)` takes their data out of an executed notebook, as JSON, and removes them;
- `python -m grader.verdicts SOURCE REFERENCE.probes.json RUN...` decodes the data and runs the checks, in a
  process of its own where no student code has run: RUN.probes.json in, RUN.verdicts.json out. Data that is missing or
  malformed fails its check.
"""

import ast
import json
import re
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

from workshop.grading import CHECK_GLOBALS, MIME, Malformed, decode

HIDDEN = re.compile(r"^[ \t]*### BEGIN HIDDEN TESTS.*?^[ \t]*### END HIDDEN TESTS[^\n]*\n?", re.MULTILINE | re.DOTALL)
PROBE = "probe"  # the metadata key (under "workshop") of an appended probe cell: its grade_id
CHECK_SECONDS = 120


@dataclass(frozen=True)
class Hidden:
    """One graded test cell's hidden part: the probe's source (sent to the kernel) and the check's (never)."""

    grade_id: str
    probe: str
    check: str


def _block(source: str) -> str:
    """The text inside a cell's ### BEGIN/END HIDDEN TESTS markers."""
    found = HIDDEN.search(source)
    return "\n".join(found.group(0).splitlines()[1:-1]) if found else ""


def hidden(source) -> list[Hidden]:
    """Every graded test cell's probe and check, in notebook order; a test cell without both is an error."""
    found = []
    for cell in source.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if not (cell.cell_type == "code" and meta.get("grade") and not meta.get("solution")):
            continue
        text, grade_id = _block(cell.source), meta["grade_id"]
        body = ast.parse(text).body
        functions = {node.name: ast.get_source_segment(text, node) for node in body
                     if isinstance(node, ast.FunctionDef)}
        calls = [ast.unparse(node) for node in body if not isinstance(node, ast.FunctionDef)]
        if set(functions) != {"probe", "check"} or calls != ["workshop.hidden_checks(probe, check)"]:
            raise ValueError(f"{grade_id}: the hidden part must be `def probe()`, `def check(got, want)` and "
                             f"`workshop.hidden_checks(probe, check)`, nothing else (see workshop.grading)")
        found.append(Hidden(grade_id, functions["probe"], functions["check"]))
    return found


def without_hidden(source: str) -> str:
    """A cell's source without its hidden part: what a kernel runs of a test cell."""
    return HIDDEN.sub("", source)


def probe_cells(checks: list[Hidden]) -> list:
    """Code cells that run each probe in the student's namespace and display its data."""
    return [nbformat.v4.new_code_cell(f"{h.probe}\n\n\n__import__('workshop.grading').grading.emit({h.grade_id!r}, "
                                      "probe)\n", metadata={"workshop": {PROBE: h.grade_id}})
            for h in checks]


def is_probe(cell) -> bool:
    return PROBE in cell.get("metadata", {}).get("workshop", {})


def collect(nb) -> dict[str, dict]:
    """grade_id -> {"data": JSON} or {"error": why} from the probe cells of an executed notebook, which are
    removed. Only the first probe display of each probe cell counts, and only for its own grade_id."""
    found = {}
    for cell in [c for c in nb.cells if is_probe(c)]:
        grade_id = cell.metadata["workshop"][PROBE]
        shown = [o.get("data", {}).get(MIME) for o in cell.get("outputs", []) if o.get("output_type") == "display_data"
                 and MIME in o.get("data", {})]
        errors = [f"{o.get('ename')}: {o.get('evalue')}" for o in cell.get("outputs", [])
                  if o.get("output_type") == "error"]
        if shown and isinstance(shown[0], dict) and shown[0].get("grade_id") == grade_id:
            found[grade_id] = {k: v for k, v in shown[0].items() if k in ("data", "error")}
        else:
            found[grade_id] = {"error": errors[0] if errors else "the probe gave nothing back"}
    nb.cells = [c for c in nb.cells if not is_probe(c)]
    return found


def _timeout(signum, frame):
    raise TimeoutError(f"the check took over {CHECK_SECONDS} s")


def verdict(check, got: dict | None, want: dict) -> tuple[bool, str]:
    """Run one check on a student's probe result against the solution's: (passed, why not)."""
    if not got or "data" not in got:
        return False, f"no answer could be read from your notebook: {(got or {}).get('error', 'nothing came back')}"
    signal.signal(signal.SIGALRM, _timeout)
    signal.alarm(CHECK_SECONDS)
    try:
        check(decode(got["data"]), decode(want["data"]))
        return True, ""
    except Malformed as error:
        return False, f"your notebook's answers came back malformed: {error}"
    except Exception as error:  # noqa: BLE001 - every failure of a check is a failed test
        return False, f"{type(error).__name__}: {error}".strip()[:2000]
    finally:
        signal.alarm(0)


def checks_of(source) -> dict[str, object]:
    """grade_id -> the check function, compiled with CHECK_GLOBALS only."""
    found = {}
    for h in hidden(source):
        space = dict(CHECK_GLOBALS)
        exec(compile(h.check, f"<hidden check of {h.grade_id}>", "exec"), space)  # noqa: S102 - the instructor's
        found[h.grade_id] = space["check"]
    return found


def main(argv: list[str]) -> int:
    source, reference, runs = nbformat.read(argv[0], as_version=4), json.loads(Path(argv[1]).read_text()), argv[2:]
    checks = checks_of(source)
    for grade_id, want in reference.items():
        if "data" not in want:
            raise SystemExit(f"the solution's own probe of {grade_id} failed: {want.get('error')}")
    for run in runs:
        try:
            got = json.loads(Path(f"{run}.probes.json").read_text())
        except (OSError, ValueError):
            got = {}
        found = {grade_id: verdict(check, got.get(grade_id) if isinstance(got, dict) else None, reference[grade_id])
                 for grade_id, check in checks.items()}
        Path(f"{run}.verdicts.json").write_text(json.dumps(found))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
