"""nbgrader's Execute step with the kernel in grader.sandbox, watched from outside.

The kernel is started by `python -m grader.sandbox run` and talks to the grader over Unix sockets in a folder of
its own, which is locked read-only inside the sandbox as soon as the kernel answers, before any cell runs. A
watchdog stops it at the first broken limit: wall-clock time, output size, a writable folder filled up, and CPU
time, memory and processes from its cgroup (memory: the kernel's OOM killer acted; processes: a fork or thread
was refused), or, where no cgroup could be made, from /proc.

Execution stops at the first cell that times out, kills the kernel or breaks a limit; that cell gets an error
naming the reason and every later code cell an error saying it was not run, so no test cell scores by not
running (nbgrader gives full marks to a test cell without an error in its outputs).

Probe cells (grader.verdicts) run last. Every other cell's outputs are put back as they were before the first
probe ran, so nothing the kernel does during the probes (a display update, say) reaches the feedback.
"""

import copy
import itertools
import json
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import run_sync
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat.notebooknode import NotebookNode
from nbformat.v4 import new_output
from nbgrader.preprocessors import Execute

from grader.sandbox import WORK, Cgroup, Limits, launcher, lock_from_outside, sandbox_child
from grader.verdicts import is_probe

PAGE, TICKS = (os.sysconf("SC_PAGE_SIZE"), os.sysconf("SC_CLK_TCK")) if hasattr(os, "sysconf") else (4096, 100)
WRITABLE = ("/tmp", "/dev/shm", WORK)  # the sandbox's size-limited folders
_names = itertools.count()


@dataclass
class Run:
    """How the execution of one submission ended."""

    outcome: str = "graded"  # graded | timed out | crashed | resource limit
    cell: int | None = None  # index of the cell where it stopped
    detail: str = ""
    seconds: float = 0.0
    transient: bool = False  # the kernel never started: no fault of the submission's, worth another try


class SandboxedKernelManager(AsyncKernelManager):
    """Starts the kernel through `launcher` (`python -m grader.sandbox run ...`), when there is one."""

    def __init__(self, launcher: list[str], **kwargs):
        super().__init__(**kwargs)
        self.launcher = launcher

    def format_kernel_cmd(self, extra_arguments=None):
        command = super().format_kernel_cmd(extra_arguments)
        return [*self.launcher, "--", *command] if self.launcher else command


@dataclass(frozen=True)
class Task:
    """One process, from /proc/PID/stat."""

    parent: int
    cpu: float  # user + system seconds
    threads: int


def _tasks() -> dict[int, Task]:
    table = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            table[int(stat.parent.name)] = Task(int(fields[1]), (int(fields[11]) + int(fields[12])) / TICKS,
                                                int(fields[17]))
        except (OSError, IndexError, ValueError):
            continue
    return table


def descendants(root: int, table: dict[int, Task] | None = None) -> list[int]:
    """Process `root` and all its descendants, parents before children (Linux; only `root` elsewhere)."""
    if not Path("/proc").is_dir():
        return [root]
    children: dict[int, list[int]] = {}
    for pid, task in (table if table is not None else _tasks()).items():
        children.setdefault(task.parent, []).append(pid)
    found = [root]
    for pid in found:
        found.extend(children.get(pid, []))
    return found


def _proportional_bytes(pid: int) -> int:
    """Memory of one process with shared pages split among their sharers (PSS), so forks are not counted twice."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").open():
            if line.startswith("Pss:"):
                return int(line.split()[1]) << 10
    except OSError:
        pass
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    except OSError:
        return 0  # it has gone


def usage(root: int) -> tuple[int, float, list[int]]:
    """Tasks (threads) and CPU seconds of process `root` and its descendants, and their pids (Linux; else zeros).

    One pass over /proc/*/stat: cheap enough to see a fork bomb early; memory is read separately (memory())."""
    if not Path("/proc").is_dir():
        return 0, 0.0, []
    table = _tasks()
    pids = [pid for pid in descendants(root, table) if pid in table]
    return sum(table[p].threads for p in pids), sum(table[p].cpu for p in pids), pids


def memory(pids: list[int]) -> int:
    """Resident bytes of these processes, shared pages split among their sharers."""
    return sum(_proportional_bytes(pid) for pid in pids)


class SandboxedExecute(Execute):
    """Execute a sanitized notebook in a sandboxed kernel; `run` tells how it ended.

    `sockets` is an empty folder of the grader's for the kernel's sockets; `log` a file for what the kernel
    process writes outside any cell; `sandboxed` False runs the kernel directly (the grading tool's --no-sandbox),
    with only the limits watched from outside; `cgroup` False polls /proc instead of making a cgroup (where the
    probe found none can be made); cells whose index is in `skip` are not run (the mutation gate's stop)."""

    def __init__(self, sockets: Path, limits: Limits, log: Path, uid: int | None = None,
                 environment: dict[str, str] | None = None, sandboxed: bool = True, cgroup: bool = True,
                 skip: range = range(0), **kwargs):
        super().__init__(timeout=limits.cell_seconds, interrupt_on_timeout=False, shutdown_kernel="immediate",
                         **kwargs)
        self.sockets, self.limits, self.kernel_log, self.uid = Path(sockets), limits, Path(log), uid
        self.environment, self.sandboxed, self.use_cgroup = environment or {}, sandboxed, cgroup
        self.skip = skip
        self.cgroup: Cgroup | None = None
        self.run = Run()
        self._cell: int | None = None
        self._output_bytes = 0
        self._breach = ""
        self._before_probes: list | None = None  # every earlier cell's outputs, as the first probe found them

    def create_kernel_manager(self):
        name = self.kernel_name or "python3"
        if not self.sandboxed:
            self.km = SandboxedKernelManager([], kernel_name=name)
            return self.km
        if self.use_cgroup:
            self.cgroup = Cgroup.create(f"workshop-{os.getpid()}-{next(_names)}", self.limits)
        command = launcher(str(self.sockets), self.limits, self.uid, self.cgroup, self.environment)
        self.km = SandboxedKernelManager(command, kernel_name=name, transport="ipc", ip=str(self.sockets / "k"),
                                         connection_file=str(self.sockets / "kernel.json"))
        return self.km

    async def async_start_new_kernel(self, **kwargs):
        """Start the kernel with the grader's PATH and the kernel's environment only (the sandbox clears even
        that; without one, the grader's own variables, secrets included, stay out of the kernel)."""
        env = {"PATH": os.environ.get("PATH", ""), **self.environment}
        if "WORKSHOP_BWRAP" in os.environ:
            env["WORKSHOP_BWRAP"] = os.environ["WORKSHOP_BWRAP"]
        if not self.sandboxed:
            env |= {"HOME": str(self.sockets), "TMPDIR": str(self.sockets)}
        with open(self.kernel_log, "wb") as log:  # the kernel's start-up banner and C++ libraries' logs
            return await super().async_start_new_kernel(env=env, stdout=log, stderr=log, **kwargs)

    async def async_start_new_kernel_client(self):
        """Once the kernel answers, its sockets exist: lock their folder read-only inside the sandbox, before any
        cell runs, so that nothing can be written there later."""
        client = await super().async_start_new_kernel_client()
        if self.sandboxed:
            process = self._sandbox()
            try:
                lock_from_outside(sandbox_child(process.pid) if process else 0, str(self.sockets))
            except OSError:
                await self._async_cleanup_kernel()
                raise
        return client

    # nbclient's synchronous entry points are bound to its own coroutines: point them at these
    start_new_kernel = run_sync(async_start_new_kernel)
    start_new_kernel_client = run_sync(async_start_new_kernel_client)

    def preprocess_cell(self, cell, resources, index):
        if index in self.skip:
            return cell, resources
        self._cell = index
        if is_probe(cell) and self._before_probes is None:
            self._before_probes = [copy.deepcopy(c.get("outputs")) for c in self.nb.cells[:index]]
        return super().preprocess_cell(cell, resources, index)

    def process_message(self, msg, cell, cell_index):
        self._output_bytes += len(json.dumps(msg.get("content", {})))
        if self._output_bytes > self.limits.output_mb << 20:
            self._stop(f"output over {self.limits.output_mb} MB")
            return None
        return super().process_message(msg, cell, cell_index)

    def _sandbox(self):
        """The process the kernel manager started (bwrap, or the kernel itself without a sandbox)."""
        return getattr(getattr(self.km, "provisioner", None), "process", None)

    def _stop(self, breach: str) -> None:
        """Record a broken limit and kill the kernel: bwrap takes the sandbox and all in it along."""
        if not self._breach:
            self._breach = breach
        process = self._sandbox()
        if process is not None and process.poll() is None:
            for pid in reversed(descendants(process.pid)):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass

    def _full(self, process) -> str:
        """The first of the sandbox's writable folders that is full, seen from outside through its /proc root."""
        child = sandbox_child(process.pid) if self.sandboxed and process else None
        for folder in WRITABLE if child else ():
            try:
                found = os.statvfs(f"/proc/{child}/root{folder}")
            except OSError:
                return ""
            if found.f_bavail * found.f_frsize < 1 << 20:
                return f"{folder} full ({self.limits.disk_mb} MB)"
        return ""

    def _broken_limit(self, process) -> str:
        """Which limit the running kernel has broken, if any."""
        limits = self.limits
        if self.cgroup:
            if self.cgroup.out_of_processes():
                return f"more than {limits.processes} processes and threads"
            if self.cgroup.out_of_memory():
                return f"memory over {limits.memory_mb} MB (files in memory and shared memory included)"
            cpu = self.cgroup.cpu_seconds()
        else:
            count, cpu, pids = usage(process.pid)
            if count > limits.processes:
                return f"{count} processes and threads (limit {limits.processes})"
            if memory(pids) > limits.memory_mb << 20:
                return f"memory over {limits.memory_mb} MB"
        if cpu > limits.cpu_seconds:
            return f"CPU time over {limits.cpu_seconds} s"
        return self._full(process)

    def _watch(self, done: threading.Event, started: float) -> None:
        while not done.wait(0.1):
            process = self._sandbox()
            if time.monotonic() - started > self.limits.wall_seconds:
                self._stop(f"wall-clock limit of {self.limits.wall_seconds} s")
            elif process is not None and process.poll() is None:
                breach = self._broken_limit(process)
                if breach:
                    self._stop(breach)

    def preprocess(self, nb: NotebookNode, resources: dict, km=None):
        started, done = time.monotonic(), threading.Event()
        watchdog = threading.Thread(target=self._watch, args=(done, started), daemon=True)
        watchdog.start()
        try:
            nb, resources = super().preprocess(nb, resources, km=km)
        except CellTimeoutError:
            self.run = Run("timed out", self._cell, f"no result within {self.limits.cell_seconds} s")
        except DeadKernelError:
            self.run = Run("crashed", self._cell, "the kernel died")
        except RuntimeError as error:  # nbclient's way of saying the kernel did not start or answer
            self.run = Run("crashed", self._cell, f"the kernel failed: {error}", transient=self._cell is None)
        finally:
            done.set()
            watchdog.join()
            if self.cgroup:  # a limit that ended the kernel between two looks of the watchdog
                if not self._breach and (self.cgroup.out_of_memory() or self.cgroup.out_of_processes()):
                    self._breach = self._broken_limit(None)
                self.cgroup.remove()
        if self._breach:
            self.run = Run("resource limit", self._cell, self._breach)
        self.run.seconds = time.monotonic() - started
        if self.run.outcome != "graded":
            self._mark_stopped(nb)
        for cell, outputs in zip(nb.cells, self._before_probes or []):
            if outputs is not None:
                cell.outputs = outputs
        return nb, resources

    def _mark_stopped(self, nb: NotebookNode) -> None:
        stop = self.run.cell if self.run.cell is not None else 0
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code" or index < stop:
                continue
            if index == stop:
                evalue = f"{self.run.outcome}: {self.run.detail}"
            else:
                evalue = f"not run: the notebook stopped at cell {stop} ({self.run.outcome})"
            cell.outputs.append(new_output("error", ename="GradingStopped", evalue=evalue,
                                           traceback=[f"GradingStopped: {evalue}"]))
