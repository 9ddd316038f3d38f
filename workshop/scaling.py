"""Data parallelism on one machine: run a function on several processes joined by torch.distributed.

`launch(fn, world_size, args)` starts `world_size` worker processes, joins them into a process group
(gloo on 127.0.0.1 by default, NCCL for one GPU per process), calls `fn(rank, world_size, *args)` in each and
returns what each rank returned, by rank, with tensors turned into NumPy arrays. It never hangs: a rank that
fails stops the others and its traceback is raised in the caller, and ranks that are still running after
`timeout` seconds are killed (the process group has the same timeout for its collectives). A rank whose
function still raises NotImplementedError fails as workshop.checks.attempt makes it fail.

The default start method, "fork", lets `fn` be a function defined in a notebook; it works on Linux for CPU
work. CUDA cannot be used in a forked child of a process that has used CUDA: use start_method="spawn" there,
with a function that can be imported (such as `train_worker` below).
"""

import copy
import multiprocessing
import os
import socket
import sys
import tempfile
import time
import traceback
from datetime import timedelta
from multiprocessing.connection import wait

import numpy as np

from workshop.checks import attempt


class RankError(RuntimeError):
    """A worker process failed or died; the message holds its traceback and the end of its output."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def to_numpy(value):
    """`value` with every torch tensor in it (in lists, tuples and dicts too) replaced by a NumPy array."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        return value.detach().cpu().numpy()
    if isinstance(value, dict):
        return {key: to_numpy(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_numpy(item) for item in value)
    return value


def _worker(fn, rank, world_size, args, backend, init_method, timeout, threads, writer, log_path):
    # Everything this rank prints, Python or C++ (gloo's warnings), goes to its own log file: a forked child
    # would otherwise write into the notebook cell of its parent, and a graded cell that writes to stderr fails.
    log = open(log_path, "w", buffering=1)
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    sys.stdout = sys.stderr = log
    try:
        import torch
        import torch.distributed as dist

        torch.set_num_threads(threads)
        if sys.platform == "linux":
            os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")  # one machine: talk over the loopback interface
        if backend == "nccl":
            torch.cuda.set_device(rank % torch.cuda.device_count())
        dist.init_process_group(backend, init_method=init_method, rank=rank, world_size=world_size,
                                timeout=timedelta(seconds=timeout))
        try:
            result = attempt(fn, rank, world_size, *args)
        finally:
            dist.destroy_process_group()
        writer.send(("ok", to_numpy(result)))
    except BaseException as exc:  # report everything, KeyboardInterrupt and SystemExit too
        kind = "AssertionError" if isinstance(exc, AssertionError) else type(exc).__name__  # CheckFailed too
        writer.send(("error", (kind, str(exc), traceback.format_exc())))
    finally:
        writer.close()
        log.flush()


def _tail(path: str, chars: int = 2000) -> str:
    try:
        text = open(path, errors="replace").read()
    except OSError:
        return ""
    return text[-chars:].strip()


def launch(fn, world_size: int = 2, args: tuple = (), backend: str = "gloo", start_method: str = "fork",
           timeout: float = 60.0, threads: int = 1) -> list:
    """Run fn(rank, world_size, *args) on `world_size` new processes in one process group; return the results.

    threads: torch threads per process (processes × threads should not exceed the cores).
    timeout: seconds for the whole run; ranks still running then are killed and TimeoutError is raised.
    """
    if world_size < 1:
        raise ValueError(f"world_size must be at least 1, not {world_size}")
    if start_method == "fork":
        # DistributedDataParallel imports torch._dynamo on first use, several seconds of CPU: import it here once,
        # so that forked ranks inherit it instead of paying for it in every process of every launch.
        import torch._dynamo  # noqa: F401
    context = multiprocessing.get_context(start_method)
    init_method = f"tcp://127.0.0.1:{free_port()}"
    logs = [tempfile.mkstemp(prefix=f"rank{rank}-", suffix=".log") for rank in range(world_size)]
    for handle, _ in logs:
        os.close(handle)
    processes, readers = [], []
    try:
        for rank in range(world_size):
            reader, writer = context.Pipe(duplex=False)
            process = context.Process(
                target=_worker, daemon=True,
                args=(fn, rank, world_size, args, backend, init_method, timeout, threads, writer, logs[rank][1]),
            )
            process.start()
            writer.close()  # the child holds the other copy: its exit closes the pipe, and we see EOF
            processes.append(process)
            readers.append(reader)
        return _collect(fn, processes, readers, [path for _, path in logs], timeout)
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
        for process in processes:
            process.join(timeout=5)
        for reader in readers:
            reader.close()
        for _, path in logs:
            try:
                os.remove(path)
            except OSError:
                pass


def _collect(fn, processes, readers, logs, timeout):
    name = getattr(fn, "__name__", repr(fn))
    results = {}
    pending = set(range(len(processes)))
    deadline = time.monotonic() + timeout
    while pending:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            waiting = sorted(pending)
            raise TimeoutError(
                f"{name}() did not finish on rank(s) {waiting} within {timeout:g} s (a rank waiting for a collective "
                "operation that another rank never joins hangs like this). Output of the first of them:\n"
                + _tail(logs[waiting[0]])
            )
        wait([readers[r] for r in pending] + [processes[r].sentinel for r in pending], timeout=remaining)
        for rank in sorted(pending):
            if readers[rank].poll():
                try:
                    status, payload = readers[rank].recv()
                except EOFError:
                    status, payload = "died", None
            elif processes[rank].exitcode is not None:
                status, payload = "died", None
            else:
                continue
            pending.discard(rank)
            if status == "ok":
                results[rank] = payload
                continue
            if status == "died":
                raise RankError(f"rank {rank} of {name}() died (exit code {processes[rank].exitcode}) without "
                                f"reporting back. Its output:\n{_tail(logs[rank])}")
            kind, message, trace = payload
            if kind == "AssertionError":
                raise AssertionError(f"rank {rank}: {message}")
            raise RankError(f"rank {rank} of {name}() raised {kind}: {message}\n{trace}\nIts output:\n"
                            f"{_tail(logs[rank])}")
    return [results[rank] for rank in range(len(processes))]


def batch_indices(n: int, global_batch: int, steps: int, seed: int = 0) -> np.ndarray:
    """Row indices of the global batches of `steps` SGD steps, shape (steps, global_batch).

    The data are reshuffled every epoch and the last, incomplete batch of an epoch is dropped, so that every
    global batch splits evenly over the replicas. The same arguments give the same batches in every process.
    """
    if not 0 < global_batch <= n:
        raise ValueError(f"global_batch must be between 1 and the number of samples {n}, not {global_batch}")
    rng = np.random.default_rng(seed)
    per_epoch = n // global_batch
    batches = []
    while len(batches) < steps:
        order = rng.permutation(n)
        batches.extend(order[i * global_batch:(i + 1) * global_batch] for i in range(per_epoch))
    return np.stack(batches[:steps]) if steps else np.zeros((0, global_batch), dtype=np.int64)


def train_worker(rank, world_size, model, x, y, global_batch, steps, lr, seed=0, device="cpu", warmup=1):
    """Data-parallel SGD with DistributedDataParallel: one replica of `model` per process.

    Every rank walks through the same global batches (`batch_indices`) and takes its own contiguous shard of
    each, global_batch // world_size rows; DDP averages the gradients over the ranks during backward().
    Returns this rank's loss on its shard at every step, the final parameters, and the seconds taken by the
    steps after the first `warmup` ones (the first steps pay for memory allocation and DDP's set-up).
    """
    import torch
    import torch.distributed as dist
    import torch.nn.functional as F
    from torch.nn.parallel import DistributedDataParallel

    if global_batch % world_size:
        raise ValueError(f"the global batch {global_batch} does not split evenly over {world_size} ranks")
    on_gpu = device == "cuda"
    device = torch.device("cuda", torch.cuda.current_device()) if on_gpu else torch.device("cpu")
    replica = copy.deepcopy(model).to(device)
    ddp = DistributedDataParallel(replica, device_ids=[device.index] if on_gpu else None)
    optimizer = torch.optim.SGD(ddp.parameters(), lr=lr)
    x, y = torch.as_tensor(x, device=device), torch.as_tensor(y, device=device)
    per_rank = global_batch // world_size
    losses = []
    start = None
    for step, rows in enumerate(batch_indices(len(x), global_batch, steps, seed)):
        if step == warmup:
            if on_gpu:
                torch.cuda.synchronize()
            dist.barrier()
            start = time.perf_counter()
        mine = torch.as_tensor(rows[rank * per_rank:(rank + 1) * per_rank], device=device)
        loss = F.cross_entropy(ddp(x[mine]), y[mine])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # DDP all-reduces (averages) the gradients here, bucket by bucket
        optimizer.step()
        losses.append(loss.detach())
    if on_gpu:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start if start is not None else float("nan")
    return {"losses": torch.stack(losses).cpu() if losses else torch.zeros(0),
            "params": [p.detach().cpu() for p in replica.parameters()], "seconds": seconds,
            "timed_samples": (steps - warmup) * global_batch}
