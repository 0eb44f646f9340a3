//! `ddc serve`: the node-facing HTTP service. It serves the TFTP root's
//! files (iPXE scripts, kernels, initrds) and records each node's script
//! fetch, records machines not in the inventory, and accepts the nodes'
//! reports into the node-state database (`nodestate`), through one writer
//! thread that answers only after the commit. The config is reloaded when a
//! build changes it (`inventory::watch`); serve never takes the build lock,
//! and must not import the build engine (`engine`, `recipes`, `graph`),
//! `commands` or `cli`.
//!
//! axum on tokio: the async stack hyper's maintainers keep, with body limits,
//! connection info and graceful shutdown built in.

mod files;
mod inventory;
mod listener;
mod report;
mod routes;
mod writer;

use std::net::{SocketAddr, SocketAddrV4};
use std::path::Path;
use std::sync::{Arc, RwLock};

use anyhow::{Context, Result};

use crate::config::Config;
use crate::fsutil;
use crate::nodestate::{self, Store};

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
    let db = db_path(&cfg);
    let store = Store::open(&db)?;
    let (writer, thread) = writer::Writer::start(store);
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
        let service = routes::router(app).into_make_service_with_connect_info::<SocketAddr>();
        // tap_io: axum gives `ConnectInfo<SocketAddr>` for any listener so wrapped.
        let listener = axum::serve::ListenerExt::tap_io(listener::Capped::new(listener), |_| {});
        axum::serve(listener, service)
            .with_graceful_shutdown(stopped())
            .await
            .context("the HTTP service failed")
    });
    rt.shutdown_timeout(std::time::Duration::from_secs(5));
    // Every sender is gone with the runtime: the thread commits the rest and ends.
    let _ = thread.join();
    println!("ddc serve: stopped");
    result
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
