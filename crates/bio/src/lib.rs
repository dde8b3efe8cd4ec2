//! Devices and an order-keeping block-I/O submission queue.
//!
//! Filled by the bio issue.
