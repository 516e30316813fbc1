//! Secrets handed to the command in its environment (`AIDMESH_PASSPHRASE`, `AIDMESH_PIN`): taken
//! out of the environment as the command starts, so that a hub serving for days does not keep
//! its passphrase where any process of the same user reads it (`/proc/<pid>/environ`, `ps e`).
//!
//! Removing a variable does not erase it from the block the kernel shows, and writing over that
//! memory needs `unsafe`. So the command, finding a secret in its environment, hands the secrets
//! to itself through a pipe and executes itself again (the same process, the same arguments)
//! without them: the new image's environment never held them.

use std::io::{Read, Write};
use std::sync::OnceLock;

use zeroize::Zeroizing;

/// The most a secret may hold: far below a pipe's buffer, so the hand-over never blocks.
const MAX_SECRET: usize = 4096;

/// The variables the command takes as secrets.
const NAMES: [&str; 2] = ["AIDMESH_PASSPHRASE", "AIDMESH_PIN"];
/// Names the pipe that carries the secrets into the re-executed command.
const FD_VAR: &str = "AIDMESH_SECRETS_FD";

static TAKEN: OnceLock<Vec<(String, Zeroizing<String>)>> = OnceLock::new();

/// Takes the secret variables out of this process's environment. Call first thing in `main`.
/// Returns once the environment holds none (where that cannot be done, it says so on stderr).
pub(crate) fn take_from_environment() {
    TAKEN.get_or_init(|| {
        if let Some(fd) = std::env::var_os(FD_VAR) {
            std::env::remove_var(FD_VAR);
            for n in NAMES {
                std::env::remove_var(n);
            }
            return read_handed(&fd.to_string_lossy());
        }
        let found: Vec<(String, Zeroizing<String>)> =
            NAMES.iter().filter_map(|n| Some((n.to_string(), Zeroizing::new(std::env::var(n).ok()?)))).collect();
        if !found.is_empty() {
            #[cfg(unix)]
            if let Err(e) = exec_without(&found) {
                eprintln!("warning: cannot take the passphrase out of the environment: {e}");
            }
            for n in NAMES {
                std::env::remove_var(n);
            }
        }
        found
    });
}

/// The value a secret variable had when the command started.
pub(crate) fn get(name: &str) -> Option<&'static str> {
    TAKEN.get()?.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

/// Executes this program again with the same arguments, the secrets in a pipe instead of the
/// environment. Returns only if that failed.
#[cfg(unix)]
fn exec_without(secrets: &[(String, Zeroizing<String>)]) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    if secrets.iter().any(|(_, v)| v.len() > MAX_SECRET) {
        return Err(std::io::Error::other(format!("a secret over {MAX_SECRET} bytes")));
    }
    let (reader, mut writer) = std::io::pipe()?;
    let mut msg = Zeroizing::new(Vec::new());
    for (n, v) in secrets {
        msg.extend_from_slice(format!("{n}\0").as_bytes());
        msg.extend_from_slice(v.as_bytes());
        msg.push(0);
    }
    // Below a pipe's buffer (see MAX_SECRET): written whole before anyone reads.
    writer.write_all(&msg)?;
    drop(writer);
    rustix::io::fcntl_setfd(&reader, rustix::io::FdFlags::empty())?;
    let mut cmd = std::process::Command::new(std::env::current_exe()?);
    cmd.args(std::env::args_os().skip(1)).env(FD_VAR, reader.as_raw_fd().to_string());
    for n in NAMES {
        cmd.env_remove(n);
    }
    Err(cmd.exec())
}

/// The secrets handed through the pipe `fd` by [`exec_without`]. Anything but a pipe (a stray
/// variable naming a terminal, say) is not read.
fn read_handed(fd: &str) -> Vec<(String, Zeroizing<String>)> {
    let mut all = Zeroizing::new(Vec::with_capacity(2 * (MAX_SECRET + 32)));
    let read = fd
        .parse::<u32>()
        .map_err(|e| std::io::Error::other(e.to_string()))
        .and_then(|n| std::fs::File::open(format!("/dev/fd/{n}")))
        .and_then(|f| {
            #[cfg(unix)]
            if !std::os::unix::fs::FileTypeExt::is_fifo(&f.metadata()?.file_type()) {
                return Err(std::io::Error::other(format!("{FD_VAR} does not name a pipe")));
            }
            f.take(all.capacity() as u64).read_to_end(&mut all)
        });
    if let Err(e) = read {
        eprintln!("warning: cannot read the passphrase handed over: {e}");
        return Vec::new();
    }
    let mut parts = all.split(|b| *b == 0);
    let mut out = Vec::new();
    while let (Some(n), Some(v)) = (parts.next(), parts.next()) {
        if let (Ok(n), Ok(v)) = (std::str::from_utf8(n), std::str::from_utf8(v)) {
            if NAMES.contains(&n) {
                out.push((n.to_string(), Zeroizing::new(v.to_string())));
            }
        }
    }
    out
}
