//! Benchmark group `e2e`.

use super::Ctx;
use anyhow::{bail, Result};

pub fn run(_ctx: &mut Ctx) -> Result<()> {
    bail!("group `e2e` has no cases yet")
}
