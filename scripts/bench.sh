#!/usr/bin/env bash
# Runs the HTTP load benchmark (benches/http.rs) in release and keeps its output in
# $CARGO_TARGET_DIR/bench-http.txt (target/bench-http.txt by default). Arguments go to the
# benchmark, e.g. `scripts/bench.sh --seconds 20 --only lead,status`; `--help` lists them.
# See BENCHMARKS.md for what it measures and the latest figures.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
mkdir -p "$target"
out="$target/bench-http.txt"
{
    echo "# $(date -u '+%Y-%m-%d %H:%M UTC') $(git rev-parse --short HEAD 2>/dev/null || echo '?') load: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "# $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), kernel $(uname -r)"
} | tee "$out"
cargo bench --bench http -- "$@" 2>&1 | tee -a "$out"
