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
    /// Answers every read with `reply`, each time after `delay` (a slow but working server).
    Delayed { reply: Vec<u8>, delay: Duration },
    /// Once the client has written something (or at once when `at_accept`): sends `head`, then
    /// `chunk` every `every`, forever (until the client goes away or the fake is dropped).
    Stream {
        head: Vec<u8>,
        chunk: Vec<u8>,
        every: Duration,
        at_accept: bool,
        greeting: Vec<u8>,
    },
    /// Answers every read with `reply`, one byte every `every` (a slow link, but a whole answer).
    Trickle { reply: Vec<u8>, every: Duration },
    /// Sends `greeting` at once; answers every line the client sends that starts with `trigger`
    /// with `prefix`, the line itself (CR and LF removed) and `suffix`: a server quoting what the
    /// client sent in its error reply.
    Echo {
        greeting: Vec<u8>,
        trigger: Vec<u8>,
        prefix: Vec<u8>,
        suffix: Vec<u8>,
    },
}

/// The INFO line a NATS 2.9 server sends first (no auth required, no TLS).
pub const NATS_INFO: &[u8] = b"INFO {\"server_id\":\"FAKE\",\"server_name\":\"fake\",\"version\":\"2.9.10\",\"proto\":1,\"go\":\"go1.19\",\"host\":\"127.0.0.1\",\"port\":4222,\"headers\":true,\"max_payload\":1048576}\r\n";

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

    /// FAKE: a peer that answers anything with these bytes one byte at a time, `every` apart
    /// (a whole, valid answer over a slow link: a reader must put the pieces together).
    pub fn trickling(bytes: &[u8], every: Duration) -> FakePeer {
        FakePeer::spawn(Behaviour::Trickle {
            reply: bytes.to_vec(),
            every,
        })
    }

    /// FAKE: a peer that answers anything with these bytes, each time after `delay` (a slow
    /// server, to prove that no timeout shorter than the probe's own deadline applies).
    pub fn replying_after(bytes: &[u8], delay: Duration) -> FakePeer {
        FakePeer::spawn(Behaviour::Delayed {
            reply: bytes.to_vec(),
            delay,
        })
    }

    /// FAKE: an HTTP server that sends a 200 status line and headers at once, then its body one
    /// byte every 100 ms, forever (a trickling endpoint: a probe reading the body must give up
    /// at its own deadline).
    pub fn http_trickle() -> FakePeer {
        FakePeer::spawn(Behaviour::Stream {
            head: b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\n"
                .to_vec(),
            chunk: b"x".to_vec(),
            every: Duration::from_millis(100),
            at_accept: false,
            greeting: Vec::new(),
        })
    }

    /// FAKE: an HTTP server that answers 200 with an endless body (64 KiB of `x` at a time,
    /// as fast as the client reads), to prove a body match reads a bounded prefix.
    pub fn http_endless_body() -> FakePeer {
        FakePeer::spawn(Behaviour::Stream {
            head: b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\n"
                .to_vec(),
            chunk: vec![b'x'; 64 * 1024],
            every: Duration::ZERO,
            at_accept: false,
            greeting: Vec::new(),
        })
    }

    /// FAKE: once the client has written anything, sends `head` and then `chunk` again and
    /// again, as fast as the client reads, forever (an endless reply: a Redis bulk string that
    /// never ends, HTTP headers that never end...). Proves the reader bounds what it keeps.
    pub fn streaming(head: &[u8], chunk: &[u8]) -> FakePeer {
        FakePeer::spawn(Behaviour::Stream {
            head: head.to_vec(),
            chunk: chunk.to_vec(),
            every: Duration::ZERO,
            at_accept: false,
            greeting: Vec::new(),
        })
    }

    /// FAKE: as [`FakePeer::streaming`], but starts as soon as it accepts, before the client says
    /// anything (a NATS server speaks first: an INFO line that never ends).
    pub fn streaming_at_accept(head: &[u8], chunk: &[u8]) -> FakePeer {
        FakePeer::spawn(Behaviour::Stream {
            head: head.to_vec(),
            chunk: chunk.to_vec(),
            every: Duration::ZERO,
            at_accept: true,
            greeting: Vec::new(),
        })
    }

    /// FAKE: a NATS server that sends a valid INFO, then, once the client has written anything,
    /// an `-ERR '` line that never ends.
    pub fn nats_endless_error() -> FakePeer {
        FakePeer::spawn(Behaviour::Stream {
            head: b"-ERR '".to_vec(),
            chunk: vec![b'x'; 64 * 1024],
            every: Duration::ZERO,
            at_accept: false,
            greeting: NATS_INFO.to_vec(),
        })
    }

    /// FAKE: a NATS server that sends a valid INFO, then answers the client's CONNECT line with
    /// `-ERR 'Invalid CONNECT: <the CONNECT line as received>'` (credentials included), as a
    /// server quoting a rejected request would. nats-server does not quote CONNECT on demand.
    pub fn nats_quoting_connect() -> FakePeer {
        FakePeer::spawn(Behaviour::Echo {
            greeting: NATS_INFO.to_vec(),
            trigger: b"CONNECT".to_vec(),
            prefix: b"-ERR 'Invalid CONNECT: ".to_vec(),
            suffix: b"'\r\n".to_vec(),
        })
    }

    /// FAKE: a Redis that answers every command with
    /// `-ERR unknown command '<command as received>'`, quoting every byte it was sent (CR and
    /// LF removed), AUTH and HELLO arguments included, with no length limit (a real redis-server
    /// quotes at most 128 bytes of arguments; see the rows using `rename-command`).
    pub fn redis_quoting_everything() -> FakePeer {
        FakePeer::spawn(Behaviour::Echo {
            greeting: Vec::new(),
            trigger: Vec::new(),
            prefix: b"-ERR unknown command '".to_vec(),
            suffix: b"'\r\n".to_vec(),
        })
    }

    /// FAKE: a NATS server that sends a valid INFO, then answers CONNECT with this `-ERR` line
    /// (without `-ERR ` and CRLF), for reasons a real server will not send on demand.
    pub fn nats_error(line: &[u8]) -> FakePeer {
        let mut reply = b"-ERR ".to_vec();
        reply.extend_from_slice(line);
        reply.extend_from_slice(b"\r\n");
        FakePeer::spawn(Behaviour::Reply {
            greeting: NATS_INFO.to_vec(),
            reply,
        })
    }

    /// FAKE: a NATS server that completes the handshake (every write is answered with `PONG`)
    /// and never answers a JetStream API request, as nats-server does only while its JetStream
    /// meta leader is being elected, which cannot be held open on demand.
    pub fn nats_jetstream_silent() -> FakePeer {
        FakePeer::spawn(Behaviour::Reply {
            greeting: NATS_INFO.to_vec(),
            reply: b"PONG\r\n".to_vec(),
        })
    }

    /// FAKE: an HTTP server whose every answer is `302 Found` back to the same path (a loop).
    pub fn http_redirect_loop() -> FakePeer {
        FakePeer::replying(b"HTTP/1.1 302 Found\r\nlocation: /loop\r\ncontent-length: 0\r\n\r\n")
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
    if let Behaviour::Reply { greeting, .. }
    | Behaviour::Echo { greeting, .. }
    | Behaviour::Stream { greeting, .. } = &behaviour
        && !greeting.is_empty()
    {
        let _ = stream.write_all(greeting);
    }
    if let Behaviour::Stream {
        head,
        chunk,
        every,
        at_accept: true,
        ..
    } = &behaviour
    {
        stream_forever(&mut stream, head, chunk, *every, &stop);
        return;
    }
    if let Behaviour::Echo {
        trigger,
        prefix,
        suffix,
        ..
    } = &behaviour
    {
        echo_lines(&mut stream, trigger, prefix, suffix, &stop);
        return;
    }
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {
                if let Behaviour::Trickle { reply, every } = &behaviour {
                    for byte in reply {
                        if stream.write_all(std::slice::from_ref(byte)).is_err() {
                            return;
                        }
                        thread::sleep(*every);
                    }
                    continue;
                }
                if let Behaviour::Delayed { reply, delay } = &behaviour {
                    thread::sleep(*delay);
                    if stream.write_all(reply).is_err() {
                        return;
                    }
                    continue;
                }
                if let Behaviour::Stream {
                    head, chunk, every, ..
                } = &behaviour
                {
                    stream_forever(&mut stream, head, chunk, *every, &stop);
                    return;
                }
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

/// Sends `head`, then `chunk` every `every` until a write fails or the fake is dropped.
fn stream_forever(
    stream: &mut TcpStream,
    head: &[u8],
    chunk: &[u8],
    every: Duration,
    stop: &AtomicBool,
) {
    let _ = stream.set_write_timeout(Some(Duration::from_millis(200)));
    if stream.write_all(head).is_err() {
        return;
    }
    while !stop.load(Ordering::Relaxed) {
        match stream.write_all(chunk) {
            Ok(()) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
        if !every.is_zero() {
            thread::sleep(every);
        }
    }
}

/// Answers each line (up to LF) that starts with `trigger` with `prefix`, the line without CR
/// and LF, and `suffix`; ignores other lines and answers `PING` with `PONG` (a NATS client pings
/// after CONNECT).
fn echo_lines(
    stream: &mut TcpStream,
    trigger: &[u8],
    prefix: &[u8],
    suffix: &[u8],
    stop: &AtomicBool,
) {
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => pending.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                // A client that sent no newline yet (RESP arrays are CRLF-separated, so this
                // only happens mid-write): answer what came so far.
                if pending.is_empty() || !trigger.is_empty() {
                    continue;
                }
                let line = std::mem::take(&mut pending);
                if answer(stream, &line, prefix, suffix).is_err() {
                    return;
                }
                continue;
            }
            Err(_) => return,
        }
        if trigger.is_empty() {
            // Quote everything received in one reply (a RESP command spans several lines).
            continue;
        }
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let reply = if line.starts_with(trigger) {
                answer(stream, &line, prefix, suffix)
            } else if line.starts_with(b"PING") {
                stream.write_all(b"PONG\r\n")
            } else {
                Ok(())
            };
            if reply.is_err() {
                return;
            }
        }
    }
}

fn answer(
    stream: &mut TcpStream,
    line: &[u8],
    prefix: &[u8],
    suffix: &[u8],
) -> std::io::Result<()> {
    let mut reply = prefix.to_vec();
    reply.extend(
        line.iter()
            .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
    );
    reply.extend_from_slice(suffix);
    stream.write_all(&reply)
}
