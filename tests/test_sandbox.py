"""The grading sandbox (grader.sandbox), tried from inside as a student's code would: no privileges, an allowlist
filesystem, a fresh /proc, a cleared environment, no network or host sockets, its own IPC and UTS namespaces, and
memory (of every kind), processes and disk bounded by the kernel's accounting. Then the refusals: where bubblewrap
is missing, fails or hangs, the probe says so with the fix, within its time limit.

These need Linux, bubblewrap and root (a cgroup, an unprivileged uid of its own). They are skipped elsewhere,
unless WORKSHOP_REQUIRE_SANDBOX=1 (set by .ci/run), which turns a missing sandbox into a failure.
"""

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from grader.sandbox import (
    BASE_ENVIRONMENT,
    FIRST_UID,
    INSIDE_UID,
    REPO,
    Cgroup,
    Limits,
    launcher,
    lock_from_outside,
    probe,
    sandbox_child,
)

FOUND = probe()
if FOUND.broken() or FOUND.cgroup == 0 or os.geteuid() != 0:
    why = f"needs bubblewrap, a cgroup and root: {FOUND.summary()} (euid {os.geteuid()})"
    if os.environ.get("WORKSHOP_REQUIRE_SANDBOX") == "1":
        raise RuntimeError(why)
    pytest.skip(why, allow_module_level=True)


@dataclass
class Ran:
    code: int
    out: str
    err: str
    out_of_memory: bool
    out_of_processes: bool


SMALL = Limits(memory_mb=512, processes=64, disk_mb=64)


def confined(script: str, *args: str, limits: Limits = SMALL,
             environment: dict | None = None, readable: tuple = (), timeout: float = 60, during=None) -> Ran:
    """Run a Python script in the sandbox as the grader runs a kernel (its own cgroup and uid); an argument
    "SOCKETS" stands for its sockets folder. `during(process, sockets)` is called while it runs, after its first
    line of output."""
    sockets = tempfile.mkdtemp(prefix="grade-test-")
    args = tuple(sockets if a == "SOCKETS" else a for a in args)
    group = Cgroup.create(f"workshop-test-{os.getpid()}-{time.monotonic_ns()}", limits)
    command = [*launcher(sockets, limits, FIRST_UID, group, environment, list(readable)), "--", sys.executable, "-c",
               textwrap.dedent(script), *args]
    try:
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True)
        if during:
            first = process.stdout.readline()
            during(process, sockets)
            out, err = process.communicate("go\n", timeout=timeout)
            out = first + out
        else:
            out, err = process.communicate(timeout=timeout)
        return Ran(process.returncode, out, err, group.out_of_memory(), group.out_of_processes())
    finally:
        group.remove()
        shutil.rmtree(sockets, ignore_errors=True)


def facts(script: str, *args: str, **kwargs) -> dict:
    ran = confined(script, *args, **kwargs)
    assert ran.code == 0, ran.err
    return json.loads(ran.out.strip().splitlines()[-1])


def test_the_probe_finds_every_protection():
    assert not any(FOUND.problems.values()), FOUND.summary()
    assert FOUND.cgroup in (1, 2)


def test_no_capabilities_no_new_privileges_and_no_root():
    seen = facts("""
        import json, os, subprocess
        status = dict(line.split(":", 1) for line in open("/proc/self/status"))
        tries = {}
        for command in (["mount", "-t", "tmpfs", "none", "/tmp"], ["umount", "/tmp"], ["su", "-c", "id"],
                        ["unshare", "-r", "id"], ["mount", "-o", "remount,rw", "/"]):
            done = subprocess.run(command, capture_output=True, text=True, input="")
            tries[command[0] + " " + command[-1]] = done.returncode
        print(json.dumps({"uid": os.getuid(), "gid": os.getgid(), "tries": tries,
                          **{k: status[k].strip() for k in ("CapEff", "CapPrm", "CapBnd", "CapAmb", "NoNewPrivs")}}))
    """)
    assert (seen["uid"], seen["gid"]) == (INSIDE_UID, INSIDE_UID)
    assert {seen[k] for k in ("CapEff", "CapPrm", "CapBnd", "CapAmb")} == {"0000000000000000"}
    assert seen["NoNewPrivs"] == "1"
    assert all(code != 0 for code in seen["tries"].values()), seen["tries"]  # setuid mount and su gain nothing


def test_outside_it_runs_as_an_unprivileged_uid():
    uids = []

    def look(process, sockets):
        from grader.execute import descendants

        for pid in descendants(process.pid):
            line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith("Uid:"))
            uids.append(set(map(int, line.split()[1:])))

    confined("import sys\nprint('up', flush=True)\nsys.stdin.readline()", during=look)
    assert uids and all(u == {FIRST_UID} for u in uids), uids


def test_only_its_own_folders_are_writable():
    seen = facts("""
        import json, os, sys, workshop
        writable = {}
        package = os.path.dirname(workshop.__file__)
        for folder in ["/", "/usr", "/etc", "/proc/sys/kernel", "/sys/devices", "/run/lock", "/dev/mqueue",
                       sys.prefix, sys.base_prefix,
                       package, os.path.dirname(package) + "/data", os.environ["HOME"], "/tmp", "/dev/shm"]:
            try:
                with open(os.path.join(folder, "written"), "w") as f:
                    f.write("x")
                writable[folder] = True
            except OSError:
                writable[folder] = False
        print(json.dumps(writable))
    """)
    assert {k for k, v in seen.items() if v} == {BASE_ENVIRONMENT["HOME"], "/tmp", "/dev/shm"}, seen


def test_it_sees_only_its_own_processes_and_hostname():
    seen = facts("""
        import json, os, socket
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
        names = [open(f"/proc/{p}/cmdline", "rb").read().split(b"\\0")[0].decode() for p in pids]
        print(json.dumps({"names": names, "hostname": socket.gethostname()}))
    """)
    assert len(seen["names"]) <= 3 and not any("pytest" in name for name in seen["names"]), seen["names"]
    assert seen["hostname"] == "sandbox"


def test_the_environment_holds_only_the_allowlist(monkeypatch):
    monkeypatch.setenv("INSTRUCTOR_SECRET", "s3cret-token")
    seen = facts("import json, os\nprint(json.dumps(dict(os.environ)))", environment={"WORKSHOP_PROFILE": "quick"})
    assert set(seen) == set(BASE_ENVIRONMENT) | {"WORKSHOP_PROFILE"}, sorted(seen)
    assert "s3cret-token" not in json.dumps(seen)


def test_nothing_but_the_allowlist_is_there(tmp_path):
    graded, other = tmp_path / "graded" / "02-cnn", tmp_path / "submissions" / "bob.ipynb"
    graded.mkdir(parents=True)
    (graded / "gradebook.db").write_text("x")
    other.parent.mkdir()
    other.write_text("{}")
    hidden = [REPO / ".git", REPO / "solutions", REPO / "grader", REPO / "notebooks", graded, other, "/etc/shadow",
              "/root/.bashrc", "/var/run", *Path("/home").glob("*")]
    hidden = [str(p) for p in hidden if os.path.exists(p)]
    seen = facts("import json, os, sys\nprint(json.dumps([p for p in sys.argv[1:] if os.path.exists(p)]))",
                 *hidden)
    assert len(hidden) >= 6 and seen == []


def test_no_network_and_no_host_sockets(tmp_path):
    tcp = socket.create_server(("127.0.0.1", 0))
    unix = socket.socket(socket.AF_UNIX)
    unix.bind(str(tmp_path / "host.sock"))
    unix.listen()
    abstract = socket.socket(socket.AF_UNIX)
    abstract.bind("\0workshop-test-host")
    abstract.listen()
    seen = facts("""
        import json, socket, sys
        reached = []
        for family, address in [(socket.AF_INET, ("127.0.0.1", int(sys.argv[1]))), (socket.AF_UNIX, sys.argv[2]),
                                (socket.AF_UNIX, "\\0workshop-test-host"), (socket.AF_INET, ("1.1.1.1", 53))]:
            try:
                with socket.socket(family) as s:
                    s.settimeout(2)
                    s.connect(address)
                reached.append(str(address))
            except OSError:
                pass
        print(json.dumps(reached))
    """, str(tcp.getsockname()[1]), str(tmp_path / "host.sock"))
    for server in (tcp, unix, abstract):
        server.close()
    assert seen == []


def test_sysv_shared_memory_stays_inside():
    seen = facts("""
        import ctypes, json
        libc = ctypes.CDLL(None, use_errno=True)
        ident = libc.shmget(0x5eed, 1 << 20, 0o1600)  # IPC_CREAT | 0600, left behind on purpose
        print(json.dumps({"id": ident}))
    """)
    assert seen["id"] >= 0
    host = subprocess.run(["ipcs", "-m"], capture_output=True, text=True).stdout
    assert "0x00005eed" not in host


def test_its_sockets_folder_is_locked_before_student_code_runs():
    def lock(process, sockets):
        lock_from_outside(sandbox_child(process.pid), sockets)

    ran = confined("""
        import sys
        print("up", flush=True)
        sys.stdin.readline()
        try:
            open(sys.argv[1] + "/filler", "w")
            print("written")
        except OSError as error:
            print("refused", error.errno)
    """, "SOCKETS", during=lock)
    assert ran.code == 0, ran.err
    assert "refused" in ran.out


def _shmem_kb() -> int:
    return int(next(x for x in Path("/proc/meminfo").read_text().splitlines() if x.startswith("Shmem:")).split()[1])


# Each file is kept under the 32 MB file-size limit (RLIMIT_FSIZE), so only the cgroup can stop these.
BOMBS = {
    "anonymous": "hog = []\nwhile True:\n    hog.append(b'\\x01' * (16 << 20))",
    "memfd, a descriptor per 16 MB": "import os\nhog = []\nwhile True:\n    hog.append(os.memfd_create('hog'))\n"
                                     "    os.write(hog[-1], b'\\x01' * (16 << 20))",
    "tmpfs files": "k = 0\nwhile True:\n    k += 1\n    open(f'/dev/shm/hog{k}', 'wb').write(b'\\x01' * (16 << 20))",
    "sysv": """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
while True:
    ident = libc.shmget(0, 16 << 20, 0o1600)
    ctypes.memset(libc.shmat(ident, None, 0), 1, 16 << 20)
""",
}


@pytest.mark.parametrize("kind", BOMBS)
def test_every_kind_of_memory_counts(kind):
    before = _shmem_kb()
    ran = confined(BOMBS[kind], limits=Limits(memory_mb=128, processes=64, disk_mb=1024))
    assert ran.out_of_memory and ran.code != 0, (ran.code, ran.err[-300:])
    deadline = time.monotonic() + 10  # the kernel frees a dead IPC namespace's segments a moment later
    while _shmem_kb() - before > 32 << 10 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _shmem_kb() - before < 32 << 10, "memory held in the sandbox outlived it"


def test_a_disk_filler_stops_at_its_folder_size(tmp_path):
    ran = confined("""
        import os
        written = 0
        try:
            for k in range(100):
                with open(f"file{k}", "wb") as f:
                    f.write(b"\\x01" * (31 << 20))
                written += 31
        except OSError as error:
            print(error.errno, written)
    """, limits=Limits(memory_mb=1024, processes=64, disk_mb=64))
    errno, written = map(int, ran.out.split())
    assert errno == 28 and written < 64  # ENOSPC


def test_a_fork_bomb_meets_the_process_limit():
    ran = confined("""
        import os, time
        try:
            while True:
                os.fork()
        except OSError as error:
            print("refused", error.errno, flush=True)
        time.sleep(0.5)
        os._exit(0)
    """, limits=Limits(memory_mb=1024, processes=32, disk_mb=64))
    assert ran.out_of_processes and "refused 11" in ran.out


def test_the_helper_package_imports_from_under_a_closed_folder(tmp_path):
    closed = tmp_path / "closed"
    shutil.copytree(REPO / "workshop", closed / "repo" / "workshop")
    shutil.copytree(REPO / "data", closed / "repo" / "data", ignore=shutil.ignore_patterns("cache"))
    closed.chmod(0o700)
    assert not closed.stat().st_mode & stat.S_IXOTH
    seen = facts("import json, workshop\nprint(json.dumps(workshop.__file__))",
                 environment={"PYTHONPATH": str(closed / "repo")}, readable=(str(closed / "repo"),))
    assert seen == str(closed / "repo" / "workshop" / "__init__.py")


@pytest.fixture
def fake_bwrap():
    """Makes a bwrap that says it is 0.8.0 and then runs a shell body, where the sandbox's uid can run it."""
    folder = Path(tempfile.mkdtemp(prefix="fake-bwrap-"))
    folder.chmod(0o755)

    def make(body: str) -> str:
        fake = folder / "bwrap"
        fake.write_text(f"#!/bin/sh\nif [ \"$1\" = --version ]; then echo 'bubblewrap 0.8.0'; exit 0; fi\n{body}\n")
        fake.chmod(0o755)
        return str(fake)

    yield make
    shutil.rmtree(folder)


def test_a_missing_bubblewrap_is_named_with_its_fix(monkeypatch):
    monkeypatch.setenv("WORKSHOP_BWRAP", "/nonexistent/bwrap")
    found = probe()
    assert not found.sandboxed and "apt-get install bubblewrap" in found.broken()


def test_missing_user_namespaces_are_named_with_the_fix(monkeypatch, fake_bwrap):
    monkeypatch.setenv("WORKSHOP_BWRAP", fake_bwrap(
        "echo 'bwrap: No permissions to create a new namespace, likely because the kernel does not "
                  "allow non-privileged user namespaces.' >&2\nexec >&-\nsleep 1\nexit 1"))  # EOF before the exit
    found = probe()
    assert not found.sandboxed and "sysctl" in found.broken()


def test_a_hanging_sandbox_never_hangs_the_probe(monkeypatch, fake_bwrap):
    monkeypatch.setenv("WORKSHOP_BWRAP", fake_bwrap("sleep 600"))
    started = time.monotonic()
    found = probe(timeout=3)
    assert not found.sandboxed and time.monotonic() - started < 20


def test_grading_refuses_without_a_sandbox_and_names_the_fix(monkeypatch, capsys, tmp_path):
    from grader import grade, sandbox

    monkeypatch.setenv("WORKSHOP_BWRAP", "/nonexistent/bwrap")
    monkeypatch.setattr(sandbox, "capabilities", sandbox.probe)
    monkeypatch.setattr(grade, "capabilities", sandbox.probe)
    assert grade.main(["01-backprop", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "Refusing to grade" in err and "apt-get install bubblewrap" in err and "--no-sandbox" in err
    assert not (tmp_path / "out").exists()

