#!/usr/bin/env bash
# Operations benchmark (BENCHMARKS.md "Backup, export, import", "Duplicates and report",
# "Export memory"): on a 100,000-lead database, times a checked backup, CSV and JSON exports
# (peak anonymous memory sampled from /proc), the legacy import of 100,000 records with
# duplicate detection, `report` and `duplicateCandidates` over HTTP, and the server's memory
# while it streams /export/leads.csv and .json of 10,000 and of 100,000 leads.
#
#   scripts/ops-bench.sh [work-dir]        (default /tmp/leadcache-ops; needs python3, curl, bc)
#
# RssAnon is the memory the process allocated; RssFile (the database pages the process reads
# through mmap, i.e. the OS page cache) is reported apart because it is shared and reclaimable.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-/tmp/leadcache-ops}
TARGET=${CARGO_TARGET_DIR:-target}
mkdir -p "$WORK"
cargo build --release
BIN="$WORK/leadcache"
cp "$TARGET/release/leadcache" "$BIN"   # a private copy: other builds may replace the target's
DB="$WORK/ops.db"
echo "# $(date -u +%FT%TZ) $(nproc) cores, load: $(cut -d' ' -f1-3 /proc/loadavg), commit $(git rev-parse --short HEAD)"

# Runs a command, prints elapsed time and peak RssAnon / RssFile (KiB).
watch() {
  local label=$1; shift
  local start end pid a f maxa=0 maxf=0
  start=$(date +%s.%N)
  "$@" >/dev/null 2>"$WORK/watch.err" &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    a=$(awk '/RssAnon/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
    f=$(awk '/RssFile/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
    [ -n "$a" ] && [ "$a" -gt "$maxa" ] && maxa=$a
    [ -n "$f" ] && [ "$f" -gt "$maxf" ] && maxf=$f
    sleep 0.05
  done
  wait "$pid"
  end=$(date +%s.%N)
  printf '%s: %.2f s, peak RssAnon %d KiB, peak RssFile %d KiB\n' "$label" "$(echo "$end - $start" | bc)" "$maxa" "$maxf"
}

rm -rf "$DB"* "$WORK/backups" "$WORK/import.db"*
"$BIN" --database "$DB" --leadcache-backup-dir "$WORK/backups" seed --count 100000 >/dev/null 2>&1
watch "backup of 100,000 leads" "$BIN" --database "$DB" --leadcache-backup-dir "$WORK/backups" backup
ls -l "$WORK"/backups/*.db | awk '{print "backup file: " $5 " bytes"}'
watch "CSV export of 100,000 leads" "$BIN" --database "$DB" export --format csv -o "$WORK/leads.csv"
watch "JSON dump of 100,000 leads" "$BIN" --database "$DB" export --format json -o "$WORK/leads.json"

python3 scripts/legacy-leads.py 100000 "$WORK/legacy.json"
watch "legacy import of 100,000 records" "$BIN" --database "$WORK/import.db" --leadcache-backup-dir "$WORK/backups" import "$WORK/legacy.json"
sqlite3 "$WORK/import.db" "SELECT 'import_log: imported ' || imported || ', merged ' || merged || ', invalid ' || failed FROM import_log" 2>/dev/null || true

PORT=18099
"$BIN" --database "$DB" --leadcache-backup-dir "$WORK/backups" serve --bind "127.0.0.1:$PORT" >"$WORK/serve.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.2; done
gql() { curl -s -o /dev/null -w '%{time_total}\n' -H 'content-type: application/json' -d "{\"query\":\"$1\"}" "http://127.0.0.1:$PORT/graphql"; }
REPORT='{ report { totalLeads byStatus { status count } funnel { status reached share } bySource { source count } enrichmentRate createdPerDay { day count } medianDaysInStage { status medianDays } campaigns { name replyRate } } }'
echo "report, 20 calls (s, sorted): $(for _ in $(seq 20); do gql "$REPORT"; done | sort -n | tr '\n' ' ')"
echo "duplicateCandidates(first: 50), 5 calls (s): $(for _ in $(seq 5); do gql '{ duplicateCandidates(first: 50) { score } }'; done | sort -n | tr '\n' ' ')"
anon() { awk '/RssAnon/ {print $2}' "/proc/$SERVER/status"; }
for fmt in csv json; do
  before=$(anon); peak=$before
  curl -s -o "$WORK/srv.$fmt" "http://127.0.0.1:$PORT/export/leads.$fmt" &
  CURL=$!
  while kill -0 "$CURL" 2>/dev/null; do a=$(anon); [ "$a" -gt "$peak" ] && peak=$a; sleep 0.02; done
  echo "server /export/leads.$fmt of 100,000 leads: RssAnon before $before KiB, peak $peak KiB, after $(anon) KiB"
done
