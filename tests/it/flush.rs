//! Tests: flush.
