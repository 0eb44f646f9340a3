//! Which nodes a rollout moves (those whose running generation differs
//! from their entry's; the never seen, silent and booting ones are skipped
//! with the reason), and the checks of a plan before anything is rebooted:
//! every node has a way to be rebooted, the canaries are among the nodes
//! moved, the BMC credentials are usable, and with a rollback every node
//! can be pinned (it is a row of the nodes_file CSV).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use crate::bmc::{self, Credentials};
use crate::config::Config;
use crate::error::NotStarted;
use crate::names;
use crate::nodestate::{NodeRow, State};
use crate::rollout::{Gen, Machine, Params};

/// How a node is rebooted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Method {
    /// `ipmitool … chassis power cycle` on its BMC.
    Bmc,
    /// `ssh root@IP systemctl reboot`.
    Ssh,
}

impl Method {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Method::Bmc => "bmc",
            Method::Ssh => "ssh",
        }
    }

    pub(super) fn shown(self) -> &'static str {
        match self {
            Method::Bmc => "through the BMC (ipmitool chassis power cycle)",
            Method::Ssh => "over ssh (ssh root@IP systemctl reboot)",
        }
    }
}

/// A node to move.
pub(super) struct Candidate {
    pub(super) name: String,
    pub(super) from: Gen,
    pub(super) to: Gen,
}

/// A node not moved, and why.
pub(super) struct Skip {
    pub(super) node: String,
    /// `never seen`, `silent`, `booting`, `no generation`.
    pub(super) reason: &'static str,
    pub(super) last_seen: Option<i64>,
}

pub(super) struct Selection {
    pub(super) moving: Vec<Candidate>,
    pub(super) skipped: Vec<Skip>,
    /// How many nodes already run their entry's generation.
    pub(super) on_target: usize,
}

/// The nodes (of `params.image`, or all) whose running generation differs
/// from their entry's.
pub(super) fn select(
    cfg: &Config,
    rows: &BTreeMap<String, NodeRow>,
    params: &Params,
    now: i64,
) -> Result<Selection, NotStarted> {
    if let Some(image) = &params.image {
        if !cfg.images.contains_key(image) {
            return Err(NotStarted(format!(
                "no image {image:?} in the Ddcfile; images: {}",
                cfg.images.keys().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
    }
    for c in &params.canaries {
        if !cfg.nodes.iter().any(|n| &n.hostname == c) {
            return Err(NotStarted(format!(
                "--canary {c}: no node {c:?} in the Ddcfile or its nodes_file"
            )));
        }
    }
    let mut sel = Selection {
        moving: Vec::new(),
        skipped: Vec::new(),
        on_target: 0,
    };
    let empty = NodeRow::default();
    for node in &cfg.nodes {
        if params.image.as_ref().is_some_and(|i| *i != node.image) {
            continue;
        }
        let row = rows.get(&node.hostname).unwrap_or(&empty);
        let skip = |reason| Skip {
            node: node.hostname.clone(),
            reason,
            last_seen: row.last_seen(),
        };
        let Some(target) = super::super::status::target(cfg, node) else {
            sel.skipped.push(skip("no generation"));
            continue;
        };
        let state = row.state(now, cfg.server.heartbeat);
        let report = match (state, &row.report) {
            (State::Up, Some(r)) => r,
            (State::NeverSeen, _) | (_, None) => {
                sel.skipped.push(skip("never seen"));
                continue;
            }
            (State::Booting, _) => {
                sel.skipped.push(skip("booting"));
                continue;
            }
            (_, _) => {
                sel.skipped.push(skip("silent"));
                continue;
            }
        };
        if report.generation == target && report.image == node.image {
            sel.on_target += 1;
            continue;
        }
        sel.moving.push(Candidate {
            name: node.hostname.clone(),
            from: Gen {
                image: report.image.clone(),
                generation: report.generation.clone(),
            },
            to: Gen {
                image: node.image.clone(),
                generation: target,
            },
        });
    }
    for c in &params.canaries {
        if !sel.moving.iter().any(|m| &m.name == c) {
            let why = match sel.skipped.iter().find(|s| &s.node == c) {
                Some(s) => format!("it is skipped ({})", s.reason),
                None => "it already runs its entry's generation".to_string(),
            };
            return Err(NotStarted(format!(
                "--canary {c}: {c} is not among the nodes to reboot: {why}"
            )));
        }
    }
    Ok(sel)
}

/// How each node of a rollout is rebooted, and the BMC credentials.
pub(super) struct Plan {
    /// By the machine's node index.
    pub(super) methods: Vec<Method>,
    pub(super) creds: Option<Credentials>,
}

impl Plan {
    /// Checks a new rollout's plan: every node can be rebooted, and pinned
    /// if a rollback may be needed; the BMC credentials are usable.
    pub(super) fn new(
        cfg: &Config,
        m: &Machine,
        params: &Params,
        file: &Path,
        dry_run: bool,
    ) -> Result<Plan, NotStarted> {
        let index: HashMap<&str, usize> = cfg
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.hostname.as_str(), i))
            .collect();
        let mut methods = Vec::new();
        let mut no_way = Vec::new();
        let mut problems = Vec::new();
        for n in &m.nodes {
            let node = index.get(n.name.as_str()).map(|&i| &cfg.nodes[i]);
            let image = node.and_then(|x| cfg.images.get(&x.image));
            match (node, image) {
                (Some(x), _) if x.bmc.is_some() => methods.push(Method::Bmc),
                (_, Some(i)) if !i.ssh_authorized_keys.is_empty() => methods.push(Method::Ssh),
                _ => {
                    no_way.push(n.name.clone());
                    methods.push(Method::Ssh);
                }
            }
        }
        if !no_way.is_empty() {
            problems.push(format!(
                "cannot reboot {}: no bmc, and their image sets no ssh_authorized_keys; give each \
                 node bmc = \"ADDR[:PORT]\" (in its [[nodes]] table or the nodes_file's bmc \
                 column) with a [power] table, or set ssh_authorized_keys in its [images.IMG] \
                 table (ddc reboots it with ssh root@IP systemctl reboot)",
                names::fold(&no_way)
            ));
        }
        if params.rollback {
            let fixed: Vec<String> = m
                .nodes
                .iter()
                .filter_map(|n| {
                    let i = *index.get(n.name.as_str())?;
                    let o = &cfg.node_origins[i];
                    (!o.csv).then(|| format!("{} ({})", n.name, o.shown(cfg)))
                })
                .collect();
            let ranged: Vec<String> = m
                .nodes
                .iter()
                .filter_map(|n| {
                    let o = &cfg.node_origins[*index.get(n.name.as_str())?];
                    let r = o.range.as_ref().filter(|_| o.csv)?;
                    Some(format!("{} (of {r}, {})", n.name, o.shown(cfg)))
                })
                .collect();
            if !ranged.is_empty() {
                problems.push(format!(
                    "--rollback-on-failure pins a failed node back in its own CSV row, but these \
                     are counted from a range row: {}; split the range into rows of their own, \
                     or roll out without --rollback-on-failure",
                    ranged.join(", ")
                ));
            }
            if !fixed.is_empty() {
                problems.push(format!(
                    "--rollback-on-failure pins a failed node back in the nodes_file CSV, but \
                     these are defined in [[nodes]] tables of the Ddcfile: {}; move them to the \
                     CSV (`ddc node add`), or roll out without --rollback-on-failure",
                    fixed.join(", ")
                ));
            }
        }
        let creds = credentials(cfg, &methods, file, !dry_run, &mut problems);
        if problems.is_empty() {
            Ok(Plan { methods, creds })
        } else {
            Err(NotStarted(problems.join("\n")))
        }
    }

    /// The plan of a stored rollout: its methods as stored.
    pub(super) fn resumed(
        cfg: &Config,
        methods: Vec<String>,
        file: &Path,
    ) -> Result<Plan, NotStarted> {
        let methods: Vec<Method> = methods
            .iter()
            .map(|m| if m == "bmc" { Method::Bmc } else { Method::Ssh })
            .collect();
        let mut problems = Vec::new();
        let creds = credentials(cfg, &methods, file, true, &mut problems);
        if problems.is_empty() {
            Ok(Plan { methods, creds })
        } else {
            Err(NotStarted(problems.join("\n")))
        }
    }
}

/// The BMC credentials, when any node is rebooted through its BMC.
fn credentials(
    cfg: &Config,
    methods: &[Method],
    file: &Path,
    need_program: bool,
    problems: &mut Vec<String>,
) -> Option<Credentials> {
    if need_program && methods.contains(&Method::Ssh) && crate::process::which("ssh").is_none() {
        problems.push(
            "ssh is not installed (or not in PATH), and nodes without a bmc are rebooted with it: \
             install it (apt-get install openssh-client)"
                .into(),
        );
    }
    if !methods.contains(&Method::Bmc) {
        return None;
    }
    let shown = file.display().to_string();
    match bmc::credentials(&cfg.power, &shown, need_program) {
        Ok(c) => Some(c),
        Err(e) => {
            problems.push(e);
            None
        }
    }
}
