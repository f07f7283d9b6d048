"""Forward-time state that recomputation must replay: RNG, autocast, norm statistics.

Mirrors what :mod:`torch.utils.checkpoint` captures (CPU and per-device RNG states,
autocast settings) so that a transform recomputed during the backward pass draws the
same stochastic-depth / dropout masks and runs under the same autocast policy as in the
forward pass, without touching the global RNG seen by the rest of the program.
"""
from contextlib import ExitStack, contextmanager
from typing import Iterator, List

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.utils.checkpoint import (_get_autocast_kwargs, _get_device_module,
                                    _infer_device_type, get_device_states,
                                    set_device_states)

from .facts import module_facts

__all__ = ['AutocastState', 'RNGState', 'is_stochastic', 'frozen_norm_stats']


class AutocastState:
    """Autocast settings (device and CPU) active when it was created."""

    def __init__(self, device_type: str = 'cuda') -> None:
        self.device_type = device_type
        self.device_kwargs, self.cpu_kwargs = _get_autocast_kwargs(device_type)

    @contextmanager
    def restore(self) -> Iterator[None]:
        with ExitStack() as stack:
            if (self.device_kwargs is not None and self.device_type != 'cpu'
                    and (self.device_kwargs['enabled']
                         or _device_available(self.device_type))):
                stack.enter_context(
                    torch.amp.autocast(self.device_type, **self.device_kwargs))
            stack.enter_context(torch.amp.autocast('cpu', **self.cpu_kwargs))
            yield


class RNGState:
    """CPU RNG state plus the RNG states of the devices of ``tensors``."""

    def __init__(self, *tensors: Tensor) -> None:
        self.device_type = _infer_device_type(*tensors)
        self.cpu_state = torch.get_rng_state()
        self.devices: List[int] = []
        self.device_states: List[Tensor] = []
        if self.device_type != 'cpu' and getattr(
                _get_device_module(self.device_type), '_initialized', False):
            self.devices, self.device_states = get_device_states(*tensors)

    def nbytes(self) -> int:
        return self.cpu_state.nbytes + sum(s.nbytes for s in self.device_states)

    @contextmanager
    def restore(self) -> Iterator[None]:
        """Run the body with the captured RNG state; the global RNG is restored after."""
        with torch.random.fork_rng(
                devices=self.devices, enabled=True,
                device_type=self.device_type if self.devices else 'cuda'):
            torch.set_rng_state(self.cpu_state)
            if self.devices:
                set_device_states(
                    self.devices, self.device_states,
                    device_type=self.device_type)
            yield


def _device_available(device_type: str) -> bool:
    module = getattr(torch, device_type, None)
    return bool(module is not None and module.is_available())


def is_stochastic(module: nn.Module) -> bool:
    """Whether a forward of ``module`` consumes random numbers in its current mode."""
    return module_facts(module).stochastic()


@contextmanager
def frozen_norm_stats(modules: Iterator[nn.Module]) -> Iterator[None]:
    """Undo any running-statistics update BatchNorm makes inside the body.

    Recomputation must normalise with the batch statistics (exactly as the forward did)
    but must not update ``running_mean``/``running_var``/``num_batches_tracked`` a second
    time. The layers run unchanged (same autograd graph, which non-reentrant
    checkpointing verifies) and their buffers are restored afterwards.
    """
    saved = []
    for m in modules:
        if isinstance(m, _BatchNorm) and m.training and m.track_running_stats:
            saved.append((m, m.running_mean.clone(), m.running_var.clone(),
                          m.num_batches_tracked.clone()))
    try:
        yield
    finally:
        with torch.no_grad():
            for m, mean, var, count in saved:
                m.running_mean.copy_(mean)
                m.running_var.copy_(var)
                m.num_batches_tracked.copy_(count)
