//! One integration-test binary; each module covers a stage or the CLI.

mod catalogue;
mod cli;
mod cluster;
mod correlate;
mod cuda;
mod days;
mod faults;
mod hinet;
mod hostile;
mod month;
mod plot;
mod roundtrip;
mod tribe;
mod util;
mod wgmma;
