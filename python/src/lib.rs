//! `aiodiskdb_rs._native`: the extension module of the `aiodiskdb_rs` Python package (pyo3,
//! abi3 for `CPython` 3.9 and later). The package's Python modules give it the API of the
//! original `aiodiskdb` 0.2.x; this crate is the engine's side:
//!
//! - `bridge`: the awaitable [`Call`](bridge::Call) every async method returns, and the
//!   tokio runtime the engine runs on (its own, shared by the databases of the process);
//! - `core`: one database (`Core`) and its transactions;
//! - `types`: `ItemLocation` and `WriteEvent`;
//! - `errors`: engine errors as the exceptions of `aiodiskdb_rs.exceptions`.
//!
//! Only the public API of the `aiodiskdb` crate is used.

use pyo3::prelude::*;

mod bridge;
mod core;
mod errors;
mod types;

/// The engine of ``aiodiskdb_rs`` (private: use the ``aiodiskdb_rs`` package).
#[pymodule]
#[pyo3(name = "_native")]
fn native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<core::Core>()?;
    m.add_class::<core::Tx>()?;
    m.add_class::<bridge::Call>()?;
    m.add_class::<types::PyItemLocation>()?;
    m.add_class::<types::PyWriteEvent>()?;
    let resolve = wrap_pyfunction!(bridge::_resolve, m)?;
    bridge::RESOLVE.get_or_init(py, || resolve.clone().into_any().unbind());
    m.add_function(resolve)?;
    m.add_function(wrap_pyfunction!(bridge::_exiting, m)?)?;
    Ok(())
}
