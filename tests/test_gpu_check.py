"""`make gpu-check` (grader.gpu_check) rehearsed on the CPU within small budgets, and the CI workflow linted."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

from grader import gpu_check
from grader.release import REPO, assignments

ACCOUNTED = ("passed", "stopped at the budget", "skipped (budget)")


def test_full_where_it_fits_and_quick_where_it_does_not():
    assert gpu_check.choose_profile("02-cnn", 480, []) == "full"  # 41.4 s on the CPU
    assert gpu_check.choose_profile("02-cnn", 40, []) == "quick"
    assert gpu_check.choose_profile("02-cnn", 60, ["03-regularization"]) == "quick"  # 41.4 + 37.3 set aside
    assert gpu_check.choose_profile("02-cnn", 80, ["03-regularization"]) == "full"
    assert gpu_check.choose_profile("06-resnet", 1e6, []) == "quick"  # its full profile was never measured
    assert gpu_check.choose_profile("12-ai-simulation", 1e6, []) == "quick"  # bigger on a GPU than measured
    assert gpu_check.choose_profile("06-resnet", 1, [], forced="full") == "full"
    assert gpu_check.choose_profile("02-cnn", 480, [], forced="quick") == "quick"
    assert set(gpu_check.EXPECTED) == set(gpu_check.ORDER) == set(assignments())


def test_the_dry_run_stops_at_its_budget_and_accounts_for_every_notebook(tmp_path):
    budget = 20
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "grader.gpu_check", "--only", "01-backprop", "09-xgboost",
                           "--budget", str(budget), "--profile", "quick", "--out", str(tmp_path)],
                          cwd=REPO, capture_output=True, text=True, timeout=budget + 60)
    took = time.monotonic() - start
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((tmp_path / "gpu-check.json").read_text())
    first, second = report["notebooks"]
    assert (first["notebook"], first["profile"], first["device"]) == ("01-backprop", "quick", "cpu")
    assert first["outcome"].startswith(("passed", "stopped at the budget")) and first["seconds"] > 0
    assert second["notebook"] == "09-xgboost" and second["outcome"].startswith(ACCOUNTED)
    assert report["elapsed_s"] <= budget + 3 and took <= budget + 20
    table = (tmp_path / "gpu-check.md").read_text()
    assert "| 01-backprop | quick |" in table and "| 09-xgboost |" in table and table in done.stdout


def notebook(folder: Path, name: str, *sources: str, graded: str = "") -> Path:
    nb = new_notebook(cells=[new_code_cell(s) for s in sources])
    if graded:
        nb.cells.insert(0, new_code_cell(graded, metadata={"nbgrader": {"grade": True, "solution": False}}))
    path = folder / f"{name}.ipynb"
    nbformat.write(nb, path)
    return path


def test_failures_and_missing_modules_are_reported_and_fail_only_what_ran(tmp_path, monkeypatch):
    fails = notebook(tmp_path, "fails", "x = 1", "raise ValueError('planted')")
    absent = notebook(tmp_path, "absent", "import numpy\nimport no_such_module_for_gpu_check")
    late = notebook(tmp_path, "late", "def f():\n    import no_such_module_at_run_time.sub\n\nf()")
    monkeypatch.setattr(gpu_check, "select", lambda only: [fails, absent, late])
    assert gpu_check.main(["--budget", "60", "--out", str(tmp_path)]) == 1
    report = json.loads((tmp_path / "gpu-check.json").read_text())
    outcomes = {r["notebook"]: r["outcome"] for r in report["notebooks"]}
    assert outcomes == {"fails": "failed: ValueError: planted (cell 2 of 2)",
                        "absent": "skipped: no module no_such_module_for_gpu_check",
                        "late": "skipped: no module no_such_module_at_run_time"}


def test_a_notebook_is_stopped_at_the_budget_and_the_rest_skipped(tmp_path):
    sleeps = notebook(tmp_path, "sleeps", "import time\ntime.sleep(60)", graded="print('the graded line')")
    after = notebook(tmp_path, "after", "print('never')")
    report = gpu_check.check([sleeps, after], budget=7, profile="quick", out=tmp_path)
    first, second = report["notebooks"]
    assert first["outcome"] == "stopped at the budget (cell 2 of 2)" and first["key_results"] == ["the graded line"]
    assert second["outcome"] == "skipped (budget)" and report["elapsed_s"] <= 7 + 3


def test_the_ci_workflow_passes_actionlint():
    binary = shutil.which("actionlint", path=os.pathsep.join([str(Path(sys.executable).parent),
                                                               os.environ.get("PATH", "")]))
    assert binary, "actionlint is missing: pip install -r requirements.txt"
    workflows = sorted(str(p) for p in (REPO / ".github" / "workflows").glob("*.yml"))
    assert workflows
    done = subprocess.run([binary, *workflows], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
