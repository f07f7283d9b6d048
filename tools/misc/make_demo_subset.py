#!/usr/bin/env python
"""Build the bundled demo dataset ``demo/coco_subset`` from a COCO-format source.

Keeps only images whose COCO licence permits redistribution *and* derivatives
(licence ids 4 CC BY 2.0, 5 CC BY-SA 2.0, 7 "no known copyright restrictions",
8 US Government work), copies them unchanged with all their original annotations,
and writes ``ATTRIBUTION.md`` listing every image with its licence and Flickr URL.

Example (from the repository root, regenerates the bundled subset):
    python tools/misc/make_demo_subset.py ../shared/data/tiny_coco demo/coco_subset
"""
import argparse
import json
import os
import os.path as osp
import shutil
import sys

REDISTRIBUTABLE = (4, 5, 7, 8)
SPLITS = (('train2017', 'train'), ('val2017', 'val'))


def subset(coco: dict, licence_ids=REDISTRIBUTABLE) -> dict:
    images = [im for im in coco['images'] if im['license'] in licence_ids]
    keep = {im['id'] for im in images}
    anns = [a for a in coco['annotations'] if a['image_id'] in keep]
    used_licences = {im['license'] for im in images}
    return dict(
        info=dict(coco.get('info', {}),
                  description='mmrevbifpn demo subset of MS COCO 2017 (redistributable '
                  'images only, see ATTRIBUTION.md)'),
        licenses=[lic for lic in coco['licenses'] if lic['id'] in used_licences],
        images=images, annotations=anns, categories=coco['categories'])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('src', help='COCO root with annotations/instances_{train,val}2017.json '
                   'and train2017/, val2017/')
    p.add_argument('dst', help='output directory (created; must not exist)')
    args = p.parse_args(argv)
    if osp.exists(args.dst):
        sys.exit(f'error: {args.dst} exists; remove it first')
    os.makedirs(osp.join(args.dst, 'annotations'))
    os.makedirs(osp.join(args.dst, 'images'))
    rows = []
    for src_split, dst_split in SPLITS:
        ann = osp.join(args.src, 'annotations', f'instances_{src_split}.json')
        with open(ann) as f:
            coco = json.load(f)
        out = subset(coco)
        lic_name = {lic['id']: (lic['name'], lic['url'].replace('\\/', '/'))
                    for lic in coco['licenses']}
        for im in out['images']:
            shutil.copyfile(osp.join(args.src, src_split, im['file_name']),
                            osp.join(args.dst, 'images', im['file_name']))
            n = sum(a['image_id'] == im['id'] for a in out['annotations'])
            name, url = lic_name[im['license']]
            rows.append((dst_split, im['file_name'], n, im['license'], name, url,
                         im['flickr_url'], im['coco_url']))
        with open(osp.join(args.dst, 'annotations', f'instances_{dst_split}.json'), 'w') as f:
            json.dump(out, f, separators=(',', ':'))
        print(f'{dst_split}: {len(out["images"])} images, {len(out["annotations"])} '
              f'annotations (from {len(coco["images"])} images)')
    with open(osp.join(args.dst, 'ATTRIBUTION.md'), 'w') as f:
        f.write(ATTRIBUTION_HEAD)
        f.write('| split | file | annotations | licence | photo (Flickr) | COCO url |\n')
        f.write('|---|---|---:|---|---|---|\n')
        for split, fn, n, lid, name, url, flickr, coco_url in rows:
            f.write(f'| {split} | images/{fn} | {n} | [{name}]({url}) (id {lid}) | '
                    f'{flickr} | {coco_url} |\n')
    return 0


ATTRIBUTION_HEAD = """\
# Demo dataset: licence and attribution

`demo/coco_subset` is a small subset of the MS COCO 2017 dataset (Lin et al., 2014,
https://cocodataset.org), taken from the 100-image `tiny_coco` sample
(github.com/lizhogn/tiny_coco_dataset). It was produced by
`tools/misc/make_demo_subset.py`, which keeps **only** the images whose COCO
licence permits redistribution and derivative works:

| COCO licence id | licence |
|---|---|
| 4 | Creative Commons Attribution 2.0 (CC BY 2.0), https://creativecommons.org/licenses/by/2.0/ |
| 5 | Creative Commons Attribution-ShareAlike 2.0 (CC BY-SA 2.0), https://creativecommons.org/licenses/by-sa/2.0/ |
| 7 | No known copyright restrictions (Flickr Commons), https://flickr.com/commons/usage/ |
| 8 | United States Government Work, https://www.usa.gov/copyright.shtml |

* **Images**: unmodified JPEGs, each under the licence given below; the
  author of each photograph is credited on its Flickr page (the `flickr_url`).
  The CC BY-SA images remain under CC BY-SA 2.0. These licences are separate
  from the project's code licence.
* **Annotations** (`annotations/*.json`): the original COCO instance
  annotations of these images (boxes, polygons, crowd RLE), unchanged,
  (c) COCO Consortium, licensed under CC BY 4.0
  (https://creativecommons.org/licenses/by/4.0/). Only the lists of images,
  annotations and licences were filtered; the 80 categories are kept.
* `train` = images from COCO train2017, `val` = images from COCO val2017.

"""

if __name__ == '__main__':
    sys.exit(main())
