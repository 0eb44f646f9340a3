//! `ddc discover`: lists the machines `ddc serve` recorded because they
//! asked for an iPXE script without being in the inventory (the node-state
//! database's `discovered` table, read through `nodestate`; a machine whose
//! MAC is in the inventory now is left out), and with `--add NAMES` gives
//! them hostnames, in order of first seen, and the next free addresses of
//! the cluster network, appending their rows to the `nodes_file` CSV with
//! `config::edit` (every other byte kept) after validating the whole config
//! with them. Never touches the Ddcfile. Must not import `cli`.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::Path;

use ipnet::Ipv4Net;

use crate::config::{self, edit::Inventory, range::Range, Config};
use crate::error::{Error, NotStarted};
use crate::fsutil;
use crate::nodestate::{self, Discovered, Store};

/// What `ddc discover` was asked.
pub(crate) struct Options {
    /// Hostnames to give: names, `node{03..10}` or `node[03-10]` each.
    pub(crate) add: Vec<String>,
    /// The image of the rows added.
    pub(crate) image: Option<String>,
    /// Print the plan; write nothing.
    pub(crate) dry_run: bool,
    /// One JSON object per line.
    pub(crate) json: bool,
}

/// One machine given a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Assigned {
    pub(crate) hostname: String,
    pub(crate) mac: String,
    pub(crate) ip: Ipv4Addr,
}

fn refuse(msg: String) -> Error {
    NotStarted(msg).into()
}

/// How a machine gets into the list, for an empty one.
const HOW: &str = "`ddc serve` records a machine that is not in the inventory when it asks for \
its iPXE script (ipxe/boot.ipxe calls /api/v1/unknown): machines booting iPXE (firmware with \
iPXE, or a subnet whose default method is ipxe) reach it. Start `ddc serve`, boot the machines, \
then run `ddc discover` again";

pub(crate) fn run(file: &Path, o: Options) -> Result<(), Error> {
    let mut cfg = config::load(file)?;
    // An append holds the inventory lock from reading the inventory (which
    // decides the free addresses) to writing it.
    let _lock = match o.add.is_empty() || o.dry_run {
        true => None,
        false => {
            let lock = super::node::lock_inventory(&cfg)?;
            cfg = config::load(file)?;
            Some(lock)
        }
    };
    let db = crate::serve::db_path(&cfg);
    let store = Store::open_existing(&db)?;
    let seen = match &store {
        Some(s) => s.discovered()?,
        None => Vec::new(),
    };
    drop(store);
    let known: BTreeSet<&str> = cfg.nodes.iter().map(|n| n.mac.as_str()).collect();
    let waiting: Vec<Discovered> = seen
        .into_iter()
        .filter(|d| !known.contains(d.mac.as_str()))
        .collect();
    if o.add.is_empty() {
        list(&waiting, db.exists(), o.json);
        return Ok(());
    }
    add(file, &cfg, &waiting, &o)
}

fn list(waiting: &[Discovered], db: bool, json: bool) {
    if json {
        for d in waiting {
            let v = serde_json::json!({
                "mac": d.mac,
                "first_seen": nodestate::rfc3339(d.first_seen),
                "last_seen": nodestate::rfc3339(d.last_seen),
                "ip": d.ip,
                "platform": d.platform,
                "arch": d.arch,
            });
            println!("{v}");
        }
        return;
    }
    if waiting.is_empty() {
        let what = if db {
            "no machine outside the inventory has asked to boot"
        } else {
            "none seen yet (no node-state database)"
        };
        println!("{what}; {HOW}");
        return;
    }
    println!(
        "{:<17}  {:<20}  {:<20}  {:<15}  platform/arch",
        "mac", "first seen", "last seen", "ip"
    );
    for d in waiting {
        println!(
            "{:<17}  {:<20}  {:<20}  {:<15}  {}/{}",
            d.mac,
            nodestate::rfc3339(d.first_seen),
            nodestate::rfc3339(d.last_seen),
            d.ip,
            d.platform,
            d.arch
        );
    }
    println!(
        "{} machine{} not in the inventory; `ddc discover --add NAMES` (like 'node{{03..10}}') names them in this order",
        waiting.len(),
        if waiting.len() == 1 { "" } else { "s" },
    );
}

/// The hostnames `specs` stand for, in order: `node{03..10}` and
/// `node[03-10]` count (zero-padded when the first number is), anything
/// else is one name.
pub(crate) fn names(specs: &[String]) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for s in specs {
        let spec = match (s.find('{'), s.find('}')) {
            (Some(a), Some(b)) if a < b && s[a + 1..b].contains("..") => {
                format!(
                    "{}[{}]{}",
                    &s[..a],
                    s[a + 1..b].replacen("..", "-", 1),
                    &s[b + 1..]
                )
            }
            _ => s.clone(),
        };
        match Range::parse(&spec) {
            None if s.contains(['{', '}']) => {
                return Err(format!(
                    "{s:?} is not a host range (expected a name with one {{FIRST..LAST}} or [FIRST-LAST] of decimal numbers, like node{{03..10}})"
                ))
            }
            None => out.push(s.clone()),
            Some(Err(e)) => return Err(e.replace(&format!("{spec:?}"), &format!("{s:?}"))),
            Some(Ok(r)) => out.extend((0..r.len()).map(|i| r.name(i))),
        }
    }
    let mut seen = BTreeSet::new();
    if let Some(d) = out.iter().find(|n| !seen.insert(n.to_ascii_lowercase())) {
        return Err(format!("{d:?} is given twice"));
    }
    Ok(out)
}

/// The addresses of the cluster network no node may take: the master,
/// the gateway, the DNS servers, where `ddc serve` listens, every node's
/// address and BMC.
fn taken(cfg: &Config) -> BTreeSet<Ipv4Addr> {
    let c = &cfg.cluster;
    let mut t: BTreeSet<Ipv4Addr> = cfg.nodes.iter().map(|n| n.ip).collect();
    t.insert(c.master);
    t.extend(c.gateway);
    t.extend(c.dns.iter().copied());
    t.insert(*cfg.server.http.ip());
    t.extend(
        cfg.nodes
            .iter()
            .filter_map(|n| n.bmc.as_ref()?.host.parse::<Ipv4Addr>().ok()),
    );
    t
}

/// `count` free addresses of `cfg`'s cluster network (see [`free_in`]),
/// counting up from the highest node address (the master's when there are
/// no nodes).
pub(crate) fn free_ips(cfg: &Config, count: usize) -> Vec<Ipv4Addr> {
    let net = cfg.cluster.network;
    let from = cfg
        .nodes
        .iter()
        .map(|n| n.ip)
        .filter(|ip| net.contains(ip))
        .max()
        .unwrap_or(cfg.cluster.master);
    // The discovery range is leased to unknown machines: never a node's.
    let leased = |ip: Ipv4Addr| cfg.server.discovery.is_some_and(|d| d.contains(ip));
    free_in(net, &taken(cfg), from, count, &leased)
}

/// `count` addresses of `net`: up from `from`, then up from the bottom of
/// the network; never the network or broadcast address nor one of
/// `taken` nor one `leased` says is. Fewer when the network is full.
fn free_in(
    net: Ipv4Net,
    taken: &BTreeSet<Ipv4Addr>,
    from: Ipv4Addr,
    count: usize,
    leased: &dyn Fn(Ipv4Addr) -> bool,
) -> Vec<Ipv4Addr> {
    let (lo, hi) = (u32::from(net.network()), u32::from(net.broadcast()));
    let from = u32::from(from).clamp(lo, hi);
    let usable = |a: &u32| {
        let ip = Ipv4Addr::from(*a);
        *a > lo && *a < hi && !taken.contains(&ip) && !leased(ip)
    };
    (from..hi)
        .chain(lo..from)
        .filter(usable)
        .take(count)
        .map(Ipv4Addr::from)
        .collect()
}

fn add(file: &Path, cfg: &Config, waiting: &[Discovered], o: &Options) -> Result<(), Error> {
    let Some(csv) = cfg.nodes_file.clone() else {
        return Err(refuse(format!(
            "{} names no nodes_file: `ddc discover --add` appends rows to the CSV inventory and never rewrites {}. \
To keep nodes in a CSV, add nodes_file = \"nodes.csv\" at the top of {} (before any [table]) and create nodes.csv with the header row {}; \
or add each machine by hand to a [[nodes]] table with the MAC `ddc discover` lists",
            file.display(),
            file.display(),
            file.display(),
            config::columns::names()
        )));
    };
    let names = names(&o.add).map_err(refuse)?;
    for n in &names {
        if let Some(i) = cfg
            .nodes
            .iter()
            .position(|x| x.hostname.eq_ignore_ascii_case(n))
        {
            return Err(refuse(format!(
                "node {n:?} is already in {}: pick hostnames not in the inventory (`ddc nodes` lists them)",
                cfg.node_origins[i].shown(cfg)
            )));
        }
    }
    if waiting.is_empty() {
        println!("no machine to add: none outside the inventory has asked to boot; {HOW}");
        return Ok(());
    }
    let want = names.len().min(waiting.len());
    let ips = free_ips(cfg, want);
    if ips.len() < want {
        return Err(refuse(format!(
            "the cluster network {} has {} free address{} for {want} machine{}: widen [cluster] network, or add fewer",
            cfg.cluster.network,
            ips.len(),
            if ips.len() == 1 { "" } else { "es" },
            if want == 1 { "" } else { "s" },
        )));
    }
    let plan: Vec<Assigned> = names
        .iter()
        .zip(waiting)
        .zip(&ips)
        .map(|((h, d), ip)| Assigned {
            hostname: h.clone(),
            mac: d.mac.clone(),
            ip: *ip,
        })
        .collect();
    let shown = fsutil::shown(&csv, &cfg.base_dir);
    write(file, &csv, &shown, &plan, o)?;
    say(&plan, names.len(), waiting, &shown, o);
    Ok(())
}

/// Appends the rows of `plan` to the CSV at `csv`, validated first; with
/// `-n`, only validates them.
fn write(
    file: &Path,
    csv: &Path,
    shown: &str,
    plan: &[Assigned],
    o: &Options,
) -> Result<(), Error> {
    let image = o.image.as_deref();
    // A link is followed to the file it names, which is the one edited.
    let real = std::fs::canonicalize(csv).unwrap_or_else(|_| csv.to_path_buf());
    let bytes = std::fs::read(&real).map_err(|e| refuse(format!("cannot read {shown}: {e}")))?;
    let text =
        String::from_utf8(bytes).map_err(|_| refuse(format!("{shown} is not UTF-8 text")))?;
    let mut inv = Inventory::parse(&text).map_err(|e| refuse(format!("{shown}: {e}")))?;
    for a in plan {
        let ip = a.ip.to_string();
        inv.add(&[
            ("hostname", a.hostname.as_str()),
            ("mac", a.mac.as_str()),
            ("ip", ip.as_str()),
            ("image", image.unwrap_or_default()),
        ])
        .map_err(refuse)?;
    }
    if o.dry_run {
        return match config::check_with_inventory(file, inv.text().into_bytes()) {
            Ok(_) => Ok(()),
            Err(errors) => Err(refuse(format!(
                "{errors}\nthese rows would leave the config invalid: {shown} would not be written"
            ))),
        };
    }
    super::node::check_and_write(file, &real, shown, &text, inv.text())?;
    for s in &inv.said {
        // Beside the JSON lines, never among them.
        if o.json {
            eprintln!("{shown}: {s}");
        } else {
            println!("{shown}: {s}");
        }
    }
    Ok(())
}

/// Prints what was (or, with `-n`, would be) assigned, and what is left.
fn say(plan: &[Assigned], asked: usize, waiting: &[Discovered], shown: &str, o: &Options) {
    if o.json {
        for a in plan {
            let v = serde_json::json!({
                "hostname": a.hostname,
                "mac": a.mac,
                "ip": a.ip.to_string(),
                "image": o.image,
                "written": !o.dry_run,
            });
            println!("{v}");
        }
        return;
    }
    let verb = if o.dry_run { "would add" } else { "added" };
    for a in plan {
        println!("{shown}: {verb} {:<15} {}  {}", a.hostname, a.mac, a.ip);
    }
    if asked > plan.len() {
        println!(
            "{} name{} left unused: only {} machine{} waiting",
            asked - plan.len(),
            if asked - plan.len() == 1 { "" } else { "s" },
            waiting.len(),
            if waiting.len() == 1 { " was" } else { "s were" },
        );
    }
    if waiting.len() > plan.len() {
        println!(
            "{} machine{} still not in the inventory (`ddc discover` lists them)",
            waiting.len() - plan.len(),
            if waiting.len() - plan.len() == 1 {
                ""
            } else {
                "s"
            },
        );
    }
    if o.dry_run {
        println!("nothing written (-n)");
    } else {
        println!("run `ddc build` to write the boot entries and DHCP configs (`ddc build -n` shows what would run)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn ips(v: &[&str]) -> Vec<Ipv4Addr> {
        v.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn free_addresses_skip_the_taken_ones_and_wrap() {
        let net: Ipv4Net = "192.0.2.0/29".parse().unwrap();
        // .0 network, .7 broadcast; .1 master, .3 a node, .5 the highest node.
        let taken: BTreeSet<Ipv4Addr> = ips(&["192.0.2.1", "192.0.2.3", "192.0.2.5"])
            .into_iter()
            .collect();
        let from = "192.0.2.5".parse().unwrap();
        assert_eq!(
            free_in(net, &taken, from, 2, &|_| false),
            ips(&["192.0.2.6", "192.0.2.2"])
        );
        assert_eq!(
            free_in(net, &taken, from, 9, &|_| false),
            ips(&["192.0.2.6", "192.0.2.2", "192.0.2.4"]),
            "the network is full after three"
        );
        let full: Ipv4Net = "192.0.2.4/31".parse().unwrap();
        assert!(free_in(full, &BTreeSet::new(), from, 1, &|_| false).is_empty());
        // The discovery range (.6 here) is leased to unknown machines.
        let six: Ipv4Addr = "192.0.2.6".parse().unwrap();
        assert_eq!(
            free_in(net, &taken, from, 2, &|ip| ip == six),
            ips(&["192.0.2.2", "192.0.2.4"])
        );
    }

    #[test]
    fn names_count_braces_and_brackets() {
        assert_eq!(
            names(&strs(&["node{08..10}", "gpu[1-2]", "gamma"])).unwrap(),
            strs(&["node08", "node09", "node10", "gpu1", "gpu2", "gamma"])
        );
        assert!(names(&strs(&["n{5..3}"]))
            .unwrap_err()
            .contains("counts down"));
        assert!(names(&strs(&["n{a..b}"]))
            .unwrap_err()
            .starts_with("\"n{a..b}\" is not a host range"));
        assert!(names(&strs(&["n{1,2}"]))
            .unwrap_err()
            .contains("not a host range"));
        assert!(names(&strs(&["n1", "n{1..2}"]))
            .unwrap_err()
            .contains("\"n1\" is given twice"));
    }
}
