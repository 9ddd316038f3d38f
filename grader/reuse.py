"""A pytest plugin (loaded by the root conftest.py): what passed before with the same inputs is not run again.

A test marked `@pytest.mark.reusable("solutions/{assignment}", ...)` (the paths it reads besides the code every
test reads; `{name}` takes the test's parameter of that name), and every notebook that nbval runs, is keyed on
everything that can change its result: those files, the helper package, grader/'s own files (its fixtures only
where a test names them), requirements.txt, the labs' shared configuration, the data manifest and what lies in
data/cache, the test's own file, the installed packages, the Python, the cores, the sandbox found, and the
variables that choose a backend, a profile, threads or data.
When a test (or every cell of a notebook) passes, its key is kept in ~/.cache/workshop-grader/passed; a later run
with the same key deselects it and says so at the end. A failure keeps nothing; a skip is kept (it would skip
again: what it depends on is in the key).
WORKSHOP_FRESH=1 runs everything (.ci/run sets it: CI always runs the whole suite).
"""

import functools
import hashlib
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
from collections import Counter, defaultdict
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PASSED = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "workshop-grader" / "passed"
ALWAYS = ("workshop", "grader/*", "requirements.txt", "pyproject.toml", "conftest.py", "lab/common", "data/MANIFEST")
VARIABLES = ("WORKSHOP_", "KERAS_", "TF_", "CUDA_", "OMP_", "MKL_", "OPENBLAS_")  # prefixes of what can change a run
UNKEYED = ("WORKSHOP_FRESH", "WORKSHOP_REQUIRE_SANDBOX", "WORKSHOP_REQUIRE_BROWSER")  # they change no result
KEY = "reuse-key"  # a report's user property: the key of its group (a test, or one notebook's cells)
SIZE = "reuse-size"  # how many reports of the group must pass


def fresh() -> bool:
    return os.environ.get("WORKSHOP_FRESH", "") not in ("", "0")


def _walk(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return [p for p in sorted(path.rglob("*")) if p.is_file() and "__pycache__" not in p.parts]


@functools.cache
def _tracked() -> list[str] | None:
    """The repository's files that git tracks or would (not ignored ones, such as what the labs write), or None
    outside a git checkout."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, capture_output=True)
    return sorted(listed.stdout.decode().split("\0")[:-1]) if listed.returncode == 0 else None


def _files(path: str) -> list[Path]:
    """The files under `path` (relative to the repository, or outside it; FOLDER/* is the folder's own files,
    not its subfolders') that make up its content."""
    tracked, where = _tracked(), os.path.relpath(REPO / path.removesuffix("/*"), REPO)
    if tracked is None or where.startswith(".."):
        found = _walk(REPO / where)
    else:
        found = [REPO / f for f in tracked if (f == where or f.startswith(where + "/")) and (REPO / f).is_file()]
    return [f for f in found if not path.endswith("/*") or f.parent == REPO / where]


@functools.cache
def _machine(sandbox: bool) -> str:
    """The Python, the packages, the cores, the variables and (for tests that grade) the sandbox, as one string."""
    packages = sorted(f"{d.metadata['Name']}=={d.version}" for d in importlib.metadata.distributions())
    variables = sorted((k, v) for k, v in os.environ.items() if k.startswith(VARIABLES) and k not in UNKEYED)
    found = ""
    if sandbox:
        from grader.sandbox import capabilities

        found = capabilities().summary()
    cache = sorted((str(p.relative_to(REPO)), p.stat().st_size) for p in _walk(REPO / "data" / "cache"))
    return json.dumps([platform.python_version(), platform.machine(), os.cpu_count(), packages, variables, found,
                       shutil.which("bwrap"), cache])


def key(nodeid: str, paths: list[str], sandbox: bool) -> str:
    digest = hashlib.sha256(_machine(sandbox).encode())
    digest.update(nodeid.encode())
    for path in sorted(set(ALWAYS) | set(paths)):
        for file in _files(path):
            digest.update(os.path.relpath(file, REPO).encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()


def _params(item) -> dict:
    """A test item's parameters (none for a test that is not parametrized, or an nbval cell)."""
    return getattr(getattr(item, "callspec", None), "params", {})


def pytest_configure(config):
    config.addinivalue_line("markers", "reusable(*paths): not run again while these paths and the code are as "
                                       "when it last passed (grader.reuse)")
    config.pluginmanager.register(Reuse(config), "workshop-reuse")


class Reuse:
    """The plugin's state for one pytest process (under xdist: the controller records, the workers deselect)."""

    def __init__(self, config):
        self.config = config
        self.worker = hasattr(config, "workerinput")
        self.reused: list[str] = []
        self.outcomes: dict[str, Counter] = defaultdict(Counter)

    def pytest_collection_modifyitems(self, items):
        """Key every reusable item; deselect those whose key passed before."""
        groups = defaultdict(list)
        for item in items:
            path = Path(str(item.path))
            if path.suffix == ".ipynb":  # nbval: one group per notebook, keyed on its folder
                where = os.path.relpath(path.parent, REPO)
                groups[key(where, [where], sandbox=False)].append(item)
                continue
            mark = item.get_closest_marker("reusable")
            if mark:
                paths = [p.format(**_params(item)) for p in mark.args] + [os.path.relpath(path, REPO)]
                groups[key(item.nodeid, paths, sandbox=True)].append(item)
        reused = []
        for group, members in groups.items():
            for item in members:
                item.user_properties += [(KEY, group), (SIZE, len(members))]
            if not fresh() and (PASSED / group).exists():
                reused += members
        if reused:
            gone = set(map(id, reused))
            items[:] = [item for item in items if id(item) not in gone]
            self.config.hook.pytest_deselected(items=reused)
            self.reused += [item.nodeid for item in reused]

    def pytest_runtest_logreport(self, report):
        properties = dict(report.user_properties)
        if KEY not in properties or self.worker:
            return
        counts = self.outcomes[properties[KEY]]
        counts["size"] = properties[SIZE]
        counts["bad"] += report.failed
        counts["done"] += report.skipped or report.passed and report.when == "call"

    def pytest_sessionfinish(self, session):
        """Keep the key of every group none of whose reports failed and each of whose members passed or was skipped
        (under the same inputs, a skipped test is skipped again)."""
        if self.worker:
            session.config.workeroutput[KEY] = self.reused
            return
        PASSED.mkdir(parents=True, exist_ok=True)
        for group, counts in self.outcomes.items():
            if not counts["bad"] and counts["done"] == counts["size"]:
                (PASSED / group).touch()
        if session.exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED and self.reused:
            session.exitstatus = pytest.ExitCode.OK  # everything had passed before

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node, error):
        """xdist: a worker's deselections, for the summary."""
        self.reused += getattr(node, "workeroutput", {}).get(KEY, [])

    def pytest_terminal_summary(self, terminalreporter):
        if self.reused:
            notebooks = sorted({n.split("::")[0] for n in self.reused if n.split("::")[0].endswith(".ipynb")})
            tests = list(dict.fromkeys(n for n in self.reused if not n.split("::")[0].endswith(".ipynb")))
            terminalreporter.write_sep("-", "not run again: passed before with the same inputs (grader.reuse)")
            for name in notebooks + tests:
                terminalreporter.write_line(f"  {name}")
            terminalreporter.write_line("WORKSHOP_FRESH=1 runs them; the keys are kept in " + str(PASSED))


def selected(request, param: str) -> set:
    """For a session-wide fixture: the values of the parameter `param` among the tests still to run that use it
    (those that passed before with the same inputs are gone from the session)."""
    return {_params(item)[param] for item in request.session.items
            if request.fixturename in item.fixturenames and param in _params(item)}
