//! Benchmark group `alloc`.

use super::Ctx;
use anyhow::{bail, Result};

pub fn run(_ctx: &mut Ctx) -> Result<()> {
    bail!("group `alloc` has no cases yet")
}
