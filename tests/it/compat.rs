//! Tests: compat.
