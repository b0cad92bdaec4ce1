//! Tests: nospace.
