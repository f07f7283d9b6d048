"""Gradient checkpointing that updates BatchNorm statistics once per step."""
from contextlib import nullcontext
from typing import Iterable

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from ..reversible import frozen_norm_stats, module_facts


def checkpoint_once_norm(fn, *inputs, modules: Iterable[nn.Module]):
    """``torch.utils.checkpoint`` of ``fn(*inputs)`` (non-reentrant) whose recomputation
    leaves the BatchNorm running statistics of ``modules`` untouched."""
    modules = list(modules)
    return checkpoint(
        fn, *inputs, use_reentrant=False,
        context_fn=lambda: (nullcontext(), frozen_norm_stats(
            m for mod in modules for m in module_facts(mod).norms)))


def checkpointed(module: nn.Module, x: Tensor, enabled: bool = True) -> Tensor:
    """``module(x)``, checkpointed when ``enabled`` and a gradient is needed.

    The recomputation in backward runs with BatchNorm statistics frozen, so running
    statistics see one update per training step as without checkpointing.
    """
    if not (enabled and torch.is_grad_enabled() and (
            x.requires_grad or module_facts(module).any_trainable())):
        return module(x)
    return checkpoint_once_norm(module, x, modules=[module])
