//! End-to-end tests of the app live here once the app exists.
