//! The `camstream` binary.
fn main() {}
