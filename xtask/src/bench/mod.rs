//! The benchmark frame: groups of cases, each measured against a peer in the same run.
//!
//! Every figure is the median of several runs, with ours and the peer alternated so that
//! a noisy neighbour or a frequency change hits both alike. Rows land in one table on
//! stdout and in `target/bench/results.json`.

mod frame;

mod alloc;
mod bio;
mod csum;
mod e2e;
mod fastdev;
mod many;
mod pool;

#[allow(unused_imports)]
pub use frame::{alternate, median, quantile, time, Ctx, Row, Sense};

use anyhow::{bail, Context, Result};

/// Name of the hidden task that runs one benchmark case in a child process.
pub const CHILD_TASK: &str = "bench-child";

/// A benchmark group: a name and the function that measures its cases.
struct Group {
    name: &'static str,
    run: fn(&mut Ctx) -> Result<()>,
}

/// Every group, in the order `cargo xtask bench` runs them.
const GROUPS: &[Group] = &[
    Group {
        name: "pool",
        run: pool::run,
    },
    Group {
        name: "csum",
        run: csum::run,
    },
    Group {
        name: "alloc",
        run: alloc::run,
    },
    Group {
        name: "bio",
        run: bio::run,
    },
    Group {
        name: "e2e",
        run: e2e::run,
    },
    Group {
        name: "fastdev",
        run: fastdev::run,
    },
    Group {
        name: "many",
        run: many::run,
    },
];

pub fn main(args: &[String]) -> Result<()> {
    let mut quick = false;
    let mut only: Option<Vec<String>> = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--quick" => quick = true,
            "--help" | "-h" => {
                print!("{}", crate::USAGE);
                return Ok(());
            }
            "--only" => {
                let list = it.next().context("--only needs a group name")?;
                only = Some(list.split(',').map(str::to_owned).collect());
            }
            other => bail!("bench: unknown option `{other}`"),
        }
    }
    if let Some(names) = &only {
        for name in names {
            if !GROUPS.iter().any(|g| g.name == name) {
                let known: Vec<_> = GROUPS.iter().map(|g| g.name).collect();
                bail!(
                    "bench: unknown group `{name}` (known: {})",
                    known.join(", ")
                );
            }
        }
    }
    let mut ctx = Ctx::new(quick);
    for group in GROUPS {
        if only
            .as_ref()
            .is_some_and(|names| !names.iter().any(|n| n == group.name))
        {
            continue;
        }
        eprintln!(
            "== bench group `{}`{}",
            group.name,
            if quick { " (quick)" } else { "" }
        );
        ctx.set_group(group.name);
        if let Err(err) = (group.run)(&mut ctx) {
            eprintln!("bench group `{}` failed: {err:#}", group.name);
            ctx.failed(group.name, &format!("{err:#}"));
        }
    }
    ctx.finish()
}

/// Runs one case in this process; the parent times it out if it hangs.
pub fn child_main(args: &[String]) -> Result<()> {
    let Some(case) = args.first() else {
        bail!("{CHILD_TASK}: no case given");
    };
    if case.starts_with("pool-") {
        return pool::child(case, &args[1..]);
    }
    bail!("{CHILD_TASK}: unknown case `{case}`")
}
