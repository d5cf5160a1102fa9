"""Distributed training (DDP over gloo on CPU): 2 processes train exactly like 1 process that
splits the same global batch into the same 2 shards, and only rank 0 writes files."""

from __future__ import annotations

import math
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp
from test_train import read_log, tiny_config, tiny_dataset

from cdae.checkpoint import load_checkpoint
from cdae.train import train

STEPS, BATCH = 3, 8


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _worker(rank: int, world_size: int, port: int, out: str) -> None:
    """One torchrun-like process: the environment variables torchrun would set, then train."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size))
    train(tiny_config(steps=STEPS, batch_size=BATCH, checkpoint_every=2), out,
          dataset=tiny_dataset(), progress=False)


@pytest.mark.slow
def test_two_ddp_processes_match_one_process_at_the_same_global_batch(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path / "ddp")), nprocs=2, join=True)
    # one process, same global batch of 8, split into the same two shards of 4
    single = train(tiny_config(steps=STEPS, batch_size=BATCH, checkpoint_every=2, accumulate=2),
                   tmp_path / "single", dataset=tiny_dataset(), progress=False)

    ddp_state, single_state = load_checkpoint(tmp_path / "ddp" / "last.pt"), load_checkpoint(single)
    assert ddp_state["step"] == single_state["step"] == STEPS
    assert ddp_state["world_size"] == 2
    for name, expected in single_state["model"].items():
        got = ddp_state["model"][name]
        scale = expected.abs().max().clamp_min(1e-3)
        assert (got - expected).abs().max() <= 1e-5 * scale, name
    assert single_state["model"]["unet.out.2.weight"].abs().max() > 0  # moved off its zero init
    ddp_loss = [float(r["loss"]) for r in read_log(tmp_path / "ddp")]
    single_loss = [float(r["loss"]) for r in read_log(tmp_path / "single")]
    assert len(ddp_loss) == STEPS  # one log, written once (by rank 0)
    torch.testing.assert_close(torch.tensor(ddp_loss), torch.tensor(single_loss), rtol=1e-5,
                               atol=1e-6)
    written = sorted(p.name for p in (tmp_path / "ddp").iterdir())
    assert written == [".lock", "config.yaml", "last.pt", "log.csv"]  # rank 0 alone writes


def test_the_first_bad_step_is_agreed_over_ranks(tmp_path):
    """The NaN bookkeeping's all-reduce (here over a one-process gloo group)."""
    import torch.distributed as dist

    from cdae.train.runtime import Runtime
    from cdae.train.trainer import METRICS, _Meter

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0,
                            world_size=1)
    try:
        runtime = Runtime(torch.device("cpu"), rank=0, world_size=2)  # take the collective path
        meter = _Meter(torch.device("cpu"))
        meter.add(torch.ones(len(METRICS)), step=1)
        assert meter.first_bad_step(runtime) is None
        meter.add(torch.full((len(METRICS),), float("nan")), step=2)
        meter.add(torch.full((len(METRICS),), float("inf")), step=3)
        assert meter.first_bad_step(runtime) == 2
        means, count = meter.means(runtime)
        assert count == 3 and math.isnan(means[0])
    finally:
        dist.destroy_process_group()
