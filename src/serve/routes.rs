//! The HTTP routes of `ddc serve`: static files (a fetch of
//! `/ipxe/<mac>.ipxe` recorded for its node when it comes from the node's
//! inventory IP), `GET /api/v1/unknown` for
//! machines not in the inventory, and `POST /api/v1/report`. Every refusal
//! is logged through tracing with what was refused and why.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Query, State};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

use super::files;
use super::inventory::{self, Shared};
use super::report::{self, normalize_mac};
use super::writer::Writer;
use crate::nodestate::{now_ms, Write};

/// What the handlers share.
pub(crate) struct App {
    pub(crate) inventory: Shared,
    pub(crate) writer: Writer,
}

type AppState = State<Arc<App>>;

pub(crate) fn router(app: Arc<App>) -> Router {
    Router::new()
        .route(
            "/api/v1/report",
            post(report).layer(DefaultBodyLimit::max(report::MAX_BODY)),
        )
        .route("/api/v1/unknown", get(unknown))
        .fallback(file)
        .with_state(app)
}

fn text(code: StatusCode, msg: impl Into<String>) -> Response {
    let mut m = msg.into();
    m.push('\n');
    (code, m).into_response()
}

async fn file(
    State(app): AppState,
    peer: ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD");
    }
    let Some(rel) = files::clean(uri.path()) else {
        tracing::warn!(peer = %peer.0, path = uri.path(), "refused: not a path under the document root");
        return text(StatusCode::NOT_FOUND, "not found");
    };
    let inv = inventory::current(&app.inventory);
    let resp = files::serve(&inv.root, rel).await;
    if resp.status() == StatusCode::OK {
        let node = rel
            .strip_prefix("ipxe/")
            .and_then(|f| f.strip_suffix(".ipxe"))
            .and_then(normalize_mac)
            .and_then(|mac| inv.by_mac.get(&mac).cloned());
        // Served to anyone (the script is static and public), but recorded
        // only from the node's own IP: a stranger's GET must not mark it booting.
        let from_node = |h: &String| {
            inv.by_host
                .get(h)
                .is_some_and(|e| peer.0.ip() == IpAddr::V4(e.ip))
        };
        if let Some(hostname) = node.filter(from_node) {
            let w = Write::Fetch {
                hostname: hostname.clone(),
                at: now_ms(),
                ip: peer.0.ip().to_string(),
            };
            if let Err(e) = app.writer.write(w).await {
                tracing::error!(node = hostname, "fetch not recorded: {e}");
            }
        }
    }
    resp
}

#[derive(Deserialize)]
struct UnknownQuery {
    mac: Option<String>,
    platform: Option<String>,
    arch: Option<String>,
}

fn word(v: Option<&str>) -> Option<String> {
    let v = v.unwrap_or("unknown");
    let ok = !v.is_empty()
        && v.len() <= 16
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    ok.then(|| v.to_string())
}

async fn unknown(
    State(app): AppState,
    peer: ConnectInfo<SocketAddr>,
    q: Result<Query<UnknownQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(q)) = q else {
        tracing::warn!(peer = %peer.0, "unknown: refused: bad query");
        return text(
            StatusCode::BAD_REQUEST,
            "bad query: mac=..&platform=..&arch=..",
        );
    };
    let mac = q.mac.as_deref().and_then(normalize_mac);
    let (platform, arch) = (word(q.platform.as_deref()), word(q.arch.as_deref()));
    let (Some(mac), Some(platform), Some(arch)) = (mac, platform, arch) else {
        tracing::warn!(peer = %peer.0, "unknown: refused: bad mac, platform or arch");
        return text(
            StatusCode::BAD_REQUEST,
            "mac, platform or arch is malformed",
        );
    };
    let inv = inventory::current(&app.inventory);
    if let Some(host) = inv.by_mac.get(&mac) {
        return script(&format!(
            "ddc: {mac} is {host} in the inventory, but has no iPXE script yet (ddc build)"
        ));
    }
    let w = Write::Unknown {
        mac: mac.clone(),
        at: now_ms(),
        ip: peer.0.ip().to_string(),
        platform,
        arch,
    };
    match app.writer.write(w).await {
        Ok(()) => {
            tracing::info!(peer = %peer.0, mac, "a machine not in the inventory asked to boot")
        }
        Err(e) => tracing::warn!(peer = %peer.0, mac, "unknown machine not recorded: {e}"),
    }
    script(&format!(
        "ddc: this machine ({mac}) is not in the inventory; booting the next device"
    ))
}

fn script(say: &str) -> Response {
    let body = format!("#!ipxe\necho {say}\nexit\n");
    (
        StatusCode::OK,
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

async fn report(
    State(app): AppState,
    peer: ConnectInfo<SocketAddr>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let peer = peer.0;
    let body = match body {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(%peer, "report refused: {e}");
            return text(e.status(), e.body_text());
        }
    };
    let r = match report::parse(&body) {
        Ok(r) => r,
        Err(why) => {
            tracing::warn!(%peer, "report refused: {why}");
            return text(StatusCode::BAD_REQUEST, why);
        }
    };
    let inv = inventory::current(&app.inventory);
    let Some(entry) = inv.by_host.get(&r.hostname) else {
        tracing::warn!(%peer, node = r.hostname, "report refused: no such node in the inventory");
        return text(
            StatusCode::NOT_FOUND,
            format!("no node {:?} in the inventory", r.hostname),
        );
    };
    if peer.ip() != IpAddr::V4(entry.ip) {
        tracing::warn!(%peer, node = r.hostname, inventory_ip = %entry.ip, "report refused: not from the node's IP");
        return text(
            StatusCode::FORBIDDEN,
            "not from this node's IP in the inventory",
        );
    }
    if r.mac != entry.mac {
        tracing::warn!(%peer, node = r.hostname, mac = r.mac, inventory_mac = entry.mac, "report refused: not the node's MAC");
        return text(
            StatusCode::FORBIDDEN,
            "not this node's MAC in the inventory",
        );
    }
    let host = r.hostname.clone();
    let w = Write::Report {
        report: r,
        at: now_ms(),
        ip: peer.ip().to_string(),
    };
    match app.writer.write(w).await {
        Ok(()) => {
            tracing::debug!(%peer, node = host, "report recorded");
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => {
            tracing::error!(%peer, node = host, "report not recorded: {e}");
            text(
                StatusCode::SERVICE_UNAVAILABLE,
                "not recorded, send it again",
            )
        }
    }
}
