//! The engine by example, one file per behaviour family, each test a
//! small story with its plugins written inline, as pluggy's own tests are.
//! The exhaustive and adversarial tests are beside them (`order.rs`'s
//! property tests, `wrappers.rs`, `errors.rs`, `hostile_errors.rs`, ...);
//! these are the ones to read first.

mod errors;
mod firstresult;
mod historic;
mod order;
mod wrappers;
