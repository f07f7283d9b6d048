"""Deterministic accounting of the memory a training forward leaves for backward."""
import time
from typing import Callable, Dict, Iterable, List, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from ..reversible import saved_bytes


class SavedTensorMeter:
    """Count the bytes of unique storages saved for backward inside the context.

    Storages of the given modules' parameters and buffers are excluded (they exist
    whether or not anything is saved). Tensors that the reversible Function keeps
    aside outside autograd (RNG snapshots) are added with :meth:`add_kept_aside`.

    Example:
        >>> meter = SavedTensorMeter(exclude=[model])
        >>> with meter:
        ...     feats = model(x)
        >>> meter.add_kept_aside(feats)
        >>> meter.nbytes
    """

    def __init__(self, exclude: Iterable[nn.Module] = ()) -> None:
        self._excluded = {
            t.untyped_storage().data_ptr()
            for m in exclude for t in [*m.parameters(), *m.buffers()]
        }
        self._seen = set()
        self.nbytes = 0
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack)

    def _pack(self, t: Tensor) -> Tensor:
        storage = t.untyped_storage()
        key = (storage.data_ptr(), t.device)
        if storage.data_ptr() not in self._excluded and key not in self._seen:
            self._seen.add(key)
            self.nbytes += storage.nbytes()
        return t

    @staticmethod
    def _unpack(t: Tensor) -> Tensor:
        return t

    def add_kept_aside(self, outputs: Sequence[Tensor]) -> None:
        """Add what a reversible Function producing ``outputs`` keeps outside autograd."""
        self.nbytes += saved_bytes(outputs)

    def __enter__(self) -> 'SavedTensorMeter':
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._hooks.__exit__(*exc)


def tensor_bytes(tensors: Sequence[Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def backbone_saved_bytes(backbone: nn.Module, x: Tensor) -> int:
    """Bytes a training forward of ``backbone`` on ``x`` leaves alive for backward."""
    with SavedTensorMeter(exclude=[backbone]) as meter:
        outs = backbone(x)
    meter.add_kept_aside(outs)
    return meter.nbytes


# ----------------------------------------------------------------------------
# Reversible Functions anywhere in a graph, allocator-level tensor memory, timing.

def kept_aside_bytes(roots: Sequence[Tensor]) -> int:
    """Bytes that reversible Functions in the autograd graph of ``roots`` keep
    outside autograd (RNG snapshots): :func:`saved_bytes` for every reversible node,
    found by walking the graph, so it works when the backbone is inside a bigger
    model (classifier, detector)."""
    total, seen = 0, set()
    stack = [t.grad_fn for t in roots if isinstance(t, Tensor) and t.grad_fn is not None]
    while stack:
        fn = stack.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        info = getattr(fn, 'info', None)
        replay = getattr(info, 'replay', None)
        if replay is not None and hasattr(replay, 'nbytes'):
            total += replay.nbytes()
        stack.extend(nxt for nxt, _ in fn.next_functions)
    return total


class TensorMemoryTracker:
    """Tensor memory allocated on ``device`` inside the context, relative to its start.

    * CUDA: ``torch.cuda.memory_allocated`` / ``max_memory_allocated`` (peak stats are
      reset on entry).
    * CPU: the allocation and free events that the CPU allocator reports to
      ``torch.profiler`` (``profile_memory=True``), replayed in time order. This is
      tensor memory (including temporaries inside ops), not process RSS.

    :meth:`mark` records the memory alive at that point and the peak so far; after
    the context, :attr:`peak` is the highest increase over the start and
    :attr:`marks` maps mark names to ``(alive, peak_so_far)``.
    """

    def __init__(self, device: Union[str, torch.device] = 'cpu') -> None:
        self.device = torch.device(device)
        self.cuda = self.device.type == 'cuda'
        self.peak = 0
        self.end = 0
        self.marks: Dict[str, Tuple[int, int]] = {}
        self._mark_order: List[str] = []
        self._prof = None

    def __enter__(self) -> 'TensorMemoryTracker':
        if self.cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
        else:
            from torch.profiler import ProfilerActivity, profile
            self._prof = profile(activities=[ProfilerActivity.CPU], profile_memory=True,
                                 record_shapes=False, with_stack=False)
            self._prof.__enter__()
        return self

    def mark(self, name: str) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)
            self.marks[name] = (torch.cuda.memory_allocated(self.device) - self._base,
                                torch.cuda.max_memory_allocated(self.device) - self._base)
        else:
            from torch.profiler import record_function
            with record_function(f'__memory_mark__{name}'):
                pass
            self._mark_order.append(name)

    def __exit__(self, *exc) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device) - self._base
            self.end = torch.cuda.memory_allocated(self.device) - self._base
            return
        self._prof.__exit__(*exc)
        if exc and exc[0] is not None:
            return
        events = self._prof.profiler.kineto_results.events()
        timeline = []
        mark_times = {}
        for e in events:
            name = e.name()
            if name == '[memory]' and str(e.device_type()).endswith('CPU'):
                timeline.append((e.start_ns(), e.nbytes()))
            elif name.startswith('__memory_mark__'):
                mark_times[name[len('__memory_mark__'):]] = e.start_ns()
        timeline.sort(key=lambda t: t[0])
        marks = sorted(mark_times.items(), key=lambda kv: kv[1])
        alive = peak = 0
        k = 0
        for ts, nbytes in timeline:
            while k < len(marks) and marks[k][1] <= ts:
                self.marks[marks[k][0]] = (alive, peak)
                k += 1
            alive += nbytes
            peak = max(peak, alive)
        for name, _ in marks[k:]:
            self.marks[name] = (alive, peak)
        self.peak, self.end = peak, alive
        self._prof = None


def measure_step(model: nn.Module, forward_fn: Callable[[], object],
                 loss_fn: Callable[[object], Tensor],
                 device: Union[str, torch.device] = 'cpu') -> Dict[str, int]:
    """Memory of one training step: ``out = forward_fn()``, ``loss_fn(out).backward()``.

    ``forward_fn`` is the part being measured (e.g. the backbone); ``loss_fn`` turns its
    output into a scalar and is not metered (a loss such as ``sum(out * w)`` saves
    ``w``, which belongs to neither setting). Returns bytes:

    * ``saved``: unique storages saved for backward during ``forward_fn`` (parameters
      and buffers of ``model`` excluded) plus what reversible Functions keep aside;
    * ``kept_aside``: the latter part alone;
    * ``alive_after_forward``: tensor memory allocated by ``forward_fn`` that is still
      alive when it returns (saved tensors, outputs, any copies): the allocator's view
      of the same quantity, which also sees what hooks cannot;
    * ``forward_peak``: peak tensor memory during ``forward_fn``;
    * ``peak``: peak tensor memory of the whole step above its start (forward, loss,
      backward, parameter gradients; gradients are freed before the step).
    """
    model.zero_grad(set_to_none=True)
    tracker = TensorMemoryTracker(device)
    with tracker:
        with SavedTensorMeter(exclude=[model]) as meter:
            out = forward_fn()
        tracker.mark('forward')
        loss = loss_fn(out)
        kept = kept_aside_bytes([loss])
        del out
        loss.backward()
        del loss
    return dict(saved=meter.nbytes + kept, kept_aside=kept,
                alive_after_forward=tracker.marks['forward'][0],
                forward_peak=tracker.marks['forward'][1], peak=tracker.peak)


def time_step(model: nn.Module, forward_fn: Callable[[], object],
              loss_fn: Callable[[object], Tensor],
              device: Union[str, torch.device] = 'cpu') -> Dict[str, float]:
    """Seconds of one training step (forward, loss, backward): ``wall`` clock and
    ``cpu`` time of this process (on a CPU shared with other jobs the latter is the
    steadier measure of the work done)."""
    device = torch.device(device)
    model.zero_grad(set_to_none=True)
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
    t0, c0 = time.perf_counter(), time.process_time()
    loss_fn(forward_fn()).backward()
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
    return dict(wall=time.perf_counter() - t0, cpu=time.process_time() - c0)
