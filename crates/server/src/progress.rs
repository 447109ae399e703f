//! A progress line on stderr for long client commands: bytes sent, percentage, rate and time
//! left, redrawn in place on a terminal and printed every few seconds otherwise (so that logs
//! of scripted runs show progress without a flood of lines).

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Shared progress of one transfer.
#[derive(Clone)]
pub struct Progress {
    inner: Arc<Mutex<State>>,
}

struct State {
    label: String,
    total: u64,
    done: u64,
    started: Instant,
    last_drawn: Option<Instant>,
    terminal: bool,
    finished: bool,
}

impl Progress {
    /// A transfer of `total` bytes described by `label`.
    pub fn new(label: String, total: u64) -> Self {
        let state = State {
            label,
            total,
            done: 0,
            started: Instant::now(),
            last_drawn: None,
            terminal: std::io::stderr().is_terminal(),
            finished: false,
        };
        Self { inner: Arc::new(Mutex::new(state)) }
    }

    /// Records `bytes` more sent.
    pub fn advance(&self, bytes: u64) {
        if let Ok(mut state) = self.inner.lock() {
            state.done += bytes;
            let every = if state.terminal { Duration::from_millis(100) } else { Duration::from_secs(5) };
            if state.last_drawn.is_none_or(|at| at.elapsed() >= every) {
                state.draw();
            }
        }
    }

    /// Everything is sent; the server is now converting the file.
    pub fn uploaded(&self) {
        if let Ok(mut state) = self.inner.lock() {
            state.draw();
            if state.terminal {
                eprint!(" - converting on the server...");
            } else {
                eprintln!("{}: uploaded; converting on the server", state.label);
            }
        }
    }

    /// Ends the progress line.
    pub fn finish(&self) {
        if let Ok(mut state) = self.inner.lock()
            && state.terminal
            && !state.finished
        {
            state.finished = true;
            eprintln!();
        }
    }
}

impl State {
    fn draw(&mut self) {
        self.last_drawn = Some(Instant::now());
        let elapsed = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = self.done as f64 / elapsed;
        let fraction = if self.total == 0 { 1.0 } else { (self.done as f64 / self.total as f64).min(1.0) };
        let left = if rate > 0.0 { self.total.saturating_sub(self.done) as f64 / rate } else { 0.0 };
        let width = 30;
        let filled = (fraction * width as f64) as usize;
        let bar: String = (0..width).map(|i| if i < filled { '#' } else { '-' }).collect();
        let line = format!(
            "{} [{bar}] {:>3.0}% {}/{} {}/s, {:.0} s left",
            self.label,
            fraction * 100.0,
            human(self.done as f64),
            human(self.total as f64),
            human(rate),
            left
        );
        if self.terminal {
            eprint!("\r{line}");
            let _ = std::io::stderr().flush();
        } else {
            eprintln!("{line}");
        }
    }
}

/// Bytes in binary units.
fn human(bytes: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{value:.0} {}", UNITS[unit]) } else { format!("{value:.1} {}", UNITS[unit]) }
}

#[cfg(test)]
mod tests {
    use super::human;

    #[test]
    fn sizes_read_in_binary_units() {
        assert_eq!(human(512.0), "512 B");
        assert_eq!(human(1536.0), "1.5 KiB");
        assert_eq!(human(3.0 * 1024.0 * 1024.0 * 1024.0), "3.0 GiB");
    }
}
