//! A tiny UDP relay between one viewer and a host, with a switch that swallows every packet
//! (a dead path without a close). The WAN emulator for benchmarks builds on the same idea.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use tokio::net::UdpSocket;

/// A running relay.
#[derive(Debug)]
pub struct Relay {
    /// Where viewers should connect.
    pub addr: SocketAddr,
    blackhole: Arc<AtomicBool>,
    dropped: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    /// Relays between the first peer that writes to it and `host`.
    pub async fn start(host: SocketAddr) -> std::io::Result<Relay> {
        let front = UdpSocket::bind("127.0.0.1:0").await?;
        let back = UdpSocket::bind("127.0.0.1:0").await?;
        back.connect(host).await?;
        let addr = front.local_addr()?;
        let blackhole = Arc::new(AtomicBool::new(false));
        let dropped = Arc::new(AtomicU64::new(0));
        let (bh, dr) = (blackhole.clone(), dropped.clone());
        let task = tokio::spawn(async move {
            let mut peer: Option<SocketAddr> = None;
            let mut a = vec![0u8; 65536];
            let mut b = vec![0u8; 65536];
            loop {
                tokio::select! {
                    r = front.recv_from(&mut a) => {
                        let Ok((n, from)) = r else { break };
                        peer = Some(from);
                        if bh.load(Ordering::SeqCst) {
                            dr.fetch_add(1, Ordering::Relaxed);
                        } else {
                            let _ = back.send(&a[..n]).await;
                        }
                    }
                    r = back.recv(&mut b) => {
                        let Ok(n) = r else { break };
                        match peer {
                            Some(p) if !bh.load(Ordering::SeqCst) => {
                                let _ = front.send_to(&b[..n], p).await;
                            }
                            _ => {
                                dr.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                }
            }
        });
        Ok(Relay {
            addr,
            blackhole,
            dropped,
            task,
        })
    }

    /// Swallows (true) or forwards (false) every packet from now on.
    pub fn set_blackhole(&self, on: bool) {
        self.blackhole.store(on, Ordering::SeqCst);
    }

    /// Packets swallowed so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}
