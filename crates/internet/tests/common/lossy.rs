//! A bad link, in user space (this machine's kernel has no netem): proxies for UDP and TCP that
//! delay what they carry, drop UDP datagrams at random, and go down now and then (every
//! datagram dropped, TCP's bytes held until it is up again, as a kernel's retransmissions
//! would), and sometimes cut every TCP connection (both ends told at once; a real drop may
//! leave them to find out by silence). TCP loses nothing but time: loss on a TCP path shows
//! as delay, which the kernels beside the proxy do not add. Put on the path between two hubs,
//! they stand for a hotspot on a crowded street.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::watch;

/// How bad the link is.
#[derive(Clone, Copy, Debug)]
pub struct Conditions {
    /// The chance that a UDP datagram is lost, each way.
    pub loss: f64,
    /// One way's delay (half the round trip), with up to a tenth more at random.
    pub one_way: Duration,
}

/// What crossed the link.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    pub datagrams: u64,
    pub datagrams_lost: u64,
    pub udp_bytes: u64,
    pub tcp_bytes: u64,
    pub tcp_connections: u64,
    pub outages: u64,
}

struct State {
    conditions: Conditions,
    rng: ChaCha20Rng,
    stats: Stats,
}

/// One bad link, shared by the proxies on it. `down` says whether it is down now, and how many
/// times its TCP connections were cut.
#[derive(Clone)]
pub struct Link {
    state: Arc<Mutex<State>>,
    down: watch::Sender<(bool, u64)>,
}

impl Link {
    pub fn new(conditions: Conditions, seed: u64) -> Link {
        let state = State { conditions, rng: ChaCha20Rng::seed_from_u64(seed), stats: Stats::default() };
        Link { state: Arc::new(Mutex::new(state)), down: watch::channel((false, 0)).0 }
    }

    pub fn stats(&self) -> Stats {
        self.state.lock().unwrap().stats
    }

    pub fn set(&self, conditions: Conditions) {
        self.state.lock().unwrap().conditions = conditions;
    }

    fn is_down(&self) -> bool {
        self.down.borrow().0
    }

    /// Takes the link down or up.
    pub fn set_down(&self, down: bool) {
        self.down.send_modify(|(d, _)| *d = down);
        if down {
            self.state.lock().unwrap().stats.outages += 1;
        }
    }

    /// Cuts every TCP connection on the link.
    pub fn cut(&self) {
        self.down.send_modify(|(_, n)| *n += 1);
    }

    /// Goes down for `lasting` about every `every` (a quarter more or less), and at every
    /// `cut_each`-th time cuts the TCP connections too, until the task is dropped.
    pub fn flap(&self, every: Duration, lasting: Duration, cut_each: u64) -> tokio::task::JoinHandle<()> {
        let link = self.clone();
        tokio::spawn(async move {
            for n in 1u64.. {
                let wait = {
                    let mut s = link.state.lock().unwrap();
                    every.mul_f64(s.rng.gen_range(0.75..1.25))
                };
                tokio::time::sleep(wait).await;
                link.set_down(true);
                if n % cut_each == 0 {
                    link.cut();
                }
                tokio::time::sleep(lasting).await;
                link.set_down(false);
            }
        })
    }

    /// Waits until the link is up.
    async fn up(&self) {
        let mut down = self.down.subscribe();
        let _ = down.wait_for(|(d, _)| !d).await;
    }

    /// The delay for what is sent now, or `None` if it is lost.
    fn datagram(&self, len: usize) -> Option<Duration> {
        let down = self.is_down();
        let mut s = self.state.lock().unwrap();
        s.stats.datagrams += 1;
        if down {
            s.stats.datagrams_lost += 1;
            return None;
        }
        let loss = s.conditions.loss;
        if s.rng.gen_bool(loss) {
            s.stats.datagrams_lost += 1;
            return None;
        }
        s.stats.udp_bytes += len as u64;
        let one_way = s.conditions.one_way;
        Some(one_way + one_way.mul_f64(s.rng.gen_range(0.0..0.1)))
    }

    fn delay(&self) -> Duration {
        self.state.lock().unwrap().conditions.one_way
    }

    /// A UDP proxy listening at `front` that forwards to `target` through this link, each
    /// sender through a socket of its own (as a NAT would). Runs until its task is dropped.
    pub async fn udp(&self, front: SocketAddr, target: SocketAddr) -> (SocketAddr, tokio::task::JoinHandle<()>) {
        let socket = Arc::new(UdpSocket::bind(front).await.unwrap());
        let at = socket.local_addr().unwrap();
        let link = self.clone();
        let task = tokio::spawn(async move {
            let mut upstream: std::collections::BTreeMap<SocketAddr, Arc<UdpSocket>> = Default::default();
            let mut tasks = tokio::task::JoinSet::new();
            let mut buf = vec![0u8; 65_536];
            loop {
                let Ok((n, from)) = socket.recv_from(&mut buf).await else { return };
                let out = match upstream.get(&from) {
                    Some(s) => s.clone(),
                    None => {
                        let any =
                            SocketAddr::new(if target.is_ipv4() { [0, 0, 0, 0].into() } else { [0u16; 8].into() }, 0);
                        let s = Arc::new(UdpSocket::bind(any).await.unwrap());
                        s.connect(target).await.unwrap();
                        upstream.insert(from, s.clone());
                        // What comes back from the target goes to this sender, through the link.
                        let (back, front, link) = (s.clone(), socket.clone(), link.clone());
                        tasks.spawn(async move {
                            let mut buf = vec![0u8; 65_536];
                            loop {
                                match back.recv(&mut buf).await {
                                    Ok(n) => link.carry(&front, buf[..n].to_vec(), from),
                                    // An ICMP error (nothing listening there yet) is not the end.
                                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                                }
                            }
                        });
                        s
                    }
                };
                link.carry_connected(&out, buf[..n].to_vec());
            }
        });
        (at, task)
    }

    fn carry(&self, socket: &Arc<UdpSocket>, datagram: Vec<u8>, to: SocketAddr) {
        if let Some(wait) = self.datagram(datagram.len()) {
            let socket = socket.clone();
            tokio::spawn(async move {
                tokio::time::sleep(wait).await;
                let _ = socket.send_to(&datagram, to).await;
            });
        }
    }

    fn carry_connected(&self, socket: &Arc<UdpSocket>, datagram: Vec<u8>) {
        if let Some(wait) = self.datagram(datagram.len()) {
            let socket = socket.clone();
            tokio::spawn(async move {
                tokio::time::sleep(wait).await;
                let _ = socket.send(&datagram).await;
            });
        }
    }

    /// A TCP proxy listening at `front` that forwards to `target` through this link: every
    /// byte is delayed by one way's delay (in order) and held while the link is down; a cut
    /// closes every connection. Runs until its task is dropped.
    pub async fn tcp(&self, front: SocketAddr, target: SocketAddr) -> (SocketAddr, tokio::task::JoinHandle<()>) {
        let listener = TcpListener::bind(front).await.unwrap();
        let at = listener.local_addr().unwrap();
        let link = self.clone();
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((client, _)) = listener.accept().await else { return };
                let link = link.clone();
                conns.spawn(async move {
                    link.up().await;
                    let Ok(server) = TcpStream::connect(target).await else { return };
                    link.state.lock().unwrap().stats.tcp_connections += 1;
                    let _ = (client.set_nodelay(true), server.set_nodelay(true));
                    let mut down = link.down.subscribe();
                    let born = down.borrow().1;
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    // Both ways to their end (one side may close its half first), or a cut.
                    tokio::select! {
                        _ = async { tokio::join!(link.pump(cr, sw), link.pump(sr, cw)) } => {}
                        _ = down.wait_for(|(_, n)| *n != born) => {}
                    }
                });
            }
        });
        (at, task)
    }

    /// Carries bytes from `from` to `to`, each chunk one way's delay after it was read. At most
    /// a few megabytes wait on the way: past that the sender is held, as a full window would.
    async fn pump(&self, mut from: tokio::net::tcp::OwnedReadHalf, mut to: tokio::net::tcp::OwnedWriteHalf) {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<(tokio::time::Instant, Vec<u8>)>(256);
        let link = self.clone();
        let read = async move {
            let mut buf = vec![0u8; 16_384];
            while let Ok(n) = from.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                link.state.lock().unwrap().stats.tcp_bytes += n as u64;
                if tx.send((tokio::time::Instant::now() + link.delay(), buf[..n].to_vec())).await.is_err() {
                    break;
                }
            }
        };
        let link = self.clone();
        let write = async move {
            while let Some((due, chunk)) = rx.recv().await {
                tokio::time::sleep_until(due).await;
                link.up().await;
                if to.write_all(&chunk).await.is_err() {
                    return;
                }
            }
            let _ = to.shutdown().await;
        };
        tokio::join!(read, write);
    }
}
