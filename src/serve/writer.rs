//! The one thread that writes the node-state database for `ddc serve`.
//! Handlers send writes through a bounded channel (a full channel makes
//! them wait: memory stays bounded under any storm) with a reply slot; the
//! thread takes whatever is queued (up to [`BATCH`]), commits it in one
//! transaction, and only then answers each: a 204 is never sent for a
//! report that is not on disk.

use std::thread::JoinHandle;

use tokio::sync::{mpsc, oneshot};

use crate::nodestate::{Store, Write};

/// Writes waiting for the thread at most; more wait in their handlers.
const QUEUE: usize = 4096;
/// Writes committed together at most.
const BATCH: usize = 1024;

type Reply = oneshot::Sender<Result<(), String>>;

/// Where handlers send writes.
#[derive(Clone)]
pub(crate) struct Writer {
    tx: mpsc::Sender<(Write, Reply)>,
}

impl Writer {
    /// Starts the thread; it stops when every `Writer` is dropped, after
    /// committing what was queued.
    pub(crate) fn start(mut store: Store) -> (Writer, JoinHandle<()>) {
        let (tx, mut rx) = mpsc::channel::<(Write, Reply)>(QUEUE);
        let thread = std::thread::Builder::new()
            .name("ddc-db-writer".into())
            .spawn(move || {
                while let Some(first) = rx.blocking_recv() {
                    let mut batch = vec![first];
                    while batch.len() < BATCH {
                        match rx.try_recv() {
                            Ok(w) => batch.push(w),
                            Err(_) => break,
                        }
                    }
                    commit(&mut store, batch);
                }
            })
            .expect("cannot start the database thread");
        (Writer { tx }, thread)
    }

    /// Sends a write and waits until it is committed (or refused).
    pub(crate) async fn write(&self, w: Write) -> Result<(), String> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send((w, reply))
            .await
            .map_err(|_| "the database thread stopped".to_string())?;
        answer
            .await
            .map_err(|_| "the database thread stopped".to_string())?
    }
}

fn commit(store: &mut Store, batch: Vec<(Write, Reply)>) {
    let (writes, replies): (Vec<Write>, Vec<Reply>) = batch.into_iter().unzip();
    match store.apply(&writes) {
        Ok(outcomes) => {
            for (reply, outcome) in replies.into_iter().zip(outcomes) {
                let _ = reply.send(outcome);
            }
        }
        Err(e) => {
            tracing::error!(
                "cannot write {} change(s) to the database: {e:#}",
                writes.len()
            );
            for reply in replies {
                let _ = reply.send(Err(format!("the database refused the write: {e}")));
            }
        }
    }
}
