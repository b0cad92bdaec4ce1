//! Integration tests, one module per area.

mod common;

mod add_read;
mod compat;
mod concurrency;
mod config;
mod events;
mod flush;
mod format;
mod lifecycle;
mod transactions;
mod trims;
