//! A minimal HTTP/1.1 client over tokio whose connections leave from a
//! chosen loopback address (127.x.y.z), so that each simulated node comes
//! from its own inventory IP. One request per connection (`Connection:
//! close`); the reply is read to the end. Used by tests/serve.rs and
//! benches/serve.rs (through `#[path]`).
#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A reply: status code and body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: String,
}

/// Sends one request from `from` to `server` and reads the reply (at most
/// 30 s for the whole exchange).
pub async fn request(
    server: SocketAddr,
    from: Ipv4Addr,
    method: &str,
    path: &str,
    body: &[u8],
) -> std::io::Result<Reply> {
    tokio::time::timeout(
        Duration::from_secs(30),
        exchange(server, from, method, path, body),
    )
    .await
    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no reply in 30 s"))?
}

async fn exchange(
    server: SocketAddr,
    from: Ipv4Addr,
    method: &str,
    path: &str,
    body: &[u8],
) -> std::io::Result<Reply> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::V4(SocketAddrV4::new(from, 0)))?;
    let mut stream = socket.connect(server).await?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {server}\r\nConnection: close\r\n\
         Content-Length: {}\r\n",
        body.len()
    );
    if !body.is_empty() {
        req.push_str("Content-Type: application/json\r\n");
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    stream.write_all(&bytes).await?;
    let mut out = Vec::new();
    // The server may close before reading all of a refused body.
    let _ = stream.read_to_end(&mut out).await;
    parse(&out)
}

fn parse(raw: &[u8]) -> std::io::Result<Reply> {
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP reply");
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(bad)?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    Ok(Reply {
        status,
        body: body.to_string(),
    })
}

/// The loopback address of simulated node `i` (0-based): 127.1.0.1 on,
/// never .0 or .255 in the last byte.
pub fn node_ip(i: usize) -> Ipv4Addr {
    let (hi, lo) = (i / 250, i % 250 + 1);
    Ipv4Addr::new(127, 1 + (hi / 256) as u8, (hi % 256) as u8, lo as u8)
}

/// The MAC of simulated node `i`.
pub fn node_mac(i: usize) -> String {
    format!(
        "52:54:00:{:02x}:{:02x}:{:02x}",
        i >> 16,
        (i >> 8) & 0xff,
        i & 0xff
    )
}

/// The hostname of simulated node `i`.
pub fn node_name(i: usize) -> String {
    format!("n{i:05}")
}

/// A report body for node `i`.
pub fn report(i: usize, generation: &str) -> String {
    format!(
        r#"{{"hostname":"{}","mac":"{}","image":"default","generation":"{generation}","boot_id":"b{i}","kernel":"6.1.0-28-amd64","uptime":12.5,"failed_units":[]}}"#,
        node_name(i),
        node_mac(i)
    )
}

/// The inventory CSV of `n` simulated nodes.
pub fn inventory_csv(n: usize) -> String {
    let mut s = String::from("hostname,mac,ip\n");
    for i in 0..n {
        s.push_str(&format!(
            "{},{},{}\n",
            node_name(i),
            node_mac(i),
            node_ip(i)
        ));
    }
    s
}

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until something accepts connections at `addr` (at most 20 s).
pub fn wait_listening(addr: SocketAddr) -> bool {
    for _ in 0..200 {
        if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}
