"""nbgrader's Execute step with the kernel in grader.sandbox, watched from outside for memory, output and time.

Execution stops at the first cell that times out, kills the kernel or breaks a limit; that cell gets an error
naming the reason and every later code cell an error saying it was not run, so no test cell scores by not
running (nbgrader gives full marks to a test cell without an error in its outputs).
"""

import json
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from jupyter_client.manager import AsyncKernelManager
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat.notebooknode import NotebookNode
from nbformat.v4 import new_output
from nbgrader.preprocessors import Execute

from grader import sandbox as sandbox_script
from grader.sandbox import Limits

PAGE, TICKS = (os.sysconf("SC_PAGE_SIZE"), os.sysconf("SC_CLK_TCK")) if hasattr(os, "sysconf") else (4096, 100)


@dataclass
class Run:
    """How the execution of one submission ended."""

    outcome: str = "graded"  # graded | timed out | crashed | resource limit
    cell: int | None = None  # index of the cell where it stopped
    detail: str = ""
    seconds: float = 0.0


class SandboxedKernelManager(AsyncKernelManager):
    """Starts the kernel through `python -m grader.sandbox`, talking over Unix sockets in the work folder."""

    def __init__(self, sandbox: list[str], **kwargs):
        super().__init__(**kwargs)
        self.sandbox = sandbox

    def format_kernel_cmd(self, extra_arguments=None):
        command = super().format_kernel_cmd(extra_arguments)
        return [*self.sandbox, "--", *command] if self.sandbox else command


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
    """Execute a sanitized notebook in a sandboxed kernel; `run` tells how it ended."""

    def __init__(self, workdir: Path, limits: Limits, hidden: list[Path], uid: int | None = None,
                 environment: dict[str, str] | None = None, **kwargs):
        super().__init__(timeout=limits.cell_seconds, interrupt_on_timeout=False, shutdown_kernel="immediate",
                         **kwargs)
        self.workdir, self.limits, self.hidden, self.uid = Path(workdir), limits, hidden, uid
        self.environment = environment or {}
        self.run = Run()
        self._cell: int | None = None
        self._output_bytes = 0
        self._breach = ""

    def create_kernel_manager(self):
        sandbox = [sys.executable, sandbox_script.__file__, "--workdir", str(self.workdir),
                   "--cpu", str(self.limits.cpu_seconds), "--memory", str(self.limits.memory_mb),
                   "--processes", str(self.limits.processes), "--output", str(self.limits.output_mb)]
        if self.uid is not None:
            sandbox += ["--uid", str(self.uid)]
        for path in self.hidden:
            sandbox += ["--hide", str(path)]
        for key, value in self.environment.items():
            sandbox += ["--env", f"{key}={value}"]
        if sys.platform != "linux":  # no namespaces: only the limits watched from outside apply (see capabilities)
            self.km = SandboxedKernelManager([], kernel_name=self.kernel_name or "python3")
            return self.km
        self.km = SandboxedKernelManager(
            sandbox, kernel_name=self.kernel_name or "python3", transport="ipc", ip=str(self.workdir / "ipc"),
            connection_file=str(self.workdir / "kernel.json"),
        )
        return self.km

    def preprocess_cell(self, cell, resources, index):
        self._cell = index
        return super().preprocess_cell(cell, resources, index)

    def process_message(self, msg, cell, cell_index):
        self._output_bytes += len(json.dumps(msg.get("content", {})))
        if self._output_bytes > self.limits.output_mb << 20:
            self._stop(f"output over {self.limits.output_mb} MB")
            return None
        return super().process_message(msg, cell, cell_index)

    def _sandbox(self):
        """The sandbox process the kernel manager started (None before the start)."""
        return getattr(getattr(self.km, "provisioner", None), "process", None)

    def _stop(self, breach: str) -> None:
        """Record a broken limit and kill the sandbox (its kernel and everything it started die with it)."""
        if not self._breach:
            self._breach = breach
        process = self._sandbox()
        if process is not None and process.poll() is None:
            for pid in reversed(descendants(process.pid)):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass

    def _watch(self, done: threading.Event, started: float) -> None:
        while not done.wait(0.1):
            process = self._sandbox()
            if time.monotonic() - started > self.limits.wall_seconds:
                self._stop(f"wall-clock limit of {self.limits.wall_seconds} s")
            elif process is not None:
                count, cpu, pids = usage(process.pid)
                if count > self.limits.processes:
                    self._stop(f"{count} processes and threads (limit {self.limits.processes})")
                elif cpu > self.limits.cpu_seconds:
                    self._stop(f"CPU time over {self.limits.cpu_seconds} s")
                elif memory(pids) > self.limits.memory_mb << 20:
                    self._stop(f"memory over {self.limits.memory_mb} MB")

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
            self.run = Run("crashed", self._cell, f"the kernel failed: {error}")
        finally:
            done.set()
            watchdog.join()
        if self._breach:
            self.run = Run("resource limit", self._cell, self._breach)
        self.run.seconds = time.monotonic() - started
        if self.run.outcome != "graded":
            self._mark_stopped(nb)
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
