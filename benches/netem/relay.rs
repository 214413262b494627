//! The delaying TCP relay that puts latency in front of each netem host's
//! sshd, since this kernel has no `sch_netem` (nor `fq`/`etf`, which could
//! honour delivery times set by a tc BPF program). It runs as its own
//! process inside the host's network namespace (`netem relay LISTEN
//! UPSTREAM ONE_WAY_MICROSECONDS`, the bench binary re-executed) and forwards every
//! connection to sshd, each direction through a queue that releases every
//! chunk exactly the one-way delay after it was read: order is kept, and chunks
//! are written one by one at their own time, never batched. A round trip
//! through it therefore costs twice that plus the local hops.
//!
//! What it does not model: the TCP handshake itself (the client's connect
//! completes at once; the first SSH bytes are delayed), loss, and bandwidth.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// A chunk read from one side, due at the other side at `due`; `None`
/// data is the end of that direction.
struct Due {
    due: Instant,
    data: Option<Vec<u8>>,
}

/// Serves forever: every accepted connection gets its own upstream
/// connection and two delayed pumps.
pub fn serve(listen: SocketAddr, upstream: SocketAddr, one_way: Duration) -> ! {
    let listener = TcpListener::bind(listen)
        .unwrap_or_else(|e| panic!("relay: cannot listen on {listen}: {e}"));
    for client in listener.incoming() {
        let Ok(client) = client else { continue };
        thread::spawn(move || {
            if let Err(error) = relay_connection(client, upstream, one_way) {
                eprintln!("relay {listen}: {error}");
            }
        });
    }
    unreachable!("TcpListener::incoming never ends")
}

fn relay_connection(
    client: TcpStream,
    upstream: SocketAddr,
    one_way: Duration,
) -> std::io::Result<()> {
    let server = TcpStream::connect(upstream)?;
    // Nagle would add its own, unmodelled, delay to small SSH packets.
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    let towards_server = pump(client.try_clone()?, server.try_clone()?, one_way);
    let towards_client = pump(server, client, one_way);
    let _ = towards_server.join();
    let _ = towards_client.join();
    Ok(())
}

/// Copies `from` to `to`, each chunk `one_way` late: a reader thread stamps
/// chunks as they arrive, a writer thread sleeps until each one is due.
fn pump(mut from: TcpStream, mut to: TcpStream, one_way: Duration) -> thread::JoinHandle<()> {
    let (queue, due_chunks) = mpsc::channel::<Due>();
    let writer = thread::spawn(move || {
        for chunk in due_chunks {
            let now = Instant::now();
            if chunk.due > now {
                thread::sleep(chunk.due - now);
            }
            match chunk.data {
                Some(data) => {
                    if to.write_all(&data).is_err() {
                        break;
                    }
                }
                None => break,
            }
        }
        // Passes the end of this direction on (a half-close, as TCP would).
        let _ = to.shutdown(Shutdown::Write);
    });
    thread::spawn(move || {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let read = from.read(&mut buffer);
            let due = Instant::now() + one_way;
            let data = match read {
                Ok(0) | Err(_) => None,
                Ok(n) => Some(buffer[..n].to_vec()),
            };
            let end = data.is_none();
            if queue.send(Due { due, data }).is_err() || end {
                break;
            }
        }
        let _ = writer.join();
        let _ = from.shutdown(Shutdown::Read);
    })
}
