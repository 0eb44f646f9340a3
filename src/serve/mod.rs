//! `ddc serve`: the node-facing HTTP service. It serves the TFTP root's
//! files (iPXE scripts, kernels, initrds) and records each node's script
//! fetch, records machines not in the inventory, and accepts the nodes'
//! reports into the node-state database (`nodestate`), through one writer
//! thread that answers only after the commit. The config is reloaded when a
//! build changes it (`inventory::watch`); serve never takes the build lock,
//! and must not import the build engine (`engine`, `recipes`, `graph`),
//! `commands` or `cli`.
//!
//! axum on tokio: the async stack hyper's maintainers keep, with body limits
//! built in; connections are served by hyper's http1 server directly (not
//! `axum::serve`, which sets no timer) so a client gets [`HEADER_READ`] to
//! send its request's header; see `listener` for the other bounds.

mod files;
mod inventory;
mod listener;
mod report;
mod routes;
mod writer;

use std::net::SocketAddrV4;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{Context, Result};
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;

use crate::config::Config;
use crate::fsutil;
use crate::nodestate::{self, Store, Write};

/// How long a client has to send a request's header.
pub(crate) const HEADER_READ: Duration = Duration::from_secs(10);
/// How long the requests in flight get after SIGTERM or SIGINT.
pub(crate) const GRACE: Duration = Duration::from_secs(10);

/// The node-state database of a config: `cache/nodes.db` beside the
/// Ddcfile, where `ddc build` keeps its cache.
pub(crate) fn db_path(cfg: &Config) -> std::path::PathBuf {
    nodestate::db_path(&cfg.base_dir.join("cache"))
}

/// Runs the service until SIGTERM or SIGINT, then finishes the requests in
/// flight and commits what they sent.
pub(crate) fn run(file: &Path, cfg: Config, listen: Option<SocketAddrV4>) -> Result<()> {
    let addr = listen.unwrap_or(cfg.server.http);
    let cache = cfg.base_dir.join("cache");
    fsutil::own(&cache, fsutil::CACHE_DIR_MODE);
    fsutil::make_dir(&cache)?;
    let max = listener::raise_nofile();
    let db = db_path(&cfg);
    let store = Store::open(&db)?;
    let (writer, thread) = writer::Writer::start(store);
    let alive = writer.clone();
    let inv = Arc::new(inventory::Inventory::of(file, &cfg));
    let shared = Arc::new(RwLock::new(inv));
    let app = Arc::new(routes::App {
        inventory: shared.clone(),
        writer,
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("ddc-serve")
        .build()
        .context("cannot start the async runtime")?;
    let result = rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.set_reuseaddr(true)?;
        socket
            .bind(addr.into())
            .with_context(|| format!("cannot listen on {addr} (use --listen ADDR:PORT)"))?;
        let listener = socket.listen(4096)?;
        println!(
            "ddc serve: listening on http://{addr}/, files from {}, node state in {}",
            cfg.paths.tftp_root.display(),
            db.display()
        );
        tokio::spawn(inventory::watch(file.to_path_buf(), shared, cfg.clone()));
        let beat = tokio::spawn(say_alive(alive.clone()));
        serve(listener::Capped::new(listener, max), routes::router(app)).await;
        beat.abort();
        // Stopped: `ddc rollout` no longer waits on reports from here.
        let _ = alive
            .write(Write::Alive {
                at: 0,
                pid: std::process::id(),
            })
            .await;
        anyhow::Ok(())
    });
    drop(alive);
    rt.shutdown_timeout(std::time::Duration::from_secs(5));
    // Every sender is gone with the runtime: the thread commits the rest and ends.
    let _ = thread.join();
    println!("ddc serve: stopped");
    result
}

/// Says in the database every [`nodestate::ALIVE_EVERY_MS`] that this
/// serve runs: `ddc rollout` reboots nothing whose report would go unheard.
async fn say_alive(writer: writer::Writer) {
    let every = Duration::from_millis(nodestate::ALIVE_EVERY_MS as u64);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let at = nodestate::now_ms();
        if let Err(e) = writer
            .write(Write::Alive {
                at,
                pid: std::process::id(),
            })
            .await
        {
            tracing::warn!("cannot record that serve runs: {e}");
        }
    }
}

/// Serves connections until SIGTERM or SIGINT; then accepts no more, lets
/// the requests in flight finish for at most [`GRACE`], and returns.
async fn serve(mut listener: listener::Capped, router: axum::Router) {
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ);
    let stop = stopped();
    tokio::pin!(stop);
    loop {
        let (conn, peer) = tokio::select! {
            c = listener.accept() => c,
            () = &mut stop => break,
        };
        let svc = router.clone().layer(axum::Extension(ConnectInfo(peer)));
        let conn = http.serve_connection(TokioIo::new(conn), TowerToHyperService::new(svc));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, "connection closed: {e}");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {},
        () = tokio::time::sleep(GRACE) => {
            tracing::warn!("connections still open {} s after the stop: closing them", GRACE.as_secs());
        }
    }
}

/// Resolves on the first SIGTERM or SIGINT.
async fn stopped() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
    tracing::info!("stopping: finishing the requests in flight");
}
