"""grader.reuse: a test or notebook that passed (or skipped) is not run again while its inputs are the same; a change
to them, a failure, or WORKSHOP_FRESH=1 runs it again; under xdist (nbval's two at a time) too."""

import os
import re
import subprocess
import sys

import nbformat

from grader.release import REPO

TESTS = '''
import pytest

@pytest.mark.reusable("{folder}/input.txt")
def test_reads_its_input():
    assert open("{folder}/input.txt").read()

@pytest.mark.reusable()
def test_fails():
    assert False

@pytest.mark.reusable()
def test_skips():
    pytest.skip("the same inputs skip it again")

def test_plain():
    pass
'''


def pytest_in(folder, *args, **variables):
    environment = {k: v for k, v in os.environ.items() if k not in ("WORKSHOP_FRESH", "KERAS_BACKEND")}
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "grader.reuse", "-p", "no:cacheprovider", "-v",
                           *args], cwd=folder, capture_output=True, text=True,
                          env={**environment, "PYTHONPATH": str(REPO), "XDG_CACHE_HOME": str(folder / "cache"),
                               **variables})
    return done.returncode, done.stdout


def ran(output: str) -> set[str]:
    """The tests that ran, from pytest -v's lines."""
    return set(re.findall(r"^\S+::(\w+) (?:PASSED|FAILED|SKIPPED)", output, re.MULTILINE))


def test_a_passed_test_is_not_run_again_until_an_input_changes(tmp_path):
    (tmp_path / "input.txt").write_text("first")
    (tmp_path / "test_x.py").write_text(TESTS.format(folder=tmp_path))
    code, output = pytest_in(tmp_path, "test_x.py")
    assert code == 1 and ran(output) == {"test_reads_its_input", "test_fails", "test_skips", "test_plain"}, output
    code, output = pytest_in(tmp_path, "test_x.py", WORKSHOP_REQUIRE_SANDBOX="1")  # it changes no result
    assert code == 1 and ran(output) == {"test_fails", "test_plain"}, output  # a failure is never kept
    assert "not run again" in output and "test_x.py::test_reads_its_input" in output
    assert ran(pytest_in(tmp_path, "test_x.py", WORKSHOP_FRESH="1")[1]) == {"test_reads_its_input", "test_fails",
                                                                            "test_skips", "test_plain"}
    assert "test_reads_its_input" in ran(pytest_in(tmp_path, "test_x.py", KERAS_BACKEND="torch")[1])
    (tmp_path / "input.txt").write_text("second")
    assert "test_reads_its_input" in ran(pytest_in(tmp_path, "test_x.py")[1])
    assert "test_reads_its_input" not in ran(pytest_in(tmp_path, "test_x.py")[1])
    (tmp_path / "test_x.py").write_text(TESTS.format(folder=tmp_path) + "\n# the test's own file changed\n")
    assert "test_reads_its_input" in ran(pytest_in(tmp_path, "test_x.py")[1])


def test_a_notebook_that_passed_under_xdist_is_not_run_again_and_the_run_still_succeeds(tmp_path):
    folder = tmp_path / "nb"
    folder.mkdir()
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")]), folder / "nb.ipynb")
    arguments = ("--nbval-lax", "-n", "2", "nb")
    code, output = pytest_in(tmp_path, *arguments)
    assert code == 0 and "1 passed" in output, output
    code, output = pytest_in(tmp_path, *arguments)
    assert code == 0 and "[0 items]" in output and "not run again" in output and "nb/nb.ipynb" in output, output
    (folder / "nb.ipynb").write_text((folder / "nb.ipynb").read_text().replace("x = 1", "x = 2"))
    code, output = pytest_in(tmp_path, *arguments)
    assert code == 0 and "1 passed" in output, output


def test_the_code_every_test_reads_leaves_out_the_fixtures_a_test_names_itself():
    from grader import reuse
    from grader.release import GRADER

    own = reuse._files("grader/*")
    assert GRADER / "reuse.py" in own and all(f.parent == GRADER for f in own)
    assert GRADER / "fixtures" / "01-backprop" / "wrong.py" in reuse._files("grader/fixtures/01-backprop")
