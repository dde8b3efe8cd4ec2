//! Benchmark group `bio`.

use super::Ctx;
use anyhow::{bail, Result};

pub fn run(_ctx: &mut Ctx) -> Result<()> {
    bail!("group `bio` has no cases yet")
}
