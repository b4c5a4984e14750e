#!/usr/bin/env bash
# The acceptance checks of a candidate default bundle (issue 11; docs/results.md, "The embedded default
# ("edge") bundle"), each clip its own conversation through the live runtime, one thread per job:
#   (i)   SAVEE with Whisper's transcripts vs the voice alone (UAR; with and without the voice pool)
#   (ii)  all 2,610 MELD test lines spoken by espeak-ng vs their words alone (weighted F1; both)
#   the held-out RAVDESS actors 19-20 (strong-intensity clips with their transcripts: >= 70 % right;
#   the voice alone as a stranger (a) and after 10 of their clips (b)), MELD test text only.
#
#   bash docs/experiments/default_checks.sh BUNDLE OUT [JOBS]
#
# Needs runs/spoken_meld_test_all (python -m cmer_edge.testing.spoken_meld --meld-dir ../shared/data/meld
# --split test --limit 100000 --out runs/spoken_meld_test_all). JOBS evaluations run at once (default 2);
# ~10 min per spoken/SAVEE set on one core of a 2-vCPU VM. Writes OUT/<check>.json and .csv, then
# OUT/summary.txt (gaps with 95 % paired-bootstrap intervals: python -m cmer_edge.training.gap_ci).
set -euo pipefail
BUNDLE=${1:?usage: default_checks.sh BUNDLE OUT [JOBS]}
OUT=${2:?usage: default_checks.sh BUNDLE OUT [JOBS]}
JOBS=${3:-2}
SPOKEN=${SPOKEN_MELD_TEST:-runs/spoken_meld_test_all}
SHARED=${SHARED:-../shared}
[ -d "$BUNDLE" ] || { echo "error: no bundle folder $BUNDLE" >&2; exit 2; }
[ -d "$SPOKEN" ] || { echo "error: no spoken MELD test set at $SPOKEN (see the header of $0)" >&2; exit 2; }
mkdir -p "$OUT"
export OMP_NUM_THREADS=1

ev() {  # NAME ARGS...: one evaluate run, its JSON and predictions kept
  local name=$1; shift
  python -m cmer_edge.evaluate --bundle "$BUNDLE" --threads 1 --json --predictions "$OUT/$name.csv" "$@" \
    > "$OUT/$name.json" 2> "$OUT/$name.log"
}
checks=(
  "i_audio --manifest $SHARED/data/savee --modalities audio"
  "i_both --manifest $SHARED/data/savee --modalities both --asr whisper"
  "i_both_nopool --manifest $SHARED/data/savee --modalities both --asr whisper --voice-weight 0 --text-weight 0"
  "ii_text --manifest $SPOKEN --modalities text"
  "ii_both --manifest $SPOKEN --modalities both"
  "ii_both_nopool --manifest $SPOKEN --modalities both --voice-weight 0 --text-weight 0"
  "r1920_both --manifest $SHARED/data/ravdess --speakers 19 20 --modalities both"
  "r1920_audio_a --manifest $SHARED/data/ravdess --speakers 19 20 --modalities audio"
  "r1920_audio_b --manifest $SHARED/data/ravdess --speakers 19 20 --modalities audio --warmup-clips 10"
)
running=0
for check in "${checks[@]}"; do
  # shellcheck disable=SC2086  # the arguments are split on purpose
  ev $check &
  running=$((running + 1))
  if [ "$running" -ge "$JOBS" ]; then wait -n; running=$((running - 1)); fi
done
python -m cmer_edge.evaluate --bundle "$BUNDLE" --meld-dir "$SHARED/data/meld" --split test --modalities text \
  --json > "$OUT/meld_test_text.json" 2> "$OUT/meld_test_text.log" &
wait

python - "$OUT" > "$OUT/summary.txt" <<'EOF'
import csv, json, sys
from pathlib import Path
out = Path(sys.argv[1])
get = lambda name, key: json.loads((out / f"{name}.json").read_text())[key]
print(f"(i)  SAVEE: both {get('i_both', 'uar'):.2f} (no pool {get('i_both_nopool', 'uar'):.2f}) vs audio {get('i_audio', 'uar'):.2f} UAR")
print(f"(ii) spoken MELD test: both {get('ii_both', 'weighted_f1'):.2f} (no pool {get('ii_both_nopool', 'weighted_f1'):.2f})"
      f" vs text {get('ii_text', 'weighted_f1'):.2f} weighted F1")
rows = [r for r in csv.DictReader(open(out / "r1920_both.csv")) if Path(r["path"]).stem.split("-")[3] == "02"]
right = sum(r["label"] == r["pred"] for r in rows)
print(f"19-20 rule: {right} of {len(rows)} strong-intensity clips right ({100 * right / len(rows):.1f} %; rule >= 70 %)")
print(f"19-20 voice alone: (a) {get('r1920_audio_a', 'uar'):.1f} / (b) {get('r1920_audio_b', 'uar'):.1f} UAR")
meld = json.loads((out / "meld_test_text.json").read_text())
print(f"MELD test text: weighted F1 {meld['weighted_f1']:.2f}; per class F1 {meld.get('per_class_f1')}")
EOF
{
  echo "(i) gap, with the pool:";    python -m cmer_edge.training.gap_ci --metric uar "$OUT/i_both.csv" "$OUT/i_audio.csv"
  echo "(i) gap, without the pool:"; python -m cmer_edge.training.gap_ci --metric uar "$OUT/i_both_nopool.csv" "$OUT/i_audio.csv"
  echo "(ii) gap, with the pool:";   python -m cmer_edge.training.gap_ci --metric wf1 "$OUT/ii_both.csv" "$OUT/ii_text.csv"
  echo "(ii) gap, without the pool:"; python -m cmer_edge.training.gap_ci --metric wf1 "$OUT/ii_both_nopool.csv" "$OUT/ii_text.csv"
} >> "$OUT/summary.txt"
cat "$OUT/summary.txt"
