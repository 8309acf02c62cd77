//! Pure domain code: what a key is (its text format, grants, timestamps, records) and how a
//! request for a new key is validated. No I/O beyond the operating system's random source and
//! clocks (`clock`), no storage, no HTTP: everything here is table-tested in place.

pub mod clock;
pub mod grants;
pub mod key_format;
pub mod limits;
pub mod model;
pub mod new_key;
pub mod timestamp;
pub mod whole;
