#!/usr/bin/env bash
# Build and check cmer_edge on a Jetson Orin (JetPack 6.1/6.2), optionally build a bundle's engines.
#   jetson/build.sh [--apt] [--bundle DIR] [--precision fp16|int8|fp32]
#     --apt        install the system packages first (sudo)
#     --bundle     build TensorRT engines for this bundle's encoders afterwards
#     --precision  engine precision (default fp16)
set -euo pipefail
cd "$(dirname "$0")/.."

APT=0; BUNDLE=""; PRECISION=fp16
while [ $# -gt 0 ]; do
  case "$1" in
    --apt) APT=1 ;;
    --bundle) BUNDLE="$2"; shift ;;
    --precision) PRECISION="$2"; shift ;;
    -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
  shift
done

if [ "$(uname -m)" != "aarch64" ] || [ ! -f /etc/nv_tegra_release ]; then
  echo "error: this is not a Jetson (uname -m: $(uname -m), /etc/nv_tegra_release missing)" >&2
  exit 2
fi
echo "L4T: $(head -n 1 /etc/nv_tegra_release)"
if ! grep -q "R36" /etc/nv_tegra_release; then
  echo "warning: cmer_edge targets L4T R36.4 (JetPack 6.1/6.2); engines need TensorRT 10" >&2
fi

if [ "$APT" = 1 ]; then
  sudo apt-get update
  sudo apt-get install -y --no-install-recommends python3-pip python3-dev build-essential git \
    libportaudio2 libsndfile1 alsa-utils espeak-ng ffmpeg python3-libnvinfer
fi

python3 -m pip install --upgrade pip
python3 -m pip install "cuda-python>=12.6,<12.7"
CMER_EDGE_CUDA=ON CUDAARCHS=87 python3 -m pip install ".[mic,asr]"

python3 -m cmer_edge
python3 - <<'PY'
import sys
from cmer_edge import _native
info = _native.build_info()
ok = info["cuda"] and str(info.get("cuda_arch")) == "87" and _native.cuda_available()
sys.exit(0 if ok else f"not a working sm_87 CUDA build: {info}, cuda_available={_native.cuda_available()}")
PY

if [ -n "$BUNDLE" ]; then
  python3 export/build_engine.py "$BUNDLE" --precision "$PRECISION"
  python3 -m cmer_edge.runtime.backends "$BUNDLE"
fi
echo "cmer_edge built for Jetson (sm_87)"
