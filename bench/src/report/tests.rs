//! The two shapes of each report, to the letter: `aiodiskdb bench` (limits, no engine) and
//! `aiodiskdb-peers` (the engine first, no limit). Scripts and the docs read these keys.

use super::*;

fn json(r: &Report) -> String {
    serde_json::to_string(r).unwrap()
}

fn text(r: &Report) -> String {
    let mut out = Vec::new();
    r.write_text(&mut out).unwrap();
    String::from_utf8(out).unwrap()
}

fn figures() -> SeedFigures {
    SeedFigures::new(2.0, 10, 4, 4000, 1.0)
}

#[test]
fn seed() {
    let ours = Report::Seed(SeedReport {
        engine: None,
        workload: "seed-small",
        figures: figures(),
        limit: Some(SeedLimit {
            limit_secs: 1.0,
            limit_mb_per_s: 0.004,
            ratio: 0.5,
            peak_rss_mib: None,
            peak_rss_bound_mib: 96.0,
        }),
    });
    assert_eq!(
        json(&ours),
        r#"{"workload":"seed-small","secs":2.0,"reads":10,"reads_per_s":5.0,"writes":4,"writes_per_s":2.0,"bytes":4000,"mb_per_s":0.002,"avg_item_bytes":1000.0,"reread_items":4,"reread_secs":1.0,"limit_secs":1.0,"limit_mb_per_s":0.004,"ratio":0.5,"peak_rss_mib":null,"peak_rss_bound_mib":96.0}"#
    );
    assert_eq!(
        text(&ours),
        "workload=seed-small secs=2.000 reads=10 reads_per_s=5 writes=4 writes_per_s=2 \
         bytes=4000 mb_per_s=0.00 avg_item_bytes=1000 reread_items=4 reread_secs=1.000 \
         limit_secs=1.000 limit_mb_per_s=0.00 ratio=0.50 peak_rss_mib=n/a \
         peak_rss_bound_mib=96\n"
    );
    let peer = Report::Seed(SeedReport {
        engine: Some("redb"),
        workload: "seed-small",
        figures: figures(),
        limit: None,
    });
    assert_eq!(
        json(&peer),
        r#"{"engine":"redb","workload":"seed-small","secs":2.0,"reads":10,"reads_per_s":5.0,"writes":4,"writes_per_s":2.0,"bytes":4000,"mb_per_s":0.002,"avg_item_bytes":1000.0,"reread_items":4,"reread_secs":1.0}"#
    );
    assert_eq!(
        text(&peer),
        "engine=redb workload=seed-small secs=2.000 reads=10 reads_per_s=5 writes=4 \
         writes_per_s=2 bytes=4000 mb_per_s=0.00 avg_item_bytes=1000 reread_items=4 \
         reread_secs=1.000\n"
    );
}

fn append_run(config: Option<RunConfig>, ratio: Option<f64>) -> AppendRun {
    AppendRun {
        config,
        secs: 2.0,
        adds_per_s: 50.0,
        ratio,
    }
}

#[test]
fn append() {
    let config = RunConfig {
        config: "default",
        max_buffer_items: 1000,
    };
    let ours = Report::Append(AppendReport {
        engine: None,
        workload: "append",
        items: 100,
        item_bytes: 100,
        runs: AppendRuns::Compared {
            runs: vec![append_run(Some(config), Some(0.5))],
            limit_secs: 1.0,
            limit_adds_per_s: 100.0,
        },
        close: "stop",
    });
    assert_eq!(
        json(&ours),
        r#"{"workload":"append","items":100,"item_bytes":100,"runs":[{"config":"default","max_buffer_items":1000,"secs":2.0,"adds_per_s":50.0,"ratio":0.5}],"limit_secs":1.0,"limit_adds_per_s":100.0}"#
    );
    assert_eq!(
        text(&ours),
        "workload=append items=100 item_bytes=100 config=default max_buffer_items=1000 \
         secs=2.000 adds_per_s=50 ratio=0.50 limit_secs=1.000 limit_adds_per_s=100 \
         close=stop\n"
    );
    let peer = Report::Append(AppendReport {
        engine: Some("fjall"),
        workload: "append",
        items: 100,
        item_bytes: 100,
        runs: AppendRuns::One(append_run(None, None)),
        close: "close",
    });
    assert_eq!(
        json(&peer),
        r#"{"engine":"fjall","workload":"append","items":100,"item_bytes":100,"secs":2.0,"adds_per_s":50.0}"#
    );
    assert_eq!(
        text(&peer),
        "engine=fjall workload=append items=100 item_bytes=100 secs=2.000 adds_per_s=50 \
         close=close\n"
    );
}

fn read_run(
    verify_reads: Option<bool>,
    secs: f64,
    limit: Option<ReadLimit>,
    vs_unverified: Option<f64>,
) -> ReadRun {
    ReadRun {
        readers: 1,
        config: verify_reads.map(|verify_reads| ReadConfig { verify_reads }),
        reads: 10,
        secs,
        reads_per_s: 10.0 / secs,
        limit,
        vs_unverified,
    }
}

fn read_limit(ratio: f64) -> ReadLimit {
    ReadLimit {
        limit_secs: 0.5,
        limit_reads_per_s: 20.0,
        ratio,
    }
}

fn read_report() -> Report {
    Report::Read(ReadReport {
        engine: None,
        workload: "read",
        items: 10,
        item_bytes: 1024,
        runs: vec![
            read_run(Some(true), 1.0, Some(read_limit(0.5)), Some(0.8)),
            read_run(Some(false), 0.8, Some(read_limit(0.625)), None),
        ],
    })
}

fn durable_limit() -> DurableLimit {
    DurableLimit {
        limit_batches: 4,
        limit_secs: 1.0,
        limit_items_per_s: 8.0,
        ratio: 0.5,
        items_per_flush: Some(2.0),
        flush_ratio: Some(0.5),
        unsynced_items_per_s: Some(7.0),
        unsynced_ratio: Some(0.875),
    }
}

fn durable_report(
    engine: Option<&'static str>,
    flushes: Option<u64>,
    limit: Option<DurableLimit>,
) -> Report {
    Report::Durable(DurableReport {
        engine,
        workload: "durable",
        tasks: 2,
        item_bytes: 100,
        items: 8,
        flushes,
        secs: 2.0,
        items_per_s: 4.0,
        flushes_per_s: flushes.map(|_| 2.0),
        limit,
    })
}

#[test]
fn read_and_durable() {
    let ours = read_report();
    assert_eq!(
        json(&ours),
        r#"{"workload":"read","items":10,"item_bytes":1024,"runs":[{"readers":1,"verify_reads":true,"reads":10,"secs":1.0,"reads_per_s":10.0,"limit_secs":0.5,"limit_reads_per_s":20.0,"ratio":0.5,"vs_unverified":0.8},{"readers":1,"verify_reads":false,"reads":10,"secs":0.8,"reads_per_s":12.5,"limit_secs":0.5,"limit_reads_per_s":20.0,"ratio":0.625}]}"#
    );
    let peer = Report::Read(ReadReport {
        engine: Some("marble"),
        workload: "read",
        items: 10,
        item_bytes: 1024,
        runs: vec![read_run(None, 1.0, None, None)],
    });
    assert_eq!(
        json(&peer),
        r#"{"engine":"marble","workload":"read","items":10,"item_bytes":1024,"runs":[{"readers":1,"reads":10,"secs":1.0,"reads_per_s":10.0}]}"#
    );
    assert_eq!(
        text(&ours),
        "workload=read items=10 item_bytes=1024 readers=1 verify_reads=true reads=10 \
         secs=1.000 reads_per_s=10 limit_secs=0.500 limit_reads_per_s=20 ratio=0.50 \
         vs_unverified=0.800\n\
         workload=read items=10 item_bytes=1024 readers=1 verify_reads=false reads=10 \
         secs=0.800 reads_per_s=12 limit_secs=0.500 limit_reads_per_s=20 ratio=0.62\n"
    );
    assert_eq!(
        text(&peer),
        "engine=marble workload=read items=10 item_bytes=1024 readers=1 reads=10 secs=1.000 \
         reads_per_s=10\n"
    );

    let ours = durable_report(None, Some(4), Some(durable_limit()));
    assert_eq!(
        json(&ours),
        r#"{"workload":"durable","tasks":2,"item_bytes":100,"items":8,"flushes":4,"secs":2.0,"items_per_s":4.0,"flushes_per_s":2.0,"limit_batches":4,"limit_secs":1.0,"limit_items_per_s":8.0,"ratio":0.5,"items_per_flush":2.0,"flush_ratio":0.5,"unsynced_items_per_s":7.0,"unsynced_ratio":0.875}"#
    );
    assert_eq!(
        text(&ours),
        "workload=durable tasks=2 item_bytes=100 items=8 flushes=4 secs=2.000 items_per_s=4 \
         flushes_per_s=2 limit_batches=4 limit_secs=1.000 limit_items_per_s=8 ratio=0.50 \
         items_per_flush=2.0 flush_ratio=0.50 unsynced_items_per_s=7 unsynced_ratio=0.88\n"
    );
    let peer = durable_report(Some("okaywal"), None, None);
    assert_eq!(
        json(&peer),
        r#"{"engine":"okaywal","workload":"durable","tasks":2,"item_bytes":100,"items":8,"flushes":null,"secs":2.0,"items_per_s":4.0,"flushes_per_s":null}"#
    );
    assert_eq!(
        text(&peer),
        "engine=okaywal workload=durable tasks=2 item_bytes=100 items=8 flushes=n/a \
         secs=2.000 items_per_s=4 flushes_per_s=n/a\n"
    );
}

#[test]
fn open() {
    let open = |engine, stored, more| {
        Report::Open(OpenReport {
            engine,
            workload: "open",
            stored,
            files: 3,
            create_secs: 1.0,
            opens: 5,
            open_ms: 2.0,
            first_open_ms: 3.0,
            more,
        })
    };
    let ours = open(
        None,
        None,
        Some(MoreOpens {
            big_file_bytes: 124,
            big_open_ms: 4.0,
            items_open_ms: 5.0,
        }),
    );
    assert_eq!(
        json(&ours),
        r#"{"workload":"open","files":3,"create_secs":1.0,"opens":5,"open_ms":2.0,"first_open_ms":3.0,"big_file_bytes":124,"big_open_ms":4.0,"items_open_ms":5.0}"#
    );
    assert_eq!(
        text(&ours),
        "workload=open files=3 create_secs=1.000 opens=5 open_ms=2.00 first_open_ms=3.00 \
         big_file_bytes=124 big_open_ms=4.00 items_open_ms=5.00\n"
    );
    let stored = Stored {
        items: 7,
        item_bytes: 1024,
    };
    let peer = open(Some("commitlog"), Some(stored), None);
    assert_eq!(
        json(&peer),
        r#"{"engine":"commitlog","workload":"open","items":7,"item_bytes":1024,"files":3,"create_secs":1.0,"opens":5,"open_ms":2.0,"first_open_ms":3.0}"#
    );
    assert_eq!(
        text(&peer),
        "engine=commitlog workload=open items=7 item_bytes=1024 files=3 create_secs=1.000 \
         opens=5 open_ms=2.00 first_open_ms=3.00\n"
    );
}

fn verify_report() -> Report {
    let run = |cache, secs: f64, limit_secs: f64| VerifyRun {
        cache,
        secs,
        mb_per_s: 2.0 / secs,
        limit_secs,
        limit_mb_per_s: 2.0 / limit_secs,
        ratio: limit_secs / secs,
    };
    Report::Verify(VerifyReport {
        workload: "verify",
        items: 3,
        bytes: 2_000_000,
        files: 1,
        runs: vec![run("cold", 2.0, 1.0), run("warm", 0.5, 0.4)],
    })
}

#[test]
fn verify() {
    let r = verify_report();
    assert_eq!(
        json(&r),
        r#"{"workload":"verify","items":3,"bytes":2000000,"files":1,"runs":[{"cache":"cold","secs":2.0,"mb_per_s":1.0,"limit_secs":1.0,"limit_mb_per_s":2.0,"ratio":0.5},{"cache":"warm","secs":0.5,"mb_per_s":4.0,"limit_secs":0.4,"limit_mb_per_s":5.0,"ratio":0.8}]}"#
    );
    assert_eq!(
        text(&r),
        "workload=verify items=3 bytes=2000000 files=1 cache=cold secs=2.000 mb_per_s=1.0 \
         limit_secs=1.000 limit_mb_per_s=2.0 ratio=0.50\n\
         workload=verify items=3 bytes=2000000 files=1 cache=warm secs=0.500 mb_per_s=4.0 \
         limit_secs=0.400 limit_mb_per_s=5.0 ratio=0.80\n"
    );
}

#[test]
fn failed() {
    let r = Report::Failed {
        engine: "redb",
        workload: "append",
        error: "write \"x\": disk full".to_owned(),
    };
    assert_eq!(
        json(&r),
        r#"{"engine":"redb","workload":"append","error":"write \"x\": disk full"}"#
    );
    assert_eq!(
        text(&r),
        "engine=redb workload=append error=\"write \\\"x\\\": disk full\"\n"
    );
}

/// Every text line is `key=value` pairs, separated by single spaces, whose keys are keys
/// of the report's JSON object (or of its runs), plus `close` for append; values are
/// unquoted words except a quoted error. Each line of a report with runs holds the keys
/// of one run.
#[test]
fn every_text_line_is_key_value_pairs_with_the_json_keys() {
    let reports = [
        Report::Seed(SeedReport {
            engine: None,
            workload: "seed-large",
            figures: figures(),
            limit: Some(SeedLimit {
                limit_secs: 1.0,
                limit_mb_per_s: 0.004,
                ratio: 0.5,
                peak_rss_mib: Some(12.5),
                peak_rss_bound_mib: 96.0,
            }),
        }),
        Report::Append(AppendReport {
            engine: None,
            workload: "append",
            items: 100,
            item_bytes: 100,
            runs: AppendRuns::Compared {
                runs: vec![
                    append_run(
                        Some(RunConfig {
                            config: "default",
                            max_buffer_items: 1000,
                        }),
                        Some(0.5),
                    ),
                    append_run(
                        Some(RunConfig {
                            config: "bytes-governed",
                            max_buffer_items: 100_000,
                        }),
                        Some(0.7),
                    ),
                ],
                limit_secs: 1.0,
                limit_adds_per_s: 100.0,
            },
            close: "stop",
        }),
        read_report(),
        durable_report(None, Some(4), Some(durable_limit())),
        verify_report(),
    ];
    for r in &reports {
        let object = serde_json::to_value(r).unwrap();
        let runs = object["runs"].as_array().cloned().unwrap_or_default();
        let text = text(r);
        let lines: Vec<&str> = text.lines().collect();
        if !runs.is_empty() {
            assert_eq!(lines.len(), runs.len(), "a line per run");
        }
        for (i, line) in lines.iter().enumerate() {
            let mut keys = Vec::new();
            for pair in line.split(' ') {
                let (key, value) = pair.split_once('=').expect(pair);
                assert!(!value.is_empty() && !value.contains('='), "{line}");
                let known = object.get(key).is_some()
                    || runs.get(i).is_some_and(|run| run.get(key).is_some())
                    || key == "close";
                assert!(known, "{key} is not a JSON key: {line}");
                keys.push(key);
            }
            // And every key of the object (or of the line's run) is on the line.
            let expected = object
                .as_object()
                .unwrap()
                .keys()
                .filter(|k| *k != "runs")
                .chain(
                    runs.get(i)
                        .map(|run| run.as_object().unwrap().keys())
                        .into_iter()
                        .flatten(),
                );
            for key in expected {
                assert!(keys.contains(&key.as_str()), "{key} missing: {line}");
            }
        }
    }
}
