//! Types of the daemon's JSON API that other parts of this crate read back: one definition
//! for the writer and the readers. (The alerts API is in `alert::api`.)

pub mod processes;
