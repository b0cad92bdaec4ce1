"""Renders the results of scripts/bench-all (one directory) as the Markdown table of
docs/BENCHMARKS.md. Usage: python3 scripts/bench_table.py DIR"""
import json
import sys
from pathlib import Path

PEERS = ["redb", "fjall", "okaywal", "commitlog", "marble"]


def load(d):
    ours = {}
    for line in (d / "aiodiskdb.jsonl").read_text().splitlines():
        o = json.loads(line)
        ours[o["workload"]] = o
    peers = {}
    p = d / "peers.jsonl"
    if p.exists():
        for line in p.read_text().splitlines():
            o = json.loads(line)
            peers[(o["engine"], o["workload"])] = o
    py = {}
    for line in (d / "python.txt").read_text().splitlines():
        name, *kv = line.split()
        # randread prints the line of its own (smaller) `small` first: keep the first one.
        py.setdefault(name, dict(x.split("=", 1) for x in kv))
    return ours, peers, py


def num(x, digits=0):
    if x is None:
        return "n/a"
    if x >= 100 or digits == 0:
        return f"{x:,.0f}"
    if x < 1:
        return f"{x:.2f}"
    return f"{x:,.{digits}f}"


def main():
    d = Path(sys.argv[1])
    ours, peers, py = load(d)

    def peer(engine, workload, get):
        o = peers.get((engine, workload))
        if o is None:
            return None, "not run"
        if "skipped" in o:
            return None, "n/a: " + o["skipped"]
        try:
            return get(o), None
        except (KeyError, IndexError, TypeError):
            return None, "n/a"

    def pyval(name, key, scale=1.0):
        r = py.get(name, {})
        if key in r:
            return float(r[key]) * scale, None
        if "timeout" in r:
            return None, f"did not finish in {r['timeout']} s"
        return None, "not run"

    # (label, unit, ours, limit, higher_is_better, peer getter, python (value, note))
    s_small, s_large = ours.get("seed-small"), ours.get("seed-large")
    app, appl = ours.get("append"), ours.get("append-large")
    rd, du, op = ours.get("read"), ours.get("durable"), ours.get("open")
    vf = ours.get("verify")
    MiB = 1.048576

    def read_run(o, readers):
        # Ours runs with verify_reads on (the default) and off; a peer's runs have no
        # configuration.
        return next(r for r in o["runs"]
                    if r["readers"] == readers and r.get("verify_reads", True))

    def unverified(readers):
        return next(r for r in rd["runs"]
                    if r["readers"] == readers and r.get("verify_reads") is False)
    rows = [
        ("seed-small writes", "writes/s", s_small["writes_per_s"], None, True,
         ("seed-small", lambda o: o["writes_per_s"]), pyval("mixed", "writes_per_s")),
        ("seed-small, bytes", "MB/s", s_small["mb_per_s"], s_small["limit_mb_per_s"], True,
         ("seed-small", lambda o: o["mb_per_s"]), (None, "")),
        ("seed-small concurrent reads", "reads/s", s_small["reads_per_s"], None, True,
         ("seed-small", lambda o: o["reads_per_s"]), pyval("mixed", "reads_per_s")),
        ("seed-large", "MB/s", s_large["mb_per_s"], s_large["limit_mb_per_s"], True,
         ("seed-large", lambda o: o["mb_per_s"]), pyval("large", "mb_per_s", MiB)),
        ("append 100 B, default config", "adds/s", app["runs"][0]["adds_per_s"],
         app["limit_adds_per_s"], True, ("append", lambda o: o["adds_per_s"]),
         pyval("small", "adds_per_s")),
        ("append 100 B, bytes-governed", "adds/s", app["runs"][1]["adds_per_s"],
         app["limit_adds_per_s"], True, ("append", lambda o: o["adds_per_s"]),
         pyval("small", "adds_per_s")),
        ("append 1 MiB items", "MB/s", appl["runs"][0]["adds_per_s"] * MiB,
         appl["limit_adds_per_s"] * MiB, True,
         ("append-large", lambda o: o["adds_per_s"] * MiB), (None, "")),
        ("read 1 KiB, 1 reader", "reads/s", read_run(rd, 1)["reads_per_s"],
         read_run(rd, 1)["limit_reads_per_s"], True,
         ("read", lambda o: read_run(o, 1)["reads_per_s"]), pyval("randread", "reads_per_s")),
        ("read 1 KiB, 32 readers", "reads/s", read_run(rd, 32)["reads_per_s"],
         read_run(rd, 32)["limit_reads_per_s"], True,
         ("read", lambda o: read_run(o, 32)["reads_per_s"]), (None, "")),
        ("read 1 KiB, 1 reader, verify_reads off", "reads/s", unverified(1)["reads_per_s"],
         unverified(1)["limit_reads_per_s"], True, None, (None, "")),
        ("read 1 KiB, 32 readers, verify_reads off", "reads/s",
         unverified(32)["reads_per_s"], unverified(32)["limit_reads_per_s"], True, None,
         (None, "")),
        ("durable, 64 tasks", "items/s", du["items_per_s"], du["limit_items_per_s"], True,
         ("durable", lambda o: o["items_per_s"]), (None, "no durable flush")),
        ("open, 1,000 files of 100 B", "ms", op["open_ms"], None, False, None, (None, "")),
        ("open, 1,000 files of 100 KiB", "ms", op["big_open_ms"], None, False, None, (None, "")),
        ("open, 100,000 items of 1 KiB", "ms", op["items_open_ms"], None, False,
         ("open", lambda o: o["open_ms"]), (None, "")),
    ]
    for run in (vf or {}).get("runs", []):
        rows.append((f"verify 1..64 KiB items, {run['cache']} cache", "MB/s", run["mb_per_s"],
                     run["limit_mb_per_s"], True, None, (None, "")))
    # Issue 13: a read-only handle in another process while the writer appends, and the
    # same reads in the writer's process (the ratio is the reader's `vs_writer`).
    for run in (ours.get("read-other-process") or {}).get("runs", []):
        who = "another process (read-only)" if run["process"] == "reader" else "the writer's process"
        rows.append((f"read 1 KiB beside appends, {run['readers']} reader(s), from {who}",
                     "reads/s", run["reads_per_s"], None, True, None, (None, "")))
    head = ["workload", "unit", "aiodiskdb", "limit", "÷ limit"] + PEERS + ["Python 0.2.3", "÷ Python"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for label, unit, v, lim, higher, pg, (pv, pnote) in rows:
        cells = [label, unit, num(v, 1)]
        cells.append(num(lim, 1) if lim else "")
        cells.append(f"{v / lim:.2f}" if lim else "")
        for e in PEERS:
            if pg is None:
                cells.append("")
                continue
            x, note = peer(e, pg[0], pg[1])
            if x is None:
                cells.append(note)
            else:
                r = (v / x) if higher else (x / v)
                cells.append(f"{num(x, 1)} (×{r:.1f})" if x > 0 else num(x, 1))
        cells.append(num(pv, 1) if pv is not None else pnote)
        cells.append(f"{v / pv:,.0f}×" if pv else "")
        print("| " + " | ".join(cells) + " |")
    print()
    print(f"Peak RSS during seed-large: {s_large.get('peak_rss_mib') or 0:.1f} MiB "
          f"(bound: {s_large['peak_rss_bound_mib']:.0f} MiB = twice the 16 MiB buffer + 64 MiB).")
    print(f"durable: {du.get('items_per_flush') or 0:.1f} items per commit; commits/s ÷ "
          f"the limit's batches/s (the ratio at our batch size): {du.get('flush_ratio') or 0:.2f}.")
    print("read, verified reads/s ÷ unverified: " + ", ".join(
        f"{r['readers']} reader(s) {r['vs_unverified']:.3f}" for r in rd["runs"]
        if "vs_unverified" in r) + ".")
    print("In the peer columns, (×N) is aiodiskdb's figure divided by the peer's (for open, "
          "the peer's time divided by ours): above 1, aiodiskdb is ahead.")


main()
