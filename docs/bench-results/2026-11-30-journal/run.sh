#!/bin/bash
# A/B of the commit journal: base = 3c12460 (main before it), head = this change.
# Build each with `cargo build --release -p aiodiskdb-cli` and copy the binaries to the
# paths below; then run this script from this directory.
set -u
for i in 1 2 3; do
  for n in base head; do
    b=/tmp/aiodiskdb-$n
    $b bench --workload durable --json > durable-$n-$i.json 2> durable-$n-$i.err
    echo "durable-$n-$i rc=$? $(date +%T)" >> progress
  done
done
for i in 1 2 3; do
  for n in base head; do
    b=/tmp/aiodiskdb-$n
    $b bench --workload append --json > append-$n-$i.json 2> append-$n-$i.err
    $b bench --workload append-large --json > large-$n-$i.json 2> large-$n-$i.err
    echo "append-$n-$i rc=$? $(date +%T)" >> progress
  done
done
echo done >> progress
