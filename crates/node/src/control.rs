//! The local control channel: how an `aidmesh` command reaches the process that owns a store.
//!
//! One process owns a store (the store's OS lock). While it runs, it listens on a Unix socket
//! beside the store (`hub.aidmesh.sock`, mode 0600) and writes a fresh random token to an
//! owner-only file (`hub.aidmesh.token`). A command that finds the socket sends the token and
//! itself, parsed; the owner runs the command in its own process, on its
//! open hub, and streams back what the command prints, asks for a line or a secret when the
//! command prompts, and ends with the exit code. So a command behaves the same whether it opened
//! the store itself or went through the owner, and no second process ever opens the file.
//!
//! Wire format, both ways: frames of a tag byte, a 4-byte big-endian length and the payload.
//! Client to owner: `T` token, `R` request (JSON), then `L` lines and `S` secrets when asked.
//! Owner to client: `O` stdout bytes, `E` stderr bytes, `l` "send a line", `s` "send a secret"
//! (payload: the prompt), `X` the exit code (4 bytes, big-endian). A wrong token gets an `E`
//! and exit code 2, and nothing runs.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
#[cfg(unix)]
use std::time::Duration;

use serde::{Deserialize, Serialize};

#[cfg(unix)]
#[cfg(unix)]
#[cfg(unix)]
#[cfg(unix)]
#[cfg(unix)]
#[cfg(unix)]
/// The largest frame either side accepts; output is sent in pieces well under it.
const MAX_FRAME: usize = 1 << 20;
/// Commands running through the owner at once; more are told to wait and try again.
const MAX_CLIENTS: usize = 8;
/// How long the owner waits for each frame of a command's token and request.
const REQUEST_DEADLINE: Duration = Duration::from_secs(10);
/// The token frame: 64 hex digits.
const MAX_TOKEN_FRAME: usize = 64;
/// Output waiting for a command that reads it slowly, in pieces of at most 64 KiB (64 MiB):
/// the command runs on and lets go of the hub while its output drains.
const OUT_QUEUE: usize = 1024;
/// How long a command's output may wait for room in that queue before the command counts as
/// gone (its reader stopped for good), so that it never holds the hub for longer.
const OUT_STALL: Duration = Duration::from_secs(30);

/// The socket of the store at `store`.
pub fn socket_path(store: &Path) -> PathBuf {
    aidmesh_hub::sibling_path(store, ".sock")
}

#[cfg(unix)]
/// The longest path a Unix socket can be bound at (`sun_path` holds 108 bytes with its NUL).
const MAX_SOCKET_PATH: usize = 107;

#[cfg(unix)]
fn check_length(socket: &Path) -> io::Result<()> {
    let n = socket.as_os_str().len();
    if n > MAX_SOCKET_PATH {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "the store's path is too long for its control socket ({n} bytes, at most {MAX_SOCKET_PATH}): \
                 move the store to a shorter path"
            ),
        ));
    }
    Ok(())
}

/// The token file of the store at `store`.
pub fn token_path(store: &Path) -> PathBuf {
    aidmesh_hub::sibling_path(store, ".token")
}

/// A command, as the owner is asked to run it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Request {
    /// The command as its process parsed it (defaults and environment applied, paths made
    /// absolute): the owner runs exactly what the command would have run.
    pub command: serde_json::Value,
    /// Whether the command's standard input is a terminal (it may prompt).
    pub stdin_is_terminal: bool,
}

/// The command's terminal, as the owner sees it: output goes back to the command's process,
/// and prompts are answered there.
pub trait Terminal: Send {
    fn out(&mut self, bytes: &[u8]) -> io::Result<()>;
    fn err(&mut self, bytes: &[u8]) -> io::Result<()>;
    fn read_line(&mut self) -> io::Result<String>;
    /// Asks for a secret, typed without echo at the command's terminal.
    fn read_secret(&mut self, prompt: &str) -> io::Result<String>;
}

/// Runs one command in the owner's process; returns its exit code.
pub type Executor = Arc<dyn Fn(Request, Box<dyn Terminal>) -> i32 + Send + Sync>;

/// What became of a command offered to the owner.
#[derive(Debug, PartialEq, Eq)]
pub enum Forwarded {
    /// No process owns the store (no socket, or one left by an owner that died).
    NoOwner,
    /// The owner ran the command; this is its exit code.
    Exit(i32),
}

/// The command's side: its own standard streams, and how it reads a secret.
pub struct Local<'a> {
    pub stdout: &'a mut dyn Write,
    pub stderr: &'a mut dyn Write,
    pub stdin: &'a mut dyn io::BufRead,
    pub read_secret: &'a mut dyn FnMut(&str) -> io::Result<String>,
}

#[cfg(unix)]
pub use imp::{forward, ControlServer};

/// Where Unix sockets are not there (Windows), the store's lock still keeps a second process
/// out, but commands cannot reach a running hub yet: no owner ever answers.
#[cfg(not(unix))]
pub fn forward(_store: &Path, _req: &Request, _local: Local<'_>) -> io::Result<Forwarded> {
    Ok(Forwarded::NoOwner)
}

/// See the Unix version; elsewhere the control channel cannot open yet.
#[cfg(not(unix))]
pub struct ControlServer;

#[cfg(not(unix))]
impl ControlServer {
    pub fn start(_store: &Path, _token: [u8; 32], _executor: Executor) -> io::Result<ControlServer> {
        Err(io::Error::new(io::ErrorKind::Unsupported, "the control channel needs Unix sockets"))
    }
}

#[cfg(unix)]
mod imp {
    use std::io::{self, Read, Write};
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    use std::os::unix::net::{UnixListener, UnixStream};
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    pub(super) fn write_frame(w: &mut impl Write, tag: u8, payload: &[u8]) -> io::Result<()> {
        let mut buf = Vec::with_capacity(5 + payload.len());
        buf.push(tag);
        buf.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        buf.extend_from_slice(payload);
        w.write_all(&buf)?;
        w.flush()
    }

    pub(super) fn read_frame(r: &mut impl Read) -> io::Result<(u8, Vec<u8>)> {
        read_frame_max(r, MAX_FRAME)
    }

    fn read_frame_max(r: &mut impl Read, max: usize) -> io::Result<(u8, Vec<u8>)> {
        let mut head = [0u8; 5];
        r.read_exact(&mut head)?;
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        if len > max {
            return Err(io::Error::new(io::ErrorKind::InvalidData, format!("control frame of {len} bytes: too large")));
        }
        let mut payload = vec![0u8; len];
        r.read_exact(&mut payload)?;
        Ok((head[0], payload))
    }

    fn unexpected(what: &str, tag: u8) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("control channel: expected {what}, got frame {:?}", tag as char),
        )
    }

    /// The owner's end: listening while it lives; the socket and token files go when it drops.
    pub struct ControlServer {
        socket: PathBuf,
        token_file: PathBuf,
        stop: Arc<AtomicBool>,
    }

    impl ControlServer {
        /// Starts answering commands for the store at `store`. The caller must own the store (hold
        /// its lock): a socket left by an owner that died is replaced.
        pub fn start(store: &Path, token: [u8; 32], executor: Executor) -> io::Result<ControlServer> {
            let socket = socket_path(store);
            check_length(&socket)?;
            let token_file = token_path(store);
            let token_hex = aidmesh_mesh::hex::encode(token);
            // Written whole under another name, then renamed: a command never reads half a token.
            let tmp = aidmesh_hub::sibling_path(store, ".token.partial");
            let _ = std::fs::remove_file(&tmp);
            let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
            f.write_all(token_hex.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, &token_file)?;
            match std::fs::remove_file(&socket) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
            let listener = UnixListener::bind(&socket)?;
            std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))?;
            let stop = Arc::new(AtomicBool::new(false));
            let clients = Arc::new(AtomicUsize::new(0));
            let stop2 = stop.clone();
            std::thread::Builder::new().name("aidmesh-control".into()).spawn(move || {
                for conn in listener.incoming() {
                    if stop2.load(Ordering::SeqCst) {
                        break;
                    }
                    let stream = match conn {
                        Ok(s) => s,
                        Err(e) => {
                            // Out of file descriptors, say: do not spin.
                            tracing::warn!(error = %e, "control channel: accept failed");
                            std::thread::sleep(Duration::from_millis(100));
                            continue;
                        }
                    };
                    if clients.fetch_add(1, Ordering::SeqCst) >= MAX_CLIENTS {
                        clients.fetch_sub(1, Ordering::SeqCst);
                        let mut s = stream;
                        let _ = write_frame(&mut s, b'E', b"error: the hub is busy with other commands: try again\n");
                        let _ = write_frame(&mut s, b'X', &1i32.to_be_bytes());
                        continue;
                    }
                    let (exec, clients2, token_hex) = (executor.clone(), clients.clone(), token_hex.clone());
                    let spawned = std::thread::Builder::new().name("aidmesh-command".into()).spawn(move || {
                        if let Err(e) = serve_one(stream, &token_hex, &exec) {
                            tracing::debug!(error = %e, "control connection ended");
                        }
                        clients2.fetch_sub(1, Ordering::SeqCst);
                    });
                    if spawned.is_err() {
                        clients.fetch_sub(1, Ordering::SeqCst);
                        tracing::warn!("cannot start a thread for a command");
                    }
                }
            })?;
            Ok(ControlServer { socket, token_file, stop })
        }
    }

    impl Drop for ControlServer {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::SeqCst);
            // Wake the accepting thread so that it sees the stop.
            let _ = UnixStream::connect(&self.socket);
            let _ = std::fs::remove_file(&self.socket);
            let _ = std::fs::remove_file(&self.token_file);
        }
    }

    fn serve_one(mut stream: UnixStream, token_hex: &str, exec: &Executor) -> io::Result<()> {
        stream.set_read_timeout(Some(REQUEST_DEADLINE))?;
        let (tag, token) = read_frame_max(&mut stream, MAX_TOKEN_FRAME)?;
        if tag != b'T' {
            return Err(unexpected("the token", tag));
        }
        // Compared in full whatever the first difference, so timing tells nothing of the token.
        let ok = token.len() == token_hex.len()
            && token.iter().zip(token_hex.as_bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
        if !ok {
            // The request follows the token: take it (unread, it would reset the connection before
            // the command reads the answer), then refuse.
            let _ = read_frame(&mut stream);
            write_frame(&mut stream, b'E', b"error: the control token does not match this hub's\n")?;
            return write_frame(&mut stream, b'X', &2i32.to_be_bytes());
        }
        let (tag, body) = read_frame(&mut stream)?;
        if tag != b'R' {
            return Err(unexpected("a request", tag));
        }
        let req: Request = serde_json::from_slice(&body)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("control request: {e}")))?;
        // Prompts may wait for a person: no deadline once the command runs.
        stream.set_read_timeout(None)?;
        // Frames to the command go through a writer thread: a command whose reader is slow (a
        // pager) leaves its output queued and lets go of the hub.
        let (tx, rx) = std::sync::mpsc::sync_channel::<(u8, Vec<u8>)>(OUT_QUEUE);
        let mut out = stream.try_clone()?;
        let writer = std::thread::Builder::new().name("aidmesh-command-out".into()).spawn(move || {
            for (tag, payload) in rx.iter() {
                if write_frame(&mut out, tag, &payload).is_err() {
                    // The command went away: drop the rest.
                    for _ in rx.iter() {}
                    return;
                }
            }
        })?;
        let end = Sender(tx.clone());
        let exec = exec.clone();
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            exec(req, Box::new(Remote { read: stream, out: Sender(tx) }))
        }))
        .unwrap_or_else(|_| {
            let _ = end.send(b'E', b"error: the command failed inside the running hub (see its log)\n".to_vec());
            101
        });
        let sent = end.send(b'X', code.to_be_bytes().to_vec());
        drop(end);
        let _ = writer.join();
        sent
    }

    /// The queue of frames to a command.
    struct Sender(std::sync::mpsc::SyncSender<(u8, Vec<u8>)>);

    impl Sender {
        /// Queues a frame, waiting up to [`OUT_STALL`] for room.
        fn send(&self, tag: u8, payload: Vec<u8>) -> io::Result<()> {
            use std::sync::mpsc::TrySendError;
            let gone = || io::Error::new(io::ErrorKind::BrokenPipe, "the command went away");
            let deadline = std::time::Instant::now() + OUT_STALL;
            let mut item = (tag, payload);
            loop {
                match self.0.try_send(item) {
                    Ok(()) => return Ok(()),
                    Err(TrySendError::Disconnected(_)) => return Err(gone()),
                    Err(TrySendError::Full(back)) if std::time::Instant::now() < deadline => {
                        item = back;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(TrySendError::Full(_)) => {
                        return Err(io::Error::new(io::ErrorKind::TimedOut, "the command stopped reading its output"))
                    }
                }
            }
        }
    }

    /// The command's terminal at the other end of the socket.
    struct Remote {
        read: UnixStream,
        out: Sender,
    }

    impl Remote {
        fn ask(&mut self, tag: u8, prompt: &[u8], answer: u8) -> io::Result<String> {
            self.out.send(tag, prompt.to_vec())?;
            let (t, body) = read_frame(&mut self.read)?;
            if t != answer {
                return Err(unexpected("an answer", t));
            }
            String::from_utf8(body).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
        }

        fn send(&mut self, tag: u8, bytes: &[u8]) -> io::Result<()> {
            for piece in bytes.chunks(64 * 1024) {
                self.out.send(tag, piece.to_vec())?;
            }
            Ok(())
        }
    }

    impl Terminal for Remote {
        fn out(&mut self, bytes: &[u8]) -> io::Result<()> {
            self.send(b'O', bytes)
        }
        fn err(&mut self, bytes: &[u8]) -> io::Result<()> {
            self.send(b'E', bytes)
        }
        fn read_line(&mut self) -> io::Result<String> {
            self.ask(b'l', b"", b'L')
        }
        fn read_secret(&mut self, prompt: &str) -> io::Result<String> {
            self.ask(b's', prompt.as_bytes(), b'S')
        }
    }

    /// Refuses a socket or token file that another user made (in a folder others can write to, a
    /// planted socket would learn the token and whatever the command sends).
    fn check_owned(path: &Path) -> io::Result<()> {
        use std::os::unix::fs::MetadataExt;
        let meta = match std::fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let me = std::fs::metadata("/proc/self").map(|m| m.uid()).ok();
        if meta.file_type().is_symlink() || me.is_some_and(|me| meta.uid() != me) {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("{} is not this user's own file: refusing to talk to it", path.display()),
            ));
        }
        Ok(())
    }

    /// Offers `req` to the owner of the store at `store`, relaying its output and prompts.
    pub fn forward(store: &Path, req: &Request, local: Local<'_>) -> io::Result<Forwarded> {
        let socket = socket_path(store);
        check_owned(&socket)?;
        let mut stream = match UnixStream::connect(&socket) {
            Ok(s) => s,
            Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused) => {
                return Ok(Forwarded::NoOwner)
            }
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("cannot reach the running hub at {}: {e}", socket.display()),
                ))
            }
        };
        check_owned(&token_path(store))?;
        let token = std::fs::read(token_path(store)).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot read the running hub's token {}: {e}", token_path(store).display()),
            )
        })?;
        write_frame(&mut stream, b'T', &token)?;
        write_frame(&mut stream, b'R', &serde_json::to_vec(req).map_err(io::Error::other)?)?;
        let mut stdout_open = true;
        loop {
            let (tag, body) = match read_frame(&mut stream) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    return Err(io::Error::new(
                        e.kind(),
                        "the running hub closed the command's channel before it ended",
                    ))
                }
                Err(e) => return Err(e),
            };
            match tag {
                b'O' if stdout_open => {
                    // A reader that went away (`| head`) ends the output, not the command.
                    if let Err(e) = local.stdout.write_all(&body).and_then(|()| local.stdout.flush()) {
                        if e.kind() != io::ErrorKind::BrokenPipe {
                            return Err(e);
                        }
                        stdout_open = false;
                    }
                }
                b'O' => {}
                b'E' => {
                    let _ = local.stderr.write_all(&body);
                    let _ = local.stderr.flush();
                }
                b'l' => {
                    let mut line = String::new();
                    local.stdin.read_line(&mut line)?;
                    write_frame(&mut stream, b'L', line.as_bytes())?;
                }
                b's' => {
                    let secret = (local.read_secret)(&String::from_utf8_lossy(&body))?;
                    write_frame(&mut stream, b'S', secret.as_bytes())?;
                }
                b'X' if body.len() == 4 => {
                    return Ok(Forwarded::Exit(i32::from_be_bytes([body[0], body[1], body[2], body[3]])))
                }
                other => return Err(unexpected("output or an exit code", other)),
            }
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::imp::*;
    use super::*;

    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::net::{UnixListener, UnixStream};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    fn echo() -> Executor {
        Arc::new(|req: Request, mut term: Box<dyn Terminal>| {
            let _ = term.out(format!("args {}\n", req.command).as_bytes());
            let line = term.read_line().unwrap_or_default();
            let secret = term.read_secret("Secret").unwrap_or_default();
            let _ = term.err(format!("line {line:?} secret {secret:?}\n").as_bytes());
            7
        })
    }

    fn run(store: &Path, input: &str) -> (io::Result<Forwarded>, String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut stdin = io::Cursor::new(input.as_bytes().to_vec());
        let mut secret = |p: &str| Ok(format!("typed at {p}"));
        let req = Request { command: serde_json::json!(["list", "item"]), stdin_is_terminal: false };
        let r = forward(
            store,
            &req,
            Local { stdout: &mut out, stderr: &mut err, stdin: &mut stdin, read_secret: &mut secret },
        );
        (r, String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap())
    }

    #[test]
    fn a_command_runs_in_the_owner_with_its_prompts_answered_at_the_command() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("hub.aidmesh");
        assert_eq!(run(&store, "").0.unwrap(), Forwarded::NoOwner);
        let server = ControlServer::start(&store, [7; 32], echo()).unwrap();
        let mode = |p: PathBuf| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(socket_path(&store)), 0o600);
        assert_eq!(mode(token_path(&store)), 0o600);
        let (r, out, err) = run(&store, "yes\n");
        assert_eq!(r.unwrap(), Forwarded::Exit(7));
        assert_eq!(out, "args [\"list\",\"item\"]\n");
        assert_eq!(err, "line \"yes\\n\" secret \"typed at Secret\"\n");
        drop(server);
        assert!(!socket_path(&store).exists() && !token_path(&store).exists());
        assert_eq!(run(&store, "").0.unwrap(), Forwarded::NoOwner);
    }

    #[test]
    fn a_wrong_token_runs_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("hub.aidmesh");
        let ran = Arc::new(AtomicBool::new(false));
        let r2 = ran.clone();
        let _server = ControlServer::start(
            &store,
            [1; 32],
            Arc::new(move |_, _| {
                r2.store(true, Ordering::SeqCst);
                0
            }),
        )
        .unwrap();
        std::fs::write(token_path(&store), "00".repeat(32)).unwrap();
        let (r, out, err) = run(&store, "");
        assert_eq!(r.unwrap(), Forwarded::Exit(2));
        assert_eq!(out, "");
        assert!(err.contains("token does not match"), "{err}");
        assert!(!ran.load(Ordering::SeqCst));
    }

    #[test]
    fn a_socket_left_by_a_dead_owner_counts_as_no_owner_and_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("hub.aidmesh");
        // A bound socket whose listener is gone: what an owner killed with SIGKILL leaves.
        drop(UnixListener::bind(socket_path(&store)).unwrap());
        assert_eq!(run(&store, "").0.unwrap(), Forwarded::NoOwner);
        let _server = ControlServer::start(&store, [3; 32], echo()).unwrap();
        assert_eq!(run(&store, "\n").0.unwrap(), Forwarded::Exit(7));
    }

    #[test]
    fn a_store_path_too_long_for_a_socket_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("d".repeat(100));
        std::fs::create_dir(&deep).unwrap();
        let e = ControlServer::start(&deep.join("hub.aidmesh"), [0; 32], echo()).err().unwrap();
        assert!(e.to_string().contains("too long for its control socket"), "{e}");
    }

    #[test]
    fn output_waits_in_a_queue_for_a_slow_reader_while_the_command_ends() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("hub.aidmesh");
        let done = Arc::new(AtomicBool::new(false));
        let done2 = done.clone();
        let _server = ControlServer::start(
            &store,
            [5; 32],
            Arc::new(move |_, mut term| {
                // 8 MiB of output: far more than a socket buffers.
                for _ in 0..128 {
                    term.out(&[b'x'; 64 * 1024]).unwrap();
                }
                done2.store(true, Ordering::SeqCst);
                0
            }),
        )
        .unwrap();
        // A reader that does not read at first (a pager), then reads it all.
        let mut stream = UnixStream::connect(socket_path(&store)).unwrap();
        write_frame(&mut stream, b'T', &std::fs::read(token_path(&store)).unwrap()).unwrap();
        let req = Request { command: serde_json::json!([]), stdin_is_terminal: false };
        write_frame(&mut stream, b'R', &serde_json::to_vec(&req).unwrap()).unwrap();
        let t = std::time::Instant::now();
        while !done.load(Ordering::SeqCst) {
            assert!(t.elapsed() < Duration::from_secs(10), "the command waited for its reader");
            std::thread::sleep(Duration::from_millis(10));
        }
        let mut n = 0;
        loop {
            let (tag, body) = read_frame(&mut stream).unwrap();
            match tag {
                b'O' => n += body.len(),
                b'X' => break,
                t => panic!("frame {t}"),
            }
        }
        assert_eq!(n, 128 * 64 * 1024);
    }

    #[test]
    fn an_oversized_frame_is_refused() {
        let mut bytes = vec![b'R'];
        bytes.extend_from_slice(&((MAX_FRAME + 1) as u32).to_be_bytes());
        let e = read_frame(&mut io::Cursor::new(bytes)).unwrap_err();
        assert!(e.to_string().contains("too large"), "{e}");
    }
}
