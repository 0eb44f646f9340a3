//! The Ddcfile's error messages as exact-text tables, and properties that
//! must hold for any input (no panics, only safe values get through).

use super::validate::is_dns_label;
use super::*;

const BASE: &str = r#"[cluster]
network = "192.0.2.0/24"
master = "192.0.2.1"

[images.default]
suite = "bookworm"
packages = ["linux-image-amd64"]

[[nodes]]
hostname = "node01"
mac = "52:54:00:12:34:56"
ip = "192.0.2.11"
"#;

fn parse_str(text: &str) -> Result<Config, ConfigErrors> {
    parse(text, "Ddcfile.toml", Path::new("/nonexistent"), &|| {
        "http://mirror.invalid/debian".to_string()
    })
}

fn errors(text: &str) -> String {
    match parse_str(text) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn the_base_config_is_valid() {
    let c = parse_str(BASE).unwrap();
    assert_eq!(c.nodes[0].image, "default");
    assert_eq!(c.images["default"].arch, "amd64");
    assert_eq!(c.images["default"].mirror, "http://mirror.invalid/debian");
    assert_eq!(c.paths.tftp_root, Path::new("/nonexistent/out/tftp"));
}

#[test]
fn boot_and_http_take_their_defaults_and_inherit_down() {
    let c = parse_str(BASE).unwrap();
    assert_eq!(c.cluster.boot, model::Boot::Pxelinux);
    assert_eq!(c.nodes[0].boot, model::Boot::Pxelinux);
    assert_eq!(c.server.http.to_string(), "192.0.2.1:8080");
    assert_eq!(c.server.heartbeat, 60);
    // The cluster's method reaches images and nodes that name none; a node's
    // own wins over its image's, an image's over the cluster's.
    let text = BASE
        .replace("master = \"192.0.2.1\"", "master = \"192.0.2.1\"\nboot = \"ipxe\"")
        .replace("[[nodes]]", "[images.old]\nsuite = \"bookworm\"\nboot = \"pxelinux\"\n\n[[nodes]]")
        + "\n[[nodes]]\nhostname = \"node02\"\nmac = \"52:54:00:12:34:57\"\nip = \"192.0.2.12\"\nimage = \"old\"\n"
        + "\n[[nodes]]\nhostname = \"node03\"\nmac = \"52:54:00:12:34:58\"\nip = \"192.0.2.13\"\nimage = \"old\"\nboot = \"ipxe\"\n"
        + "\n[server]\nhttp = \"192.0.2.1:80\"\nheartbeat = 30\n";
    let c = parse_str(&text).unwrap();
    assert_eq!(c.images["default"].boot, model::Boot::Ipxe);
    assert_eq!(c.images["old"].boot, model::Boot::Pxelinux);
    let boots: Vec<_> = c.nodes.iter().map(|n| n.boot).collect();
    assert_eq!(
        boots,
        [model::Boot::Ipxe, model::Boot::Pxelinux, model::Boot::Ipxe]
    );
    assert_eq!(c.server.http.to_string(), "192.0.2.1:80");
    assert_eq!(c.server.heartbeat, 30);
}

#[test]
fn error_messages() {
    // (replace this, with that) → exact message
    let table: &[(&str, &str, &str)] = &[
        ("master = \"192.0.2.1\"", "master = \"192.0.2.1\"\nfoo = 1",
         "Ddcfile.toml:4:1: unknown field `foo`, expected one of `network`, `master`, `gateway`, `dns`, `domain`, `syslog`, `boot`; remove it or check its spelling"),
        ("mac = \"52:54:00:12:34:56\"", "mac = \"52:54:00:12:34:5g\"",
         "Ddcfile.toml:11:7: mac: \"52:54:00:12:34:5g\" is not a MAC address (expected six hex pairs like 52:54:00:12:34:56)"),
        ("mac = \"52:54:00:12:34:56\"", "mac = \"01:00:5e:00:00:01\"",
         "Ddcfile.toml:11:7: mac: \"01:00:5e:00:00:01\" is a multicast address, which no network card has"),
        ("ip = \"192.0.2.11\"", "ip = \"192.0.2.300\"",
         "Ddcfile.toml:12:6: ip: \"192.0.2.300\" is not an IPv4 address (expected four numbers like 192.0.2.11)"),
        ("ip = \"192.0.2.11\"", "ip = \"198.51.100.7\"",
         "Ddcfile.toml:12:6: ip: 198.51.100.7 is outside the cluster network 192.0.2.0/24"),
        ("ip = \"192.0.2.11\"", "ip = \"192.0.2.1\"",
         "Ddcfile.toml:12:6: ip: 192.0.2.1 is the master's address"),
        ("ip = \"192.0.2.11\"", "ip = \"192.0.2.255\"",
         "Ddcfile.toml:12:6: ip: 192.0.2.255 is the broadcast address of 192.0.2.0/24; give a host address"),
        ("network = \"192.0.2.0/24\"", "network = \"192.0.2.0/33\"",
         "Ddcfile.toml:2:11: cluster.network: \"192.0.2.0/33\" is not a network in CIDR form (expected like 192.0.2.0/24)"),
        ("network = \"192.0.2.0/24\"", "network = \"192.0.2.7/24\"",
         "Ddcfile.toml:2:11: cluster.network: \"192.0.2.7/24\" has host bits set; write the network address, 192.0.2.0/24"),
        ("hostname = \"node01\"", "hostname = \"../x\"",
         "Ddcfile.toml:10:12: hostname: \"../x\" is not a valid hostname (1 to 63 letters, digits and '-', not starting or ending with '-')"),
        ("hostname = \"node01\"", "hostname = \"a\\nb\"",
         "Ddcfile.toml:10:12: hostname: \"a\\nb\" is not a valid hostname (1 to 63 letters, digits and '-', not starting or ending with '-')"),
        ("ip = \"192.0.2.11\"", "ip = \"192.0.2.11\"\nimage = \"compute\"",
         "Ddcfile.toml:13:9: image: names image \"compute\", which is not defined; define [images.compute] or use one of: default"),
        ("suite = \"bookworm\"", "suite = \"bookworm\"\nunion = \"zfs\"",
         "Ddcfile.toml:7:9: images.default.union: \"zfs\" is not a union filesystem; use \"overlay\" or \"aufs\""),
        ("suite = \"bookworm\"", "suite = \"bookworm\"\nroot_password_hash = \"hunter2\"",
         "Ddcfile.toml:7:22: images.default.root_password_hash: is not a crypt(3) hash; never put a plain password here: make one with `mkpasswd -m yescrypt` (package whois) or `openssl passwd -6`"),
        ("packages = [\"linux-image-amd64\"]", "packages = [\"linux image\"]",
         "Ddcfile.toml:7:13: images.default.packages: \"linux image\" is not a Debian package name"),
        ("master = \"192.0.2.1\"", "master = \"192.0.2.1\"\nboot = \"grub\"",
         "Ddcfile.toml:4:8: cluster.boot: \"grub\" is not a boot method; use \"pxelinux\" (TFTP, the default) or \"ipxe\" (iPXE over HTTP)"),
        ("ip = \"192.0.2.11\"", "ip = \"192.0.2.11\"\nboot = \"iPXE\"",
         "Ddcfile.toml:13:8: boot: \"iPXE\" is not a boot method; use \"pxelinux\" (TFTP, the default) or \"ipxe\" (iPXE over HTTP)"),
        ("[cluster]", "[server]\nhttp = \"0.0.0.0:8080\"\n[cluster]",
         "Ddcfile.toml:2:8: server.http: \"0.0.0.0:8080\": nodes put this address in the URLs they fetch, so it must be one they can reach, like the master's (192.0.2.1:8080); to listen on every address, run `ddc serve --listen 0.0.0.0:PORT`"),
        ("[cluster]", "[server]\nhttp = \"192.0.2.1\"\n[cluster]",
         "Ddcfile.toml:2:8: server.http: \"192.0.2.1\" is not an IPv4 address with a port (expected like 192.0.2.1:8080)"),
        ("[cluster]", "[server]\nheartbeat = 1\n[cluster]",
         "Ddcfile.toml:2:13: server.heartbeat: 1 is not a heartbeat in seconds between 5 and 86400 (a day); nodes report this often, and are called silent after 3 missed reports"),
        ("[cluster]\nnetwork = \"192.0.2.0/24\"\nmaster = \"192.0.2.1\"\n", "",
         "Ddcfile.toml:1:1: missing field `cluster`; add it"),
    ];
    for (from, to, want) in table {
        assert!(BASE.contains(from), "{from}");
        let text = BASE.replacen(from, to, 1);
        assert_eq!(&errors(&text), want, "for {to:?}");
    }
}

#[test]
fn closed_sets_are_read_as_enums_and_a_bad_name_is_reported_with_the_rest() {
    let with = |extra: &str| {
        BASE.replacen(
            "suite = \"bookworm\"",
            &format!("suite = \"bookworm\"\n{extra}"),
            1,
        )
    };
    let c = parse_str(&with("union = \"aufs\"\nbootstrapper = \"debootstrap\"")).unwrap();
    assert_eq!(c.images["default"].union, Union::Aufs);
    assert_eq!(c.images["default"].bootstrapper, Bootstrapper::Debootstrap);
    let c = parse_str(BASE).unwrap();
    assert_eq!(c.images["default"].union, Union::Overlay);
    assert_eq!(c.images["default"].bootstrapper, Bootstrapper::Mmdebstrap);
    let text = with("union = \"zfs\"\nbootstrapper = \"cdebootstrap\"").replacen(
        "52:54:00:12:34:56",
        "x",
        1,
    );
    assert_eq!(
        errors(&text),
        "Ddcfile.toml:7:9: images.default.union: \"zfs\" is not a union filesystem; use \"overlay\" or \"aufs\"\n\
         Ddcfile.toml:8:16: images.default.bootstrapper: \"cdebootstrap\" is not a bootstrapper; use \"debootstrap\" or \"mmdebstrap\"\n\
         Ddcfile.toml:13:7: mac: \"x\" is not a MAC address (expected six hex pairs like 52:54:00:12:34:56)"
    );
    assert_eq!(
        errors(&with("union = 5")),
        "Ddcfile.toml:7:9: invalid type: integer `5`, expected a string"
    );
}

#[test]
fn exports_say_secure_unless_insecure_ports_are_allowed() {
    let c = parse_str(BASE).unwrap();
    assert_eq!(
        c.server.export_options,
        "ro,secure,async,no_root_squash,no_subtree_check"
    );
    let with = |server: &str| format!("{BASE}\n[server]\n{server}\n");
    let c = parse_str(&with("export_options = \"rw,secure,sync\"")).unwrap();
    assert_eq!(c.server.export_options, "rw,secure,sync");
    assert_eq!(
        errors(&with("export_options = \"ro,insecure\"")),
        "Ddcfile.toml:15:18: server.export_options: \"ro,insecure\" has \"insecure\": it lets any unprivileged process on the cluster network claim uid 0 and read every file of the image (/etc/shadow, SSH host keys); remove it, or set server.allow_insecure_ports = true if you really mean it"
    );
    let c = parse_str(&with(
        "export_options = \"ro,secure\"\nallow_insecure_ports = true",
    ))
    .unwrap();
    assert_eq!(c.server.export_options, "ro,insecure");
    assert!(c.server.allow_insecure_ports);
}

#[test]
fn duplicates_name_the_first_place() {
    let more =
        "\n[[nodes]]\nhostname = \"NODE01\"\nmac = \"52:54:00:12:34:56\"\nip = \"192.0.2.11\"\n";
    let text = format!("{BASE}{more}");
    assert_eq!(
        errors(&text),
        "Ddcfile.toml:15:12: hostname: \"NODE01\" is already used by the node at Ddcfile.toml:10:12\n\
         Ddcfile.toml:16:7: mac: \"52:54:00:12:34:56\" is already used by the node at Ddcfile.toml:11:7\n\
         Ddcfile.toml:17:6: ip: 192.0.2.11 is already used by the node at Ddcfile.toml:12:6"
    );
    // MACs compare case-insensitively, whatever the separator.
    let more =
        "\n[[nodes]]\nhostname = \"node02\"\nmac = \"52-54-00-12-34-5E\"\nip = \"192.0.2.12\"\n";
    let text = format!("{}{more}", BASE.replace("34:56", "34:5e"));
    assert!(errors(&text).contains("mac: \"52-54-00-12-34-5E\" is already used"));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

    #[test]
    fn no_input_panics(text in ".{0,400}") {
        let _ = parse_str(&text);
    }

    #[test]
    fn no_node_values_panic(
        hostname in "\\PC{0,70}",
        mac in "[0-9a-fA-F:\\-]{0,20}|\\PC{0,20}",
        ip in "[0-9.]{0,20}|\\PC{0,10}",
        image in "\\PC{0,10}",
    ) {
        let esc = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
        let text = format!(
            "{BASE}\n[[nodes]]\nhostname = \"{}\"\nmac = \"{}\"\nip = \"{}\"\nimage = \"{}\"\n",
            esc(&hostname), esc(&mac), esc(&ip), esc(&image)
        );
        if let Ok(c) = parse_str(&text) {
            // Whatever got through is safe for paths and config files.
            for n in &c.nodes {
                proptest::prop_assert!(is_dns_label(&n.hostname));
                proptest::prop_assert!(n.pxe_name().bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'));
            }
        }
    }

    #[test]
    fn mutated_ddcfiles_never_panic(cut in 0usize..400, insert in "\\PC{0,8}") {
        let mut text = BASE.to_string();
        let at = cut.min(text.len());
        if text.is_char_boundary(at) {
            text.insert_str(at, &insert);
        }
        let _ = parse_str(&text);
    }
}

#[test]
fn outputs_never_overlap_inputs_the_cache_or_each_other() {
    // (appended to the base Ddcfile, or put before it for a top-level key) → exact message
    let table: &[(&str, &str)] = &[
        ("[paths]\ndhcpd = \"Ddcfile.toml\"",
         "Ddcfile.toml:15:9: paths.dhcpd: /nonexistent/Ddcfile.toml is the Ddcfile: ddc would overwrite it; give paths.dhcpd a path of its own, like the default out/dhcp/ddc.conf"),
        ("[paths]\nganesha = \"./out/../Ddcfile.toml\"",
         "Ddcfile.toml:15:11: paths.ganesha: /nonexistent/Ddcfile.toml is the Ddcfile: ddc would overwrite it; give paths.ganesha a path of its own, like the default out/ganesha/ddc.conf"),
        ("tasks_dir = \"tasks\"\n\n[paths]\ndnsmasq = \"tasks/debootstrap.sh\"",
         "Ddcfile.toml:4:11: paths.dnsmasq: /nonexistent/tasks/debootstrap.sh is inside the tasks folder /nonexistent/tasks (tasks_dir): ddc runs the step scripts and templates there as root and must never write over them; give paths.dnsmasq a path of its own, like the default out/dnsmasq.d/ddc.conf"),
        ("[paths]\nexports = \"cache/state/journal\"",
         "Ddcfile.toml:15:11: paths.exports: /nonexistent/cache/state/journal is inside the cache folder /nonexistent/cache: the cache is ddc's own (its records, logs and image layers; `ddc clean` deletes in it); give paths.exports a path of its own, like the default out/exports.d/ddc.exports"),
        ("[paths]\nnfs_root = \"cache/nfs\"",
         "Ddcfile.toml:15:12: paths.nfs_root: /nonexistent/cache/nfs is inside the cache folder /nonexistent/cache: the cache is ddc's own (its records, logs and image layers; `ddc clean` deletes in it); give paths.nfs_root a path of its own, like the default out/nfsroot"),
        ("[paths]\nexports = \"out/a.conf\"\nganesha = \"out/a.conf\"",
         "Ddcfile.toml:16:11: paths.ganesha: /nonexistent/out/a.conf is also paths.exports: one would overwrite the other; give paths.ganesha a path of its own, like the default out/ganesha/ddc.conf"),
        ("[paths]\ndhcpd = \"out/x/ddc.conf\"\ndnsmasq = \"out/x\"",
         "Ddcfile.toml:16:11: paths.dnsmasq: /nonexistent/out/x holds paths.dhcpd /nonexistent/out/x/ddc.conf: one would overwrite the other; give paths.dnsmasq a path of its own, like the default out/dnsmasq.d/ddc.conf"),
        ("[paths]\ntftp_root = \"/srv/boot\"\nnfs_root = \"/srv/boot\"",
         "Ddcfile.toml:16:12: paths.nfs_root: /srv/boot is also the TFTP root (paths.tftp_root): the TFTP root and the NFS root must be two folders, neither inside the other; give paths.nfs_root a path of its own, like the default out/nfsroot"),
        ("[paths]\ntftp_root = \"/srv/boot\"\nnfs_root = \"/srv/boot/nfs\"",
         "Ddcfile.toml:16:12: paths.nfs_root: /srv/boot/nfs is inside the TFTP root /srv/boot (paths.tftp_root): the TFTP root and the NFS root must be two folders, neither inside the other; give paths.nfs_root a path of its own, like the default out/nfsroot"),
        ("[paths]\ndhcpd = \"out/tftp/dhcpd.conf\"",
         "Ddcfile.toml:15:9: paths.dhcpd: /nonexistent/out/tftp/dhcpd.conf is inside the TFTP root /nonexistent/out/tftp (paths.tftp_root): a root holds only what ddc publishes there, and ddc deletes old generations from it; give paths.dhcpd a path of its own, like the default out/dhcp/ddc.conf"),
        ("[paths]\ntftp_root = \"out/dhcp\"",
         "Ddcfile.toml:15:13: paths.tftp_root: /nonexistent/out/dhcp holds paths.dhcpd /nonexistent/out/dhcp/ddc.conf, where ddc writes by default: a root holds only what ddc publishes there, and ddc deletes old generations from it; move paths.tftp_root elsewhere, or set paths.dhcpd to a path outside it"),
        ("[images.efi64]\nsuite = \"bookworm\"",
         "Ddcfile.toml:14:9: images.efi64: ddc keeps the UEFI boot loader in the TFTP root's \"efi64\" folder, where this image's kernels would be published; choose another image name"),
        ("[paths]\nnfs_root = \".\"",
         "Ddcfile.toml:15:12: paths.nfs_root: /nonexistent holds the Ddcfile /nonexistent/Ddcfile.toml: ddc publishes into a root and deletes from it, so it must not hold ddc's inputs; give paths.nfs_root a path of its own, like the default out/nfsroot (it also overlaps the cache folder, the TFTP root (paths.tftp_root), paths.exports, paths.ganesha, paths.dhcpd, paths.dnsmasq, paths.dnsmasq_hosts)"),
        ("tasks_dir = \"out\"",
         "Ddcfile.toml:1:13: tasks_dir: /nonexistent/out holds the TFTP root /nonexistent/out/tftp (paths.tftp_root), where ddc writes by default: ddc runs the step scripts and templates there as root and must never write over them; move tasks_dir elsewhere, or set paths.tftp_root to a path outside it (it also overlaps the NFS root (paths.nfs_root), paths.exports, paths.ganesha, paths.dhcpd, paths.dnsmasq, paths.dnsmasq_hosts)"),
        ("nodes_file = \"out/dhcp/ddc.conf\"",
         "Ddcfile.toml:1:14: nodes_file: cannot read the node inventory /nonexistent/out/dhcp/ddc.conf: No such file or directory (os error 2)\n\
          Ddcfile.toml:1:14: nodes_file: /nonexistent/out/dhcp/ddc.conf is also paths.dhcpd, where ddc writes by default: ddc would overwrite it; move nodes_file elsewhere, or set paths.dhcpd to a path outside it"),
    ];
    for (extra, want) in table {
        let text = if extra.starts_with('[') {
            format!("{BASE}\n{extra}\n")
        } else {
            format!("{extra}\n{BASE}")
        };
        assert_eq!(&errors(&text), want, "for {extra:?}");
    }
    // The rsyslog drop-in counts only when it is written.
    let text = format!("{BASE}\n[paths]\nrsyslog = \"out/dhcp/ddc.conf\"\n");
    assert!(parse_str(&text).is_ok());
    let text = text.replacen(
        "master = \"192.0.2.1\"",
        "master = \"192.0.2.1\"\nsyslog = true",
        1,
    );
    let e = errors(&text);
    assert!(
        e.starts_with(
            "Ddcfile.toml:16:11: paths.rsyslog: /nonexistent/out/dhcp/ddc.conf is also paths.dhcpd"
        ),
        "{e}"
    );
}

#[test]
fn paths_overlap_through_symlinks_too() {
    let d = tempfile::tempdir().unwrap();
    let base = std::fs::canonicalize(d.path()).unwrap();
    std::fs::create_dir_all(base.join("cache/state")).unwrap();
    std::fs::create_dir_all(base.join("tasks")).unwrap();
    std::os::unix::fs::symlink(base.join("cache"), base.join("out")).unwrap();
    std::os::unix::fs::symlink(base.join("tasks"), base.join("scripts")).unwrap();
    let parse_here = |text: &str| {
        parse(text, "Ddcfile.toml", &base, &|| String::new())
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    // The default roots and outputs are under out/, here a link to cache/.
    let e = parse_here(BASE).unwrap_err();
    let b = base.display();
    assert_eq!(
        e.lines().next().unwrap(),
        format!("Ddcfile.toml: paths.tftp_root: {b}/out/tftp is inside the cache folder {b}/cache (through symlinks: {b}/cache/tftp and {b}/cache): the cache is ddc's own (its records, logs and image layers; `ddc clean` deletes in it); give paths.tftp_root a path of its own, like the default out/tftp")
    );
    let text = format!(
        "tasks_dir = \"tasks\"\n{BASE}\n[paths]\ntftp_root = \"t\"\nnfs_root = \"n\"\nexports = \"e\"\nganesha = \"g\"\ndnsmasq = \"m\"\ndnsmasq_hosts = \"h/ddc.hosts\"\ndhcpd = \"scripts/../tasks/x.sh\"\n"
    );
    assert_eq!(
        parse_here(&text).unwrap_err(),
        format!("Ddcfile.toml:22:9: paths.dhcpd: {b}/tasks/x.sh is inside the tasks folder {b}/tasks (tasks_dir): ddc runs the step scripts and templates there as root and must never write over them; give paths.dhcpd a path of its own, like the default out/dhcp/ddc.conf")
    );
    let text = text.replace("scripts/../tasks/x.sh", "scripts/x.sh");
    assert_eq!(
        parse_here(&text).unwrap_err(),
        format!("Ddcfile.toml:22:9: paths.dhcpd: {b}/scripts/x.sh is inside the tasks folder {b}/tasks (tasks_dir) (through symlinks: {b}/tasks/x.sh and {b}/tasks): ddc runs the step scripts and templates there as root and must never write over them; give paths.dhcpd a path of its own, like the default out/dhcp/ddc.conf")
    );
}

/// The Ddcfile with `to` for `from`, which it must contain.
fn with(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "{from}");
    BASE.replacen(from, to, 1)
}

const IMG: &str = "suite = \"bookworm\"";
const NODE_IP: &str = "ip = \"192.0.2.11\"";

#[test]
fn export_options_map_onto_ganesha_or_are_refused() {
    let with_options = |o: &str| format!("{BASE}\n[server]\nexport_options = \"{o}\"\n");
    let g = parse_str(BASE).unwrap().server.ganesha;
    assert_eq!(
        g,
        GaneshaOptions {
            access_type: "RO".into(),
            squash: "No_Root_Squash".into(),
            sec_type: "sys".into(),
            anonymous_uid: None,
            anonymous_gid: None,
        }
    );
    let g = parse_str(&with_options(
        "rw,all_squash,anonuid=1000,anongid=100,sec=sys:krb5i",
    ))
    .unwrap()
    .server
    .ganesha;
    assert_eq!(
        g,
        GaneshaOptions {
            access_type: "RW".into(),
            squash: "All_Squash".into(),
            sec_type: "sys, krb5i".into(),
            anonymous_uid: Some(1000),
            anonymous_gid: Some(100),
        }
    );
    // Kernel-only: ganesha names the file system itself.
    for o in [
        "ro,fsid=7",
        "ro,fsid=0123456789abcdef0123456789abcdef",
        "ro,sync,wdelay,hide",
    ] {
        assert!(parse_str(&with_options(o)).is_ok(), "{o}");
    }
    // The kernel squashes root unless told otherwise: so does ganesha then.
    let g = parse_str(&with_options("ro,sync")).unwrap().server.ganesha;
    assert_eq!(
        (g.access_type.as_str(), g.squash.as_str()),
        ("RO", "Root_Squash")
    );
    let at = "Ddcfile.toml:15:18: server.export_options: ";
    let table = [
        ("ro,rw", "\"ro,rw\" has both \"ro\" and \"rw\", which contradict each other; keep one"),
        ("ro,root_squash,no_root_squash", "\"ro,root_squash,no_root_squash\" has both \"root_squash\" and \"no_root_squash\", which contradict each other; keep one"),
        ("ro,subtree_check", "\"ro,subtree_check\" has \"subtree_check\": nfs-ganesha has no subtree check (its exports all work as no_subtree_check), so the two servers would differ; write no_subtree_check or remove it"),
        ("ro,fsid=0", "\"ro,fsid=0\" has \"fsid=0\", which makes an export the NFSv4 root, and only one may be: ddc exports every generation with these options; remove it, or name the file system with a number from 1 (fsid=1)"),
        ("ro,fsid=x", "\"ro,fsid=x\" has \"fsid=x\", which is neither a number nor a UUID of 32 hex digits; write it like fsid=1"),
        ("ro,crossmnt", "\"ro,crossmnt\" has \"crossmnt\": nfs-ganesha never crosses into a file system mounted below an export, and a generation has none; remove it"),
        ("ro,insecure_locks", "\"ro,insecure_locks\" has \"insecure_locks\": nfs-ganesha checks lock requests like any other and has no way to say otherwise; remove it"),
        ("ro,sec=krb5p", "\"ro,sec=krb5p\" has \"sec=krb5p\" without sys: the nodes' initramfs mounts the root with AUTH_SYS, so no node could boot; put sys in the list (like sec=sys:krb5p)"),
        ("ro,sec=sys:krb4", "\"ro,sec=sys:krb4\" has \"sec=sys:krb4\", and \"krb4\" is not a security flavor both servers know; use sys, krb5, krb5i or krb5p, separated by ':'"),
        ("ro,anonuid=x", "\"ro,anonuid=x\" has \"anonuid=x\", whose id is not a number from 0 to 4294967295; write it like anonuid=65534"),
        ("ro,,async", "\"ro,,async\" has \"\": an empty option between two commas; remove the extra comma"),
        ("ro,no_root_sqash", "\"ro,no_root_sqash\" has \"no_root_sqash\", which nfs-ganesha has no counterpart for (or which is not an exports(5) option); remove it. ddc takes: ro, rw, root_squash, no_root_squash, all_squash, no_all_squash, anonuid=N, anongid=N, sec=sys[:krb5:krb5i:krb5p], secure, async, sync, wdelay, no_wdelay, no_subtree_check, hide, secure_locks, fsid=N"),
    ];
    for (options, want) in table {
        assert_eq!(
            errors(&with_options(options)),
            format!("{at}{want}"),
            "{options}"
        );
    }
}

#[test]
fn a_column_named_twice_in_the_inventory_header_is_refused() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("nodes.csv"),
        "hostname,mac,ip,MAC\nnode02,52:54:00:12:34:57,192.0.2.12,52:54:00:12:34:58\n",
    )
    .unwrap();
    let text = format!("nodes_file = \"nodes.csv\"\n{BASE}");
    let e = parse(&text, "Ddcfile.toml", d.path(), &String::new).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Ddcfile.toml:1:14: nodes_file: nodes.csv: row 1: the header row names column \"mac\" twice (columns 2 and 4), and only one would be read; keep one"
    );
}

mod daemons;
mod inherit;
mod kinder;
mod power;
mod reproducible;
