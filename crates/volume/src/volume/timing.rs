//! The volume's surface map: every I/O passes the timing wrapper on its device
//! ([`crate::map`]).

use std::sync::Arc;

use crate::map::{timed, SurfaceMap};

use super::Volume;

impl Volume {
    /// Throughput and latency per region of everything this volume read and wrote
    /// since it was opened or formatted (or [`Volume::reset_map`]).
    pub fn surface_map(&self) -> SurfaceMap {
        SurfaceMap::from_snapshot(&self.timed.recorder().snapshot())
    }

    /// Forgets the timings recorded so far (e.g. the format's before a fill).
    pub fn reset_map(&self) {
        self.timed.recorder().reset();
    }

    /// Records into about `regions` regions from now on (default
    /// [`stack_bio::DEFAULT_REGIONS`]); what was recorded so far is dropped.
    pub fn set_map_regions(&mut self, regions: u32) {
        let timed = timed(Arc::clone(self.timed.inner()), regions);
        self.device = timed.clone();
        self.timed = timed;
    }
}
