//! The crate's error type.

use std::io;

/// `Result` with this crate's [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong when queueing work or waiting for it.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A work item panicked; the pool caught it and goes on.
    #[error("a work item on pool `{pool}` panicked: {message}")]
    Panicked {
        /// Name of the pool the item ran on.
        pool: String,
        /// The panic payload when it was a string, else a placeholder.
        message: String,
    },
    /// The pool was shut down before the item was accepted (or could run).
    #[error("pool `{pool}` is shut down")]
    ShutDown {
        /// Name of the pool.
        pool: String,
    },
    /// [`Completion::wait_timeout`](crate::Completion::wait_timeout) gave up.
    #[error("timed out after waiting {waited_ms} ms")]
    TimedOut {
        /// How long the caller waited.
        waited_ms: u64,
    },
    /// A thread the pool needed could not be created.
    #[error("pool `{pool}` could not start a thread")]
    Spawn {
        /// Name of the pool.
        pool: String,
        /// What the spawner reported.
        #[source]
        source: io::Error,
    },
    /// Another waiter on the same [`Completion`](crate::Completion) already took the value.
    #[error("the value of this completion was already taken by another waiter")]
    AlreadyTaken,
    /// A builder was given settings that cannot work together.
    #[error("pool `{pool}`: invalid setting `{field}`: {reason}")]
    Config {
        /// Name of the pool being built.
        pool: String,
        /// The builder setting at fault.
        field: &'static str,
        /// Why it was refused.
        reason: String,
    },
}

/// Turns a caught panic payload into a message.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "<non-string panic payload>".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_message_reads_str_and_string() {
        let a: Box<dyn std::any::Any + Send> = Box::new("boom");
        let b: Box<dyn std::any::Any + Send> = Box::new(String::from("bang"));
        let c: Box<dyn std::any::Any + Send> = Box::new(7_u32);
        assert_eq!(panic_message(&*a), "boom");
        assert_eq!(panic_message(&*b), "bang");
        assert_eq!(panic_message(&*c), "<non-string panic payload>");
    }

    #[test]
    fn errors_name_the_pool() {
        let e = Error::Panicked {
            pool: "csum".into(),
            message: "x".into(),
        };
        assert!(e.to_string().contains("csum"));
    }
}
