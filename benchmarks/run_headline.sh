#!/usr/bin/env bash
# The headline figures of docs/benchmarks.md, one script after the other in one session on an
# otherwise idle machine (no chrt, no nice): each log starts and ends with the load average.
#   bash benchmarks/run_headline.sh [OUT]   (default benchmarks/results/headline; ~20 min on 2 cores)
#   ONLY="everything interactive" bash benchmarks/run_headline.sh OUT   runs only those names
set -u
cd "$(dirname "$0")/.."
OUT=${1:-benchmarks/results/headline}
mkdir -p "$OUT"
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH}
run() {  # run NAME CMD...: stdout + stderr into OUT/NAME.log, load averages around it
  local name=$1; shift
  if [ -n "${ONLY:-}" ] && [[ " $ONLY " != *" $name "* ]]; then return; fi
  { echo "# $(date -u +%FT%TZ) load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "# $*"
    "$@" 2>&1
    echo "# exit $? load average after: $(cut -d' ' -f1-3 /proc/loadavg)"; } > "$OUT/$name.log"
  echo "$name done ($(cut -d' ' -f1-3 /proc/loadavg))"
}
run peak python benchmarks/bench_peak.py --runs 5
run precision python benchmarks/bench_precision.py --models mobile_sam sam_vit_b efficient_sam_vitt efficient_sam_vits fastsam_s mobilesamv2_objectaware --runs 3 --json "$OUT/precision.json"
run core_mobile_sam python benchmarks/bench_core.py --model mobile_sam --runs 10
run core_sam_vit_b python benchmarks/bench_core.py --model sam_vit_b --runs 3
run everything python benchmarks/bench_everything.py --cases grid object_aware fastsam --precision fp32 bf16 --out "$OUT/everything.json"
run propagation python benchmarks/bench_propagation.py --quick
run propagation_cold python benchmarks/bench_propagation.py --cold-only --slices 12 --pairs 3
run interactive xvfb-run -a -s "-screen 0 1600x1000x24" python benchmarks/bench_interactive.py --quick
run interactive_hidden xvfb-run -a -s "-screen 0 1600x1000x24" python benchmarks/bench_interactive.py --quick --hidden
run stalls xvfb-run -a -s "-screen 0 1600x1000x24" python benchmarks/bench_stalls.py --json "$OUT/stalls.json"
run sam2 python benchmarks/bench_sam2.py --models t --precisions fp32 bf16 --runs 2 --frames 5 --json "$OUT/sam2.json"
run batch python benchmarks/bench_batch.py --images 4 --planes 1
run cancel python benchmarks/bench_cancel.py --repeats 5
