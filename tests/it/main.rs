//! Integration tests, one module per area.

mod common;

mod add_read;
mod compat;
mod compat_crash;
mod concurrency;
mod config;
mod events;
mod flush;
mod format;
mod fuzz_replay;
mod hostile;
mod integrity;
mod kill;
mod lifecycle;
mod load;
mod model;
mod nospace;
mod readers;
mod readonly;
mod small_trims;
mod transactions;
mod trims;
