//! `[power]` and the nodes' `bmc`: exact messages, and that no password is
//! taken from the Ddcfile (nor echoed back in a message).

use super::*;

#[test]
fn power_messages() {
    let table: &[(&str, &str)] = &[
        ("[power]\nuser = \"admin\"\npassword = \"hunter2\"\n",
         "Ddcfile.toml:16:12: power.password: a password in the Ddcfile is readable by whoever reads the Ddcfile (and its copies, backups and history); put the password alone in a file of mode 0600 and name that file instead: password_file = \"ipmi-password\""),
        ("[power]\ndriver = \"freeipmi\"\n",
         "Ddcfile.toml:15:10: power.driver: \"freeipmi\" is not a power driver; use \"ipmitool\""),
        ("[power]\ninterface = \"serial\"\n",
         "Ddcfile.toml:15:13: power.interface: \"serial\" is not an IPMI interface; use \"lanplus\" (IPMI 2.0) or \"lan\" (IPMI 1.5)"),
        ("[power]\nuser = \"-h\"\n",
         "Ddcfile.toml:15:8: power.user: \"-h\" is not an IPMI user name (1 to 16 printable characters, no spaces, not starting with '-')"),
        ("[power]\ntimeout = 0\n",
         "Ddcfile.toml:15:11: power.timeout: 0 is out of range: give 1 to 3600 (seconds)"),
        ("[power]\nparallel = 5000\n",
         "Ddcfile.toml:15:12: power.parallel: 5000 is out of range: give 1 to 1024 (nodes at once)"),
        ("[power]\ncipher_suite = 18\n",
         "Ddcfile.toml:15:16: power.cipher_suite: 18 is out of range: give 0 to 17 (an RMCP+ cipher suite)"),
        ("[power]\nwho = 1\n",
         "Ddcfile.toml:15:1: unknown field `who`, expected one of `driver`, `user`, `password_file`, `password`, `interface`, `cipher_suite`, `timeout`, `parallel`; remove it or check its spelling"),
    ];
    for (extra, want) in table {
        let text = format!("{BASE}\n{extra}");
        assert_eq!(errors(&text), *want, "for:\n{extra}");
    }
}

#[test]
fn a_password_of_any_type_is_refused_and_never_echoed() {
    for value in ["\"hunter2\"", "12345678", "{ value = \"hunter2\" }"] {
        let text = format!("{BASE}\n[power]\npassword = {value}\n");
        let e = errors(&text);
        assert!(
            e.contains("power.password: a password in the Ddcfile"),
            "{e}"
        );
        assert!(!e.contains("hunter2") && !e.contains("12345678"), "{e}");
    }
}

#[test]
fn bmc_messages() {
    let table: &[(&str, &str)] = &[
        ("\"192.0.2.300\"",
         "Ddcfile.toml:13:7: bmc: \"192.0.2.300\" is not a BMC address: give an IPv4 address or a DNS name, with :PORT when the BMC does not listen on 623 (like 192.0.2.101 or node01-bmc:6230)"),
        ("\"bmc01:x\"",
         "Ddcfile.toml:13:7: bmc: \"bmc01:x\" has no port number after ':' (1 to 65535); give an IPv4 address or a DNS name, with :PORT when the BMC does not listen on 623 (like 192.0.2.101 or node01-bmc:6230)"),
    ];
    for (value, want) in table {
        let text = BASE.replace(
            "ip = \"192.0.2.11\"",
            &format!("ip = \"192.0.2.11\"\nbmc = {value}"),
        );
        assert_eq!(errors(&text), *want, "for bmc = {value}");
    }
}

#[test]
fn power_defaults_and_values() {
    let c = parse_str(BASE).unwrap();
    assert_eq!(c.nodes[0].bmc, None);
    assert_eq!((c.power.timeout, c.power.parallel), (10, 32));
    assert_eq!(c.power.interface, IpmiInterface::Lanplus);
    assert_eq!(c.power.password_file, None);
    let text = BASE.replace("ip = \"192.0.2.11\"", "ip = \"192.0.2.11\"\nbmc = \"node01-bmc:6230\"")
        + "\n[power]\nuser = \"admin\"\npassword_file = \"secrets/ipmi\"\ninterface = \"lan\"\ncipher_suite = 3\ntimeout = 4\nparallel = 8\n";
    let c = parse_str(&text).unwrap();
    let bmc = c.nodes[0].bmc.as_ref().unwrap();
    assert_eq!((bmc.host.as_str(), bmc.port), ("node01-bmc", Some(6230)));
    assert_eq!(c.power.user.as_deref(), Some("admin"));
    assert_eq!(
        c.power.password_file.as_deref(),
        Some(Path::new("/nonexistent/secrets/ipmi"))
    );
    assert_eq!(c.power.password_file_at, "Ddcfile.toml:17:17");
    assert_eq!(
        (c.power.cipher_suite, c.power.timeout, c.power.parallel),
        (Some(3), 4, 8)
    );
    assert_eq!(c.power.interface, IpmiInterface::Lan);
}
