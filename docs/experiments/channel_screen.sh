#!/usr/bin/env bash
# The -CH screen (docs/results.md, "Through other microphones and rooms"): each candidate member and
# the default's member of the same seed, then the embedded default, on the same changed copies of
# RAVDESS actors 19-20, through the runtime (channel_robustness.py). Run from the repository root:
#   bash docs/experiments/channel_screen.sh      # ~7 min per bundle, one core
set -euo pipefail
export OMP_NUM_THREADS=1
rm -rf runs/s34/channel   # the copies, rewritten by the committed audio.channel code
for b in runs/s33/wc/seed0/bundle runs/s33/wc/seed1/bundle runs/s34/ch_s0/bundle runs/s34/ch_s1/bundle; do
  echo "== $b"
  python docs/experiments/channel_robustness.py --manifest ../shared/data/ravdess --speakers 19 20 \
    --bundle "$b" --out runs/s34/channel | tail -n 10
done
echo "== embedded default"
python docs/experiments/channel_robustness.py --manifest ../shared/data/ravdess --speakers 19 20 \
  --out runs/s34/channel | tail -n 10
