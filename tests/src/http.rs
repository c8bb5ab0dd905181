//! A minimal HTTP/1.1 GET for the admin listener (`/healthz`, `/readyz`, `/metrics`): the
//! tests read the status and body exactly as a probe or a scraper would.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `GET path` on `addr`: the status code and the body. Fails on no answer within 5 s.
pub async fn get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    let exchange = async {
        let mut tcp = tokio::net::TcpStream::connect(addr)
            .await
            .with_context(|| format!("cannot connect to the admin listener {addr}"))?;
        tcp.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
        let mut raw = Vec::new();
        tcp.read_to_end(&mut raw).await?;
        anyhow::Ok(String::from_utf8_lossy(&raw).into_owned())
    };
    let raw = tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .with_context(|| format!("GET {path} on {addr}: no answer within 5 s"))??;
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .with_context(|| format!("GET {path}: not an HTTP response: {raw:?}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("GET {path}: no status in {head:?}"))?;
    Ok((status, body.to_owned()))
}
