"""Per-module facts the reversible core consults on every step, collected once.

The forward asks of every transform whether it draws random numbers, the backward
which of its parameters need gradients and which BatchNorm layers it holds. Walking
the module tree for each question costs a few percent of a step on small inputs, so
the *structure* (parameter list, random layers, norm layers) is collected on first use
and the *state* (``training``, ``requires_grad``, drop rates) is read at each call:
switching modes, freezing parameters or changing a drop rate needs no invalidation.
Replacing submodules of a transform after its first use is not seen: rebuild the model.
"""
import weakref
from typing import List

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.dropout import _DropoutNd

__all__ = ['module_facts', 'ModuleFacts']


def _drop_rate(m: nn.Module) -> float:
    return m.p if isinstance(m, _DropoutNd) else m.drop_prob  # DropPath and friends


class ModuleFacts:
    """The parameters, random layers and BatchNorm layers of one module tree."""

    __slots__ = ('params', 'random_layers', 'norms')

    def __init__(self, module: nn.Module) -> None:
        modules = list(module.modules())
        self.params: List[nn.Parameter] = list(module.parameters())
        self.random_layers = [m for m in modules
                              if isinstance(m, _DropoutNd) or hasattr(m, 'drop_prob')]
        self.norms: List[_BatchNorm] = [m for m in modules if isinstance(m, _BatchNorm)]

    def trainable(self) -> List[nn.Parameter]:
        return [p for p in self.params if p.requires_grad]

    def any_trainable(self) -> bool:
        return any(p.requires_grad for p in self.params)

    def stochastic(self) -> bool:
        """Whether a forward consumes random numbers in the current mode."""
        return any(m.training and _drop_rate(m) > 0 for m in self.random_layers)


_FACTS: 'weakref.WeakKeyDictionary[nn.Module, ModuleFacts]' = weakref.WeakKeyDictionary()


def module_facts(module: nn.Module) -> ModuleFacts:
    facts = _FACTS.get(module)
    if facts is None:
        facts = _FACTS[module] = ModuleFacts(module)
    return facts
