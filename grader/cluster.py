"""Grading on Dask distributed: `python -m grader.grade ... --scheduler tcp://HOST:8786` or `--cluster local:N`.

Each submission's sandboxed execution (grader.grade.execute_one) runs on a Dask worker, in a temporary folder of
the worker's own; the submission goes there as bytes, and only plain data comes back: the Result as a dict and the
files of its run (the notebook as submitted and as executed, its probe data, the kernel's log). The coordinator
writes those into OUT/runs, decides the verdicts and writes the gradebook, feedback and reports, as without a
cluster. A worker whose environment differs from the coordinator's (Python, packages, the grading code, the
notebooks, what its sandbox can do) refuses work: it says why and takes none (grading tasks need a resource that
only admitted workers offer, one per worker process, so each process runs one kernel at a time). Dask runs the
tasks of a worker that died on another one; a submission whose runs killed `distributed.scheduler.allowed-failures`
workers (3 by default) ends as crashed, with that reason, and is not tried again. Start one worker process per
core (`dask worker ADDRESS --nworkers CORES --nthreads 1`)."""

import concurrent.futures
import contextlib
import hashlib
import platform
import tempfile
from dataclasses import asdict, replace
from importlib import metadata
from pathlib import Path

from distributed.diagnostics.plugin import WorkerPlugin

from grader.release import GRADER, RELEASE, REPO, SOLUTIONS
from grader.sandbox import capabilities
from workshop.data import sha256sum

SLOT = "workshop-grading"  # the resource an admitted worker offers, once per process
# the packages that execute a notebook, decide its verdicts or grade it (their versions must match everywhere)
PACKAGES = ("nbgrader", "nbclient", "nbformat", "ipykernel", "jupyter_client", "numpy", "scipy", "torch",
            "tensorflow", "keras", "scikit-learn", "xgboost-cpu", "matplotlib", "distributed")


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def fingerprint(assignment: str) -> dict:
    """What a worker's results depend on besides the submission: Python, package versions, the grading code and
    the helper package, and the assignment's source and released notebooks."""
    code = [*sorted((REPO / "workshop").glob("*.py")), *sorted(GRADER.glob("*.py")), REPO / "requirements.txt"]
    return {"python": platform.python_version(),
            "packages": {name: _version(name) for name in PACKAGES},
            "code": {str(p.relative_to(REPO)): sha256sum(p) for p in code},
            "notebooks": {str(p.relative_to(REPO)): sha256sum(p)
                          for p in (SOLUTIONS / assignment / f"{assignment}.ipynb",
                                    RELEASE / assignment / f"{assignment}.ipynb")}}


def differences(expected: dict, found: dict) -> list[str]:
    """Why `found` (a worker's fingerprint) is not `expected` (the coordinator's), one line per difference."""
    lines = []
    for part in expected:
        want, got = expected[part], found.get(part)
        if isinstance(want, dict) and isinstance(got, dict):
            lines += [f"{part} {name}: {got.get(name, 'missing')} here, {value} on the coordinator"
                      for name, value in want.items() if got.get(name) != value]
        elif want != got:
            lines.append(f"{part}: {got} here, {want} on the coordinator")
    return lines


def refusal(expected: dict, assignment: str, sandboxed: bool, cgroup: bool) -> str:
    """Run on a worker: empty if it may grade (its fingerprint is `expected`, and its sandbox does what the
    coordinator's plan needs), else why not."""
    reasons = differences(expected, fingerprint(assignment))
    confinement = capabilities()
    if sandboxed and not confinement.sandboxed:
        reasons.append(f"no sandbox here: {confinement.broken()}")
    if cgroup and not confinement.cgroup:
        reasons.append("no cgroup for the limits here (the coordinator has one)")
    return "; ".join(reasons)


class Admission(WorkerPlugin):
    """A Dask worker plugin: every worker, also one that joins later (a restarted one), compares its environment
    with the coordinator's when it starts. If they agree, it offers one grading slot (the resource SLOT, which every
    grading task needs: one kernel at a time per worker process); if not, it logs why and takes no grading work."""

    name = "workshop-grading-admission"

    def __init__(self, expected: dict, assignment: str, sandboxed: bool, cgroup: bool):
        self.expected, self.assignment, self.sandboxed, self.cgroup = expected, assignment, sandboxed, cgroup
        self.why = ""  # on the worker, once set up: why it refuses, or empty

    async def setup(self, worker):
        self.why = why = refusal(self.expected, self.assignment, self.sandboxed, self.cgroup)
        if why:
            worker.log_event("workshop-grading", {"refused": why})
            print(f"worker {worker.address} refuses to grade {self.assignment}: {why}", flush=True)
        else:
            await worker.set_resources(**{SLOT: 1})


def run_remote(plan, student: str, origin: str, notes: list[str], notebook: bytes, key: str, gradebook: bytes):
    """Run on a worker: execute one submission in a folder of the worker's own; (Result as a dict, files of
    its run by name)."""
    from grader.grade import execute_one
    from grader.submissions import Submission

    with tempfile.TemporaryDirectory(prefix="grade-remote-") as folder:
        folder = Path(folder)
        course, runs = folder / "course", folder / "runs"
        course.mkdir()
        runs.mkdir()
        (course / "gradebook.db").write_bytes(gradebook)  # nbgrader restores the test cells from it
        path = folder / "submission.ipynb"
        path.write_bytes(notebook)
        result = execute_one(replace(plan, course=course, runs=runs), Submission(student, path, origin, notes), key)
        return asdict(result), {p.name: p.read_bytes() for p in runs.iterdir() if p.is_file()}


class ClusterPool:
    """Like a ProcessPoolExecutor for grader.grade.execute_one, whose work runs on a Dask cluster: submit returns a
    concurrent.futures.Future that holds the Result once the run's files are written to its plan's runs folder."""

    def __init__(self, client, course: Path):
        self.client = client
        self.gradebook = client.scatter((course / "gradebook.db").read_bytes(), broadcast=True)

    def submit(self, function, plan, submission, key: str, stop_after: str = ""):
        if function.__name__ != "execute_one" or stop_after:  # grader.grade may run as __main__: not `is`
            raise ValueError("a cluster runs whole submissions (execute_one) only")
        done = concurrent.futures.Future()
        digest = sha256sum(submission.path)
        remote = self.client.submit(run_remote, plan, submission.student, submission.origin, submission.notes,
                                    submission.path.read_bytes(), key, self.gradebook, pure=False,
                                    resources={SLOT: 1},
                                    key=f"grade-{submission.student}-{hashlib.sha256(key.encode()).hexdigest()[:12]}")

        def finish(finished):
            try:
                done.set_result(land(finished, plan, submission, digest, key))
            except Exception as error:  # noqa: BLE001 - handed to the coordinator, which stops with it
                done.set_exception(error)

        remote.add_done_callback(finish)
        return done

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass  # the client, closed by connect(), owns the work in flight


def land(remote, plan, submission, digest: str, key: str):
    """The Result of a finished remote run, with its files written where a local run writes them."""
    from distributed import KilledWorker

    from grader.grade import Result

    try:
        result, files = remote.result()
    except KilledWorker as error:
        return Result(submission.student, digest, submission.origin, outcome="crashed", key=key,
                      notes=list(submission.notes),
                      detail=f"every worker that ran it died ({error}); not tried again")
    except Exception as error:  # noqa: BLE001 - the cluster's failure, not the submission's: tried again next run
        return Result(submission.student, digest, submission.origin, outcome="crashed", key=key, transient=True,
                      notes=list(submission.notes),
                      detail=f"the cluster failed: {type(error).__name__}: {error} (not kept; a new run tries again)")
    for name, data in files.items():
        if "/" in name or not name.startswith(f"{submission.student}."):
            raise ValueError(f"a worker sent back an unexpected file: {name!r}")
        (plan.runs / name).write_bytes(data)
    return Result(**result)


@contextlib.contextmanager
def connect(address: str):
    """A Dask client, closed on leaving: `local:N` starts (and then stops) a local cluster of N single-threaded
    worker processes; anything else is a scheduler's address."""
    from distributed import Client, LocalCluster

    if address.startswith("local:"):
        with LocalCluster(n_workers=int(address.removeprefix("local:")), threads_per_worker=1, processes=True,
                          dashboard_address=":0") as local, Client(local) as client:
            yield client
    else:
        with Client(address) as client:
            yield client


def _refusal_found(dask_worker) -> str:
    """Run on a worker after Admission's set-up: why it refused, or empty."""
    return dask_worker.plugins[Admission.name].why


def admit(client, plan) -> list[str]:
    """Register Admission, which checks every worker (and those that join later) against this machine's environment
    and the plan's sandbox. Returns the addresses that may grade; raises with every worker's reason if none may."""
    client.register_plugin(Admission(fingerprint(plan.assignment), plan.assignment, plan.sandboxed, plan.cgroup))
    reasons = client.run(_refusal_found)
    for address, why in sorted(reasons.items()):
        if why:
            print(f"worker {address} refuses to grade: {why}", flush=True)
    admitted = [address for address, why in reasons.items() if not why]
    if not admitted:
        raise RuntimeError("no worker of the cluster may grade: "
                           + (" | ".join(f"{a}: {w}" for a, w in sorted(reasons.items())) or "no workers"))
    return admitted
