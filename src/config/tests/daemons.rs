//! Values that validate as text but that a daemon or the kernel would
//! misread, and the strict checks of hashes, suites, mirrors and pins.

use super::*;

#[test]
fn values_the_daemons_or_the_kernel_would_misread() {
    const NO_QUOTE: &str = "(dnsmasq has no way to quote it)";
    let cmdline_1900 = "x".repeat(1900);
    let table: Vec<(String, String)> = vec![
        // dnsmasq reads these as keywords or lease times in dhcp-host lines.
        (with("hostname = \"node01\"", "hostname = \"ignore\""),
         format!("Ddcfile.toml:10:12: hostname: \"ignore\" is a keyword to dnsmasq: in this node's dhcp-host line it means \"ignore this machine\", so the node would never get an answer; choose another hostname {NO_QUOTE}")),
        (with("hostname = \"node01\"", "hostname = \"Infinite\""),
         format!("Ddcfile.toml:10:12: hostname: \"Infinite\" is a keyword to dnsmasq: in this node's dhcp-host line it is a lease time, so the node would get no hostname; choose another hostname {NO_QUOTE}")),
        (with("hostname = \"node01\"", "hostname = \"12345\""),
         format!("Ddcfile.toml:10:12: hostname: \"12345\" reads as a lease time to dnsmasq (digits, optionally ending in s, m, h, d or w): in this node's dhcp-host line it would set the lease, and the node would get no hostname; add a letter, like n12345 {NO_QUOTE}")),
        (with("hostname = \"node01\"", "hostname = \"45m\""),
         format!("Ddcfile.toml:10:12: hostname: \"45m\" reads as a lease time to dnsmasq (digits, optionally ending in s, m, h, d or w): in this node's dhcp-host line it would set the lease, and the node would get no hostname; add a letter, like n45m {NO_QUOTE}")),
        // Networks that export the image to the world.
        (with("network = \"192.0.2.0/24\"", "network = \"0.0.0.0/0\""),
         "Ddcfile.toml:2:11: cluster.network: \"0.0.0.0/0\" is every IPv4 address: the image would be exported, and DHCP answers given, to the whole internet; give the cluster's own network, with a prefix of /8 or longer (like 10.0.0.0/16)".into()),
        (with("network = \"192.0.2.0/24\"", "network = \"192.0.0.0/7\""),
         "Ddcfile.toml:2:11: cluster.network: \"192.0.0.0/7\" spans 33554432 addresses, more than 10.0.0.0/8, the largest private range: the image would be exported to every one of them; give the cluster's own network, with a prefix of /8 or longer (like 10.0.0.0/16)".into()),
        // The kernel's command line limit, for an image and for a node.
        (with(IMG, &format!("{IMG}\ncmdline = \"{cmdline_1900}\"")),
         "Ddcfile.toml:7:11: images.default.cmdline: the kernel command line of image default's boot entries would be 2095 bytes (195 of ddc's nfsroot=… and pxelinux's BOOT_IMAGE= and initrd=, 1900 of this cmdline); x86 kernels take at most 2047 bytes (COMMAND_LINE_SIZE 2048 with its final NUL) and drop the rest: shorten it by 48 bytes".into()),
        (with(NODE_IP, &format!("{NODE_IP}\ncmdline = \"{cmdline_1900}\"")),
         "Ddcfile.toml:13:11: cmdline: the kernel command line of node node01 would be 2095 bytes (194 of ddc's nfsroot=… and pxelinux's BOOT_IMAGE= and initrd=, 0 of images.default.cmdline, 1900 of this cmdline); x86 kernels take at most 2047 bytes (COMMAND_LINE_SIZE 2048 with its final NUL) and drop the rest: shorten this cmdline (or images.default.cmdline) by 48 bytes".into()),
        // Weak checks made strict.
        (with(IMG, "suite = \"..\""),
         "Ddcfile.toml:6:9: images.default.suite: \"..\" is not a Debian suite or codename: write one like bookworm, trixie, stable or bookworm-backports (lowercase letters and digits, starting with a letter, in parts joined by '-' or '.')".into()),
        (with(IMG, &format!("{IMG}\nmirror = \"http://\"")),
         "Ddcfile.toml:7:10: images.default.mirror: \"http://\" is not a mirror URL: it names no host; write one like http://mirror.example/debian, https://… or file:/srv/debian-mirror".into()),
        (with(IMG, &format!("{IMG}\nmirror = \"ftp://m.example/debian\"")),
         "Ddcfile.toml:7:10: images.default.mirror: \"ftp://m.example/debian\" is not a mirror URL: it is not http://, https:// or file:; write one like http://mirror.example/debian, https://… or file:/srv/debian-mirror".into()),
        (with(IMG, &format!("{IMG}\nmirror = \"http://m.example:0/debian\"")),
         "Ddcfile.toml:7:10: images.default.mirror: \"http://m.example:0/debian\" is not a mirror URL: its port is not a number from 1 to 65535; write one like http://mirror.example/debian, https://… or file:/srv/debian-mirror".into()),
        (with(IMG, &format!("{IMG}\nmirror = \"file://host/srv/mirror\"")),
         "Ddcfile.toml:7:10: images.default.mirror: \"file://host/srv/mirror\" is not a mirror URL: a file: URL names a folder on this machine (file:/PATH or file:///PATH); write one like http://mirror.example/debian, https://… or file:/srv/debian-mirror".into()),
        (with(IMG, &format!("{IMG}\nroot_password_hash = \"!\"")),
         "Ddcfile.toml:7:22: images.default.root_password_hash: a leading '!' or '*' marks a locked password, not a hash; remove the key to leave root without a password (as the image has it), or give a hash: make one with `mkpasswd -m yescrypt` (package whois) or `openssl passwd -6`".into()),
        (with(IMG, &format!("{IMG}\nroot_password_hash = \"!$6$salt$x\"")),
         "Ddcfile.toml:7:22: images.default.root_password_hash: a leading '!' or '*' marks a locked password, not a hash; remove the key to leave root without a password (as the image has it), or give a hash: make one with `mkpasswd -m yescrypt` (package whois) or `openssl passwd -6`".into()),
        (with(IMG, &format!("{IMG}\nroot_password_hash = \"$6$salt$short\"")),
         "Ddcfile.toml:7:22: images.default.root_password_hash: starts like a sha512crypt hash but is not a whole one ($6$[rounds=N$]SALT$HASH, the salt 1 to 16 characters, the hash 86 of ./0-9A-Za-z); copy the whole hash, or make one with `mkpasswd -m yescrypt` (package whois) or `openssl passwd -6`".into()),
        (with(IMG, &format!("{IMG}\nroot_password_hash = \"$y$j9T$salt$\"")),
         "Ddcfile.toml:7:22: images.default.root_password_hash: starts like a yescrypt hash but is not a whole one ($y$PARAMS$SALT$HASH, the salt up to 86 and the hash 43 characters of ./0-9A-Za-z); copy the whole hash, or make one with `mkpasswd -m yescrypt` (package whois) or `openssl passwd -6`".into()),
        (with(IMG, &format!("{IMG}\nroot_password_hash = \"$1$aoYW.yc6$2FOo73E6VWYRjrivoB0XM.\"")),
         "Ddcfile.toml:7:22: images.default.root_password_hash: is hashed with md5crypt, which crypt(5) says should not be used for new passphrases, and every node's /etc/shadow can be read by root on any machine of the cluster network; make one with `mkpasswd -m yescrypt` (package whois) or `openssl passwd -6`".into()),
        (with(IMG, &format!("{IMG}\nroot_password_hash = \"abJnggxhB/yWI\"")),
         "Ddcfile.toml:7:22: images.default.root_password_hash: is a DES-based crypt(3) hash or a plain password: never put a plain password here, and crypt(5) says DES-based hashes are too weak for new passphrases (every node's /etc/shadow can be read by root on any machine of the cluster network): make one with `mkpasswd -m yescrypt` (package whois) or `openssl passwd -6`".into()),
        (with(NODE_IP, &format!("{NODE_IP}\nimage = \"default@-\"")),
         "Ddcfile.toml:13:9: image: \"default@-\": after '@' comes a generation: its number (1 to 9999, like 2 or 0002), its name (like 0002-1a2b3c4d5e6f) or 4 to 12 hex digits of its hash; `ddc generations default` lists them".into()),
    ];
    for (text, want) in &table {
        assert_eq!(&errors(text), want);
    }
}

/// The checks above let these values through, and refuse their near misses.
#[test]
fn the_same_checks_let_good_values_through() {
    for name in ["m", "n45m", "1e5", "ignored", "45mb", "node-1h"] {
        let c = parse_str(&with(
            "hostname = \"node01\"",
            &format!("hostname = \"{name}\""),
        ))
        .unwrap();
        assert_eq!(c.nodes[0].hostname, name);
    }
    for bad in ["Ignore", "IGNORE", "5", "10s", "2d", "1W", "0h"] {
        assert!(
            errors(&with(
                "hostname = \"node01\"",
                &format!("hostname = \"{bad}\"")
            ))
            .contains("dnsmasq"),
            "{bad}"
        );
    }
    assert!(parse_str(&with(
        "network = \"192.0.2.0/24\"",
        "network = \"192.0.0.0/8\""
    ))
    .is_ok());
    assert!(parse_str(&with(
        IMG,
        &format!("{IMG}\ncmdline = \"{}\"", "x".repeat(1852))
    ))
    .is_ok());
    assert!(parse_str(&with(
        IMG,
        &format!("{IMG}\ncmdline = \"{}\"", "x".repeat(1853))
    ))
    .is_err());
    for suite in [
        "bookworm",
        "stable",
        "bookworm-backports",
        "trixie-proposed-updates",
        "sid",
    ] {
        assert!(
            parse_str(&with(IMG, &format!("suite = \"{suite}\""))).is_ok(),
            "{suite}"
        );
    }
    for suite in [
        ".",
        "-",
        "bookworm-",
        "-bookworm",
        "Bookworm",
        "12",
        "a..b",
        "a/b",
    ] {
        assert!(
            errors(&with(IMG, &format!("suite = \"{suite}\""))).contains("suite"),
            "{suite}"
        );
    }
    for mirror in [
        "http://mirror.example/debian",
        "https://user@m.example:8443/debian/",
        "http://[2001:db8::1]:8080/debian",
        "http://192.0.2.1/debian",
        "file:/srv/mirror",
        "file:///srv/mirror",
    ] {
        assert!(
            parse_str(&with(IMG, &format!("{IMG}\nmirror = \"{mirror}\""))).is_ok(),
            "{mirror}"
        );
    }
    for mirror in [
        "http:///debian",
        "https://:80/debian",
        "http://m..example/",
        "http://[zz]/",
        "http://m.example:x/",
        "file:",
        "file:/",
        "file:srv",
        "http://m.example/a b",
    ] {
        assert!(
            errors(&with(IMG, &format!("{IMG}\nmirror = \"{mirror}\""))).contains("mirror"),
            "{mirror}"
        );
    }
}

#[test]
fn crypt_hashes_are_checked_by_their_own_format() {
    let sha512 = format!("$6$saltsalt${}", "a".repeat(86));
    // Made by libxcrypt's crypt_gensalt and crypt, and openssl passwd.
    let made = [
        "$y$j9T$YEMNU9fTM/O0jhp/Q0Xu6/$8P/5HSyTEnu778kaI8hHQYa.//HHYI79vMjhVe0/Dj1",
        "$gy$j9T$82ZgWqHnLQxYFd3LIC/Y0.$SMgAI5Ofl6iPn1hl.sZLgAJ9t/xRRuXHS0faSnwedU2",
        "$7$CU..../....wTz8lA9DfepVQWGwfLryf0$n8KCtyY1d12NCpqcATk32CAUIpuXgSS9ifa8Fkd/Vj0",
        "$2b$05$.NM35A5vmU/xK8xmvBnY5eL63vECKs/EoktyDI00zwuUUQfqCtjF.",
        "$6$RJ8t5HbxnJRAGh7.$wzKIqDEVjmBkdvmbzLif55RWMPQrqv8roNSxoiP9N9DValALmFV18IJRXxSSh0LosBtjC9tLujy7KFhGagWfr0",
        "$6$a.b/c$0JAteT3PXgUvE4xwM5FkHXxs67KnAdpNUmULBQF4aLbH3DPyI/LcLqVugbHgkDBm5oOi1Gn21p3eQOb1W5l5p0",
        "$5$k/G3E059iKnhtiln$yIaRfteBzhAeawWA6frr0t6UBRO33iASbA/B.r6tZvC",
    ];
    for h in made {
        assert!(
            parse_str(&with(IMG, &format!("{IMG}\nroot_password_hash = \"{h}\""))).is_ok(),
            "{h}"
        );
    }
    let hashes = [
        format!("$y$j9T$F5Jx5fExrKuPp53xLKQ..1${}", "b".repeat(43)),
        format!("$gy$j9T$salt${}", "c".repeat(43)),
        format!("$7$CU..../....salt12345${}", "d".repeat(43)),
        format!("$2b$12${}", "e".repeat(53)),
        format!("$2y$04${}", "f".repeat(53)),
        sha512.clone(),
        format!("$6$rounds=5000$salt${}", "a".repeat(86)),
        format!("$5$salt${}", "g".repeat(43)),
    ];
    for h in &hashes {
        assert!(
            parse_str(&with(IMG, &format!("{IMG}\nroot_password_hash = \"{h}\""))).is_ok(),
            "{h}"
        );
    }
    let bad_hashes = [
        "*".to_string(),
        "hunter2".into(),
        format!("{sha512}x"),
        format!("$6$saltsaltsaltsaltsalt${}", "a".repeat(86)),
        format!("$6$rounds=x$salt${}", "a".repeat(86)),
        format!("$2b$99${}", "e".repeat(53)),
        format!("$1$saltsalt${}", "h".repeat(22)),
        "$sha1$219774$t1ppjCg2El4UKNqmbunf$HHprTkVGDtDd5FLscRU7E0Q5TnCA".into(),
        "$md5,rounds=70775$UwnCjNCY$$COWM/tzD0UmEMpQOtQC2b/".into(),
        "$3$$8846f7eaee8fb117ad06bdd830b7586c".into(),
        "_J9..salt1234567890".into(),
        format!("$6$rounds=0100$salt${}", "a".repeat(86)),
        format!("$6$sa lt${}", "a".repeat(86)),
        format!("$6$sa;lt${}", "a".repeat(86)),
        format!("$y$$salt${}", "b".repeat(43)),
        "$6$$".into(),
    ];
    for h in &bad_hashes {
        assert!(
            errors(&with(IMG, &format!("{IMG}\nroot_password_hash = \"{h}\"")))
                .contains("root_password_hash"),
            "{h}"
        );
    }
}

#[test]
fn pins_name_a_generation() {
    for (pin, want) in [
        ("2", "2"),
        ("0002", "0002"),
        ("abcd", "abcd"),
        ("12345", "12345"),
        ("0002-1A2B3C4D5E6F", "0002-1a2b3c4d5e6f"),
        ("abcdef012345", "abcdef012345"),
    ] {
        let c = parse_str(&with(
            NODE_IP,
            &format!("{NODE_IP}\nimage = \"default@{pin}\""),
        ))
        .unwrap();
        assert_eq!(c.nodes[0].pin.as_deref(), Some(want), "{pin}");
    }
    for pin in [
        "",
        "-",
        "0",
        "0000",
        "abc",
        "12345678901234",
        "0002-1a2b",
        "0000-1a2b3c4d5e6f",
        "g123",
        "2-",
    ] {
        assert!(
            errors(&with(
                NODE_IP,
                &format!("{NODE_IP}\nimage = \"default@{pin}\"")
            ))
            .contains("after '@' comes a generation"),
            "{pin:?}"
        );
    }
}
