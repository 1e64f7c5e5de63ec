//! The Terrax beer API.

fn main() {}
