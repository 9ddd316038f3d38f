"""The sandbox around the kernel that runs one student's code: bubblewrap for isolation, a cgroup for limits.

    python -m grader.sandbox run [OPTIONS] -- KERNEL-COMMAND ...   start a kernel confined (grader.execute does)
    python -m grader.sandbox lock PID PATH                         make PATH read-only inside PID's sandbox
    python -m grader.sandbox probe                                 what this machine enforces, found by trying

Inside, the kernel has (see `bwrap_arguments`):
- an allowlist filesystem: an empty root with read-only binds of /usr, a few files of /etc (its own passwd, group
  and hosts), the Python environment, the helper package and data/; nothing else of the repository (solutions/,
  .git, grader/, results), of any home, or of other submissions;
- a fresh /proc and a minimal /dev; size-limited tmpfs at WORK (its folder and HOME), /tmp and /dev/shm as the
  only writable places, beside the folder of its sockets, which grader.execute locks read-only once the kernel
  has bound them, before any student code runs;
- new user, PID, IPC, UTS, network (its own loopback, no route out) and cgroup namespaces, no capabilities,
  no_new_privs, no further user namespaces, uid 1000; outside, when the grader is root, an unprivileged uid of its
  own (kernel_uid(): no two kernels running at once share one, even from two gradings on one machine);
- a cleared environment: BASE_ENVIRONMENT and what the grader passes; --die-with-parent and --new-session.
Memory (anonymous, memfd, tmpfs and SysV alike), processes and CPU time are limited by a cgroup (v2, or the v1
memory, pids and cpuacct controllers) where one can be made; elsewhere grader.execute polls /proc, which misses
memory that no process maps. `capabilities()` runs the real confinement once and reports what holds.
"""

import argparse
import contextlib
import ctypes
import json
import os
import re
import resource  # POSIX only; the sandbox itself needs Linux (capabilities() says so elsewhere)
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from functools import cache
from glob import glob
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WORK = "/home/student"
INSIDE_UID = 1000
FIRST_UID = 2_000_000_000  # far above the uids of people, system users, `nobody` and the usual subordinate ranges
BWRAP_VERSION = (0, 8, 0)  # the first with --disable-userns
CLONE_NEWNS, CLONE_NEWUSER = 0x00020000, 0x10000000
NS_GET_USERNS = 0xB701  # ioctl: the user namespace that owns a namespace
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 32, 4096, 16384, 1 << 18
TOP_LINKS = ("/bin", "/lib", "/lib32", "/lib64", "/sbin")  # symbolic links into /usr on merged-/usr systems
ETC = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/alternatives", "/etc/localtime", "/etc/fonts")
SYS = ("/sys/block", "/sys/bus", "/sys/class", "/sys/dev", "/sys/devices")  # as Flatpak: CPU and GPU topology
BASE_ENVIRONMENT = {"PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin", "HOME": WORK, "PWD": WORK,
                    "USER": "student", "LOGNAME": "student", "LANG": "C.UTF-8", "TMPDIR": "/tmp",
                    "MPLCONFIGDIR": f"{WORK}/.config/matplotlib"}
NAMESPACE_FIX = ("bubblewrap cannot create user namespaces here. Allow them: "
                 "`sysctl -w kernel.unprivileged_userns_clone=1` (Debian before 12), "
                 "`sysctl -w user.max_user_namespaces=15000`, on Ubuntu 23.10+ "
                 "`sysctl -w kernel.apparmor_restrict_unprivileged_userns=0`; in Docker, run with "
                 "--security-opt seccomp=unconfined --security-opt apparmor=unconfined")


@dataclass(frozen=True)
class Limits:
    """What one submission may use."""

    cpu_seconds: int = 600
    memory_mb: int = 4096  # all its memory: processes, memfd, tmpfs files, SysV segments
    processes: int = 512  # processes and threads, counted together as Linux does
    output_mb: int = 32  # the notebook's outputs, and any one file it writes
    disk_mb: int = 1024  # each writable folder: WORK, /tmp, /dev/shm
    cell_seconds: int = 300
    wall_seconds: int = 900  # the whole notebook
    threads: int = 0  # threads of the maths libraries (BLAS, PyTorch, TensorFlow); 0: the cores shared by the workers

    def rlimits(self, cgroup: bool) -> dict[int, int]:
        """setrlimit values. Without a cgroup the address space is capped too, at twice the memory limit
        (libraries reserve more than they use); with one the cgroup counts what is really used."""
        limits = {
            resource.RLIMIT_CPU: self.cpu_seconds + 30,  # a backstop: the grader stops it at cpu_seconds
            resource.RLIMIT_FSIZE: self.output_mb << 20,
            resource.RLIMIT_NOFILE: 1024,
            resource.RLIMIT_CORE: 0,
        }
        if not cgroup:
            limits[resource.RLIMIT_AS] = 2 * self.memory_mb << 20
        return limits


def _libc():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]
    return libc


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    def encode(text: str | None) -> bytes | None:
        return text.encode() if text is not None else None

    _check(_libc().mount(encode(source), encode(target), encode(fstype), flags, encode(data)), f"mount {target}")


class Cgroup:
    """A cgroup for one sandbox: the kernel's own accounting of memory (anonymous, memfd, tmpfs, SysV), processes
    and CPU time. v2 where the unified hierarchy offers the controllers, else the v1 memory, pids and cpuacct
    hierarchies, each under the grader's own cgroup."""

    V2 = Path("/sys/fs/cgroup")
    V1 = {"memory": Path("/sys/fs/cgroup/memory"), "pids": Path("/sys/fs/cgroup/pids"),
          "cpuacct": Path("/sys/fs/cgroup/cpuacct")}

    def __init__(self, folders: dict[str, Path], version: int):
        self.folders, self.version = folders, version

    @staticmethod
    def own(controller: str) -> str:
        """The grader's cgroup path in a v1 hierarchy ("" for v2), from /proc/self/cgroup."""
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, names, path = line.split(":", 2)
            if controller in names.split(","):
                return path.lstrip("/")
        return ""

    @classmethod
    def create(cls, name: str, limits: Limits) -> "Cgroup":
        """Make the cgroup and set its limits; OSError (with the reason) where this machine does not allow it."""
        if (cls.V2 / "cgroup.controllers").exists():
            parent = cls.V2 / "workshop-grader"
            for folder in (cls.V2, parent):
                folder.mkdir(exist_ok=True)
                (folder / "cgroup.subtree_control").write_text("+memory +pids +cpu")
            group = cls(dict.fromkeys(("memory", "pids", "cpu"), parent / name), 2)
        else:
            group = cls({c: root / cls.own(c) / name for c, root in cls.V1.items()}, 1)
        made = []
        try:
            for folder in dict.fromkeys(group.folders.values()):
                folder.mkdir()
                made.append(folder)
            memory = str(limits.memory_mb << 20)
            if group.version == 2:
                group._write("memory", "memory.max", memory)
                group._write("memory", "memory.swap.max", "0", optional=True)
            else:
                group._write("memory", "memory.limit_in_bytes", memory)
                group._write("memory", "memory.memsw.limit_in_bytes", memory, optional=True)  # no swapping out
            group._write("pids", "pids.max", str(limits.processes))
        except OSError:
            for folder in made:
                folder.rmdir()
            raise
        return group

    def _write(self, controller: str, name: str, value: str, optional: bool = False) -> None:
        path = self.folders[controller] / name
        if optional and not path.exists():
            return
        path.write_text(value)

    def _counter(self, controller: str, name: str, key: str) -> int:
        """A value from a flat keyed file such as memory.events ("oom_kill 1")."""
        try:
            for line in (self.folders[controller] / name).read_text().splitlines():
                parts = line.split()
                if parts[:1] == [key]:
                    return int(parts[1])
        except OSError:
            pass
        return 0

    def paths(self) -> list[str]:
        return list(dict.fromkeys(map(str, self.folders.values())))

    def cpu_seconds(self) -> float:
        if self.version == 2:
            return self._counter("cpu", "cpu.stat", "usage_usec") / 1e6
        try:
            return int((self.folders["cpuacct"] / "cpuacct.usage").read_text()) / 1e9
        except OSError:
            return 0.0

    def out_of_memory(self) -> bool:
        """Whether the kernel's OOM killer has acted in this cgroup."""
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        return self._counter("memory", name, "oom_kill") > 0

    def out_of_processes(self) -> bool:
        """Whether a fork or a new thread was refused for reaching pids.max."""
        return self._counter("pids", "pids.events", "max") > 0

    def pids(self) -> list[int]:
        found = set()
        for folder in self.paths():
            try:
                found.update(int(p) for p in (Path(folder) / "cgroup.procs").read_text().split())
            except OSError:
                pass
        return sorted(found)

    def remove(self) -> None:
        """Kill whatever is left in it, then remove it. No process may start in it meanwhile (pids.max 0): a fork
        bomb would otherwise refill it as fast as its processes are killed, and on a loaded machine outlast the
        deadline."""
        with contextlib.suppress(OSError):
            self._write("pids", "pids.max", "0")
        deadline = time.monotonic() + 60
        for folder in self.paths():
            while Path(folder).exists():
                for pid in self.pids():
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
                try:
                    Path(folder).rmdir()
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.02)


def python_paths() -> list[str]:
    """The Python installation and environment the kernel needs (outermost folders only)."""
    paths = sorted({sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix})
    return [p for p in paths if not any(p != q and Path(p).is_relative_to(q) for q in paths)]


def readable_paths(extra: list[str] = ()) -> list[str]:
    """Everything bound read-only besides the system: Python, the helper package, data/, and `extra`."""
    data = os.environ.get("WORKSHOP_DATA_DIR")
    wanted = [*python_paths(), str(REPO / "workshop"), str(REPO / "data"), *([data] if data else []), *extra]
    return [p for p in dict.fromkeys(wanted) if os.path.exists(p)]


def _etc_files() -> dict[str, str]:
    """Files of /etc the sandbox gets instead of the host's."""
    return {
        "/etc/passwd": f"root:x:0:0::/:/usr/sbin/nologin\nstudent:x:{INSIDE_UID}:{INSIDE_UID}::{WORK}:/bin/sh\n"
                       "nobody:x:65534:65534::/:/usr/sbin/nologin\n",
        "/etc/group": f"root:x:0:\nstudent:x:{INSIDE_UID}:\nnogroup:x:65534:\n",
        "/etc/hosts": "127.0.0.1 localhost sandbox\n::1 localhost ip6-localhost\n",
        "/etc/nsswitch.conf": "passwd: files\ngroup: files\nhosts: files\n",
    }


def _data_fd(text: str) -> int:
    """A pipe holding `text`, for bwrap's --ro-bind-data."""
    read, write = os.pipe()
    os.write(write, text.encode())
    os.close(write)
    os.set_inheritable(read, True)
    return read


def bwrap_arguments(sockets: str, environment: dict[str, str], disk_mb: int, readable: list[str]) -> list[str]:
    """The bwrap command line, up to the command itself."""
    args = ["--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-net", "--unshare-uts",
            "--unshare-cgroup-try", "--disable-userns", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
            "--uid", str(INSIDE_UID), "--gid", str(INSIDE_UID), "--hostname", "sandbox", "--clearenv"]
    for key, value in {**BASE_ENVIRONMENT, **environment}.items():
        args += ["--setenv", key, value]
    args += ["--ro-bind", "/usr", "/usr"]
    for path in TOP_LINKS:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    for path in (*ETC, *SYS):
        args += ["--ro-bind-try", path, path]
    for path, text in _etc_files().items():
        args += ["--ro-bind-data", str(_data_fd(text)), path]
    args += ["--proc", "/proc", "--dev", "/dev"]
    for device in sorted(glob("/dev/nvidia*") + glob("/dev/dri")):  # GPUs, where there are any
        args += ["--dev-bind", device, device]
    size = str(disk_mb << 20)  # the writable folders first, so that binds below them (a repository in /tmp) stay
    args += ["--perms", "1777", "--size", size, "--tmpfs", "/tmp", "--perms", "1777", "--size", size, "--tmpfs",
             "/dev/shm", "--perms", "0700", "--size", size, "--tmpfs", WORK, "--dir", f"{WORK}/.config"]
    for path in readable:
        args += ["--ro-bind", path, path]
    args += ["--bind", sockets, sockets, "--chdir", WORK, "--remount-ro", "/"]
    return args


def _closed(path: str) -> Path | None:
    """The outermost folder above `path` that other users cannot enter, if any."""
    return next((p for p in reversed(Path(path).parents) if p != Path("/") and not p.stat().st_mode & 0o001), None)


def _expose(paths: list[str]) -> None:
    """For an unprivileged uid, in a mount namespace of this process alone: cover each closed folder above
    `paths` (such as /root) with an empty one and put the paths back, read-only."""
    tops = {p: _closed(p) for p in paths}
    if not any(tops.values()):
        return
    _check(_libc().unshare(CLONE_NEWNS), "unshare")
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    kept = {p: os.open(p, os.O_PATH) for p, top in tops.items() if top}
    for top in sorted({str(t) for t in tops.values() if t}):
        _mount("tmpfs", top, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
    for path, fd in kept.items():
        if os.path.isdir(f"/proc/self/fd/{fd}"):
            os.makedirs(path, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            Path(path).touch()
        _mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC)
        _mount(None, path, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
        os.close(fd)


def bwrap() -> str:
    """The bubblewrap program: $WORKSHOP_BWRAP, else bwrap on PATH."""
    return os.environ.get("WORKSHOP_BWRAP") or shutil.which("bwrap") or "bwrap"


def run(args) -> None:
    """The launcher: join the cgroup, set the limits, leave root for the kernel's own uid, then exec bwrap."""
    for folder in args.cgroup:
        (Path(folder) / "cgroup.procs").write_text(str(os.getpid()))
    limits = Limits(cpu_seconds=args.cpu, memory_mb=args.memory, processes=args.processes, output_mb=args.output)
    for kind, value in limits.rlimits(cgroup=bool(args.cgroup)).items():
        resource.setrlimit(kind, (value, value))
    readable = readable_paths(args.readable)
    if os.geteuid() == 0 and args.uid is not None:
        _expose(readable)
        for path in [Path(args.sockets), *Path(args.sockets).iterdir()]:
            os.chown(path, args.uid, args.uid, follow_symlinks=False)
        os.setgroups([])
        os.setgid(args.uid)
        os.setuid(args.uid)
        backstop = args.processes + 64  # above the cgroup's limit, which grader.execute reports
        resource.setrlimit(resource.RLIMIT_NPROC, (backstop, backstop))
    environment = dict(setting.split("=", 1) for setting in args.env)
    command = [bwrap(), *bwrap_arguments(args.sockets, environment, args.disk, readable), "--", *args.command]
    os.execvp(command[0], command)


def kernel_uid() -> int:
    """The uid outside the sandbox for a kernel started by this process: FIRST_UID + its pid, unique while the
    process lives. Kernels of one uid share its RLIMIT_NPROC, so one's fork bomb would starve another's threads."""
    return FIRST_UID + os.getpid()


def launcher(sockets: str, limits: Limits, uid: int | None = None, cgroup: "Cgroup | None" = None,
             environment: dict[str, str] | None = None, readable: list[str] = ()) -> list[str]:
    """The command that starts a kernel in the sandbox; append "--" and the kernel's command line."""
    command = [sys.executable, __file__, "run", "--sockets", sockets, "--cpu", str(limits.cpu_seconds),
               "--memory", str(limits.memory_mb), "--processes", str(limits.processes),
               "--output", str(limits.output_mb), "--disk", str(limits.disk_mb)]
    if uid is not None:
        command += ["--uid", str(uid)]
    for path in cgroup.paths() if cgroup else []:
        command += ["--cgroup", path]
    for key, value in (environment or {}).items():
        command += ["--env", f"{key}={value}"]
    for path in readable:
        command += ["--readable", path]
    return command


def lock(pid: int, path: str) -> None:
    """Remount `path` read-only inside the mount namespace of process `pid` (from outside: the sandbox itself has
    no capability to undo it)."""
    import fcntl

    libc = _libc()
    with open(f"/proc/{pid}/ns/mnt") as mntns:
        if os.geteuid() != 0:  # join the user namespace that owns the mounts: the grader made it, so it may
            owner = fcntl.ioctl(mntns.fileno(), NS_GET_USERNS)
            _check(libc.setns(owner, CLONE_NEWUSER), "setns user")
        _check(libc.setns(mntns.fileno(), CLONE_NEWNS), "setns mnt")
    _mount(None, path, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)


def lock_from_outside(pid: int, path: str) -> None:
    """`lock` in a fresh process (joining a mount namespace needs a process of one thread)."""
    result = subprocess.run([sys.executable, __file__, "lock", str(pid), path], capture_output=True, text=True,
                            timeout=30)
    if result.returncode != 0:
        raise OSError(f"could not lock {path} read-only in the sandbox: {result.stderr.strip()[-300:]}")


def sandbox_child(pid: int) -> int | None:
    """The first process inside the sandbox started by bwrap process `pid` (its child), or None."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return None
    return int(children[0]) if children else None


PROTECTIONS = ("namespaces", "filesystem", "network", "environment", "memory", "processes", "cpu", "disk",
               "sockets locked", "helper package")
VITAL = ("namespaces", "filesystem", "network", "environment", "sockets locked", "helper package")


@dataclass(frozen=True)
class Confinement:
    """What this machine enforces: for each protection "" where it holds, else why not."""

    problems: dict[str, str]
    cgroup: int = 0  # the cgroup version that holds memory, processes and CPU; 0: none
    detail: str = ""  # bubblewrap's version, or why it cannot run
    facts: dict = field(default_factory=dict)  # what the probe saw inside

    @classmethod
    def none(cls, why: str) -> "Confinement":
        """No sandbox at all, and why."""
        return cls(dict.fromkeys(PROTECTIONS, why), detail=why)

    @property
    def sandboxed(self) -> bool:
        return not self.problems.get("namespaces")

    def broken(self) -> str:
        """Why kernels cannot be confined here at all ("" where they can). Memory, processes, CPU and disk are not
        in it: without a cgroup they are polled from /proc instead, which the summary says."""
        if not self.sandboxed:
            return self.detail
        return "; ".join(f"{k}: {self.problems[k]}" for k in VITAL if self.problems[k])

    def summary(self) -> str:
        if not self.sandboxed:
            return f"Sandbox: {self.detail}"
        missing = {k: v for k, v in self.problems.items() if v}
        held = f"memory, processes and CPU by cgroup v{self.cgroup}" if self.cgroup else "limits polled from /proc"
        if not missing:
            return f"Sandbox: {self.detail}; every protection holds ({held})."
        return f"Sandbox: {self.detail}; {held}; NOT enforced here: " + "; ".join(
            f"{k} ({v})" for k, v in missing.items())


PROBE_INSIDE = r"""
import json, os, socket, sys, threading, time
facts = {"uid": os.getuid(), "pids": len([p for p in os.listdir("/proc") if p.isdigit()]),
         "environment": sorted(os.environ)}
status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
facts["caps"], facts["no_new_privs"] = status["CapEff"].strip(), status["NoNewPrivs"].strip()
try:
    import workshop, ipykernel
    facts["imports"] = ""
except Exception as error:
    facts["imports"] = f"{type(error).__name__}: {error}"
facts["writable"] = []
for folder in ["/", "/usr", "/etc", sys.prefix, sys.base_prefix]:
    try:
        open(os.path.join(folder, "probe"), "w").close()
        facts["writable"].append(folder)
    except OSError:
        pass
facts["visible"] = [p for p in sys.argv[2:] if os.path.exists(p)]
try:
    socket.create_connection(("1.1.1.1", 53), timeout=2)
    facts["network"] = "reached 1.1.1.1"
except OSError:
    facts["network"] = ""
stop, started = threading.Event(), 0
try:
    for _ in range(64):
        threading.Thread(target=stop.wait).start()
        started += 1
except RuntimeError:
    pass
stop.set()
facts["threads"] = started
try:
    with open(os.path.join(os.environ["HOME"], "fill"), "wb") as f:
        for _ in range(64):
            f.write(bytes(1 << 20))
            f.flush()
    facts["disk"] = "64 MB written"
except OSError as error:
    facts["disk"] = ""
    os.remove(os.path.join(os.environ["HOME"], "fill"))
print(json.dumps(facts), flush=True)
sys.stdin.readline()  # outside locks the sockets folder meanwhile
try:
    open(os.path.join(sys.argv[1], "probe"), "w").close()
    print(json.dumps({"sockets": "writable"}), flush=True)
except OSError:
    print(json.dumps({"sockets": ""}), flush=True)
hog = []
while True:
    hog.append(os.urandom(1) * (16 << 20))
"""


def probe(timeout: float = 60) -> Confinement:
    """Run the real confinement once on a small script and check what it saw; never waits past `timeout`."""
    if sys.platform != "linux":
        why = f"bubblewrap needs Linux, not {sys.platform}"
        return Confinement.none(why)
    try:
        words = subprocess.run([bwrap(), "--version"], capture_output=True, text=True, timeout=10).stdout.split()
    except (OSError, subprocess.TimeoutExpired) as error:
        why = f"bubblewrap not found ({error}): install it (`apt-get install bubblewrap`, `dnf install bubblewrap`)"
        return Confinement.none(why)
    version = tuple(int(x) for x in re.findall(r"\d+", words[-1])[:3]) if words else ()
    detail = f"bubblewrap {'.'.join(map(str, version))}"
    if version < BWRAP_VERSION:
        why = f"{detail} is too old: 0.8 or newer is needed"
        return Confinement.none(why)
    problems = dict.fromkeys(PROTECTIONS, "")
    limits = Limits(memory_mb=256, processes=32, disk_mb=16)
    try:
        group = Cgroup.create(f"workshop-probe-{os.getpid()}", limits)
    except OSError as error:
        group = None
        for key in ("memory", "processes", "cpu"):
            problems[key] = f"no cgroup can be made here ({error.strerror or error}): polled from /proc instead"
    sockets = tempfile.mkdtemp(prefix="grade-probe-")
    readable = readable_paths()
    hidden = [h for h in (str(REPO / ".git"), str(REPO / "solutions"), str(REPO / "grader"), *glob("/home/*"),
                          *glob("/root/.*")) if not any(Path(r).is_relative_to(h) for r in readable)]
    command = [*launcher(sockets, limits, FIRST_UID, group), "--", sys.executable, "-c", PROBE_INSIDE, sockets, *hidden]
    try:
        facts, trouble = _run_probe(command, sockets, problems, timeout), ""
    except (OSError, ValueError, subprocess.TimeoutExpired) as error:
        facts, trouble = {}, f"the sandbox does not start ({error})"
        if re.search(r"namespace|uid map|Operation not permitted", trouble):
            trouble = f"{trouble}. {NAMESPACE_FIX}"
    oom, limited = (group.out_of_memory(), group.out_of_processes()) if group else (False, False)
    if group:
        group.remove()
    shutil.rmtree(sockets, ignore_errors=True)
    if trouble:
        return Confinement.none(f"{detail}: {trouble}")
    return Confinement(_judge(facts, problems, group is not None, oom, limited), group.version if group else 0,
                       detail, facts)


def _run_probe(command: list[str], sockets: str, problems: dict[str, str], timeout: float) -> dict:
    """Start the probe, lock its sockets folder between its two reports, and return what it reported."""
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    try:
        facts = _read_json(process, timeout)
        try:
            lock_from_outside(sandbox_child(process.pid), sockets)
        except (OSError, subprocess.TimeoutExpired) as error:
            problems["sockets locked"] = str(error)
        process.stdin.write("go\n")
        process.stdin.flush()
        facts |= _read_json(process, timeout)
        process.wait(timeout=timeout)
        return facts
    except (OSError, ValueError, subprocess.TimeoutExpired) as error:
        try:  # stdout closing comes a moment before the exit: give it that moment to read stderr
            process.wait(timeout=0 if isinstance(error, subprocess.TimeoutExpired) else 5)
            stderr = process.stderr.read()
        except subprocess.TimeoutExpired:
            stderr = ""
        why = stderr.strip().splitlines()[-1] if stderr.strip() else f"{type(error).__name__}: {error}"
        raise OSError(why) from error
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _read_json(process: subprocess.Popen, timeout: float) -> dict:
    """One line of JSON from the probe's output, within `timeout` seconds."""
    import selectors

    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            raise subprocess.TimeoutExpired("probe", timeout)
    line = process.stdout.readline()
    if not line:
        raise ValueError("the probe printed nothing")
    return json.loads(line)


def _judge(facts: dict, problems: dict[str, str], cgroup: bool, oom: bool, pids: bool) -> dict[str, str]:
    """Fill `problems` from what the probe saw (`oom` and `pids`: the cgroup's counters, where there is one)."""
    if facts["uid"] == 0 or int(facts["caps"], 16) or facts["no_new_privs"] != "1":
        problems["namespaces"] = f"uid {facts['uid']}, capabilities {facts['caps']}, NoNewPrivs {facts['no_new_privs']}"
    if facts["pids"] > 4:
        problems["namespaces"] = f"{facts['pids']} processes visible in /proc"
    if facts["writable"] or facts["visible"]:
        problems["filesystem"] = f"writable: {facts['writable']}, visible: {facts['visible']}"
    if facts["network"]:
        problems["network"] = facts["network"]
    unexpected = set(facts["environment"]) - set(BASE_ENVIRONMENT)
    if unexpected:
        problems["environment"] = f"unexpected variables {sorted(unexpected)}"
    if facts["disk"]:
        problems["disk"] = f"the work folder took {facts['disk']} past its limit"
    if facts.get("sockets"):
        problems["sockets locked"] = "the sockets folder stayed writable"
    if facts["imports"]:
        problems["helper package"] = (f"the helper package and ipykernel do not import inside the sandbox "
                                      f"({facts['imports']}); is the repository readable by others?")
    if cgroup and not oom:
        problems["memory"] = "the cgroup's memory limit did not stop the probe"
    if cgroup and (facts["threads"] >= 64 or not pids):
        problems["processes"] = f"{facts['threads']} threads started under a limit of 32"
    return problems


@cache
def capabilities() -> Confinement:
    """`probe()`, once per process."""
    return probe()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grader.sandbox", description=__doc__.splitlines()[0])
    verbs = parser.add_subparsers(dest="verb", required=True)
    start = verbs.add_parser("run", help="start a command in the sandbox (replaces this process with bwrap)")
    start.add_argument("--sockets", required=True, help="the kernel's socket folder, bound read-write at its path")
    start.add_argument("--uid", type=int, help="when root: the unprivileged uid to run the sandbox as")
    start.add_argument("--cgroup", action="append", default=[], help="a cgroup folder to join (repeatable)")
    start.add_argument("--readable", action="append", default=[], help="another path to bind read-only")
    start.add_argument("--env", action="append", default=[], help="KEY=VALUE for the kernel's environment")
    start.add_argument("--cpu", type=int, default=Limits.cpu_seconds)
    start.add_argument("--memory", type=int, default=Limits.memory_mb)
    start.add_argument("--processes", type=int, default=Limits.processes)
    start.add_argument("--output", type=int, default=Limits.output_mb)
    start.add_argument("--disk", type=int, default=Limits.disk_mb)
    start.add_argument("command", nargs="+")
    fasten = verbs.add_parser("lock", help="remount PATH read-only inside the sandbox of process PID")
    fasten.add_argument("pid", type=int)
    fasten.add_argument("path")
    verbs.add_parser("probe", help="run the real confinement once and print what holds")
    args = parser.parse_args(argv)
    if args.verb == "run":
        run(args)
    elif args.verb == "lock":
        lock(args.pid, args.path)
    else:
        found = probe()
        print(found.summary())
        print(json.dumps(found.facts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
