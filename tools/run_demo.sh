#!/usr/bin/env bash
# `make demo`: train RevBiFPN-S0 Faster R-CNN from scratch on the bundled COCO subset
# with tools/train.py, evaluate it with tools/test.py (pycocotools COCO AP on the
# images it was trained on: an overfitting sanity check), then report how much
# activation memory the reversible backbone saves. About 5-10 minutes on 2 CPU cores.
#
# Environment overrides:
#   DEMO_DATA   COCO-format folder with annotations/instances_train.json and images/
#               (default: demo/coco_subset, bundled; relative paths are relative to
#               the directory make / this script is called from)
#   WORK_DIR    output folder (default: work_dirs/demo/<timestamp>)
#   PYTHON      interpreter (default: .venv/bin/python, else python3)
#   DEMO_ITERS  training iterations (default: the demo config's, 100)
set -euo pipefail

# everything in a function: bash parses it whole before running (safe against edits)
main() {
CALLER_DIR=$(pwd)
cd "$(dirname "$0")/.."
ROOT=$(pwd)

PYTHON=${PYTHON:-}
if [ -z "$PYTHON" ]; then
  if [ -x "$ROOT/.venv/bin/python" ]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi
CONFIG=demo/faster_rcnn_revbifpn_s0_demo.py
DEMO_DATA=${DEMO_DATA:-$ROOT/demo/coco_subset}
case "$DEMO_DATA" in /*) ;; *) DEMO_DATA="$CALLER_DIR/$DEMO_DATA" ;; esac  # relative: to the caller's directory
DEMO_DATA=${DEMO_DATA%/}
ANN="$DEMO_DATA/annotations/instances_train.json"
WORK_DIR=${WORK_DIR:-work_dirs/demo/$(date +%Y%m%d_%H%M%S)}

die() { echo "[demo] error: $*" >&2; exit 1; }
[ -d "$DEMO_DATA" ] || die "data folder '$DEMO_DATA' does not exist (resolved: $(realpath -m "$DEMO_DATA")). Set DEMO_DATA to a COCO-format folder with annotations/instances_train.json and images/, or unset it to use the bundled demo/coco_subset."
[ -f "$ANN" ] || die "annotation file '$ANN' is missing. DEMO_DATA must contain annotations/instances_train.json (COCO instances format) and the images in images/."
[ -d "$DEMO_DATA/images" ] || die "image folder '$DEMO_DATA/images' is missing (the file_name entries of $ANN are read from there)."
"$PYTHON" - "$ANN" "$DEMO_DATA/images" <<'EOF' || exit 1
import json, os, sys
ann, img_dir = sys.argv[1:3]
try:
    with open(ann) as f:
        coco = json.load(f)
    images, anns = coco['images'], coco['annotations']
    coco['categories']
except (ValueError, KeyError, TypeError) as e:
    sys.exit(f'[demo] error: {ann} is not a COCO instances annotation file ({e!r})')
missing = [im['file_name'] for im in images
           if not os.path.isfile(os.path.join(img_dir, im['file_name']))]
if missing:
    sys.exit(f'[demo] error: {len(missing)} of {len(images)} images listed in {ann} are '
             f'not in {img_dir}, e.g. {missing[:3]}')
if not anns:
    sys.exit(f'[demo] error: {ann} has no annotations to train on')
print(f'[demo] data: {len(images)} images, {len(anns)} annotations from {ann}')
EOF

DATA_OPTS=(
  "train_dataloader.dataset.data_root=$DEMO_DATA/"
  "test_dataloader.dataset.data_root=$DEMO_DATA/"
  "test_evaluator.ann_file=$ANN"
)
ITER_OPTS=()
if [ -n "${DEMO_ITERS:-}" ]; then
  ITER_OPTS=("train_cfg.max_iters=$DEMO_ITERS" "default_hooks.checkpoint.interval=$DEMO_ITERS")
fi
# OpenMP threads sleep instead of spinning while waiting: much faster when the cores
# are shared with anything else.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}

start=$(date +%s)
echo "[demo] 1/3 training RevBiFPN-S0 Faster R-CNN from scratch ($CONFIG) -> $WORK_DIR"
"$PYTHON" tools/train.py "$CONFIG" --work-dir "$WORK_DIR" \
  --cfg-options "${DATA_OPTS[@]}" "${ITER_OPTS[@]}"
CKPT=$(cat "$WORK_DIR/last_checkpoint")
trained=$(date +%s)

echo "[demo] 2/3 evaluating $CKPT with tools/test.py on the training images"
"$PYTHON" tools/test.py "$CONFIG" "$CKPT" --work-dir "$WORK_DIR/test" \
  --cfg-options "${DATA_OPTS[@]}" 2>&1 | tee "$WORK_DIR/test.log"
tested=$(date +%s)

echo "[demo] 3/3 backbone memory report"
"$PYTHON" demo/memory_report.py --config "$CONFIG" > "$WORK_DIR/memory.txt"

"$PYTHON" - "$WORK_DIR" <<'EOF'
import glob, json, os, re, sys
work = sys.argv[1]
scalars = sorted(glob.glob(os.path.join(work, '2*', 'vis_data', 'scalars.json')))
losses = []
if scalars:
    with open(scalars[-1]) as f:
        for line in f:
            rec = json.loads(line)
            if 'loss' in rec and 'iter' in rec:
                losses.append((rec['iter'], rec['loss']))
print('\n' + '=' * 78)
print('RevBiFPN-S0 Faster R-CNN demo (trained from scratch; evaluated on the SAME')
print('images it was trained on: this shows the detector learning / overfitting, it')
print('is not a measure of accuracy on unseen images)')
print('=' * 78)
if len(losses) >= 2:
    k = max(1, len(losses) // 5)
    first = sum(v for _, v in losses[:k]) / k
    last = sum(v for _, v in losses[-k:]) / k
    print(f'training loss (logged every 10 iterations): first {k} logs {first:.3f} -> '
          f'last {k} logs {last:.3f}  ({"falling" if last < first else "NOT falling"})')
    print('  ' + '  '.join(f'it{i}:{v:.2f}' for i, v in losses))
with open(os.path.join(work, 'test.log')) as f:
    log = f.read()
table = [l for l in log.splitlines() if l.lstrip().startswith('Average ')]
print('\npycocotools COCO bbox evaluation (training images):')
print('\n'.join(table[-12:]) if table else '  (no AP table found in the test log!)')
m = re.findall(r'coco/bbox_mAP: (-?[\d.]+)', log)
if m:
    print(f'\nbbox mAP = {float(m[-1]):.3f} ({"> 0" if float(m[-1]) > 0 else "NOT > 0"})')
print()
with open(os.path.join(work, 'memory.txt')) as f:
    print(f.read().rstrip())
EOF
end=$(date +%s)
echo "[demo] wall time: train $((trained - start)) s, test $((tested - trained)) s, total $((end - start)) s. Outputs in $WORK_DIR"
}

main "$@"
