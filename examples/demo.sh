#!/usr/bin/env bash
# The main job on the local embedded default: a demo store with create, stats and cast.
# Run with `make demo` (which creates .venv first). Safe to rerun: it starts from scratch.
set -euo pipefail
cd "$(dirname "$0")/.."
AS=${AS:-.venv/bin/arraystore}
STORE=${STORE:-demo.store}
rm -rf "$STORE" "$STORE.stats.json"
echo "== create: 2,000,000 structured records (random), zarr + lz4, and a plain memmap array"
$AS create "$STORE" trades --shape 2000000 --dtype 'id:i8,price:f8,qty:i8,flags:u1,vec:3f8' \
    --fill random --seed 0 --backend zarr --codec lz4
$AS create "$STORE" grid --shape 500000,64 --dtype f8 --fill random --seed 1
echo "== ls / info"
$AS ls "$STORE"
$AS info "$STORE" trades
if $AS stats --help >/dev/null 2>&1; then
  echo "== stats"
  $AS stats "$STORE" trades --field price --field qty --quantiles 0.5,0.99
  $AS stats "$STORE" grid --axis 0 --json > "$STORE.stats.json"
  echo "per-column stats of grid written to $STORE.stats.json ($(wc -c < "$STORE.stats.json") bytes)"
fi
if $AS cast --help >/dev/null 2>&1; then
  echo "== cast"
  # the value policy refuses any rounding by default: the dry run says so ...
  $AS cast "$STORE" trades --to 'price:f4,qty:auto' --dry-run
  # ... so accept float32's relative precision explicitly
  $AS cast "$STORE" trades --to 'price:f4,qty:auto' --rtol 1e-6
  $AS cast "$STORE" grid --to f4 --casting unsafe --out grid_f4
  $AS info "$STORE" trades
  $AS verify "$STORE"
fi
echo "demo done: see $STORE"
