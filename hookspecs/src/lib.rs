//! The application's hook specifications: the one crate a plugin depends on.
//!
//! Filled in by the host-application work; for now it re-exports the engine.

pub use hooks_core;
