//! The benchmarks of aiodiskdb, written once: the workloads of SPEC section 6 as drivers
//! generic over one [`Engine`] trait, the disk limits each is compared with, the data they
//! write, the [`Report`] they print and their progress output.
//!
//! Two binaries use it: `aiodiskdb bench` ([`run_bench`]; aiodiskdb implements [`Engine`]
//! here, driven from tokio tasks as its users drive it) runs each workload with its limit,
//! and `aiodiskdb-peers` runs the same drivers against the storage crates a user might
//! pick instead, each implementing [`Engine`] in that crate (on threads: their APIs
//! block).
//!
//! Not published: this is the project's measuring tool, not a library to build on.

mod command;
mod data;
mod engine;
mod exec;
mod limits;
mod ours;
mod raw;
mod report;
mod root;
mod ui;
mod workloads;

pub use bytes::Bytes;
pub use command::{run_bench, BenchArgs, BENCH_HELP};
pub use engine::{Engine, Layout, Source, Visibility};
pub use exec::{block_on, Exec};
pub use ours::Tuning;
pub use raw::Target;
#[cfg(feature = "tiering")]
pub use report::TieredReport;
pub use report::{
    AppendReport, DurableReport, OpenReport, OtherProcessReport, ReadReport, Report, SeedReport,
    VerifyReport,
};
pub use root::Root;
pub use ui::Ui;
pub use workloads::{append, check_options, durable, open, read, seed, Bench, SeedSpec, Until};
