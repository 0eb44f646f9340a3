//! Runs a DAG of tasks in dependency order: cheap tasks on rayon's pool,
//! heavy ones on a bounded pool of `jobs` threads. A failed task stops its
//! dependents; without keep-going it also stops everything not yet started.
//!
//! The scheduler knows tasks only as indices with dependencies and a weight;
//! what a task does and what is printed belong to the caller. The
//! [`DependencyQueue`] is tested here without running anything.

use std::collections::VecDeque;
use std::sync::mpsc;

/// Why a task did not run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Skip {
    /// A task it depends on failed (index of that task).
    DependencyFailed(usize),
    /// The build stopped after a failure (no `--keep-going`).
    Stopped,
    /// The build was interrupted.
    Cancelled,
}

/// Tracks which tasks are ready, running, done or skipped.
pub struct DependencyQueue {
    waiting_on: Vec<usize>,
    dependents: Vec<Vec<usize>>,
    ready: VecDeque<usize>,
    state: Vec<QState>,
    left: usize,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum QState {
    Excluded,
    Waiting,
    Ready,
    Running,
    Done,
}

impl DependencyQueue {
    /// `deps[i]` lists what task `i` needs; only tasks with `wanted[i]` run
    /// (the caller passes a mask closed under dependencies).
    pub fn new(deps: &[Vec<usize>], wanted: &[bool]) -> Self {
        let n = deps.len();
        let mut q = DependencyQueue {
            waiting_on: vec![0; n],
            dependents: vec![Vec::new(); n],
            ready: VecDeque::new(),
            state: vec![QState::Excluded; n],
            left: 0,
        };
        for i in 0..n {
            if !wanted[i] {
                continue;
            }
            q.left += 1;
            q.state[i] = QState::Waiting;
            for &d in &deps[i] {
                debug_assert!(wanted[d], "the wanted set must include dependencies");
                q.waiting_on[i] += 1;
                q.dependents[d].push(i);
            }
        }
        for i in 0..n {
            if q.state[i] == QState::Waiting && q.waiting_on[i] == 0 {
                q.state[i] = QState::Ready;
                q.ready.push_back(i);
            }
        }
        q
    }

    /// The next task whose dependencies are all done.
    pub fn pop(&mut self) -> Option<usize> {
        let i = self.ready.pop_front()?;
        self.state[i] = QState::Running;
        Some(i)
    }

    /// Marks a running task finished. On failure returns the tasks that now
    /// cannot run (its transitive dependents), each with the reason.
    pub fn finish(&mut self, i: usize, ok: bool) -> Vec<(usize, Skip)> {
        assert_eq!(self.state[i], QState::Running, "task {i} was not running");
        self.state[i] = QState::Done;
        self.left -= 1;
        let mut skipped = Vec::new();
        if ok {
            for k in 0..self.dependents[i].len() {
                let d = self.dependents[i][k];
                self.waiting_on[d] -= 1;
                if self.waiting_on[d] == 0 && self.state[d] == QState::Waiting {
                    self.state[d] = QState::Ready;
                    self.ready.push_back(d);
                }
            }
        } else {
            let mut stack = self.dependents[i].clone();
            while let Some(d) = stack.pop() {
                if matches!(self.state[d], QState::Waiting | QState::Ready) {
                    self.state[d] = QState::Done;
                    self.left -= 1;
                    skipped.push((d, Skip::DependencyFailed(i)));
                    stack.extend(self.dependents[d].iter().copied());
                }
            }
            self.ready.retain(|&r| self.state[r] == QState::Ready);
        }
        skipped
    }

    /// Gives up on everything not started yet.
    pub fn abandon(&mut self, why: Skip) -> Vec<(usize, Skip)> {
        let mut out = Vec::new();
        for i in 0..self.state.len() {
            if matches!(self.state[i], QState::Waiting | QState::Ready) {
                self.state[i] = QState::Done;
                self.left -= 1;
                out.push((i, why.clone()));
            }
        }
        self.ready.clear();
        out
    }

    /// True when every wanted task is done or skipped.
    pub fn is_finished(&self) -> bool {
        self.left == 0
    }
}

/// The tasks of one execution, by index: what each depends on, which are
/// wanted, and which are heavy (run on the bounded pool).
pub struct Tasks<'a> {
    pub deps: &'a [Vec<usize>],
    pub wanted: &'a [bool],
    pub heavy: &'a [bool],
}

/// Options of one execution.
pub struct Options {
    pub jobs: usize,
    pub keep_going: bool,
}

/// Runs every wanted task. `run(i)` does task `i` and returns whether it
/// succeeded; `skipped` hears of each task that will not run. `cancelled`
/// is polled between tasks. A heavy task is first offered to `quick(i)`,
/// on this loop's thread: Some(ok) when it is done at once (its record
/// holds), None when it must run, on one of at most `jobs` heavy threads,
/// started only when one is needed. Cheap tasks that become ready together
/// run as one parallel batch, said done a chunk at a time: `batch_done` is
/// called after each chunk, so a 10,000-task level costs a few wake-ups of
/// this loop, not 10,000, and a long task of a batch holds back no other.
/// `run` and `quick` must not panic: the engine turns a panic into a
/// failed task.
pub fn execute(
    tasks: &Tasks,
    opts: &Options,
    cancelled: &(dyn Fn() -> bool + Sync),
    run: &(dyn Fn(usize) -> bool + Sync),
    quick: &(dyn Fn(usize) -> Option<bool> + Sync),
    batch_done: &(dyn Fn() + Sync),
    skipped: &mut dyn FnMut(usize, Skip),
) {
    use rayon::prelude::*;
    let Tasks {
        deps,
        wanted,
        heavy,
    } = *tasks;
    let mut queue = DependencyQueue::new(deps, wanted);
    let (tx, rx) = mpsc::channel::<Vec<(usize, bool)>>();
    let mut running = 0usize;
    let mut stopping = false;
    // A task that panics anyway is a failed one, never a loop waiting for it.
    let run = |i: usize| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(i))).unwrap_or(false)
    };
    let run = &run;
    let heavy_pool = HeavyPool::new(opts.jobs.max(1));
    std::thread::scope(|threads| {
        let _closing = Closing(&heavy_pool);
        rayon::in_place_scope(|light| loop {
            if !stopping && cancelled() {
                stopping = true;
                for (i, s) in queue.abandon(Skip::Cancelled) {
                    skipped(i, s);
                }
            }
            let mut batch = Vec::new();
            let mut done_here = Vec::new();
            while let Some(i) = if stopping { None } else { queue.pop() } {
                running += 1;
                if !heavy[i] {
                    batch.push(i);
                } else if let Some(ok) = quick(i) {
                    done_here.push((i, ok));
                } else {
                    let tx = tx.clone();
                    heavy_pool.push(threads, i, move |i| {
                        let _ = tx.send(vec![(i, run(i))]);
                    });
                }
            }
            if !batch.is_empty() {
                let chunk = batch
                    .len()
                    .div_ceil(4 * rayon::current_num_threads())
                    .max(1);
                let tx = tx.clone();
                light.spawn(move |_| {
                    batch.par_chunks(chunk).for_each(|tasks| {
                        let done: Vec<(usize, bool)> = tasks.iter().map(|&i| (i, run(i))).collect();
                        batch_done();
                        let _ = tx.send(done);
                    });
                });
            }
            if running == 0 {
                break;
            }
            let done = if done_here.is_empty() {
                let Ok(done) = rx.recv() else { break };
                done
            } else {
                done_here
            };
            for (i, ok) in done {
                running -= 1;
                for (d, s) in queue.finish(i, ok) {
                    skipped(d, s);
                }
                if !ok && !opts.keep_going && !stopping {
                    stopping = true;
                    for (d, s) in queue.abandon(Skip::Stopped) {
                        skipped(d, s);
                    }
                }
            }
        });
    });
    debug_assert!(queue.is_finished());
}

/// The heavy tasks' threads: at most `jobs`, each started when a task
/// waits and no started thread is free, so a build whose heavy tasks all
/// hold their records starts none.
struct HeavyPool<'f> {
    jobs: usize,
    state: std::sync::Mutex<HeavyState<'f>>,
    wake: std::sync::Condvar,
}

type HeavyJob<'f> = Box<dyn FnOnce(usize) + Send + 'f>;

#[derive(Default)]
struct HeavyState<'f> {
    waiting: VecDeque<(usize, HeavyJob<'f>)>,
    started: usize,
    idle: usize,
    closed: bool,
}

impl<'f> HeavyPool<'f> {
    fn new(jobs: usize) -> Self {
        HeavyPool {
            jobs,
            state: std::sync::Mutex::new(HeavyState::default()),
            wake: std::sync::Condvar::new(),
        }
    }

    fn push<'scope>(
        &'scope self,
        threads: &'scope std::thread::Scope<'scope, '_>,
        i: usize,
        job: impl FnOnce(usize) + Send + 'f,
    ) where
        'f: 'scope,
    {
        let mut st = self.state.lock().expect("heavy tasks");
        st.waiting.push_back((i, Box::new(job)));
        // One thread more while the waiting tasks outnumber the free
        // threads (a woken one not yet running still counts as free).
        if st.waiting.len() > st.idle && st.started < self.jobs {
            let n = st.started;
            let spawned = std::thread::Builder::new()
                .name(format!("ddc-heavy-{n}"))
                .spawn_scoped(threads, || self.work());
            match spawned {
                Ok(_) => st.started += 1,
                // The running threads take the task in turn.
                Err(e) if n > 0 => tracing::warn!("cannot start a heavy task's thread: {e}"),
                Err(e) => {
                    drop(st);
                    panic!("cannot start a heavy task's thread: {e}");
                }
            }
        }
        self.wake.notify_one();
    }

    /// One thread: the waiting tasks, one at a time, until closed.
    fn work(&self) {
        let mut st = self.state.lock().expect("heavy tasks");
        loop {
            if let Some((i, job)) = st.waiting.pop_front() {
                drop(st);
                job(i);
                st = self.state.lock().expect("heavy tasks");
            } else if st.closed {
                return;
            } else {
                st.idle += 1;
                st = self.wake.wait(st).expect("heavy tasks");
                st.idle -= 1;
            }
        }
    }

    /// No task comes any more: the threads end once the queue is empty.
    fn close(&self) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).closed = true;
        self.wake.notify_all();
    }
}

/// Closes the heavy threads' queue when the loop ends, a panic included:
/// the scope joins them, and an open queue would keep them waiting.
struct Closing<'p, 'f>(&'p HeavyPool<'f>);

impl Drop for Closing<'_, '_> {
    fn drop(&mut self) {
        self.0.close();
    }
}

#[cfg(test)]
mod tests;
