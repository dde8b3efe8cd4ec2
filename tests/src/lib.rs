//! Helpers shared by the end-to-end tests in `tests/e2e`.

/// The example in each library crate's README, run as a doc test so the READMEs (what
/// crates.io shows) stay true to the API. `cargo test -p stack-tests --doc` runs them.
#[cfg(doctest)]
mod readmes {
    #[doc = include_str!("../../crates/async-thread/README.md")]
    struct AsyncThread;
    #[doc = include_str!("../../crates/bio/README.md")]
    struct Bio;
    #[doc = include_str!("../../crates/alloc/README.md")]
    struct Alloc;
    #[doc = include_str!("../../crates/csum/README.md")]
    struct Csum;
    #[doc = include_str!("../../crates/volume/README.md")]
    struct Volume;
}
