//! Standard output: every write goes through here so that a closed pipe (`| head`) is an
//! `io::ErrorKind::BrokenPipe` error that `main` turns into a quiet exit 0. (Rust ignores
//! SIGPIPE, and `println!` would panic on it.)

use std::io::{self, Write};

/// `writeln!` to stdout, returning `io::Result<()>`.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        writeln!(::std::io::stdout().lock(), $($arg)*)
    }};
}
pub(crate) use outln;

/// Writes raw bytes to stdout and flushes them.
pub(crate) fn write_bytes(bytes: &[u8]) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(bytes)?;
    out.flush()
}

/// Prints one value as a JSON line.
pub(crate) fn json_line(value: &impl serde::Serialize) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    serde_json::to_writer(&mut out, value)?;
    out.write_all(b"\n")?;
    Ok(())
}

/// Stdout for many lines: written a buffer at a time rather than a line at a time.
/// Flush it when done (dropping it would lose a write error).
pub(crate) fn buffered() -> io::BufWriter<io::StdoutLock<'static>> {
    io::BufWriter::new(io::stdout().lock())
}

/// Flushes stdout.
pub(crate) fn flush() -> io::Result<()> {
    io::stdout().lock().flush()
}

/// Whether the error comes from writing to a closed pipe.
pub(crate) fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
            || c.downcast_ref::<serde_json::Error>()
                .and_then(serde_json::Error::io_error_kind)
                == Some(io::ErrorKind::BrokenPipe)
    })
}
