//! Ctrl-C: the first one asks the running command to stop cleanly (what was committed
//! stays, exit status 130); a second one ends the process at once, which the volume's
//! commit protocol also survives.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Installs the handler and returns the flag it sets.
pub fn install() -> Arc<AtomicBool> {
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&cancel);
    let installed = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            eprintln!("stackctl: interrupted again; quitting now (committed data is safe)");
            std::process::exit(130);
        }
        eprintln!("stackctl: interrupting; committing what was written (Ctrl-C again to quit now)");
    });
    if let Err(e) = installed {
        // Without the handler Ctrl-C still kills the process (exit by signal), which the
        // volume survives; a clean stop is lost, not data.
        eprintln!("stackctl: warning: cannot handle Ctrl-C: {e}");
    }
    cancel
}
