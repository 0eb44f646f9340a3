//! The state machine's unit tests: batches, verdicts, rollback, resume and
//! timeouts, with a fake clock and fake reports.

use std::collections::BTreeMap;

use super::*;

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn gen(g: &str) -> Gen {
    Gen {
        image: "default".into(),
        generation: g.into(),
    }
}

const OLD: &str = "0001-aaaaaaaaaaaa";
const NEW: &str = "0002-bbbbbbbbbbbb";

fn params(size: Size, max_failed: usize, rollback: bool) -> Params {
    Params {
        image: None,
        canaries: vec![],
        size,
        timeout_ms: 600_000,
        max_failed,
        rollback,
    }
}

/// A machine over `hosts`, batched as `batches` would.
fn machine(hosts: &[&str], size: Size, max_failed: usize, rollback: bool) -> Machine {
    let p = params(size, max_failed, rollback);
    let mut nodes = Vec::new();
    for (b, batch) in batches(&names(hosts), &[], size).into_iter().enumerate() {
        for name in batch {
            nodes.push(NodeRun {
                name,
                batch: b,
                from: gen(OLD),
                to: gen(NEW),
                phase: Phase::Forward,
                state: NodeState::Pending,
                reboot_at: None,
                why: None,
            });
        }
    }
    Machine::new(nodes, &p, 0, Stage::Forward)
}

/// What the fake nodes report: name → (generation, booted at, failed units).
type Reports = BTreeMap<String, (String, i64, Vec<String>)>;

fn seen(r: &Reports) -> impl Fn(&NodeRun) -> Option<Seen> + '_ {
    |n: &NodeRun| {
        r.get(&n.name).map(|(g, at, units)| Seen {
            up: true,
            running: Some(gen(g)),
            failed_units: units.clone(),
            booted_at: Some(*at),
        })
    }
}

fn name_of(m: &Machine, v: &[usize]) -> Vec<String> {
    v.iter().map(|&i| m.nodes[i].name.clone()).collect()
}

/// What a rebooted node reports, from its name and goal generation.
type Then = dyn Fn(&str, &str) -> Option<(String, Vec<String>)>;

/// Runs `m` to its end: every reboot issued at once, and each rebooted node
/// reporting `then(name)` (a generation and failed units; None: nothing) a
/// second later. Returns the log of actions by name.
fn drive(m: &mut Machine, then: &Then) -> Vec<String> {
    let mut reports = Reports::new();
    let mut log = Vec::new();
    let mut now = 1_000;
    for _ in 0..1000 {
        let actions = m.step(now, &seen(&reports));
        for a in &actions {
            match a {
                Action::Reboot(v) => {
                    for &i in v {
                        let n = &m.nodes[i];
                        log.push(format!("reboot {}", n.name));
                        if let Some((g, units)) = then(&n.name, &n.goal().generation) {
                            reports.insert(n.name.clone(), (g, now + 1, units));
                        }
                    }
                    for &i in v {
                        m.issued(i, Ok(()));
                    }
                }
                Action::Up(i) => log.push(format!("up {}", m.nodes[*i].name)),
                Action::Failed(i) => log.push(format!("failed {}", m.nodes[*i].name)),
                Action::BatchDone(b) => log.push(format!("batch {b}")),
                Action::Pin(v) => {
                    log.push(format!("pin {}", name_of(m, v).join(",")));
                    m.pinned();
                }
                Action::Finish(o) => {
                    log.push(format!("finish {}", o.as_str()));
                    return log;
                }
            }
        }
        now += 5_000;
    }
    panic!("did not finish: {log:?}");
}

fn healthy(_: &str, goal: &str) -> Option<(String, Vec<String>)> {
    Some((goal.to_string(), vec![]))
}

#[test]
fn batches_by_count_put_the_canary_first() {
    let hosts = names(&["n10", "n2", "n1", "n3", "n4"]);
    assert_eq!(
        batches(&hosts, &[], Size::Count(2)),
        vec![names(&["n1"]), names(&["n2", "n3"]), names(&["n4", "n10"])]
    );
    assert_eq!(
        batches(&hosts, &names(&["n4", "n10"]), Size::Count(0)),
        vec![
            names(&["n4", "n10"]),
            names(&["n1"]),
            names(&["n2"]),
            names(&["n3"])
        ]
    );
    assert!(batches(&[], &[], Size::Count(1)).is_empty());
    assert_eq!(
        batches(&names(&["a"]), &[], Size::Count(5)),
        vec![names(&["a"])]
    );
}

#[test]
fn batches_by_percent_round_down_and_hold_at_least_one() {
    let hosts: Vec<String> = (1..=25).map(|i| format!("n{i:02}")).collect();
    // 10% of 25 is 2.5: 2 a batch; 24 after the canary: 12 batches.
    let b = batches(&hosts, &[], Size::Percent(10));
    assert_eq!(b.len(), 13);
    assert!(b[1..].iter().all(|x| x.len() == 2), "{b:?}");
    // 1% of 25 is 0.25: still 1 a batch.
    assert_eq!(batches(&hosts, &[], Size::Percent(1)).len(), 25);
    assert_eq!(batches(&hosts, &[], Size::Percent(100)).len(), 2);
    assert_eq!(Size::Percent(50).of(3), 1);
    assert_eq!(Size::Count(0).of(3), 1);
}

#[test]
fn batches_move_one_after_another_all_up() {
    let mut m = machine(&["n1", "n2", "n3"], Size::Count(1), 0, false);
    let log = drive(&mut m, &healthy);
    assert_eq!(
        log,
        [
            "reboot n1",
            "up n1",
            "batch 0",
            "reboot n2",
            "up n2",
            "batch 1",
            "reboot n3",
            "up n3",
            "batch 2",
            "finish succeeded"
        ]
    );
    assert!(m.nodes.iter().all(|n| n.state == NodeState::Up));
}

#[test]
fn a_failed_canary_stops_and_later_nodes_are_never_touched() {
    let mut m = machine(&["n1", "n2", "n3"], Size::Count(2), 0, false);
    let log = drive(&mut m, &|n, g| {
        Some((
            g.to_string(),
            if n == "n1" {
                names(&["x.service"])
            } else {
                vec![]
            },
        ))
    });
    assert_eq!(log, ["reboot n1", "failed n1", "finish failed"]);
    assert_eq!(
        m.nodes[0].why.as_deref(),
        Some("booted 0002-bbbbbbbbbbbb with failed units: x.service")
    );
    assert_eq!(name_of(&m, &m.untouched()), ["n2", "n3"]);
}

#[test]
fn max_failed_lets_a_batch_with_that_many_failures_pass() {
    let broken = |n: &str, g: &str| (n != "n3").then(|| (g.to_string(), vec![]));
    let mut m = machine(&["n1", "n2", "n3", "n4", "n5"], Size::Count(2), 1, false);
    let log = drive(&mut m, &broken);
    assert_eq!(
        log,
        [
            "reboot n1",
            "up n1",
            "batch 0",
            "reboot n2",
            "reboot n3",
            "up n2",
            "failed n3",
            "batch 1",
            "reboot n4",
            "reboot n5",
            "up n4",
            "up n5",
            "batch 2",
            "finish succeeded"
        ]
    );
    // With 0 allowed, the same batch stops it.
    let mut m = machine(&["n1", "n2", "n3", "n4", "n5"], Size::Count(2), 0, false);
    let log = drive(&mut m, &broken);
    assert_eq!(log.last().unwrap(), "finish failed");
    assert_eq!(name_of(&m, &m.untouched()), ["n4", "n5"]);
}

#[test]
fn a_node_that_never_reports_fails_at_the_timeout() {
    let mut m = machine(&["n1"], Size::Count(1), 0, false);
    m.timeout_ms = 10_000;
    let a = m.step(0, &|_| None);
    assert_eq!(a, [Action::Reboot(vec![0])]);
    m.issued(0, Ok(()));
    assert_eq!(m.step(9_999, &|_| None), []);
    assert_eq!(m.nodes[0].state, NodeState::Waiting);
    assert_eq!(
        m.step(10_000, &|_| None),
        [Action::Failed(0), Action::Finish(Outcome::Failed)]
    );
    assert_eq!(
        m.nodes[0].why.as_deref(),
        Some("did not report up on 0002-bbbbbbbbbbbb within 10s")
    );
}

#[test]
fn only_a_report_of_a_boot_after_the_reboot_counts() {
    let mut m = machine(&["n1"], Size::Count(1), 0, false);
    m.step(100, &|_| None);
    m.issued(0, Ok(()));
    // Up on the target, but booted before the reboot: still waiting.
    let before = |_: &NodeRun| {
        Some(Seen {
            up: true,
            running: Some(gen(NEW)),
            failed_units: vec![],
            booted_at: Some(50),
        })
    };
    assert_eq!(m.step(200, &before), []);
    // Booted since, but on another generation: failed at once.
    let wrong = |_: &NodeRun| {
        Some(Seen {
            up: true,
            running: Some(gen(OLD)),
            failed_units: vec![],
            booted_at: Some(150),
        })
    };
    assert_eq!(
        m.step(300, &wrong),
        [Action::Failed(0), Action::Finish(Outcome::Failed)]
    );
}

#[test]
fn a_reboot_that_cannot_be_issued_fails_the_node() {
    let mut m = machine(&["n1", "n2"], Size::Count(1), 0, false);
    m.step(0, &|_| None);
    m.issued(0, Err("no answer".into()));
    assert_eq!(m.step(1, &|_| None), [Action::Finish(Outcome::Failed)]);
    assert_eq!(
        m.nodes[0].why.as_deref(),
        Some("could not be rebooted: no answer")
    );
}

#[test]
fn rollback_pins_the_failed_nodes_and_waits_for_their_old_generation() {
    let mut m = machine(&["n1", "n2", "n3"], Size::Count(5), 0, true);
    // n2 and n3 (batch 1) fail on the new generation, come back on the old.
    let log = drive(&mut m, &|n, g| {
        let units = if n != "n1" && g == NEW {
            names(&["x.service"])
        } else {
            vec![]
        };
        Some((g.to_string(), units))
    });
    assert_eq!(
        log,
        [
            "reboot n1",
            "up n1",
            "batch 0",
            "reboot n2",
            "reboot n3",
            "failed n2",
            "failed n3",
            "pin n2,n3",
            "reboot n2",
            "reboot n3",
            "up n2",
            "up n3",
            "finish failed"
        ]
    );
    let shown: Vec<&str> = m.nodes.iter().map(NodeRun::shown_state).collect();
    assert_eq!(shown, ["up", "rolled_back", "rolled_back"]);
    assert_eq!(m.nodes[1].goal(), &gen(OLD));
}

#[test]
fn a_rollback_that_does_not_come_up_is_a_failed_rollback() {
    let mut m = machine(&["n1"], Size::Count(1), 0, true);
    let log = drive(&mut m, &|_, g| {
        (g == NEW).then(|| (g.to_string(), names(&["x"])))
    });
    assert_eq!(
        log,
        [
            "reboot n1",
            "failed n1",
            "pin n1",
            "reboot n1",
            "failed n1",
            "finish failed"
        ]
    );
    assert_eq!(m.nodes[0].shown_state(), "rollback_failed");
}

#[test]
fn resuming_after_a_recorded_reboot_never_reboots_again() {
    let mut m = machine(&["n1", "n2"], Size::Count(1), 0, false);
    assert_eq!(m.step(1_000, &|_| None), [Action::Reboot(vec![0])]);
    assert_eq!(m.take_changed(), [0]);
    // Killed here: "rebooting" was saved, the reboot maybe issued. Read back:
    let stored = m.nodes.clone();
    let mut r = Machine::new(stored, &params(Size::Count(1), 0, false), 0, Stage::Forward);
    assert_eq!(r.nodes[0].state, NodeState::Rebooting);
    // No report yet: no reboot again, only waiting.
    assert_eq!(r.step(2_000, &|_| None), []);
    let up = |n: &NodeRun| {
        (n.name == "n1").then(|| Seen {
            up: true,
            running: Some(gen(NEW)),
            failed_units: vec![],
            booted_at: Some(1_500),
        })
    };
    assert_eq!(
        r.step(3_000, &up),
        [Action::Up(0), Action::BatchDone(0), Action::Reboot(vec![1])]
    );
    // Resumed while pinning: the pin is asked again (it is idempotent).
    let mut p = machine(&["n1"], Size::Count(1), 0, true);
    p.stage = Stage::Pinning;
    p.nodes[0].state = NodeState::Failed;
    assert_eq!(p.step(0, &|_| None), [Action::Pin(vec![0])]);
}

#[test]
fn an_interrupted_batch_leaves_unstarted_reboots_pending() {
    let mut m = machine(&["n1", "n2", "n3"], Size::Count(2), 0, false);
    m.step(0, &|_| None);
    m.issued(0, Ok(()));
    assert_eq!(
        m.step(1, &healthy_seen),
        [
            Action::Up(0),
            Action::BatchDone(0),
            Action::Reboot(vec![1, 2])
        ]
    );
    m.issued(1, Ok(()));
    m.not_issued(2);
    assert_eq!(m.nodes[2].state, NodeState::Pending);
    assert_eq!(m.nodes[2].reboot_at, None);
}

fn healthy_seen(n: &NodeRun) -> Option<Seen> {
    Some(Seen {
        up: true,
        running: Some(n.goal().clone()),
        failed_units: vec![],
        booted_at: Some(n.reboot_at.unwrap_or(0) + 1),
    })
}

#[test]
fn durations_read_well() {
    assert_eq!(shown_duration(600_000), "10m");
    assert_eq!(shown_duration(90_000), "1m30s");
    assert_eq!(shown_duration(3_600_000), "1h");
    assert_eq!(shown_duration(0), "0s");
}
