//! A fault-injecting TCP proxy on loopback, between Offload and a server: it can cut every
//! connection once a number of bytes went upstream (or hold it open, silent, as a stalled network
//! does), answer the first requests with 503, and carry the bytes upstream no faster than a link
//! of a given speed.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct FaultProxy {
    pub port: u16,
    /// Bytes still allowed upstream; at or below zero every connection is cut.
    pub budget: Arc<AtomicI64>,
    /// Connections still to be answered with `503 Service Unavailable`.
    pub fail_next: Arc<AtomicUsize>,
    /// How many connections were answered with 503.
    pub failed: Arc<AtomicUsize>,
    /// Once the budget is spent, hold connections open and silent instead of cutting them.
    pub hold: Arc<AtomicBool>,
    /// The upstream link every connection shares.
    link: Arc<Link>,
    stop: Arc<AtomicBool>,
}

/// An upstream link of a set speed, shared by every connection through the proxy, as a home
/// connection's upload is.
#[derive(Default)]
struct Link {
    /// Bytes per second; 0 is as fast as loopback.
    rate: AtomicU64,
    /// When the bytes handed to the link so far will have crossed it.
    free_at: Mutex<Option<Instant>>,
}

impl Link {
    /// Returns once `bytes` more have had the time to cross the link.
    fn carry(&self, bytes: usize) {
        let rate = self.rate.load(Ordering::SeqCst);
        if rate == 0 {
            return;
        }
        let now = Instant::now();
        let crossed = {
            let mut free_at = self.free_at.lock().unwrap();
            // A link that fell behind (a sleep that overran) catches up, as a real link's
            // buffer would, by up to 10 ms of its bytes; an idle link does not save up more.
            let start = free_at.map_or(now, |free| {
                free.max(now.checked_sub(Duration::from_millis(10)).unwrap_or(now))
            });
            let crossed = start + Duration::from_secs_f64(bytes as f64 / rate as f64);
            *free_at = Some(crossed);
            crossed
        };
        // Pacing a link, not waiting for an event: the bytes leave when they would have crossed.
        std::thread::sleep(crossed.saturating_duration_since(now));
    }
}

impl FaultProxy {
    pub fn start(upstream_port: u16) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let proxy = FaultProxy {
            port,
            budget: Arc::new(AtomicI64::new(i64::MAX)),
            fail_next: Arc::new(AtomicUsize::new(0)),
            failed: Arc::new(AtomicUsize::new(0)),
            hold: Arc::new(AtomicBool::new(false)),
            link: Arc::new(Link::default()),
            stop: Arc::new(AtomicBool::new(false)),
        };
        let (budget, fail_next, failed, hold, link, stop) = (
            proxy.budget.clone(),
            proxy.fail_next.clone(),
            proxy.failed.clone(),
            proxy.hold.clone(),
            proxy.link.clone(),
            proxy.stop.clone(),
        );
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                if fail_next
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok()
                {
                    failed.fetch_add(1, Ordering::SeqCst);
                    std::thread::spawn(move || answer_503(client));
                    continue;
                }
                if budget.load(Ordering::SeqCst) <= 0 {
                    if hold.load(Ordering::SeqCst) {
                        let stop = stop.clone();
                        std::thread::spawn(move || held(client, &stop));
                    } else {
                        let _ = client.shutdown(Shutdown::Both);
                    }
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream_port)) else {
                    continue;
                };
                // Forwarded as it arrives: Nagle's wait for an ACK (which the far end delays)
                // would stall the last bytes of every request by 40 ms, a stall no direct
                // connection has.
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let upstream = Upstream {
                    budget: budget.clone(),
                    hold: hold.clone(),
                    link: link.clone(),
                    stop: stop.clone(),
                };
                let (client_read, server_write) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || pump(client_read, server_write, Some(upstream)));
                std::thread::spawn(move || pump(server, client, None));
            }
        });
        proxy
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Carries the bytes upstream no faster than `bytes_per_second`, over all connections.
    pub fn limit_rate(&self, bytes_per_second: u64) {
        self.link.rate.store(bytes_per_second, Ordering::SeqCst);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn answer_503(mut client: TcpStream) {
    // Read the request head so the client is not answered before it asked.
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && client.read(&mut byte).is_ok_and(|n| n == 1) {
        head.push(byte[0]);
    }
    let _ = client.write_all(
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    let _ = client.shutdown(Shutdown::Both);
}

/// Keeps a connection open without a byte either way, until the client gives up or the proxy
/// stops.
fn held(mut client: TcpStream, stop: &AtomicBool) {
    let _ = client.set_read_timeout(Some(std::time::Duration::from_millis(200)));
    let mut sink = [0u8; 4096];
    while !stop.load(Ordering::SeqCst) {
        match client.read(&mut sink) {
            Ok(0) => return,
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(error) if error.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return,
        }
    }
}

/// What the client-to-server direction of a connection obeys.
struct Upstream {
    budget: Arc<AtomicI64>,
    hold: Arc<AtomicBool>,
    link: Arc<Link>,
    stop: Arc<AtomicBool>,
}

fn pump(mut from: TcpStream, mut to: TcpStream, upstream: Option<Upstream>) {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let read = match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        if let Some(upstream) = &upstream {
            let left = upstream.budget.fetch_sub(read as i64, Ordering::SeqCst) - read as i64;
            if left < 0 {
                if upstream.hold.load(Ordering::SeqCst) {
                    held(from, &upstream.stop);
                    return;
                }
                let allowed = (read as i64 + left).max(0) as usize;
                let _ = to.write_all(&buffer[..allowed]);
                break;
            }
            upstream.link.carry(read);
        }
        if to.write_all(&buffer[..read]).is_err() {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}
