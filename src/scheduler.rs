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
    let heavy_pool = HeavyPool::new(opts.jobs.max(1));
    std::thread::scope(|threads| {
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
        heavy_pool.close();
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
        if st.idle == 0 && st.started < self.jobs {
            let n = st.started;
            st.started += 1;
            std::thread::Builder::new()
                .name(format!("ddc-heavy-{n}"))
                .spawn_scoped(threads, || self.work())
                .expect("a heavy task's thread");
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
        self.state.lock().expect("heavy tasks").closed = true;
        self.wake.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    // 0 → 1 → 2, 0 → 3, 4 alone
    fn deps() -> Vec<Vec<usize>> {
        vec![vec![], vec![0], vec![1], vec![0], vec![]]
    }

    #[test]
    fn releases_tasks_in_dependency_order() {
        let mut q = DependencyQueue::new(&deps(), &[true; 5]);
        assert_eq!(q.pop(), Some(0));
        assert_eq!(q.pop(), Some(4));
        assert_eq!(q.pop(), None);
        assert!(q.finish(0, true).is_empty());
        assert_eq!(q.pop(), Some(1));
        assert_eq!(q.pop(), Some(3));
        q.finish(1, true);
        q.finish(3, true);
        q.finish(4, true);
        assert_eq!(q.pop(), Some(2));
        q.finish(2, true);
        assert!(q.is_finished());
    }

    #[test]
    fn failure_skips_transitive_dependents_only() {
        let mut q = DependencyQueue::new(&deps(), &[true; 5]);
        q.pop();
        q.pop();
        let mut s = q.finish(0, false);
        s.sort_by_key(|x| x.0);
        assert_eq!(
            s,
            vec![
                (1, Skip::DependencyFailed(0)),
                (2, Skip::DependencyFailed(0)),
                (3, Skip::DependencyFailed(0))
            ]
        );
        q.finish(4, true);
        assert!(q.is_finished());
    }

    #[test]
    fn only_wanted_tasks_run() {
        let mut q = DependencyQueue::new(&deps(), &[true, true, false, false, false]);
        assert_eq!(q.pop(), Some(0));
        q.finish(0, true);
        assert_eq!(q.pop(), Some(1));
        q.finish(1, true);
        assert!(q.is_finished());
    }

    #[test]
    fn abandon_skips_everything_not_started() {
        let mut q = DependencyQueue::new(&deps(), &[true; 5]);
        q.pop();
        let s = q.abandon(Skip::Stopped);
        assert_eq!(s.len(), 4);
        q.finish(0, true);
        assert!(q.is_finished());
    }

    fn run_all(keep_going: bool, fail: usize) -> (Vec<usize>, Vec<(usize, Skip)>) {
        let ran = Mutex::new(Vec::new());
        let mut skipped = Vec::new();
        execute(
            &Tasks {
                deps: &deps(),
                wanted: &[true; 5],
                heavy: &[false, true, false, true, false],
            },
            &Options {
                jobs: 2,
                keep_going,
            },
            &|| false,
            &|i| {
                ran.lock().unwrap().push(i);
                i != fail
            },
            &|_| None,
            &|| {},
            &mut |i, s| skipped.push((i, s)),
        );
        let mut ran = ran.into_inner().unwrap();
        ran.sort();
        skipped.sort_by_key(|x| x.0);
        (ran, skipped)
    }

    #[test]
    fn executes_everything_once() {
        let (ran, skipped) = run_all(true, 99);
        assert_eq!(ran, vec![0, 1, 2, 3, 4]);
        assert!(skipped.is_empty());
    }

    /// Tasks 0 and 1 are ready together; 2 needs only 1. While 0 runs
    /// long, 2 must start: the batch of 0 and 1 is not said done as one.
    #[test]
    fn a_long_task_holds_back_no_dependent_of_a_short_one() {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::time::{Duration, Instant};
        let started = AtomicBool::new(false);
        let overlapped = AtomicBool::new(false);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(4)
            .build()
            .unwrap();
        pool.install(|| {
            execute(
                &Tasks {
                    deps: &[vec![], vec![], vec![1]],
                    wanted: &[true; 3],
                    heavy: &[false; 3],
                },
                &Options {
                    jobs: 1,
                    keep_going: false,
                },
                &|| false,
                &|i| {
                    match i {
                        0 => {
                            let end = Instant::now() + Duration::from_secs(10);
                            while !started.load(Ordering::SeqCst) && Instant::now() < end {
                                std::thread::sleep(Duration::from_millis(1));
                            }
                            overlapped.store(started.load(Ordering::SeqCst), Ordering::SeqCst);
                        }
                        2 => started.store(true, Ordering::SeqCst),
                        _ => {}
                    }
                    true
                },
                &|_| None,
                &|| {},
                &mut |_, _| {},
            )
        });
        assert!(
            overlapped.load(Ordering::SeqCst),
            "task 2 waited for task 0, which it does not need"
        );
    }

    /// Heavy tasks whose records hold are done on the loop's thread: none
    /// is run, so no heavy thread starts.
    #[test]
    fn heavy_tasks_decided_quickly_are_never_run() {
        let ran = Mutex::new(Vec::new());
        let threads = Mutex::new(Vec::new());
        execute(
            &Tasks {
                deps: &[vec![], vec![0], vec![1]],
                wanted: &[true; 3],
                heavy: &[true, true, false],
            },
            &Options {
                jobs: 2,
                keep_going: false,
            },
            &|| false,
            &|i| {
                ran.lock().unwrap().push(i);
                true
            },
            &|i| {
                threads
                    .lock()
                    .unwrap()
                    .push(std::thread::current().name().map(String::from));
                (i < 2).then_some(true)
            },
            &|| {},
            &mut |_, _| {},
        );
        assert_eq!(ran.into_inner().unwrap(), vec![2]);
        assert!(threads
            .into_inner()
            .unwrap()
            .iter()
            .all(|t| !t.as_deref().unwrap_or_default().starts_with("ddc-heavy")));
    }

    /// Heavy tasks that must run use at most `jobs` threads at once, and
    /// more than one when there is more than one task.
    #[test]
    fn heavy_tasks_run_at_most_jobs_at_once() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let (now, most, count) = (
            AtomicUsize::new(0),
            AtomicUsize::new(0),
            AtomicUsize::new(0),
        );
        execute(
            &Tasks {
                deps: &vec![vec![]; 6],
                wanted: &[true; 6],
                heavy: &[true; 6],
            },
            &Options {
                jobs: 2,
                keep_going: false,
            },
            &|| false,
            &|_| {
                let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(n, Ordering::SeqCst);
                std::thread::sleep(std::time::Duration::from_millis(30));
                now.fetch_sub(1, Ordering::SeqCst);
                count.fetch_add(1, Ordering::SeqCst);
                true
            },
            &|_| None,
            &|| {},
            &mut |_, _| {},
        );
        assert_eq!(count.into_inner(), 6);
        assert_eq!(most.into_inner(), 2);
    }

    #[test]
    fn keep_going_lets_independent_work_finish() {
        let (ran, skipped) = run_all(true, 1);
        assert_eq!(ran, vec![0, 1, 3, 4]);
        assert_eq!(skipped, vec![(2, Skip::DependencyFailed(1))]);
    }
}
