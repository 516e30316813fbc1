//! The command's terminal: its own standard streams, or, for a command that runs inside the
//! hub that owns the store, the control channel back to the command's process. Everything the
//! command prints or asks goes through here, so it reads the same either way.

use std::cell::RefCell;
use std::io::{self, IsTerminal, Write};

use aidmesh_node::control::Terminal;

struct Remote {
    term: Box<dyn Terminal>,
    stdin_is_terminal: bool,
    /// The command's process went away: the rest of the output has nowhere to go.
    gone: bool,
}

thread_local! {
    static REMOTE: RefCell<Option<Remote>> = const { RefCell::new(None) };
}

/// Runs `f` with this thread's output going to `term` (a command run through the owner).
pub(crate) fn with_remote<R>(term: Box<dyn Terminal>, stdin_is_terminal: bool, f: impl FnOnce() -> R) -> R {
    REMOTE.with(|r| *r.borrow_mut() = Some(Remote { term, stdin_is_terminal, gone: false }));
    let out = f();
    REMOTE.with(|r| r.borrow_mut().take());
    out
}

fn remote<R>(f: impl FnOnce(&mut Remote) -> R) -> Option<R> {
    REMOTE.with(|r| r.borrow_mut().as_mut().map(f))
}

/// Writes to standard output. Locally a closed pipe ends the program quietly and any other
/// failure ends it with a message; remotely, output to a command that went away is dropped.
pub(crate) fn out(bytes: &[u8]) {
    let sent = remote(|r| {
        if !r.gone && r.term.out(bytes).is_err() {
            r.gone = true;
        }
    });
    if sent.is_none() {
        if let Err(e) = io::stdout().write_all(bytes) {
            crate::stdout_failed(e)
        }
    }
}

/// Writes to standard error.
pub(crate) fn err(bytes: &[u8]) {
    let sent = remote(|r| {
        if !r.gone && r.term.err(bytes).is_err() {
            r.gone = true;
        }
    });
    if sent.is_none() {
        let _ = io::stderr().write_all(bytes);
    }
}

pub(crate) fn stdin_is_terminal() -> bool {
    remote(|r| r.stdin_is_terminal).unwrap_or_else(|| io::stdin().is_terminal())
}

/// A line of standard input (with its newline).
pub(crate) fn read_line() -> io::Result<String> {
    match remote(|r| r.term.read_line()) {
        Some(line) => line,
        None => {
            let mut line = String::new();
            io::stdin().read_line(&mut line)?;
            Ok(line)
        }
    }
}

/// A secret typed at the terminal without echo.
pub(crate) fn read_secret(prompt: &str) -> io::Result<String> {
    match remote(|r| r.term.read_secret(prompt)) {
        Some(s) => s,
        None => rpassword::prompt_password(format!("{prompt}: ")),
    }
}

/// Standard output as a writer, for exports streamed to it.
pub(crate) struct Stdout;

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match remote(|r| if r.gone { Ok(()) } else { r.term.out(buf) }) {
            Some(res) => res.map(|()| buf.len()),
            None => io::stdout().write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match remote(|_| ()) {
            Some(()) => Ok(()),
            None => io::stdout().flush(),
        }
    }
}
