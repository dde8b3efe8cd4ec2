//! An extent allocator with allocation groups and busy extents, behind a rescuer-backed
//! workqueue.
//!
//! Filled by the allocator issue.
