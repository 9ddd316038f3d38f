"""A sandbox for the kernel that runs one student's code: python -m grader.sandbox [OPTIONS] -- COMMAND ...

Only the kernel is sandboxed; nbgrader and the code that reads its outputs run outside, so nothing a student
writes can forge a grade. On Linux the sandbox
- sets resource limits (CPU seconds, address space, file size, open files, no core dumps; processes where the
  kernel runs under a user id of its own, that is when the grader runs as root);
- runs the kernel in new user, mount, network and PID namespaces: no network but its own loopback (the kernel
  talks to the grader over Unix sockets), every inherited mount read-only, fresh empty /tmp, /var/tmp, /dev/shm
  and HOME, the hidden paths (solutions, gradebook, other submissions) covered by empty directories, only the
  submission's own folder writable, and every process it starts killed with it.
Memory (resident set), the notebook's output size and wall-clock time are watched from outside (grader.execute).
`capabilities()` says which of these this machine can enforce; the grading tool prints what it cannot.
"""

import argparse
import ctypes
import os
import re
import resource  # POSIX only: the grading tool runs on Linux (every protection) and macOS (some; it says which)
import signal
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x00020000, 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 32, 4096, 16384, 1 << 18
PR_SET_PDEATHSIG = 1
SCRATCH = ("/tmp", "/var/tmp", "/dev/shm")
FIRST_UID = 61000  # kernels of worker k run as user FIRST_UID + k when the grader is root


@dataclass(frozen=True)
class Limits:
    """What one submission may use."""

    cpu_seconds: int = 600
    memory_mb: int = 4096  # resident memory of all its processes together
    processes: int = 512  # processes and threads, counted together as Linux does
    output_mb: int = 32  # the notebook's outputs, and any one file it writes
    cell_seconds: int = 300
    wall_seconds: int = 900  # the whole notebook
    threads: int = 0  # threads of the maths libraries (BLAS, PyTorch, TensorFlow); 0: the cores shared by the workers

    def rlimits(self) -> dict[int, int]:
        """The setrlimit values; address space gets twice the memory limit (libraries reserve more than they use)."""
        return {
            resource.RLIMIT_CPU: self.cpu_seconds + 30,  # a backstop: the grader stops it at cpu_seconds
            resource.RLIMIT_AS: 2 * self.memory_mb << 20,
            resource.RLIMIT_FSIZE: self.output_mb << 20,
            resource.RLIMIT_NOFILE: 1024,
            resource.RLIMIT_CORE: 0,
        }


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


def _mount_points() -> list[str]:
    """Every mount point of this namespace (mountinfo writes a space in a path as \\040)."""
    def unescape(match: re.Match) -> str:
        return chr(int(match.group(1), 8))

    return [re.sub(r"\\(\d{3})", unescape, line.split()[4]) for line in Path("/proc/self/mountinfo").open()]


def _bind(fd: int, target: str, flags: int) -> None:
    """Mount the directory open as `fd` at `target` (created if needed) with mount flags `flags`."""
    os.makedirs(target, exist_ok=True)
    _mount(f"/proc/self/fd/{fd}", target, None, MS_BIND)
    _mount(None, target, None, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV | flags)


def isolate_filesystem(workdir: Path, hidden: list[Path], keep: list[Path]) -> list[str]:
    """In a fresh mount namespace: everything read-only, scratch dirs and hidden paths empty, workdir writable.

    `keep` (the Python environment, the repository) stays visible, read-only, even where it lies in a scratch
    dir such as /tmp. Returns the mount points that could not be made read-only."""
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    scratch = [path for path in SCRATCH if os.path.isdir(path)]
    under_scratch = [p for p in keep if any(p.is_relative_to(s) for s in scratch)]
    folders = {str(p): os.open(p, os.O_RDONLY | os.O_DIRECTORY) for p in [*under_scratch, workdir]}
    stubborn = []
    for point in _mount_points():
        if point.startswith("/proc") or point.startswith("/sys"):
            continue
        try:
            _mount(None, point, None, MS_REMOUNT | MS_BIND | MS_RDONLY)
        except OSError:
            try:  # a mount with locked nosuid/nodev flags only accepts them being kept
                _mount(None, point, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
            except OSError:
                stubborn.append(point)
    for path in scratch:
        _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, "size=64m,mode=1777")
    for path in under_scratch:
        _bind(folders[str(path)], str(path), MS_RDONLY)
    for path in map(str, hidden):
        if os.path.isdir(path):
            _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
        elif os.path.exists(path):
            _mount("/dev/null", path, None, MS_BIND)
    _bind(folders[str(workdir)], str(workdir), 0)
    for fd in folders.values():
        os.close(fd)
    return stubborn


@cache
def capabilities() -> dict[str, str]:
    """For each protection: "" where this machine enforces it, else why not. Probed once, in a child process."""
    protections = ["cpu", "memory", "processes", "output", "wall-clock", "network", "filesystem"]
    if sys.platform != "linux":
        # no namespaces or resource limits there (the kernel is not sandboxed), and no /proc for the watchdog:
        # only the output size and the time limits, which the grader measures itself, still apply
        return {p: "" if p in ("output", "wall-clock") else f"not on {sys.platform}" for p in protections}
    found = dict.fromkeys(protections, "")
    if os.geteuid() != 0:
        found["processes"] = "needs root (a user id of its own per kernel)"
    probe = subprocess.run(
[sys.executable, __file__, "--probe"], capture_output=True, text=True)
    if probe.returncode != 0:
        why = (probe.stderr.strip().splitlines() or ["unknown"])[-1]
        found["network"] = found["filesystem"] = f"namespaces unavailable ({why})"
    return found


def _write_maps(pid: int, uid: int | None) -> None:
    """From outside: map the child's root (root only) and the kernel's user id into its user namespace."""
    me, group = os.geteuid(), os.getegid()
    if me == 0 and uid is not None:
        users, groups = f"0 0 1\n{uid} {uid} 1", f"0 0 1\n{uid} {uid} 1"
    else:
        Path(f"/proc/{pid}/setgroups").write_text("deny")
        users, groups = f"{me} {me} 1", f"{group} {group} 1"
    Path(f"/proc/{pid}/uid_map").write_text(users)
    Path(f"/proc/{pid}/gid_map").write_text(groups)


def expose(paths: list[str]) -> None:
    """Make `paths` (the Python installation) reachable for an unprivileged kernel under closed parents."""
    for path in map(Path, paths):
        closed = [p for p in reversed(path.parents) if p != Path("/") and not p.stat().st_mode & 0o001]
        if not closed:
            continue
        keep = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        _mount("tmpfs", str(closed[0]), "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
        os.makedirs(path, exist_ok=True)
        _mount(f"/proc/self/fd/{keep}", str(path), None, MS_BIND)
        _mount(None, str(path), None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
        os.close(keep)


def loopback_up() -> None:
    """Bring up the new network namespace's loopback, so code may talk to itself (a local Dask cluster) but to
    nothing else."""
    import fcntl
    import socket
    import struct

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        flags = struct.unpack("16sH", fcntl.ioctl(s, 0x8913, struct.pack("16sH22x", b"lo", 0))[:18])[1]  # get
        fcntl.ioctl(s, 0x8914, struct.pack("16sH22x", b"lo", flags | 1))  # set IFF_UP


def _confine(args) -> None:
    """Inside the new namespaces: loopback, the filesystem view, then the limits and the kernel's own user id."""
    limits = Limits(cpu_seconds=args.cpu, memory_mb=args.memory, processes=args.processes, output_mb=args.output)
    loopback_up()
    keep = {Path(sys.prefix), Path(sys.base_prefix), Path(__file__).resolve().parent.parent}  # the repository
    stubborn = isolate_filesystem(Path(args.workdir), [Path(p) for p in args.hide], sorted(keep))
    if stubborn:
        print(f"sandbox: could not make these mounts read-only: {stubborn}", file=sys.stderr)
    drop = os.geteuid() == 0 and args.uid is not None
    if drop:
        expose(sorted({sys.base_prefix, sys.prefix, str(Path(args.command[0]).resolve().parent)}))
        for path in [Path(args.workdir), *Path(args.workdir).rglob("*")]:
            os.chown(path, args.uid, args.uid, follow_symlinks=False)
        os.setgroups([])
        os.setgid(args.uid)
        os.setuid(args.uid)
        _libc().prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # a change of user id clears it
    for kind, value in limits.rlimits().items():
        resource.setrlimit(kind, (value, value))
    if drop:
        backstop = limits.processes + 64  # above the grader's own check, so a fork bomb always crosses that first
        resource.setrlimit(resource.RLIMIT_NPROC, (backstop, backstop))


def _relay(child: int) -> int:
    """Pass interrupts on to `child`, wait for it and return its exit code."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda number, _: os.kill(child, number))
    while True:
        try:
            _, status = os.waitpid(child, 0)
            code = os.waitstatus_to_exitcode(status)
            return 128 - code if code < 0 else code  # killed by signal N: 128 + N, as a shell reports it
        except InterruptedError:
            continue


def _sandboxed(args) -> int:
    """Runs in the child: enter the namespaces, confine, then start the kernel as PID 1 of the new PID namespace
    (when it dies, everything it started dies with it)."""
    _check(_libc().unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID), "unshare")
    os.write(args.ready, b"1")
    os.read(args.mapped, 1)
    if args.probe:
        return 0
    _confine(args)
    kernel = os.fork()
    if kernel == 0:
        _libc().prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        os.chdir(args.workdir)
        os.environ.update(HOME=args.workdir, TMPDIR="/tmp", MPLCONFIGDIR=f"{args.workdir}/.matplotlib")
        os.environ.update(setting.split("=", 1) for setting in args.env)
        os.execvp(args.command[0], args.command)
    return _relay(kernel)


def _start(args) -> int:
    """Fork the sandboxed child, write its user-id maps from outside, and wait for it."""
    ready_r, ready_w = os.pipe()
    mapped_r, mapped_w = os.pipe()
    child = os.fork()
    if child == 0:
        _libc().prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        args.ready, args.mapped = ready_w, mapped_r
        try:
            os._exit(_sandboxed(args))
        except BaseException as error:  # noqa: BLE001 - report any failure to set up, then leave at once
            print(f"sandbox: {error}", file=sys.stderr, flush=True)
            os._exit(70)
    if os.read(ready_r, 1):
        _write_maps(child, args.uid)
    os.write(mapped_w, b"1")
    return _relay(child)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probe", action="store_true", help="only check that the namespaces can be entered")
    parser.add_argument("--workdir", default=os.getcwd())
    parser.add_argument("--uid", type=int)
    parser.add_argument("--hide", action="append", default=[], help="a path the kernel must not see")
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for the kernel's environment")
    parser.add_argument("--cpu", type=int, default=Limits.cpu_seconds)
    parser.add_argument("--memory", type=int, default=Limits.memory_mb)
    parser.add_argument("--processes", type=int, default=Limits.processes)
    parser.add_argument("--output", type=int, default=Limits.output_mb)
    parser.add_argument("command", nargs="*")
    args = parser.parse_args(argv)
    return _start(args)


if __name__ == "__main__":
    sys.exit(main())
