//! Everything that exists only for tests: the crash-simulating, fault-injecting file
//! system, the model of what a workload was told, the crash-point enumeration, the fault
//! countdown, and a model of the Python library opening a crash image.

mod crash;
mod faults;
mod python_sim;
mod rot;
pub(crate) mod sim;
#[cfg(feature = "tiering")]
mod tiering;
