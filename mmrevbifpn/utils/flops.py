"""Parameter and multiply-accumulate (MAC) counting without a dataset.

Two conventions are counted in one forward pass:

* ``'paper'``: the convention of the RevBiFPN paper's Table 1, which is what the old
  ``thop`` 0.0.31 reports for batch 1 in eval mode:

  - convolution: ``out_elements * (in_channels / groups * kh * kw)``, plus one per
    output element when the conv has a bias;
  - batch normalisation (and instance norm): 2 per element;
  - interpolation: 11 per output element for bilinear, 5 for linear, 259 for
    bicubic, nothing for nearest;
  - linear: ``in_features * out_elements`` (bias not counted);
  - nothing for activations, element-wise adds/multiplies (residuals, SE gates),
    pooling (the SE squeeze and the head's global pool are functional in the
    authors' code, so thop never saw them), concatenation or reshapes.
* ``'macs'``: pure multiply-accumulates of convolutions and linear layers.

Counting intercepts ``torch.nn.functional`` calls through a
:class:`~torch.overrides.TorchFunctionMode`, so it sees functional ops (e.g. the
``F.interpolate`` after an up-sampling MBConv) as well as modules, and works on the
``meta`` device: the 38-GMAC S6 classifier is counted in well under a second without
allocating activations. Counts can be attributed to named parts of the model
(``scopes``), e.g. ``backbone``, ``neck`` and ``head``.

Example:
    >>> from mmrevbifpn.utils.flops import count_model
    >>> from mmrevbifpn.utils.reference_model import build_classifier_parts
    >>> with torch.device('meta'):
    ...     model = build_classifier_parts('s0')
    >>> res = count_model(model, (1, 3, 224, 224), forward=lambda m, x:
    ...                   m.head(m.neck(m.backbone(x))), scopes=['backbone', 'neck', 'head'])
    >>> res.total('paper')
    308039716
"""
import math
from collections import defaultdict
from typing import Callable, Dict, Iterable, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

CONVENTIONS = ('paper', 'macs')

_CONVS = {F.conv1d, F.conv2d, F.conv3d, torch.conv1d, torch.conv2d, torch.conv3d}
_CONV_T = {F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d}
_NORMS = {F.batch_norm, torch.batch_norm, F.instance_norm, torch.instance_norm}
_INTERP_COST = {'nearest': 0, 'nearest-exact': 0, 'area': 0, 'linear': 5,
                'bilinear': 11, 'bicubic': 259, 'trilinear': 31}


def _arg(args, kwargs, index: int, name: str, default=None):
    if len(args) > index:
        return args[index]
    return kwargs.get(name, default)


def _first_tensor(out) -> Optional[Tensor]:
    if isinstance(out, Tensor):
        return out
    if isinstance(out, (tuple, list)):
        for o in out:
            t = _first_tensor(o)
            if t is not None:
                return t
    return None


def op_cost(func, args, kwargs, out) -> Optional[Tuple[str, int, int]]:
    """``(kind, paper-convention count, pure MACs)`` of one functional call, or None."""
    kwargs = kwargs or {}
    y = _first_tensor(out)
    if y is None:
        return None
    n_out = y.numel()
    if func in _CONVS:
        weight = _arg(args, kwargs, 1, 'weight')
        bias = _arg(args, kwargs, 2, 'bias')
        per_out = weight.shape[1] * math.prod(weight.shape[2:])
        macs = n_out * per_out
        return 'conv', macs + (n_out if bias is not None else 0), macs
    if func in _CONV_T:
        # every input element is multiplied into out_channels/groups * kernel outputs
        x, weight = _arg(args, kwargs, 0, 'input'), _arg(args, kwargs, 1, 'weight')
        bias = _arg(args, kwargs, 2, 'bias')
        macs = x.numel() * weight.shape[1] * math.prod(weight.shape[2:])
        return 'conv', macs + (n_out if bias is not None else 0), macs
    if func in (F.linear, torch._C._nn.linear):
        weight = _arg(args, kwargs, 1, 'weight')
        macs = n_out * weight.shape[1]
        return 'linear', macs, macs
    if func in _NORMS:
        return 'norm', 2 * _arg(args, kwargs, 0, 'input').numel(), 0
    if func is F.interpolate:
        mode = _arg(args, kwargs, 3, 'mode', 'nearest')
        return 'upsample', _INTERP_COST.get(mode, 0) * n_out, 0
    return None


# Shape-preserving functions that cost nothing in either convention: on the meta
# device they are skipped (their meta kernels are slow Python decompositions).
_META_SHORTCUT = {F.hardswish, F.hardsigmoid, F.relu, F.relu6, F.silu, F.gelu,
                  F.sigmoid, torch.sigmoid, F.dropout, F.batch_norm, torch.batch_norm}


class FlopCounterMode(TorchFunctionMode):
    """Accumulate :func:`op_cost` of every functional call made inside the context.

    Args:
        scopes: ``{name: module}``; a call made while one of these modules runs is
            attributed to the innermost one. Calls outside every scope go to ``''``.
    """

    def __init__(self, scopes: Optional[Dict[str, nn.Module]] = None) -> None:
        super().__init__()
        # counts[convention][scope][kind]
        self.counts: Dict[str, Dict[str, Dict[str, int]]] = {
            c: defaultdict(lambda: defaultdict(int)) for c in CONVENTIONS}
        self._stack = ['']
        self._handles = []
        for name, module in (scopes or {}).items():
            # every sub-module pushes the scope: a part may be run through a method
            # other than __call__ (e.g. mmdet's ``roi_head.forward(...)``)
            for sub in module.modules():
                self._handles.append(sub.register_forward_pre_hook(
                    lambda m, a, name=name: self._stack.append(name)))
                self._handles.append(sub.register_forward_hook(
                    self._pop_scope, always_call=True))

    def _pop_scope(self, module, args, output) -> None:
        self._stack.pop()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        x = args[0] if args else None
        if func in _META_SHORTCUT and isinstance(x, Tensor) and x.is_meta:
            out = torch.empty_like(x)
        else:
            out = func(*args, **(kwargs or {}))
        cost = op_cost(func, args, kwargs, out)
        if cost is not None:
            kind, paper, macs = cost
            scope = self._stack[-1]
            self.counts['paper'][scope][kind] += int(paper)
            self.counts['macs'][scope][kind] += int(macs)
        return out

    def __exit__(self, *exc):
        for h in self._handles:
            h.remove()
        self._handles = []
        return super().__exit__(*exc)

    def total(self, convention: str = 'paper', scope: Optional[str] = None) -> int:
        per_scope = self.counts[convention]
        scopes = per_scope.keys() if scope is None else [scope]
        return sum(sum(per_scope[s].values()) for s in scopes if s in per_scope)


class FlopResult:
    """Result of :func:`count_model`: MACs per convention and scope, parameters."""

    def __init__(self, counts: Dict[str, Dict[str, Dict[str, int]]],
                 params: Dict[str, int], input_shape: Tuple[int, ...]) -> None:
        self.counts = {c: {s: dict(k) for s, k in v.items()} for c, v in counts.items()}
        self.params = params
        self.input_shape = tuple(input_shape)

    def total(self, convention: str = 'paper', scopes: Optional[Iterable[str]] = None) -> int:
        per_scope = self.counts[convention]
        names = per_scope.keys() if scopes is None else scopes
        return sum(sum(per_scope.get(s, {}).values()) for s in names)

    def by_kind(self, convention: str = 'paper') -> Dict[str, int]:
        out: Dict[str, int] = defaultdict(int)
        for kinds in self.counts[convention].values():
            for k, v in kinds.items():
                out[k] += v
        return dict(out)

    def scope_names(self):
        """Named parts, then ``''`` (calls outside every part) if it has counts."""
        names = [s for s in self.params if s]
        if names and self.total('macs', ['']) + self.total('paper', ['']):
            names.append('')
        return names


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in {id(p): p for p in module.parameters()}.values())


def count_model(model: nn.Module,
                input_shape: Sequence[int] = (1, 3, 224, 224),
                forward: Optional[Callable[[nn.Module, Tensor], object]] = None,
                scopes: Union[Sequence[str], Dict[str, nn.Module], None] = None,
                inputs: Optional[Tensor] = None) -> FlopResult:
    """Count parameters and MACs of one eval-mode forward of ``model``.

    Args:
        model: the model; it is put in eval mode (as thop does) and restored after.
        input_shape: shape of the (random) input, batch 1 for the paper's counts.
            The input is created on the device of the model's first parameter, so a
            model built under ``torch.device('meta')`` is counted without computing.
        forward: ``forward(model, x)``; default ``model(x)``.
        scopes: names of sub-modules (``model.get_submodule``) or a ``{name: module}``
            dict to attribute counts and parameters to.
        inputs: an explicit input tensor (overrides ``input_shape``).
    """
    if scopes is None:
        scopes = {}
    elif not isinstance(scopes, dict):
        scopes = {name: model.get_submodule(name) for name in scopes}
    if inputs is None:
        p = next(model.parameters(), None)
        device = p.device if p is not None else torch.device('cpu')
        dtype = p.dtype if p is not None and p.is_floating_point() else torch.float32
        inputs = torch.randn(*input_shape, device=device, dtype=dtype)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(scopes) as counter:
            if forward is None:
                model(inputs)
            else:
                forward(model, inputs)
    finally:
        model.train(was_training)
    params = {'': count_params(model)}
    params.update({name: count_params(m) for name, m in scopes.items()})
    return FlopResult(counter.counts, params, tuple(inputs.shape))


# --------------------------------------------------------------------- RevBiFPN
PARTS = ('backbone', 'backbone+neck', 'full')


def build_revbifpn_parts(arch: Union[str, dict] = 's0', part: str = 'full',
                         num_classes: int = 1000, device: Union[str, torch.device] = 'meta',
                         depth: Optional[int] = None, **backbone_kwargs) -> nn.Module:
    """The RevBiFPN classifier as a module with ``backbone``/``neck``/``head``
    children (``neck``/``head`` only for the parts that include them).

    Args:
        arch: a published variant name, or a custom backbone dict (then only
            ``part='backbone'``).
        part: ``'backbone'``, ``'backbone+neck'`` or ``'full'``.
        depth: override the number of extra make-layers ``d`` of the backbone; the
            neck and head keep the variant's widths.
        device: ``'meta'`` builds without allocating weights (for counting).
    """
    from ..models import MBConvNeck, RevBiFPN, RevBiFPNClsHead
    if part not in PARTS:
        raise ValueError(f'part must be one of {PARTS}, got {part!r}')
    if part != 'backbone' and not isinstance(arch, str):
        raise ValueError('the neck and head need a published variant name as arch')
    bb_arch = arch
    if depth is not None:
        bb_arch = dict(RevBiFPN._parse_arch(arch), depth=depth)
    with torch.device(device):
        model = nn.Module()
        model.backbone = RevBiFPN(bb_arch, **backbone_kwargs)
        if part in ('backbone+neck', 'full'):
            model.neck = MBConvNeck(in_channels=model.backbone.channels, arch=arch)
        if part == 'full':
            model.head = RevBiFPNClsHead(num_classes, arch=arch)
    return model


def revbifpn_forward(model: nn.Module, x: Tensor):
    out = model.backbone(x)
    if hasattr(model, 'neck'):
        out = model.neck(out)
    if hasattr(model, 'head'):
        out = model.head(out)
    return out


def count_revbifpn(arch: Union[str, dict] = 's0', part: str = 'full',
                   shape: Optional[Sequence[int]] = None, batch: int = 1,
                   num_classes: int = 1000, device: str = 'meta',
                   depth: Optional[int] = None) -> FlopResult:
    """Parameters and MACs of a RevBiFPN part at ``shape`` (default: the variant's
    training resolution). On the ``meta`` device nothing is computed."""
    from ..models import variant
    if shape is None:
        if not isinstance(arch, str):
            raise ValueError('give shape for a custom arch')
        res = variant(arch)['resolution']
        shape = (res, res)
    model = build_revbifpn_parts(arch, part, num_classes, device, depth)
    return count_model(model, (batch, 3, *shape), revbifpn_forward,
                       scopes=[n for n, _ in model.named_children()])


def format_count(n: float, unit: str = '') -> str:
    for div, suffix in ((1e9, 'G'), (1e6, 'M'), (1e3, 'K')):
        if abs(n) >= div:
            return f'{n / div:.3f}{suffix}{unit}'
    return f'{n:.0f}{unit}'


# ----------------------------------------------------------------- from configs
def build_from_config(config, cfg_options: Optional[dict] = None):
    """Build ``cfg.model`` of an MMDetection / MMPretrain / MMSegmentation config.

    Honours ``custom_imports`` and ``default_scope``; weights are not initialised
    (nothing is downloaded). Returns ``(model, cfg)``.
    """
    import importlib

    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmengine.utils import import_modules_from_strings

    cfg = config if isinstance(config, Config) else Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if cfg.get('custom_imports'):
        import_modules_from_strings(**cfg['custom_imports'])
    import mmrevbifpn  # noqa: F401  (registers the RevBiFPN modules)
    scope = cfg.get('default_scope')
    registry = None
    if scope:
        init_default_scope(scope)
        try:
            importlib.import_module(f'{scope}.utils').register_all_modules(
                init_default_scope=False)
        except (ImportError, AttributeError):
            pass
        try:
            registry = importlib.import_module(f'{scope}.registry').MODELS
        except ImportError:
            registry = None
    if registry is None:
        from mmengine.registry import MODELS as registry
    return registry.build(cfg.model), cfg


def dummy_data_samples(scope: Optional[str], shape: Sequence[int], batch: int = 1,
                       num_gt: int = 0, num_classes: int = 80, seed: int = 0):
    """Data samples carrying the metainfo a ``mode='tensor'`` (or, with ``num_gt``
    boxes, ``mode='loss'``) forward needs; ``None`` for classifiers."""
    h, w = int(shape[0]), int(shape[1])
    meta = dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w),
                batch_input_shape=(h, w), scale_factor=(1.0, 1.0), flip=False)
    if scope == 'mmdet':
        from mmdet.structures import DetDataSample
        from mmengine.structures import InstanceData
        g = torch.Generator().manual_seed(seed)
        samples = []
        for _ in range(batch):
            s = DetDataSample(metainfo=meta)
            if num_gt:
                xy = torch.rand(num_gt, 2, generator=g) * torch.tensor([w * 0.7, h * 0.7])
                wh = (torch.rand(num_gt, 2, generator=g) * 0.25 + 0.05) * torch.tensor([w, h])
                s.gt_instances = InstanceData(
                    bboxes=torch.cat([xy, xy + wh], 1),
                    labels=torch.randint(0, num_classes, (num_gt, ), generator=g))
            samples.append(s)
        return samples
    if scope == 'mmseg':
        from mmseg.structures import SegDataSample
        return [SegDataSample(metainfo=meta) for _ in range(batch)]
    return None


CONFIG_SCOPES = ('backbone', 'neck', 'rpn_head', 'roi_head', 'bbox_head', 'head',
                 'decode_head', 'auxiliary_head')


def count_config(config, shape: Sequence[int], batch: int = 1,
                 cfg_options: Optional[dict] = None, device: str = 'cpu') -> FlopResult:
    """Parameters and MACs of a config's model: one eval ``mode='tensor'`` forward."""
    model, cfg = build_from_config(config, cfg_options)
    model.to(device)
    scope = cfg.get('default_scope')
    samples = dummy_data_samples(scope, shape, batch)

    def forward(m, x):
        if samples is None:
            return m(x, mode='tensor')
        return m(x, samples, mode='tensor')

    names = [n for n in CONFIG_SCOPES if isinstance(getattr(model, n, None), nn.Module)]
    return count_model(model, (batch, 3, *shape), forward, scopes=names)
