//! The [apply] table: how ddc reaches each daemon whose config it writes,
//! and where dnsmasq's hosts file may go.

use std::path::Path;

use toml::{Spanned, Value};

use super::rules::{Rule, PATH};
use super::Validator;
use crate::config::model::{Apply, Paths, Reach};
use crate::config::origin::Origin;
use crate::config::raw::RawApply;
use crate::config::suggest::nearest;

/// What every message about a bad value offers instead.
const FORMS: &str =
    "use \"auto\", \"systemd\", \"off\", { systemd = \"UNIT\" } or { pidfile = \"PATH\" }";

/// A systemd unit name, as `systemctl` takes it: never an option.
const UNIT: Rule = Rule {
    ok: |v| {
        !v.is_empty()
            && v.len() <= 255
            && !v.starts_with(['-', '.'])
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || ":_.@-\\".contains(c))
    },
    says: |v| format!("{v:?} is not a systemd unit name (like dnsmasq or dnsmasq.service)"),
};

impl Validator<'_> {
    pub(super) fn apply(&mut self, raw: RawApply, base: &Path) -> Apply {
        Apply {
            dnsmasq: self.reach(raw.dnsmasq, "dnsmasq", base),
            dhcpd: self.reach(raw.dhcpd, "dhcpd", base),
            nfs: self.reach(raw.nfs, "nfs", base),
            rsyslog: self.reach(raw.rsyslog, "rsyslog", base),
        }
    }

    fn reach(&mut self, raw: Option<Spanned<Value>>, daemon: &str, base: &Path) -> Reach {
        let Some(raw) = raw else {
            return Reach::Auto;
        };
        let key = format!("apply.{daemon}");
        let origin = self.origin(&raw);
        let message = match raw.into_inner() {
            Value::String(s) => match s.as_str() {
                "auto" => return Reach::Auto,
                "systemd" => return Reach::Systemd(None),
                "off" => return Reach::Off,
                _ => match nearest(&s, ["auto", "systemd", "off"]) {
                    Some(n) => format!(
                        "{s:?} is not a way to reach {daemon}: did you mean {n:?}? ({FORMS})"
                    ),
                    None => format!("{s:?} is not a way to reach {daemon}; {FORMS}"),
                },
            },
            Value::Table(t) => match self.reach_table(&t, &origin, &key, base) {
                Ok(r) => return r,
                Err(m) => m,
            },
            other => format!(
                "{} is not a way to reach {daemon}; {FORMS}",
                other.type_str()
            ),
        };
        self.error(origin, key, message);
        Reach::Off
    }

    /// `{ systemd = "UNIT" }` or `{ pidfile = "PATH" }`; the message when
    /// it is neither (a bad value of the one key is reported here).
    fn reach_table(
        &mut self,
        t: &toml::Table,
        origin: &Origin,
        key: &str,
        base: &Path,
    ) -> Result<Reach, String> {
        let mut keys = t.keys();
        let (Some(only), None) = (keys.next(), keys.next()) else {
            return Err(format!("give one key, systemd or pidfile; {FORMS}"));
        };
        let Some(value) = t[only].as_str() else {
            return Err(format!(
                "{only} is a {}; give it a string",
                t[only].type_str()
            ));
        };
        let rule = match only.as_str() {
            "systemd" => &UNIT,
            "pidfile" => &PATH,
            _ => {
                return Err(match nearest(only, ["systemd", "pidfile"]) {
                    Some(n) => format!("unknown key {only:?}: did you mean {n:?}? ({FORMS})"),
                    None => format!("unknown key {only:?}; {FORMS}"),
                })
            }
        };
        if !(rule.ok)(value) {
            self.error(origin.clone(), format!("{key}.{only}"), (rule.says)(value));
        }
        Ok(match only.as_str() {
            "systemd" => Reach::Systemd(Some(value.to_string())),
            _ => Reach::Pidfile(base.join(value)),
        })
    }

    /// dnsmasq reads every file of its conf-dir (`/etc/dnsmasq.d`) as
    /// config, where a hosts file's lines are errors: it stops at start.
    pub(super) fn check_hosts_file(&mut self, paths: &Paths, origin: Option<Origin>) {
        let folder = paths.dnsmasq.parent();
        if paths.dnsmasq_hosts.parent() != folder {
            return;
        }
        let origin = origin.unwrap_or_else(|| self.file_origin());
        self.error(
            origin,
            "paths.dnsmasq_hosts",
            format!(
                "{:?} is in the folder of paths.dnsmasq ({}), which dnsmasq reads as config when it is its conf-dir, and then refuses to start; put the hosts file in another folder (like /etc/ddc/dnsmasq.hosts)",
                paths.dnsmasq_hosts.display().to_string(),
                folder.map(|f| f.display().to_string()).unwrap_or_default()
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use crate::config::{parse, Config, ConfigErrors, Reach};

    const BASE: &str = "[cluster]\nnetwork = \"192.0.2.0/24\"\nmaster = \"192.0.2.1\"\n";

    fn parse_str(text: &str) -> Result<Config, ConfigErrors> {
        parse(text, "Ddcfile.toml", Path::new("/base"), &|| String::new())
    }

    fn with_apply(lines: &str) -> String {
        format!("{BASE}\n[apply]\n{lines}\n")
    }

    #[test]
    fn every_form_is_read() {
        let c = parse_str(&with_apply(
            "dnsmasq = { pidfile = \"/run/dnsmasq/dnsmasq.pid\" }\n\
             dhcpd = \"systemd\"\n\
             nfs = { systemd = \"nfs-ganesha.service\" }\n\
             rsyslog = \"off\"",
        ))
        .unwrap();
        let a = &c.apply;
        assert_eq!(
            a.dnsmasq,
            Reach::Pidfile(PathBuf::from("/run/dnsmasq/dnsmasq.pid"))
        );
        assert_eq!(a.dhcpd, Reach::Systemd(None));
        assert_eq!(a.nfs, Reach::Systemd(Some("nfs-ganesha.service".into())));
        assert_eq!(a.rsyslog, Reach::Off);
        let relative = parse_str(&with_apply("nfs = { pidfile = \"run/g.pid\" }")).unwrap();
        assert_eq!(relative.apply.nfs, Reach::Pidfile("/base/run/g.pid".into()));
    }

    #[test]
    fn auto_is_the_default() {
        for text in [BASE.to_string(), with_apply("dnsmasq = \"auto\"")] {
            let a = parse_str(&text).unwrap().apply;
            for r in [a.dnsmasq, a.dhcpd, a.nfs, a.rsyslog] {
                assert_eq!(r, Reach::Auto);
            }
        }
    }

    #[test]
    fn error_messages() {
        let forms =
            "use \"auto\", \"systemd\", \"off\", { systemd = \"UNIT\" } or { pidfile = \"PATH\" }";
        let table: &[(&str, String)] = &[
            ("dnsmasq = \"sytemd\"",
             format!("Ddcfile.toml:6:11: apply.dnsmasq: \"sytemd\" is not a way to reach dnsmasq: did you mean \"systemd\"? ({forms})")),
            ("dnsmasq = \"restart\"",
             format!("Ddcfile.toml:6:11: apply.dnsmasq: \"restart\" is not a way to reach dnsmasq; {forms}")),
            ("rsyslog = { pidfle = \"/run/r.pid\" }",
             format!("Ddcfile.toml:6:11: apply.rsyslog: unknown key \"pidfle\": did you mean \"pidfile\"? ({forms})")),
            ("dhcpd = true",
             format!("Ddcfile.toml:6:9: apply.dhcpd: boolean is not a way to reach dhcpd; {forms}")),
            ("nfs = { pidfile = \"/run/a.pid\", systemd = \"x\" }",
             format!("Ddcfile.toml:6:7: apply.nfs: give one key, systemd or pidfile; {forms}")),
            ("nfs = {}",
             format!("Ddcfile.toml:6:7: apply.nfs: give one key, systemd or pidfile; {forms}")),
            ("rsyslog = { pid = \"/run/r.pid\" }",
             format!("Ddcfile.toml:6:11: apply.rsyslog: unknown key \"pid\"; {forms}")),
            ("rsyslog = { pidfile = 3 }",
             "Ddcfile.toml:6:11: apply.rsyslog: pidfile is a integer; give it a string".into()),
            ("dnsmasq = { systemd = \"--now\" }",
             "Ddcfile.toml:6:11: apply.dnsmasq.systemd: \"--now\" is not a systemd unit name (like dnsmasq or dnsmasq.service)".into()),
            ("dnsmasq = { systemd = \"dns masq\" }",
             "Ddcfile.toml:6:11: apply.dnsmasq.systemd: \"dns masq\" is not a systemd unit name (like dnsmasq or dnsmasq.service)".into()),
            ("dnsmasq = { pidfile = \"\" }",
             "Ddcfile.toml:6:11: apply.dnsmasq.pidfile: \"\" is not a usable path".into()),
            ("ntpd = \"off\"",
             "Ddcfile.toml:6:1: unknown field `ntpd`, expected one of `dnsmasq`, `dhcpd`, `nfs`, `rsyslog`; remove it or check its spelling".into()),
        ];
        for (lines, want) in table {
            match parse_str(&with_apply(lines)) {
                Ok(_) => panic!("no error for {lines}"),
                Err(e) => assert_eq!(&e.to_string(), want, "for {lines}"),
            }
        }
    }

    #[test]
    fn every_bad_key_is_reported_at_once() {
        let e = parse_str(&with_apply("dnsmasq = \"x\"\nnfs = 1")).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("6:11: apply.dnsmasq") && text.contains("7:7: apply.nfs"));
    }

    #[test]
    fn the_hosts_file_stays_out_of_the_dnsmasq_folder() {
        let text = format!(
            "{BASE}\n[paths]\ndnsmasq = \"/etc/dnsmasq.d/ddc.conf\"\ndnsmasq_hosts = \"/etc/dnsmasq.d/ddc.hosts\"\n"
        );
        assert_eq!(
            parse_str(&text).unwrap_err().to_string(),
            "Ddcfile.toml:7:17: paths.dnsmasq_hosts: \"/etc/dnsmasq.d/ddc.hosts\" is in the folder of paths.dnsmasq (/etc/dnsmasq.d), which dnsmasq reads as config when it is its conf-dir, and then refuses to start; put the hosts file in another folder (like /etc/ddc/dnsmasq.hosts)"
        );
        // Unset, it is named by the file: the default moved under the main file.
        let text = format!("{BASE}\n[paths]\ndnsmasq = \"out/dnsmasq/x.conf\"\n");
        let e = parse_str(&text).unwrap_err().to_string();
        assert!(e.starts_with("Ddcfile.toml: paths.dnsmasq_hosts: \"/base/out/dnsmasq/ddc.hosts\" is in the folder"), "{e}");
        let c = parse_str(BASE).unwrap();
        assert_eq!(
            c.paths.dnsmasq_hosts,
            Path::new("/base/out/dnsmasq/ddc.hosts")
        );
    }
}
