//! A fault-injecting TCP proxy on loopback, between Offload and an S3 server: it can cut every
//! connection once a number of bytes went upstream (or hold it open, silent, as a stalled network
//! does), and answer the first requests with 503.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;

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
    stop: Arc<AtomicBool>,
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
            stop: Arc::new(AtomicBool::new(false)),
        };
        let (budget, fail_next, failed, hold, stop) = (
            proxy.budget.clone(),
            proxy.fail_next.clone(),
            proxy.failed.clone(),
            proxy.hold.clone(),
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
                let (budget, hold, stop) = (budget.clone(), hold.clone(), stop.clone());
                let (client_read, server_write) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || {
                    pump(client_read, server_write, Some((budget, hold, stop)))
                });
                std::thread::spawn(move || pump(server, client, None));
            }
        });
        proxy
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
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

type Budget = (Arc<AtomicI64>, Arc<AtomicBool>, Arc<AtomicBool>);

fn pump(mut from: TcpStream, mut to: TcpStream, budget: Option<Budget>) {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let read = match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        if let Some((budget, hold, stop)) = &budget {
            let left = budget.fetch_sub(read as i64, Ordering::SeqCst) - read as i64;
            if left < 0 {
                if hold.load(Ordering::SeqCst) {
                    held(from, stop);
                    return;
                }
                let allowed = (read as i64 + left).max(0) as usize;
                let _ = to.write_all(&buffer[..allowed]);
                break;
            }
        }
        if to.write_all(&buffer[..read]).is_err() {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}
