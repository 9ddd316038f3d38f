import copy
import time

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from workshop import scaling


def ranks_and_sum(rank, world_size):
    value = torch.tensor([float(rank + 1)])
    dist.all_reduce(value)
    return {"rank": rank, "world": world_size, "sum": value}


def test_launch_returns_every_rank_result_as_numpy():
    results = scaling.launch(ranks_and_sum, 3, timeout=60)
    assert [r["rank"] for r in results] == [0, 1, 2]
    assert all(r["world"] == 3 for r in results)
    for r in results:
        assert type(r["sum"]) is np.ndarray and r["sum"].tolist() == [6.0]


def fails_on_rank_one(rank, world_size):
    if rank == 1:
        print("about to fail")
        raise ValueError("boom")
    return rank


def test_a_failing_rank_raises_with_its_traceback_and_output():
    with pytest.raises(scaling.RankError, match=r"(?s)rank 1 of fails_on_rank_one\(\) raised ValueError: boom.*"
                                                r"about to fail"):
        scaling.launch(fails_on_rank_one, 2, timeout=60)


def unfinished(rank, world_size):
    raise NotImplementedError()


def test_an_unfinished_exercise_fails_like_checks_attempt():
    with pytest.raises(AssertionError, match=r"unfinished\(\) is not implemented yet"):
        scaling.launch(unfinished, 2, timeout=60)


def waits_forever(rank, world_size):
    if rank == 0:
        time.sleep(120)
    return rank


def test_a_hanging_rank_is_killed_after_the_timeout():
    start = time.perf_counter()
    with pytest.raises(TimeoutError, match=r"rank\(s\) \[0\]"):
        scaling.launch(waits_forever, 2, timeout=3)
    assert time.perf_counter() - start < 20


def exits_hard(rank, world_size):
    import os

    os._exit(3)


def test_a_rank_that_dies_is_reported():
    with pytest.raises(scaling.RankError, match="died"):
        scaling.launch(exits_hard, 2, timeout=60)


def test_batch_indices_reshuffle_each_epoch_and_drop_the_incomplete_batch():
    batches = scaling.batch_indices(10, 4, 5, seed=1)
    assert batches.shape == (5, 4)
    first_epoch = batches[:2].ravel()
    assert len(set(first_epoch.tolist())) == 8  # two full batches of distinct rows, two rows left out
    assert np.array_equal(batches, scaling.batch_indices(10, 4, 5, seed=1))
    assert not np.array_equal(batches[:2], batches[2:4])
    with pytest.raises(ValueError):
        scaling.batch_indices(3, 4, 1)


def test_two_ddp_ranks_follow_single_process_training():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3)).double()
    x = torch.randn(40, 6, dtype=torch.float64).numpy()
    y = torch.randint(0, 3, (40,)).numpy()
    ranks = scaling.launch(scaling.train_worker, 2, (model, x, y, 8, 12, 0.5, 0), timeout=120)
    reference = copy.deepcopy(model)
    optimizer = torch.optim.SGD(reference.parameters(), lr=0.5)
    losses = []
    for rows in scaling.batch_indices(40, 8, 12, 0):
        rows = torch.as_tensor(rows)
        loss = F.cross_entropy(reference(torch.as_tensor(x)[rows]), torch.as_tensor(y)[rows])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    np.testing.assert_allclose((ranks[0]["losses"] + ranks[1]["losses"]) / 2, losses, rtol=1e-12)
    for a, b, p in zip(ranks[0]["params"], ranks[1]["params"], reference.parameters()):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(a, p.detach().numpy(), rtol=1e-10, atol=1e-12)
    assert ranks[0]["timed_samples"] == 11 * 8 and ranks[0]["seconds"] > 0
