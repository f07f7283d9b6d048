#!/usr/bin/env python
"""Rasterise COCO instance annotations into an MMSegmentation semantic-segmentation set.

Every image gets a ``uint8`` PNG of class indices: 0 is background, ``1..K`` are the
categories of the annotation file in increasing category-id order (K = 80 for COCO),
and 255 (ignored by MMSegmentation) marks ``iscrowd`` regions. Instances are painted
from the largest to the smallest, so a small object on top of a large one stays
visible; crowd regions are painted last.

Output (MMSegmentation's ``BaseSegDataset`` layout)::

    OUT/img_dir/{train,val}/NAME.jpg     copies of the images
    OUT/ann_dir/{train,val}/NAME.png     class-index masks
    OUT/classes.json                     ["background", "person", ...] (index = value)

Example (the small set used by this project's tests)::

    python tools/dataset_converters/coco_to_semseg.py ../shared/data/tiny_coco data/coco_semseg

then use ``dict(type='BaseSegDataset', data_root='data/coco_semseg',
data_prefix=dict(img_path='img_dir/val', seg_map_path='ann_dir/val'),
metainfo=dict(classes=...))`` with the classes of ``classes.json``.
"""
import argparse
import json
import os
import os.path as osp
import shutil
import sys
from typing import Dict, List, Optional, Sequence

import numpy as np

BACKGROUND = 0
IGNORE = 255
#: (annotation file, image folder, output split) below the COCO root
DEFAULT_SPLITS = (('annotations/instances_train2017.json', 'train2017', 'train'),
                  ('annotations/instances_val2017.json', 'val2017', 'val'))


def category_index(categories: Sequence[dict]) -> Dict[int, int]:
    """COCO category id -> class index (1-based; 0 is background)."""
    ids = sorted(c['id'] for c in categories)
    if len(ids) >= IGNORE:
        raise ValueError(f'{len(ids)} categories do not fit a uint8 mask with '
                         f'{IGNORE} as the ignore index')
    return {cid: i + 1 for i, cid in enumerate(ids)}


def rasterise(coco, img_id: int, cat_to_index: Dict[int, int]) -> np.ndarray:
    """The class-index mask of one image of a ``pycocotools.coco.COCO`` set."""
    info = coco.imgs[img_id]
    mask = np.full((info['height'], info['width']), BACKGROUND, dtype=np.uint8)
    anns = coco.loadAnns(coco.getAnnIds(imgIds=[img_id], iscrowd=None))
    things = sorted((a for a in anns if not a.get('iscrowd', 0)),
                    key=lambda a: a['area'], reverse=True)
    crowds = [a for a in anns if a.get('iscrowd', 0)]
    for ann in things:
        mask[coco.annToMask(ann).astype(bool)] = cat_to_index[ann['category_id']]
    for ann in crowds:
        mask[coco.annToMask(ann).astype(bool)] = IGNORE
    return mask


def convert_split(coco_root: str, ann_file: str, img_folder: str, out_dir: str,
                  split: str, max_images: Optional[int] = None) -> List[str]:
    """Convert one split; returns the class names (index = mask value)."""
    from PIL import Image
    from pycocotools.coco import COCO

    coco = COCO(osp.join(coco_root, ann_file))
    cat_to_index = category_index(coco.loadCats(coco.getCatIds()))
    names = {c['id']: c['name'] for c in coco.loadCats(coco.getCatIds())}
    classes = ['background'] + [names[cid] for cid in sorted(cat_to_index)]
    img_out = osp.join(out_dir, 'img_dir', split)
    ann_out = osp.join(out_dir, 'ann_dir', split)
    os.makedirs(img_out, exist_ok=True)
    os.makedirs(ann_out, exist_ok=True)
    img_ids = sorted(coco.getImgIds())[:max_images]
    for img_id in img_ids:
        file_name = coco.imgs[img_id]['file_name']
        stem = osp.splitext(file_name)[0]
        shutil.copyfile(osp.join(coco_root, img_folder, file_name),
                        osp.join(img_out, stem + '.jpg'))
        Image.fromarray(rasterise(coco, img_id, cat_to_index)).save(
            osp.join(ann_out, stem + '.png'))
    return classes


def convert(coco_root: str, out_dir: str, splits=DEFAULT_SPLITS,
            max_images: Optional[int] = None) -> List[str]:
    """Convert all ``splits``; writes ``classes.json`` and returns the class names."""
    classes = None
    for ann_file, img_folder, split in splits:
        split_classes = convert_split(coco_root, ann_file, img_folder, out_dir, split,
                                      max_images)
        if classes is not None and split_classes != classes:
            raise ValueError(f'{ann_file} lists other categories than the previous split')
        classes = split_classes
    with open(osp.join(out_dir, 'classes.json'), 'w') as f:
        json.dump(classes, f, indent=0)
    return classes


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('coco_root', help='folder with annotations/, train2017/, val2017/')
    p.add_argument('out_dir', help='output folder (created)')
    p.add_argument('--max-images', type=int, default=None,
                   help='convert only the first N images (by id) of each split')
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    for ann_file, img_folder, _ in DEFAULT_SPLITS:
        for path in (osp.join(args.coco_root, ann_file), osp.join(args.coco_root, img_folder)):
            if not osp.exists(path):
                raise SystemExit(f'error: {path} does not exist; COCO_ROOT must hold '
                                 'annotations/instances_{train,val}2017.json and the '
                                 'train2017/ and val2017/ image folders')
    classes = convert(args.coco_root, args.out_dir, max_images=args.max_images)
    print(f'wrote {len(classes)} classes (0 = background, 255 = ignore) to {args.out_dir}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
