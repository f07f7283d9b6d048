"""ImageNet-1k training recipes of the published RevBiFPN variants.

Source: Chiley et al. 2022, "RevBiFPN: The Fully Reversible Bidirectional Feature
Pyramid Network" (arXiv 2206.14098), Appendix D.1/D.2 and Tables 6-8.

The values shared by all variants (350 epochs on 8 x 64 images, SGD lr 0.1 momentum 0.9,
5-epoch linear warm-up from 1e-3, cosine decay, the last 10 epochs at 1e-4, weight EMA
0.9999, label smoothing 0.1, RandAugment magnitude 9 / std 0.5) are written out in
``configs/_base_/revbifpn_in1k_*.py``. The per-variant values come from here:

======= ====== ============ ============= ========== ========= ============ ==========
variant  res   weight decay head dropout  RandAug N  mixup a   CutMix a     stoch.
                                                                            depth
======= ====== ============ ============= ========== ========= ============ ==========
S0       224   1e-5         0.25          1          0         0            0
S1       256   1e-5         0.25          1          0         0            0
S2       256   1e-5         0.3           2          0         0            0
S3       288   5e-5         0.3           2          0.2       0.2          0.05
S4       320   5e-5         0.4           2          0.2       0.2          0.1
S5       352   5e-5         0.4           3          0.2       0.2          0.1
S6       352   5e-5         0.6           3          0.2       0.2          0.3
======= ====== ============ ============= ========== ========= ============ ==========

Each number has exactly one home: resolution and head dropout (Table 6) live in
:mod:`mmrevbifpn.models.variants`, the stochastic-depth maximum (Table 7) in
``RevBiFPN.arch_settings``, and weight decay, RandAugment N, mixup and CutMix
(Table 7) in :data:`TABLE7` below. ``configs/revbifpn_s*_8xb64_in1k.py`` fill their
shared ``_base_`` from :func:`in1k_variant_cfg`, so correcting a value is one edit here.

.. warning:: The weight decay, RandAugment N, mixup and CutMix columns were entered
   without the paper's Table 7 at hand (``shared/spec`` does not list them; only the
   resolution, head dropout and stochastic-depth columns are confirmed by it). Verify
   them against Table 7 before a production run.

Not stated in the paper, chosen as the usual ImageNet practice (see
``docs/classification.md``): the test-time crop ratio (0.875: resize the short edge to
``res / 0.875``, centre-crop ``res``), bicubic resizing, and SGD without Nesterov.
"""
import copy
from dataclasses import asdict, dataclass, replace
from typing import Dict, List, Mapping, Optional

__all__ = ['TABLE7', 'In1kRecipe', 'in1k_recipe', 'in1k_variant_cfg', 'TEST_CROP_RATIO']

#: Paper Table 7, per variant: (weight decay, RandAugment N, mixup alpha, CutMix alpha).
TABLE7: Dict[str, tuple] = {
    's0': (1e-5, 1, 0.0, 0.0),
    's1': (1e-5, 1, 0.0, 0.0),
    's2': (1e-5, 2, 0.0, 0.0),
    's3': (5e-5, 2, 0.2, 0.2),
    's4': (5e-5, 2, 0.2, 0.2),
    's5': (5e-5, 3, 0.2, 0.2),
    's6': (5e-5, 3, 0.2, 0.2),
}

#: Test-time centre crop as a fraction of the resized short edge (not in the paper).
TEST_CROP_RATIO = 0.875


@dataclass(frozen=True)
class In1kRecipe:
    """The per-variant values of one RevBiFPN ImageNet recipe."""
    arch: str
    resolution: int  # train and test crop (Table 6)
    weight_decay: float
    dropout: float  # head dropout before fc (Table 6/7)
    randaug_n: int  # RandAugment ops per image (magnitude 9, std 0.5 for all)
    mixup: float  # mixup alpha, 0 = off
    cutmix: float  # CutMix alpha, 0 = off
    drop_path_rate: float  # maximum stochastic-depth rate (Table 7)

    @property
    def test_resize(self) -> int:
        """Short edge the test image is resized to before the centre crop."""
        return int(round(self.resolution / TEST_CROP_RATIO))


def in1k_recipe(arch: str, **overrides) -> In1kRecipe:
    """The recipe of a published variant (``'s0'`` ... ``'s6'``), optionally with
    fields replaced (e.g. ``resolution=64`` for a quick test)."""
    from .models.backbones import RevBiFPN
    from .models.variants import variant

    key = arch.lower()
    if key not in TABLE7:
        raise ValueError(f'No ImageNet recipe for {arch!r}; choose one of {sorted(TABLE7)}')
    wd, ra_n, mixup, cutmix = TABLE7[key]
    v = variant(key)
    recipe = In1kRecipe(arch=key, resolution=v['resolution'], weight_decay=wd,
                        dropout=v['dropout'], randaug_n=ra_n, mixup=mixup, cutmix=cutmix,
                        drop_path_rate=RevBiFPN.arch_settings[key]['drop_path_rate'])
    unknown = set(overrides) - set(asdict(recipe))
    if unknown:
        raise ValueError(f'Unknown recipe fields {sorted(unknown)}; '
                         f'known: {sorted(asdict(recipe))}')
    return replace(recipe, **overrides)


def _find(pipeline: List[dict], type_name: str, where: str) -> dict:
    steps = [t for t in pipeline if t.get('type') == type_name]
    if len(steps) != 1:
        raise ValueError(f'{where} needs exactly one {type_name!r} step, found {len(steps)}')
    return steps[0]


def _to_dict(obj):
    """Plain dicts/lists from (possibly nested) ConfigDicts."""
    if isinstance(obj, Mapping):
        return {k: _to_dict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_dict(v) for v in obj)
    return copy.deepcopy(obj)


def in1k_variant_cfg(arch: str, base: Mapping, **overrides) -> Dict[str, object]:
    """Config fields that turn the shared ImageNet ``_base_`` into variant ``arch``.

    Args:
        arch (str): ``'s0'`` ... ``'s6'``.
        base (Mapping): the merged ``_base_`` of the calling config (it must hold
            ``train_pipeline`` and ``test_pipeline``); it is not modified.
        **overrides: recipe fields to replace (see :class:`In1kRecipe`).

    Returns:
        dict: ``model``, ``optim_wrapper``, ``train_pipeline``, ``test_pipeline`` and
        the three dataloaders' ``dataset.pipeline``, to be merged over ``base``.

    Example (the body of ``configs/revbifpn_s3_8xb64_in1k.py``)::

        _base_ = ['./_base_/revbifpn_in1k_model.py', ...]
        from mmrevbifpn.recipes import in1k_variant_cfg
        globals().update(in1k_variant_cfg('s3', _base_))
    """
    r = in1k_recipe(arch, **overrides)
    train_pipeline = _to_dict(base['train_pipeline'])
    test_pipeline = _to_dict(base['test_pipeline'])
    _find(train_pipeline, 'RandomResizedCrop', 'train_pipeline')['scale'] = r.resolution
    _find(train_pipeline, 'RandAugment', 'train_pipeline')['num_policies'] = r.randaug_n
    _find(test_pipeline, 'ResizeEdge', 'test_pipeline')['scale'] = r.test_resize
    _find(test_pipeline, 'CenterCrop', 'test_pipeline')['crop_size'] = r.resolution

    batch_augments: Optional[dict] = None
    augments = []
    if r.mixup > 0:
        augments.append(dict(type='Mixup', alpha=r.mixup))
    if r.cutmix > 0:
        augments.append(dict(type='CutMix', alpha=r.cutmix))
    if augments:  # one of them per batch, picked uniformly (timm's switch_prob 0.5)
        batch_augments = dict(augments=augments)

    model = dict(
        backbone=dict(arch=r.arch, drop_path_rate=r.drop_path_rate),
        neck=dict(arch=r.arch),
        head=dict(arch=r.arch, dropout=r.dropout),
        train_cfg=batch_augments)
    return dict(
        model=model,
        optim_wrapper=dict(optimizer=dict(weight_decay=r.weight_decay)),
        train_pipeline=train_pipeline,
        test_pipeline=test_pipeline,
        train_dataloader=dict(dataset=dict(pipeline=train_pipeline)),
        val_dataloader=dict(dataset=dict(pipeline=test_pipeline)),
        test_dataloader=dict(dataset=dict(pipeline=test_pipeline)),
    )
