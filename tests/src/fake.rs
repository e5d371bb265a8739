//! Named fake peers, for faults a real server will not produce on demand.
//!
//! Each fake listens on a free loopback port in a background thread and lives until dropped.
//! Use a real server for everything else.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

/// What a fake peer does with each accepted connection.
#[derive(Debug, Clone)]
enum Behaviour {
    /// Accepts and never sends a byte.
    Silent,
    /// Sends these bytes once the client has written something (or at once), then stays open.
    Reply { greeting: Vec<u8>, reply: Vec<u8> },
}

/// A fake TCP peer on 127.0.0.1; it stops accepting when dropped.
#[derive(Debug)]
pub struct FakePeer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl FakePeer {
    /// FAKE: accepts connections and never answers (a hung server).
    pub fn silent() -> FakePeer {
        FakePeer::spawn(Behaviour::Silent)
    }

    /// FAKE: a Redis that answers every command with `-LOADING ...` (a real one does so only
    /// while it loads a large dataset, which a test cannot hold on demand).
    pub fn redis_loading() -> FakePeer {
        FakePeer::redis_error("LOADING Redis is loading the dataset in memory")
    }

    /// FAKE: a Redis that answers every command with this error line (without the leading `-`).
    pub fn redis_error(line: &str) -> FakePeer {
        FakePeer::spawn(Behaviour::Reply {
            greeting: Vec::new(),
            reply: format!("-{line}\r\n").into_bytes(),
        })
    }

    /// FAKE: a peer that answers anything with these bytes (for example garbage).
    pub fn replying(bytes: &[u8]) -> FakePeer {
        FakePeer::spawn(Behaviour::Reply {
            greeting: Vec::new(),
            reply: bytes.to_vec(),
        })
    }

    /// FAKE: a peer that sends these bytes as soon as it accepts (a NATS server speaks first).
    pub fn greeting(bytes: &[u8]) -> FakePeer {
        FakePeer::spawn(Behaviour::Reply {
            greeting: bytes.to_vec(),
            reply: Vec::new(),
        })
    }

    fn spawn(behaviour: Behaviour) -> FakePeer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake peer");
        let addr = listener.local_addr().expect("fake peer address");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        thread::spawn(move || {
            let mut held = Vec::new();
            while !stopped.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let b = behaviour.clone();
                        let s = Arc::clone(&stopped);
                        held.push(thread::spawn(move || serve(stream, b, s)));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        FakePeer { addr, stop }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

impl Drop for FakePeer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve(mut stream: TcpStream, behaviour: Behaviour, stop: Arc<AtomicBool>) {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(50)));
    if let Behaviour::Reply { greeting, .. } = &behaviour
        && !greeting.is_empty()
    {
        let _ = stream.write_all(greeting);
    }
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {
                if let Behaviour::Reply { reply, .. } = &behaviour
                    && !reply.is_empty()
                    && stream.write_all(reply).is_err()
                {
                    return;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
    }
}
