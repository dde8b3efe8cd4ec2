//! placeholder being written: requests.
