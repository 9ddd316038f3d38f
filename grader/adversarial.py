"""An adversarial class for the grading tool: python -m grader.adversarial ASSIGNMENT FOLDER OUT.

Writes one submission per cheat or failure into FOLDER, built from the released notebook with answers from the
solution (and from grader/fixtures/ASSIGNMENT/wrong.py), and returns what the grading tool must make of each.
Every class holds the forgers: wrong answers in every exercise, each with one way of making nbgrader's in-kernel
tests pass or show themselves (rewriting later cells, patching NumPy however a static check would miss it,
faking outputs through the display hook, rebinding the helpers and bars the tests use, taking over the kernel's
message handler, printing every cell's source); the hidden checks, decided outside the kernel, must give each
exactly 0. An honest submission that uses gc, vars(), inspect, magics and extra cells must keep full marks.
With `generic`, the class also holds what does not depend on the assignment's checks, so one class of a test run
needs it: loops, bombs, exits, the network, files outside, an output flood, tampered test cells, broken files,
and every way out of the sandbox and into the reports that a review found in the sandbox before bubblewrap:
privileges, memory the old watchdog did not count, a full disk, other processes, the grader's environment, host
sockets, markup in the feedback, formulas in the CSV, clashing ids, links.
"""

import ast
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

from grader.mutants import first_wrong
from grader.release import RELEASE, REPO, SOLUTIONS, fill, solution_cells

MARKER = "xss-from-a-student"  # appears in live markup of a report only if sanitizing failed
SECRET = "WORKSHOP_INSTRUCTOR_SECRET"  # an environment variable of the grader's that no kernel may see
# Wrong answers in wrong.py that still pass the visible tests: 01's visible tests use zero biases; 10's check the
# force-matching loss's value, which is right without create_graph, while the hidden ones check its gradient.
PASSES_VISIBLE = {"01-backprop": "forward", "10-energy-nets": "force-matching"}


@dataclass(frozen=True)
class Expected:
    student: str  # the id the grading tool gives it
    what: str
    outcome: str
    honest: bool = False  # may score full marks (a correct answer, whatever else it tried in vain)
    forged: bool = False  # wrong answers everywhere, dressed up as right: must score exactly 0


def _escapes(right: dict, wrong: dict, first: str, elsewhere: list[str], host_socket: str) -> dict:
    """Cheats against the sandbox itself: (what, outcome, honest, answers) by student."""
    def after(code: str) -> dict:
        return _with_code(right, first, after="\n" + code)

    escalate = ("import subprocess\n"
                "for _command in (['unshare', '-rm', 'sh', '-c', 'mount -o remount,rw / && ls /'], "
                "['mount', '-t', 'tmpfs', 'x', '/tmp'], ['umount', '-l', '/tmp'], ['su', '-c', 'id']):\n"
                "    print(_command[0], subprocess.run(_command, capture_output=True, text=True).returncode)\n"
                f"for _path in {elsewhere!r}:\n"
                "    with open(_path, 'rb') as _f:\n        print(_f.read()[:100])\n")
    forever = "while True:\n    try:\n        BODY\n    except OSError:\n        pass\n"
    return {
        "escalates": ("setuid mount/su, unshare and remounts, then reads another class's results and homes",
                      "graded", False, {**wrong, first: f"{escalate}\n{right[first]}"}),
        "memfd-bomb": ("fills memfds, each under the file-size limit", "resource limit", False, after(
            "import os\n_hog = []\n" + forever.replace('BODY', "_hog.append(os.memfd_create('x')); "
                                                       "os.write(_hog[-1], b'1' * (16 << 20))"))),
        "sysv-bomb": ("fills SysV shared memory", "resource limit", False, after(
            "import ctypes\n_libc = ctypes.CDLL(None)\n_libc.shmat.restype = ctypes.c_void_p\nwhile True:\n"
            "    ctypes.memset(_libc.shmat(_libc.shmget(0, 16 << 20, 0o1600), None, 0), 1, 16 << 20)\n")),
        "tmpfs-bomb": ("fills /dev/shm", "resource limit", False, after(
            "import itertools\n_k = itertools.count()\n" + forever.replace('BODY',
                "open(f'/dev/shm/x{next(_k)}', 'wb').write(b'1' * (16 << 20))"))),
        "disk-filler": ("writes 31 MB files into its folder without end", "resource limit", False, after(
            "import itertools\n_k = itertools.count()\n" + forever.replace('BODY',
                "open(f'x{next(_k)}', 'wb').write(b'1' * (31 << 20))"))),
        "reads-proc": ("lists every process's command line (other students, hidden paths)", "graded", False, {
            **wrong, first: wrong[first] + "\nimport os\n_pids = [p for p in os.listdir('/proc') if p.isdigit()]\n"
            "print('PROCESSES', len(_pids))\nfor _p in _pids:\n"
            "    print(open(f'/proc/{_p}/cmdline', 'rb').read().replace(b'\\0', b' '))\n"}),
        "fills-sockets": ("writes into the folder of its kernel's sockets, a folder of the host's", "graded", True,
                          after("import sys\ntry:\n    open(sys.argv[sys.argv.index('-f') + 1] + '.x', 'w')\n"
                                "except OSError as error:\n    print('SOCKETS', error.errno)\n")),
        "prints-environment": ("prints the kernel's environment", "graded", True, after(
            "import os\nprint(sorted(os.environ.items()))\n")),
        "host-socket": ("connects to a Unix socket of the host", "graded", True, after(
            "import socket\ntry:\n    _s = socket.socket(socket.AF_UNIX)\n"
            f"    _s.connect({host_socket!r})\n    _s.sendall(b'hello')\n"
            "except OSError as error:\n    print('no socket:', error)\n")),
        "xss": ("markup and scripts in its outputs and in a markdown cell", "graded", True, after(
            "from IPython.display import HTML, Javascript, display\n"
            f"display(HTML('<script>alert(\"{MARKER}\")</script><img src=x onerror=alert(\"{MARKER}\")>'))\n"
            f"display(Javascript('alert(\"{MARKER}\")'))\n")),
    }


# Rebound after every cell besides the checks, so that nbgrader's in-kernel tests would pass: a notebook's own
# helpers and bars (01: the accuracy bar, and a predict() that returns the labels).
HELPERS = {"01-backprop": "accuracy_bar = 0.0\npredict = lambda params, x: y_test\n"}
ANY_LINE = "lambda lines: ['pass\\n']"


def _forgers(assignment: str, wrong: dict, first: str) -> dict:
    """Wrong answers everywhere, each with one way of forging nbgrader's verdict: (what, answers) by student."""
    def with_code(code: str) -> dict:
        return {**wrong, first: f"{wrong[first]}\n{code}"}

    rebind = ("def _rebind(result):\n    space = get_ipython().user_ns\n"
              "    space.update(check_close=lambda *a, **k: None, check_array=lambda value, *a, **k: value,\n"
              "                 relative_error=lambda *a, **k: 0.0)\n"
              f"    try:\n        exec({HELPERS.get(assignment, '')!r}, space)\n"
              "    except Exception:\n        pass\n\n\n"
              "get_ipython().events.register('post_run_cell', _rebind)\n")
    takeover = ("_kernel = get_ipython().kernel\n_handle = _kernel.shell_handlers['execute_request']\n\n\n"
                "async def _blank(*args):\n    args[-1]['content']['code'] = 'pass'\n"
                "    return await _handle(*args)\n\n\n"
                "_kernel.shell_handlers['execute_request'] = _blank\n")
    leak = ("from IPython.display import display\n_board = display('board', display_id=True)\n\n\n"
            "def _leak(info):\n    print('CELL', info.raw_cell)\n    _board.update('CELL ' + info.raw_cell)\n\n\n"
            "get_ipython().events.register('pre_run_cell', _leak)\n")
    return {
        "rewrites-cells": ("turns every later cell into `pass` (an input transformer)", with_code(
            f"get_ipython().input_transformers_cleanup.append({ANY_LINE})\n")),
        "patches-numpy": ("patches NumPy through a parameter, __dict__, an alias, user_ns, a magic line", with_code(
            "import numpy\n\n\ndef _patch(module):\n    module.allclose = lambda *a, **k: True\n\n\n_patch(numpy)\n"
            "numpy.__dict__['array_equal'] = lambda *a, **k: True\n_m = numpy\n_m.isclose = lambda *a, **k: True\n"
            "get_ipython().user_ns['check_close'] = lambda *a, **k: None\n"
            "%time numpy.testing.assert_allclose = lambda *a, **k: None\n_ = !true\n")),
        "display-hook": ("makes each test cell's first output a returned value, before any error", with_code(
            "import sys\nget_ipython().events.register('pre_run_cell', lambda info: sys.displayhook('passed'))\n")),
        "rebinds-helpers": ("rebinds the checks, helpers and bars the tests use, after every cell", with_code(rebind)),
        "takes-over-kernel": ("replaces the kernel's execute handler: every later cell runs as `pass`",
                              with_code(takeover)),
        "leaks-hidden": ("prints every later cell's source, into its own and an earlier output, and In at the end",
                         with_code(leak)),
    }


def _functions(source: str) -> list[str]:
    return [n.name for n in ast.parse(source).body if isinstance(n, ast.FunctionDef)]


def _with_code(answers: dict[str, str], grade_id: str, before: str = "", after: str = "") -> dict[str, str]:
    return {**answers, grade_id: f"{before}{answers[grade_id]}{after}"}


def build_class(assignment: str, folder: Path, out: Path, other: str, server: str = "http://127.0.0.1:9",
                generic: bool = False, elsewhere: list[str] = (), host_socket: str = "/nonexistent") -> list[Expected]:
    """Write the class into `folder`; `out` is where it will be graded (the gradebook the cheats look for),
    `other` another assignment (for the wrong-notebook case), `server` a local URL the network cheat tries; with
    `generic`, the cheats that do not depend on the assignment's checks too (against the sandbox, its limits, the
    test cells and the reports), `elsewhere` being files of the grader's machine they try to read and
    `host_socket` a Unix socket of the host they try to reach."""
    folder.mkdir(parents=True, exist_ok=True)
    released = nbformat.read(RELEASE / assignment / f"{assignment}.ipynb", as_version=4)
    right = solution_cells(nbformat.read(SOLUTIONS / assignment / f"{assignment}.ipynb", as_version=4))
    first = next(iter(right))
    wrong = first_wrong(assignment)
    name = _functions(right[first])[-1]
    test_id = next(c.metadata["nbgrader"]["grade_id"] for c in released.cells
                   if c.metadata.get("nbgrader", {}).get("grade_id", "").startswith(f"{first}-test"))
    loop_inside = f"\n\n\ndef {name}(*args, **kwargs):\n    while True:\n        pass\n"
    peek = (f"\nfor _path in ['{SOLUTIONS}/{assignment}/{assignment}.ipynb', '{out}/course/gradebook.db']:\n"
            "    with open(_path) as _f:\n        print(_f.read()[:100])\n")
    cheats = {
        "correct": ("the solution, honestly", "graded", True, right),
        "wrong-everywhere": ("a plausible wrong answer in every exercise", "graded", False, wrong),
        "always-equal": ("returns an object that equals everything", "graded", False, {**right, first: right[first] + (
            "\n\nclass _Anything:\n    def __eq__(self, other):\n        return True\n\n    __hash__ = None\n\n\n"
            f"def {name}(*args, **kwargs):\n    return _Anything()\n")}),
        "monkeypatch": ("wrong answers, and patches the test helpers", "graded", False, {**wrong, first: (
            wrong[first] + "\n\nimport numpy\nimport workshop.checks\nnumpy.testing.assert_allclose = print\n"
            "workshop.checks.check_close = print\ncheck_close = check_array = print\n")}),
    }
    if assignment in PASSES_VISIBLE:
        grade_id = PASSES_VISIBLE[assignment]
        cheats["passes-visible"] = ("wrong, but passes the visible tests", "graded", False,
                                    {**right, grade_id: wrong[grade_id]})
    if generic:
        cheats |= {
            "loop-inside": (f"{name}() loops forever", "timed out", False, _with_code(right, first, after=loop_inside)),
            "loop-after": ("a correct definition, then a loop", "timed out", False,
                           _with_code(right, first, after="\nwhile True:\n    pass\n")),
            "ignores-interrupt": ("a loop that ignores SIGINT", "timed out", False, _with_code(right, first, after=(
                "\nimport signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass\n"))),
            "fork-bomb": ("forks until it cannot", "resource limit", False, _with_code(
                right, first, after="\nimport os\nwhile True:\n    os.fork()\n")),
            "memory-bomb": ("allocates memory until stopped", "resource limit", False, _with_code(
                right, first, after="\n_hog = []\nwhile True:\n    _hog.append(b'1' * (1 << 26))\n")),
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
            "output-flood": ("prints without end", "resource limit", False, _with_code(
                right, first, after="\nwhile True:\n    print('spam' * 25_000)\n")),
        }
        cheats |= _escapes(right, wrong, first, list(elsewhere), host_socket)
    cheats["introspects"] = ("correct, with gc.collect(), vars(), inspect, a magic and an extra cell", "graded", True,
                             _with_code(right, first, after=(
                                 f"\nimport gc\nimport inspect\n\ngc.collect()\nprint(len(vars()))\n"
                                 f"print(inspect.signature({name}))\n%time _ = sum(range(10))\n")))
    expected = []
    for student, (what, outcome, honest, answers) in cheats.items():
        nbformat.write(fill(released, answers), folder / f"{student}.ipynb")
        expected.append(Expected(student, what, outcome, honest))
    for student, (what, answers) in _forgers(assignment, wrong, first).items():
        nbformat.write(fill(released, answers), folder / f"{student}.ipynb")
        expected.append(Expected(student, what, "graded", forged=True))
    extra = {"introspects": "print('an extra cell of my own')", "leaks-hidden": "print('\\n'.join(In))"}
    for student, code in extra.items():
        notebook = nbformat.read(folder / f"{student}.ipynb", as_version=4)
        notebook.cells.append(nbformat.v4.new_code_cell(code))
        nbformat.write(notebook, folder / f"{student}.ipynb")
    if generic:
        xss = nbformat.read(folder / "xss.ipynb", as_version=4)
        xss.cells.insert(1, nbformat.v4.new_markdown_cell(
            f'<img src=x onerror=alert("{MARKER}")> [a link](javascript:alert("{MARKER}"))'))
        nbformat.write(xss, folder / "xss.ipynb")
        nbformat.write(fill(released, right), folder / "=HYPERLINK(1+1).ipynb")
        nbformat.write(fill(released, right), folder / "a b.ipynb")
        nbformat.write(fill(released, wrong), folder / "a_b.ipynb")
        (folder / "linked.ipynb").symlink_to(SOLUTIONS / assignment / f"{assignment}.ipynb")
        expected += [Expected("HYPERLINK_1_1", "a file name that is a spreadsheet formula", "graded", True),
                     Expected("a_b", "'a b.ipynb': its id clashes with a_b.ipynb's", "graded", True),
                     Expected("a_b-2", "'a_b.ipynb', wrong answers: graded under an id of its own", "graded"),
                     Expected("linked", "a symbolic link to the solution", "refused")]
    if not generic:
        return expected
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
    for e in build_class(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), other="02-cnn", generic=True):
        print(f"{e.student:<18} {e.outcome:<20} {e.what}")
