//! Benchmark group `pool`.

use super::Ctx;
use anyhow::{bail, Result};

pub fn run(_ctx: &mut Ctx) -> Result<()> {
    bail!("group `pool` has no cases yet")
}
