//! The scheduler's queue and execution, with no task doing real work.

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

/// Heavy tasks freed together after a heavy one (images after their
/// base) run side by side, up to `jobs`, though a thread is idle then.
#[test]
fn heavy_tasks_freed_together_run_side_by_side() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let (now, most) = (AtomicUsize::new(0), AtomicUsize::new(0));
    execute(
        &Tasks {
            deps: &[vec![], vec![0], vec![0], vec![0]],
            wanted: &[true; 4],
            heavy: &[true; 4],
        },
        &Options {
            jobs: 3,
            keep_going: false,
        },
        &|| false,
        &|_| {
            let n = now.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(n, Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(100));
            now.fetch_sub(1, Ordering::SeqCst);
            true
        },
        &|_| None,
        &|| {},
        &mut |_, _| {},
    );
    assert_eq!(most.into_inner(), 3);
}

/// A task that panics fails, its dependents are skipped, and the
/// execution ends: no thread waits for it.
#[test]
fn a_panicking_task_fails_and_the_execution_ends() {
    for heavy in [false, true] {
        let mut skipped = Vec::new();
        execute(
            &Tasks {
                deps: &[vec![], vec![0]],
                wanted: &[true; 2],
                heavy: &[heavy; 2],
            },
            &Options {
                jobs: 1,
                keep_going: true,
            },
            &|| false,
            &|i| if i == 0 { panic!("task 0") } else { true },
            &|_| None,
            &|| {},
            &mut |i, s| skipped.push((i, s)),
        );
        assert_eq!(
            skipped,
            vec![(1, Skip::DependencyFailed(0))],
            "heavy: {heavy}"
        );
    }
}

#[test]
fn keep_going_lets_independent_work_finish() {
    let (ran, skipped) = run_all(true, 1);
    assert_eq!(ran, vec![0, 1, 3, 4]);
    assert_eq!(skipped, vec![(2, Skip::DependencyFailed(1))]);
}
