#!/bin/bash
cd /tmp/br30
for i in 1 2 3; do
  for n in base head; do
    case $n in base) b=/tmp/v2target/release/aiodiskdb;; head) b=/tmp/br30/aiodiskdb-head;; esac
    start=$(date +%s)
    $b bench --workload all --json > $n-$i.json 2> $n-$i.err
    echo "$n-$i rc=$? $(( $(date +%s) - start ))s $(date +%T)" >> progress
  done
  for e in commitlog okaywal; do
    start=$(date +%s)
    ./peers --workload append-large --engine $e > peer-$e-$i.txt 2>&1
    echo "peer-$e-$i rc=$? $(( $(date +%s) - start ))s $(date +%T)" >> progress
  done
done
for w in mixed large randread small; do
  start=$(date +%s)
  /work/shared/tools/pybaseline $w > py-$w.txt 2>&1
  echo "py-$w rc=$? $(( $(date +%s) - start ))s $(date +%T)" >> progress
done
echo done >> progress
