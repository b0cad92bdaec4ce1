//! `ItemLocation` and `WriteEvent`, the value types of `aiodiskdb_rs.local_types`.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyType};

use crate::errors;

/// Where an item is stored: data file ``index``, logical byte ``position`` in it, ``size``
/// bytes. Immutable and hashable; equal when the three fields are equal.
#[pyclass(
    frozen,
    eq,
    hash,
    ord,
    module = "aiodiskdb_rs.local_types",
    name = "ItemLocation"
)]
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct PyItemLocation {
    /// The data file's index (``data00003.dat`` is index 3).
    #[pyo3(get)]
    pub(crate) index: u32,
    /// The logical position of the item's first byte in that file.
    #[pyo3(get)]
    pub(crate) position: u32,
    /// The item's length in bytes.
    #[pyo3(get)]
    pub(crate) size: u32,
}

impl From<aiodiskdb::ItemLocation> for PyItemLocation {
    fn from(l: aiodiskdb::ItemLocation) -> Self {
        PyItemLocation {
            index: l.index,
            position: l.position,
            size: l.size,
        }
    }
}

impl From<PyItemLocation> for aiodiskdb::ItemLocation {
    fn from(l: PyItemLocation) -> Self {
        aiodiskdb::ItemLocation {
            index: l.index,
            position: l.position,
            size: l.size,
        }
    }
}

impl PyItemLocation {
    /// The location `obj` names: an `ItemLocation` of ours, or any object with integer
    /// `index`, `position` and `size` attributes (the original's `ItemLocation`). `None`
    /// when a field is out of the `u32` range: no item is stored there.
    pub(crate) fn from_object(obj: &Bound<'_, PyAny>) -> PyResult<Option<aiodiskdb::ItemLocation>> {
        if let Ok(l) = obj.cast::<PyItemLocation>() {
            return Ok(Some((*l.get()).into()));
        }
        let field = |name: &str| -> PyResult<Option<u32>> {
            let v: i128 = obj.getattr(name)?.extract()?;
            Ok(u32::try_from(v).ok())
        };
        Ok(
            match (field("index")?, field("position")?, field("size")?) {
                (Some(index), Some(position), Some(size)) => Some(aiodiskdb::ItemLocation {
                    index,
                    position,
                    size,
                }),
                _ => None,
            },
        )
    }
}

#[pymethods]
impl PyItemLocation {
    #[new]
    fn new(index: u32, position: u32, size: u32) -> Self {
        PyItemLocation {
            index,
            position,
            size,
        }
    }

    /// The 12-byte encoding: index, position and size, each 4 bytes little endian (as
    /// the original's ``ItemLocation.serialize``).
    fn serialize<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &aiodiskdb::ItemLocation::from(*self).to_bytes())
    }

    /// Decodes :meth:`serialize` from any bytes-like object (``bytes``, ``bytearray``,
    /// ``memoryview``). Raises ``InvalidLocationException`` (a ``ValueError``) unless
    /// ``location`` is exactly 12 bytes.
    #[classmethod]
    fn deserialize(
        _cls: &Bound<'_, PyType>,
        py: Python<'_>,
        location: &Bound<'_, PyAny>,
    ) -> PyResult<PyItemLocation> {
        let bytes = crate::core::bytes_of(location, "location")?;
        aiodiskdb::ItemLocation::from_bytes(bytes.as_bytes())
            .map(PyItemLocation::from)
            .map_err(|e| errors::to_py(py, &e))
    }

    fn __repr__(&self) -> String {
        format!(
            "ItemLocation(index={}, position={}, size={})",
            self.index, self.position, self.size
        )
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> (Bound<'py, PyType>, (u32, u32, u32)) {
        let l = slf.get();
        (slf.get_type(), (l.index, l.position, l.size))
    }
}

/// One contiguous range of an index that just became persisted: what ``on_write``
/// receives. Immutable and hashable.
#[pyclass(
    frozen,
    eq,
    hash,
    module = "aiodiskdb_rs.local_types",
    name = "WriteEvent"
)]
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct PyWriteEvent {
    /// The data file's index.
    #[pyo3(get)]
    pub(crate) index: u32,
    /// Logical position of the range's first byte.
    #[pyo3(get)]
    pub(crate) position: u32,
    /// Length of the range in bytes.
    #[pyo3(get)]
    pub(crate) size: u32,
}

#[pymethods]
impl PyWriteEvent {
    #[new]
    fn new(index: u32, position: u32, size: u32) -> Self {
        PyWriteEvent {
            index,
            position,
            size,
        }
    }

    fn __repr__(&self) -> String {
        format!(
            "WriteEvent(index={}, position={}, size={})",
            self.index, self.position, self.size
        )
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> (Bound<'py, PyType>, (u32, u32, u32)) {
        let l = slf.get();
        (slf.get_type(), (l.index, l.position, l.size))
    }
}
