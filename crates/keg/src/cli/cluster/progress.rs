//! eksctl-style progress lines: `2026-11-25 10:00:00 [ℹ]  message`, with the time since the
//! command started, so users see where the time goes.

use std::time::Instant;

/// Prints progress lines for one command.
pub struct Progress {
    started: Instant,
}

impl Default for Progress {
    fn default() -> Self {
        Progress::new()
    }
}

impl Progress {
    /// Starts the clock.
    pub fn new() -> Progress {
        Progress {
            started: Instant::now(),
        }
    }

    /// An informational line.
    pub fn info(&self, message: impl std::fmt::Display) {
        self.line("ℹ", message);
    }

    /// A success line.
    pub fn done(&self, message: impl std::fmt::Display) {
        self.line("✔", message);
    }

    fn line(&self, mark: &str, message: impl std::fmt::Display) {
        let now = jiff::Zoned::now().strftime("%Y-%m-%d %H:%M:%S");
        let elapsed = self.started.elapsed().as_secs_f64();
        eprintln!("{now} [{mark}]  {message} ({elapsed:.1}s)");
    }
}
