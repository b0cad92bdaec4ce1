//! Tests: add_read.
