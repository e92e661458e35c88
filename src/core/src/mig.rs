//! Migration.
