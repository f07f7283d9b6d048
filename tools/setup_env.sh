#!/usr/bin/env bash
# Creates/updates the project virtualenv (.venv) with the pinned OpenMMLab stack.
# Idempotent: a stamp file records what was installed; a second run returns in seconds.
#
# mmcv 2.1.0 has no wheel for torch 2.14, so it is built from its source package with
# compiled ops (MMCV_WITH_OPS=1; CUDA ops too when nvcc and a CUDA torch are present).
# The built wheel is cached outside the clone (MMREVBIFPN_WHEEL_CACHE, default
# ~/.cache/mmrevbifpn/wheels), so a machine pays the build (tens of minutes) once.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
VENV=${MMREVBIFPN_VENV:-$ROOT/.venv}
CACHE=${MMREVBIFPN_WHEEL_CACHE:-$HOME/.cache/mmrevbifpn/wheels}
STAMP=$VENV/.mmrevbifpn-installed
want=$(cat requirements.txt requirements-test.txt setup.py tools/setup_env.sh | sha256sum | cut -c1-16)

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && "$VENV/bin/python" -c "import mmcv._ext" 2>/dev/null; then
  exit 0
fi
log() { echo "[setup_env] $*"; }
[ -x "$VENV/bin/python" ] || { log "creating $VENV"; "$PY" -m venv "$VENV"; }
VPY="$VENV/bin/python"
pip_i() { "$VPY" -m pip install --disable-pip-version-check -q "$@"; }

log "build tools and torch"
pip_i --upgrade pip
pip_i "setuptools>=77,<82" wheel ninja psutil
pip_i torch==2.14.1 torchvision==0.29.1

if ! "$VPY" -c "import mmcv, mmcv._ext; assert mmcv.__version__ == '2.1.0'" 2>/dev/null; then
  TORCH_TAG=$("$VPY" -c "import torch,sys; print(f'torch{torch.__version__.split(\"+\")[0]}-cu{torch.version.cuda or \"none\"}-py{sys.version_info.major}{sys.version_info.minor}')")
  WITH_CUDA=0
  if command -v nvcc >/dev/null 2>&1 && "$VPY" -c "import torch,sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    WITH_CUDA=1
  fi
  WDIR="$CACHE/mmcv-2.1.0-$TORCH_TAG-gpu$WITH_CUDA"
  mkdir -p "$WDIR"
  if ! ls "$WDIR"/mmcv-2.1.0-*.whl >/dev/null 2>&1; then
    log "building mmcv 2.1.0 with ops (once per machine; tens of minutes on 2 cores) -> $WDIR"
    TMP=$(mktemp -d)
    "$VPY" -m pip download --disable-pip-version-check -q --no-deps --no-build-isolation --no-binary :all: mmcv==2.1.0 -d "$TMP"
    tar -xzf "$TMP"/mmcv-2.1.0.tar.gz -C "$TMP"
    # torch >= 2.14 headers need C++20; mmcv 2.1.0 hard-codes c++17.
    sed -i 's/-std=c++17/-std=c++20/g' "$TMP"/mmcv-2.1.0/setup.py
    if [ "$WITH_CUDA" = 1 ]; then export FORCE_CUDA=1; else export FORCE_CUDA=0; fi
    (cd "$TMP"/mmcv-2.1.0 && MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} \
      "$VPY" -m pip wheel --disable-pip-version-check --no-build-isolation --no-deps -w "$TMP/dist" .)
    cp "$TMP"/dist/mmcv-2.1.0-*.whl "$WDIR"/
    rm -rf "$TMP"
  fi
  pip_i --no-deps "$WDIR"/mmcv-2.1.0-*.whl
  pip_i addict packaging pyyaml yapf opencv-python
fi

log "OpenMMLab stack"
pip_i -r requirements.txt -r requirements-test.txt
log "mmrevbifpn (editable)"
pip_i --no-deps --no-build-isolation -e .
"$VPY" -c "import mmcv._ext; from mmcv.ops import RoIAlign, nms; import mmdet, mmpretrain, mmseg, mmrevbifpn"
echo "$want" > "$STAMP"
log "ready: $VENV"
