"""The sandbox's cgroup on a unified (v2) hierarchy, which this CI machine does not have (its memory and pids
controllers are v1, tried for real in test_sandbox.py): the files it writes and reads, on a stand-in folder. And,
on v1 as root, a cgroup that a fork bomb keeps full is still removed."""

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from grader.sandbox import Cgroup, Limits


def test_a_v2_cgroup_gets_its_limits_and_reads_its_counters(tmp_path, monkeypatch):
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids rdma misc\n")
    monkeypatch.setattr(Cgroup, "V2", tmp_path)
    group = Cgroup.create("one", Limits(memory_mb=256, processes=32))
    folder = tmp_path / "workshop-grader" / "one"
    assert group.version == 2 and group.paths() == [str(folder)]
    assert (tmp_path / "cgroup.subtree_control").read_text() == "+memory +pids +cpu"
    assert (tmp_path / "workshop-grader" / "cgroup.subtree_control").read_text() == "+memory +pids +cpu"
    assert (folder / "memory.max").read_text() == str(256 << 20) and (folder / "pids.max").read_text() == "32"
    assert not group.out_of_memory() and not group.out_of_processes() and group.cpu_seconds() == 0
    (folder / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n")
    (folder / "pids.events").write_text("max 2\n")
    (folder / "cpu.stat").write_text("usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n")
    assert group.out_of_memory() and group.out_of_processes() and group.cpu_seconds() == 2.5


def test_where_no_cgroup_can_be_made_the_reason_is_raised(tmp_path, monkeypatch):
    monkeypatch.setattr(Cgroup, "V2", tmp_path / "absent")
    monkeypatch.setattr(Cgroup, "V1", {c: tmp_path / "missing" / c for c in ("memory", "pids", "cpuacct")})
    try:
        Cgroup.create("one", Limits())
    except OSError as error:
        assert error.filename and Path(error.filename).is_relative_to(tmp_path)
    else:
        raise AssertionError("a cgroup was made where none can be")


@pytest.mark.skipif(os.geteuid() != 0 or not Cgroup.V1["pids"].exists(), reason="needs root and cgroup v1")
def test_a_cgroup_with_a_fork_bomb_inside_is_removed():
    group = Cgroup.create(f"bomb-{os.getpid()}", Limits(memory_mb=512, processes=64))
    bomb = ("import os, sys\nfor folder in sys.argv[1:]:\n"
            "    open(folder + '/cgroup.procs', 'w').write(str(os.getpid()))\n"
            "while True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n")
    process = subprocess.Popen([sys.executable, "-c", bomb, *group.paths()], start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while len(group.pids()) < 32:  # the bomb has filled most of its cgroup
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.05)
        group.remove()
        assert not any(Path(folder).exists() for folder in group.paths())
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
