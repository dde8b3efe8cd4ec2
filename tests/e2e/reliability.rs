//! Reliability proof: killed writes, crash points against a model, the fault matrix, hostile bytes, bad requests.
