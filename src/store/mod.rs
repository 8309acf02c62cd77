//! Every SQL statement apikeyd runs. Functions take a `&Connection` (so they run the same
//! inside the writer's transaction, on a pooled read connection, or in the CLI), bind only
//! `?N` parameters, and return domain types. The store sees hashes, never plaintext keys.

pub mod applications;
pub mod audit;
pub mod keys;
pub mod settings;

pub use rusqlite::Connection;
