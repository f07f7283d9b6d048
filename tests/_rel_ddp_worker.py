"""Two-process DDP run of a reversible RevBiFPN model, for ``test_rel_ddp.py``.

Launched as ``python -m torch.distributed.run --standalone --nproc_per_node 2
_rel_ddp_worker.py OUT``: every case trains ``STEPS`` SGD steps of
``DistributedDataParallel(Net(...))`` with backend gloo on CPU, each rank on its half
of a fixed global batch. Rank 0 writes the parameters after the first and the last
step and the losses to ``OUT``. :func:`reference` computes the same steps in one
process on the whole batch.
"""
import os.path as osp
import sys
from typing import Dict, List

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmrevbifpn.models import RevBiFPN  # noqa: E402

SIZE = 64
GLOBAL_BATCH = 4
STEPS = 3
LR = 0.01
# name: (backbone kwargs, DDP kwargs, forwards per step of the single-process
# reference on the whole batch; None: not compared)
CASES = {
    # BatchNorm in eval mode: samples are independent, so DDP must equal one process
    # with one forward of the combined batch (find_unused_parameters=True works too)
    'bn_eval': (dict(norm_eval=True), dict(find_unused_parameters=True), 1),
    # BatchNorm in train mode with per-rank statistics (DDP without SyncBN; SyncBN
    # needs GPUs): the reference runs one forward per rank-sized chunk
    'bn_train': (dict(), dict(find_unused_parameters=False), 2),
    # frozen stages and stochastic depth (per-rank RNG): must run cleanly
    'frozen_droppath': (dict(frozen_stages=1, drop_path_rate=0.2),
                        dict(find_unused_parameters=False), None),
}


class Net(nn.Module):
    """RevBiFPN-S0 and a 1x1 conv per level; loss: mean squared error."""

    def __init__(self, **kwargs) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.backbone = RevBiFPN('s0', **kwargs)
        self.backbone.init_weights()
        self.heads = nn.ModuleList(nn.Conv2d(c, 4, 1) for c in self.backbone.channels)

    def forward(self, x: torch.Tensor, targets: List[torch.Tensor]) -> torch.Tensor:
        feats = self.backbone(x)
        return sum(F.mse_loss(h(f), t) for h, f, t in zip(self.heads, feats, targets))


def batches():
    g = torch.Generator().manual_seed(123)
    out = []
    for _ in range(STEPS):
        x = torch.randn(GLOBAL_BATCH, 3, SIZE, SIZE, generator=g)
        t = [torch.randn(GLOBAL_BATCH, 4, SIZE // s, SIZE // s, generator=g)
             for s in (4, 8, 16, 32)]
        out.append((x, t))
    return out


def _params(model: nn.Module) -> Dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.named_parameters()}


def reference(case: str):
    """One process, the whole batch, in ``chunks`` forwards (with train-mode BatchNorm
    one per rank, so it sees the per-rank batches) and the mean of their losses."""
    kwargs, _, chunks = CASES[case]
    model = Net(**kwargs).train()
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    snaps, losses = [], []
    for x, t in batches():
        opt.zero_grad()
        t_chunks = zip(*[ti.chunk(chunks) for ti in t])
        parts = [model(xc, list(tc)) for xc, tc in zip(x.chunk(chunks), t_chunks)]
        loss = sum(parts) / chunks
        loss.backward()
        opt.step()
        losses.append(loss.item())
        snaps.append(_params(model))
    return dict(first=snaps[0], last=snaps[-1], losses=losses)


def main(out: str) -> None:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    torch.set_num_threads(1)
    dist.init_process_group('gloo')
    rank, world = dist.get_rank(), dist.get_world_size()
    results = {}
    for case, (kwargs, ddp_kwargs, _) in CASES.items():
        model = DDP(Net(**kwargs).train(), **ddp_kwargs)
        opt = torch.optim.SGD(model.parameters(), lr=LR)
        snaps, losses = [], []
        for x, t in batches():
            opt.zero_grad()
            xs = x.chunk(world)[rank]
            ts = [ti.chunk(world)[rank] for ti in t]
            loss = model(xs, ts)
            loss.backward()
            opt.step()
            mean = loss.detach().clone()
            dist.all_reduce(mean)
            losses.append(mean.item() / world)
            snaps.append(_params(model.module))
        # every rank must hold identical parameters after the steps
        flat = torch.cat([p.flatten() for p in snaps[-1].values()])
        gathered = [torch.empty_like(flat) for _ in range(world)]
        dist.all_gather(gathered, flat)
        results[case] = dict(first=snaps[0], last=snaps[-1], losses=losses,
                             rank_spread=max((g - flat).abs().max().item()
                                             for g in gathered))
    if rank == 0:
        torch.save(results, out)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == '__main__':
    main(sys.argv[1])
