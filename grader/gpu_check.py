"""The solution notebooks on a CUDA machine within a time budget (`make gpu-check`; docs/timings.md, GPU).

python -m grader.gpu_check [--budget SECONDS] [--profile auto|quick|full] [--out DIR] [--only NN ...]

Runs the notebooks one at a time in a Jupyter kernel (nbclient), Keras on the torch backend (the CUDA machine has
no TensorFlow), and stops cleanly at the budget: each notebook's cells get as their timeout the budget that is
left, so a notebook cut off is "stopped at the budget" and the ones after it are "skipped (budget)". A notebook
whose top-level imports are not installed there (xgboost, dask) is "skipped: no module X" before it starts; one
that meets a ModuleNotFoundError while running is reported the same way. Writes gpu-check.json and gpu-check.md
(a table for docs/timings.md) into --out (default $OUT, else the current folder) and prints the table. Exits 1
if a notebook that ran failed, else 0.

Order: where a GPU changes most first, since a budget may cut off the tail. 02 (convolutions, Keras and PyTorch), 06
(the deepest convolutional stacks; its full profile was never run on a CPU), 13 (attention and transformer blocks:
its comparison of the transformer's throughput with the LSTM's is about parallel hardware), 07 (convolutional and
variational autoencoders, the face swap), 15 (fine-tuning CNNs and a U-Net), 08 (the DCGAN; its full profile took
18 minutes on a shared CPU), 14 (PGD: many forward and backward passes per image), 03 (Keras CNNs with
batch norm and dropout), 05 (recurrent layers, which are sequential, so a GPU gains less), 11 (mixed precision and
throughput against batch size mean most on a GPU), 12 (the reservoir and the flow surrogates are torch, the solver
NumPy), 10 (small atom-wise MLPs and autograd forces), 04 (mostly logging; its TensorFlow-only sections skip), 01
(NumPy from scratch), 09 (trees in xgboost and dask, neither installed on the lent machine).

Profile: the full profile where its expected time fits the budget that is left once the quick runs of the notebooks
after it are set aside, else the quick profile (--profile forces one). Expected times are the CPU seconds of
docs/timings.md (2 cores, TensorFlow or torch backend): an upper bound for a CUDA machine, which has more cores and
the GPU. A full profile never measured (06), or one that does more on a GPU than on the CPU (12's grows by its
`on_cuda` settings), is never chosen by itself.
"""

import argparse
import ast
import importlib.util
import json
import os
import platform
import re
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

from grader.release import REPO, SOLUTIONS  # standard library and nbformat only: it imports on the GPU machine

ORDER = ("02-cnn", "06-resnet", "13-attention-transformers", "07-autoencoders", "15-transfer-segmentation", "08-gans",
         "14-adversarial", "03-regularization", "05-rnn-lstm", "11-scaling", "12-ai-simulation", "10-energy-nets",
         "04-tensorboard", "01-backprop", "09-xgboost")
# Seconds on the 2-core CI machine (docs/timings.md, "Notebooks: seconds per notebook"): quick (the torch backend
# where measured, wall-clock where the table gives it), full (`make bench`, wall-clock); None: not measured, or
# (12) no bound for a GPU, where the full profile runs bigger reservoirs and grids.
EXPECTED = {
    "01-backprop": (10.6, 15.8), "02-cnn": (18.1, 41.4), "03-regularization": (37.3, 142.4),
    "04-tensorboard": (10.5, 29.3), "05-rnn-lstm": (14.3, 240.0), "06-resnet": (20.6, None),
    "07-autoencoders": (26.4, 141.0), "08-gans": (21.5, 1079.0), "09-xgboost": (21.5, 183.7),
    "10-energy-nets": (53.0, 177.0), "11-scaling": (13.4, 60.6), "12-ai-simulation": (25.0, None),
    "13-attention-transformers": (28.7, 379.0), "14-adversarial": (34.8, 96.0),
    "15-transfer-segmentation": (45.3, 259.0),
}
UNKNOWN = (60.0, None)  # a notebook missing from the table: a minute in the quick profile, never full by itself
MIN_START = 5.0  # seconds: with less left a notebook is not started (its kernel alone takes a few)
KEY_LINES = 6  # lines printed by graded test cells kept per notebook


@dataclass
class Result:
    """How one notebook went."""

    notebook: str
    status: str  # passed | failed | stopped | skipped
    outcome: str  # the status in words, with the reason
    profile: str = ""
    device: str = ""
    seconds: float = 0.0
    key_results: list[str] = field(default_factory=list)


def choose_profile(name: str, left: float, later: list[str], forced: str = "auto") -> str:
    """Full if the notebook's full run fits in `left` besides the quick runs of `later`, else quick."""
    if forced != "auto":
        return forced
    full = EXPECTED.get(name, UNKNOWN)[1]
    reserved = sum(EXPECTED.get(other, UNKNOWN)[0] for other in later)
    return "full" if full is not None and full + reserved <= left else "quick"


def imports(nb) -> set[str]:
    """Top-level packages imported by the code cells' top-level statements (not inside try, if or def)."""
    names = set()
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        source = re.sub(r"(?m)^(\s*)[%!].*$", r"\1pass", cell.source)  # IPython magics and shell lines
        try:
            body = ast.parse(source).body
        except SyntaxError:
            continue
        for node in body:
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


def missing(nb) -> list[str]:
    """The notebook's top-level imports that this Python cannot find."""
    return sorted(name for name in imports(nb) if importlib.util.find_spec(name) is None)


def is_graded_test(cell) -> bool:
    """An nbgrader test cell: graded, and no solution in it."""
    meta = cell.metadata.get("nbgrader", {})
    return cell.cell_type == "code" and meta.get("grade", False) and not meta.get("solution", False)


def key_results(nb) -> list[str]:
    """The first two lines printed by each graded test cell: KEY_LINES in all, each at most 160 characters."""
    lines = []
    for cell in filter(is_graded_test, nb.cells):
        text = "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("name") == "stdout")
        lines += [line.strip()[:160] for line in text.splitlines() if line.strip()][:2]
    return lines[:KEY_LINES]


def describe_torch() -> dict:
    """The device the notebooks' torch will use, and the torch and CUDA versions."""
    try:
        import torch
    except ImportError:
        return {"device": "cpu", "torch": "not installed", "cuda": None}
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    return {"device": device, "torch": torch.__version__, "cuda": torch.version.cuda}


def execute(path: Path, profile: str, deadline: float) -> tuple[str, str, list[str]]:
    """Run one notebook until it ends, fails or reaches the deadline: (status, outcome, key results)."""
    nb = nbformat.read(path, as_version=4)
    current = {"cell": None}

    def timeout(cell) -> float:  # nbclient asks before each code cell; 0 would mean no limit
        current["cell"] = cell
        return max(0.1, deadline - time.monotonic())

    def where() -> str:
        index = next((i for i, c in enumerate(nb.cells) if c is current["cell"]), None)
        return f"cell {index + 1} of {len(nb.cells)}" if index is not None else "kernel start"

    left = max(1, int(deadline - time.monotonic()))  # for the kernel's start and its first reply
    client = NotebookClient(nb, kernel_name="python3", timeout_func=timeout, timeout=left, startup_timeout=left,
                            shutdown_kernel="immediate", resources={"metadata": {"path": str(path.parent)}})
    pythonpath = os.pathsep.join(filter(None, (str(REPO), os.environ.get("PYTHONPATH"))))
    env = {**os.environ, "WORKSHOP_PROFILE": profile, "KERAS_BACKEND": "torch", "PYTHONPATH": pythonpath}
    try:
        client.execute(env=env)
        return "passed", "passed", key_results(nb)
    except CellTimeoutError:
        return "stopped", f"stopped at the budget ({where()})", key_results(nb)
    except CellExecutionError as error:
        if error.ename == "ModuleNotFoundError":
            found = re.search(r"No module named '([^'.]+)", error.evalue)
            return "skipped", f"skipped: no module {found[1] if found else error.evalue}", key_results(nb)
        return "failed", f"failed: {error.ename}: {error.evalue[:200]} ({where()})", key_results(nb)
    except DeadKernelError:
        return "failed", f"failed: the kernel died ({where()})", key_results(nb)
    except Exception as error:  # the kernel did not start, say: this notebook fails, the check goes on
        if time.monotonic() >= deadline:
            return "stopped", f"stopped at the budget ({where()})", key_results(nb)
        return "failed", f"failed: {type(error).__name__}: {str(error)[:200]} ({where()})", key_results(nb)


def check(notebooks: list[Path], budget: float, profile: str = "auto", out: Path | None = None) -> dict:
    """Run the notebooks in this order within `budget` seconds; write gpu-check.json and .md into `out`."""
    start = time.monotonic()
    deadline = start + budget
    machine = describe_torch()
    absent = {path.stem: missing(nbformat.read(path, as_version=4)) for path in notebooks}
    runnable = [path.stem for path in notebooks if not absent[path.stem]]
    results = []
    for path in notebooks:
        name = path.stem
        left = deadline - time.monotonic()
        if absent[name]:
            result = Result(name, "skipped", f"skipped: no module {', '.join(absent[name])}")
        elif left < MIN_START:
            result = Result(name, "skipped", "skipped (budget)")
        else:
            chosen = choose_profile(name, left, runnable[runnable.index(name) + 1:], profile)
            began = time.monotonic()
            status, outcome, lines = execute(path, chosen, deadline)
            result = Result(name, status, outcome, chosen, machine["device"], round(time.monotonic() - began, 1),
                            lines)
        print(f"{name}: {result.profile or '-'} {result.seconds:.1f} s {result.outcome}", flush=True)
        results.append(result)
    report = {"date": date.today().isoformat(), "python": platform.python_version(), **machine,
              "keras_backend": "torch", "budget_s": budget, "profile": profile,
              "elapsed_s": round(time.monotonic() - start, 1), "notebooks": [asdict(r) for r in results]}
    out = Path(out or os.environ.get("OUT") or ".")
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu-check.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / "gpu-check.md").write_text(markdown(report))
    return report


def markdown(report: dict) -> str:
    """The report as a line about the machine and a table, one row per notebook."""
    cuda = f", CUDA {report['cuda']}" if report["cuda"] else ""
    lines = [f"GPU check of {report['date']}: {report['device']}, torch {report['torch']}{cuda}, "
             f"Python {report['python']}, Keras on torch; budget {report['budget_s']:g} s ({report['profile']}), "
             f"{report['elapsed_s']:g} s used.", "",
             "| notebook | profile | seconds | outcome | key results (printed by the graded tests) |",
             "|---|---|---|---|---|"]
    for r in report["notebooks"]:
        cells = [r["notebook"], r["profile"] or "—", f"{r['seconds']:.1f}" if r["profile"] else "—", r["outcome"],
                 "<br>".join(r["key_results"])]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def select(only: list[str] | None) -> list[Path]:
    """The solution notebooks in ORDER, or those among them named (or numbered) in `only`."""
    names = [n for n in ORDER if not only or any(n == o or n.split("-")[0] == o for o in only)]
    unknown = [o for o in only or [] if not any(n == o or n.split("-")[0] == o for n in ORDER)]
    if unknown:
        raise SystemExit(f"no solution notebook {', '.join(unknown)}; choose from {', '.join(ORDER)}")
    return [SOLUTIONS / name / f"{name}.ipynb" for name in names]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grader.gpu_check", description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=480.0, help="seconds for all notebooks (default 480)")
    parser.add_argument("--profile", choices=("auto", "quick", "full"), default="auto")
    parser.add_argument("--out", type=Path, help="folder for gpu-check.json and .md (default $OUT, else .)")
    parser.add_argument("--only", nargs="+", metavar="NN", help="these notebooks only (01 or 01-backprop)")
    args = parser.parse_args(argv)
    report = check(select(args.only), args.budget, args.profile, args.out)
    print(markdown(report))
    return 1 if any(r["status"] == "failed" for r in report["notebooks"]) else 0


if __name__ == "__main__":
    sys.exit(main())
