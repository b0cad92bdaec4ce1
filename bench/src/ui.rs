//! Progress on stderr: a progress bar per phase on a terminal (`aiodiskdb bench`), or one
//! plain line per phase, `TAG WORKLOAD: WHAT`.

use std::io::IsTerminal as _;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// Progress reporting on stderr.
#[derive(Debug)]
pub struct Ui {
    /// Progress bars.
    bars: bool,
    /// Plain phase lines.
    lines: bool,
    /// What starts a phase line (`bench`, `peers redb`).
    tag: String,
}

impl Ui {
    /// Progress bars when stderr is a terminal, plain lines otherwise; nothing if `quiet`.
    #[must_use]
    pub fn terminal(tag: &str, quiet: bool) -> Ui {
        let tty = std::io::stderr().is_terminal();
        Ui {
            bars: tty && !quiet,
            lines: !tty && !quiet,
            tag: tag.to_owned(),
        }
    }

    /// Plain lines only; nothing if `quiet`.
    #[must_use]
    pub fn lines(tag: String, quiet: bool) -> Ui {
        Ui {
            bars: false,
            lines: !quiet,
            tag,
        }
    }

    /// Says `text` on stderr, for people (nothing if quiet).
    pub(crate) fn say(&self, text: &str) {
        if self.lines || self.bars {
            eprintln!("{text}");
        }
    }

    /// Announces a phase: a plain line, or a progress bar of `len` units (a spinner
    /// without a length).
    pub(crate) fn phase(
        &self,
        workload: &'static str,
        what: &str,
        len: Option<u64>,
        unit: Unit,
    ) -> Bar {
        if self.lines {
            eprintln!("{} {workload}: {what}", self.tag);
        }
        if !self.bars {
            return Bar(None);
        }
        let counts = match unit {
            Unit::Bytes => "{bytes}/{total_bytes} ({bytes_per_sec}, eta {eta})",
            Unit::Items => "{human_pos}/{human_len} ({per_sec:0}, eta {eta})",
        };
        let template = match (len, unit) {
            (Some(_), _) => format!("{{prefix}} {{msg}} [{{bar:30}}] {counts}"),
            (None, Unit::Bytes) => "{spinner} {prefix} {msg} {bytes} ({bytes_per_sec})".into(),
            (None, Unit::Items) => "{spinner} {prefix} {msg} {human_pos} ({per_sec:0})".into(),
        };
        let style = ProgressStyle::with_template(&template)
            .expect("valid progress template")
            .progress_chars("=> ");
        let bar = match len {
            Some(n) => ProgressBar::new(n),
            None => ProgressBar::no_length(),
        }
        .with_style(style)
        .with_prefix(workload)
        .with_message(what.to_owned());
        bar.enable_steady_tick(Duration::from_millis(200));
        Bar(Some(bar))
    }
}

/// What a progress bar counts.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Unit {
    Bytes,
    Items,
}

/// A progress bar, or nothing when not on a terminal. Clones share one bar.
#[derive(Clone)]
pub(crate) struct Bar(Option<ProgressBar>);

impl Bar {
    pub(crate) fn inc(&self, n: u64) {
        if let Some(b) = &self.0 {
            b.inc(n);
        }
    }

    /// Removes the bar from the terminal.
    pub(crate) fn finish(&self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }
}
