#!/bin/bash
# A/B of `bench --workload read`: /tmp/aiodiskdb-before and /tmp/aiodiskdb-after, alternating.
for r in $(seq 1 15); do
  for v in before after; do
    /tmp/aiodiskdb-$v bench --workload read --json 2>/dev/null | tail -1 >> $v.jsonl
  done
done
