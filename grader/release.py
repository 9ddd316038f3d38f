"""Regenerate the student notebooks from the solutions with nbgrader: python -m grader.release [DESTINATION]."""

import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat

GRADER = Path(__file__).resolve().parent
REPO = GRADER.parent
SOLUTIONS = REPO / "solutions"
RELEASE = REPO / "notebooks"
COMMON = REPO / "lab" / "common"  # what both labs and every nbgrader command share: the course id, the exchange
MARKER = re.compile(r"^\s*### (BEGIN|END) SOLUTION\s*$\n?", re.MULTILINE)


def assignments() -> list[str]:
    """Assignment names: the folders solutions/NAME that hold NAME.ipynb."""
    return sorted(p.parent.name for p in SOLUTIONS.glob("*/*.ipynb") if p.stem == p.parent.name)


def nbgrader(*args: str, cwd: Path = GRADER, log_level: str = "WARN", **environment: str) -> None:
    """Run an nbgrader command with extra environment variables; from grader/ it reads grader/nbgrader_config.py.

    The environment's bin/ goes first on PATH: nbgrader runs its `alembic` from there. lab/common goes first on
    JUPYTER_CONFIG_PATH: it names the course and its exchange.
    """
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    config = os.pathsep.join(filter(None, [str(COMMON), os.environ.get("JUPYTER_CONFIG_PATH", "")]))
    env = {**os.environ, **environment, "PATH": path, "JUPYTER_CONFIG_PATH": config}
    subprocess.run([sys.executable, "-m", "nbgrader", *args, f"--log-level={log_level}"], cwd=cwd, env=env,
                   check=True)


def solution_cells(notebook) -> dict[str, str]:
    """Solution cells of a source notebook by grade_id, with the solution markers removed."""
    return {c.metadata["nbgrader"]["grade_id"]: MARKER.sub("", c.source)
            for c in notebook.cells if c.metadata.get("nbgrader", {}).get("solution")}


def fill(released, answers: dict[str, str]):
    """A copy of the released notebook whose solution cells hold `answers` (by grade_id)."""
    notebook = nbformat.from_dict(released)
    for cell in notebook.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in answers:
            cell.source = answers[grade_id]
    return notebook


def generate(destination: Path | None = None) -> None:
    """Write the student version of every assignment into notebooks/ (or into `destination`)."""
    where = [f"--CourseDirectory.release_directory={Path(destination).resolve()}"] if destination else []
    for name in assignments():
        nbgrader("generate_assignment", name, "--force", "--no-db", *where)


if __name__ == "__main__":
    generate(sys.argv[1] if len(sys.argv) > 1 else None)
    print(f"Released {', '.join(assignments())} into {sys.argv[1] if len(sys.argv) > 1 else 'notebooks/'}")
