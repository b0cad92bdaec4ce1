#!/bin/bash
# A/B of `bench --workload read`: the build before and after, alternating, 5 rounds each.
for r in 1 2 3 4 5; do
  for v in before after; do
    out=$(/tmp/aiodiskdb-$v bench --workload read --json 2>/dev/null | tail -1)
    echo "$v $r $(echo "$out" | grep -o '"readers":[0-9]*,"verify_reads":true[^}]*vs_unverified":[0-9.]*' | sed -E 's/.*"readers":([0-9]+).*vs_unverified":([0-9.]*)/\1:\2/' | tr '\n' ' ')"
    echo "$out" >> /tmp/readbench-$v.jsonl
  done
done
