#!/bin/bash
# 1 MiB items: ours (main, `cargo build --release -p aiodiskdb-cli`) against commitlog and
# okaywal (`cargo build --release -p aiodiskdb-peers`), ten alternating rounds.
for i in $(seq 1 10); do
  /tmp/aiodiskdb-unsynced bench --workload append-large -q > ours-$i.txt 2>&1
  for e in commitlog okaywal; do
    /tmp/aiodiskdb-peers --workload append-large --engine $e -q > $e-$i.txt 2>&1
  done
  echo "round $i $(date +%T)" >> progress
done
