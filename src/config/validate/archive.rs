//! An image's suite and architecture against what Debian has: the known
//! names at once, any other against the mirror's Release file. A name the
//! mirror does not have is an error; one that cannot be checked (the mirror
//! out of reach) a warning, with the nearest known name either way.

use super::Validator;
use crate::config::origin::{ConfigError, Origin, Sourced};
use crate::config::release::{known_suite, Answer, ARCHES, SUITES};
use crate::config::suggest::did_you_mean;

/// The architecture of an image that names none.
pub(super) const DEFAULT_ARCH: &str = "amd64";

impl Validator<'_> {
    /// Checks `suite` and `arch` (absent: [`DEFAULT_ARCH`]) of image `image`
    /// from `mirror`; asks the mirror only about a name ddc does not know.
    pub(super) fn check_archive(
        &mut self,
        image: &str,
        suite: &Sourced<String>,
        arch: Option<&Sourced<String>>,
        mirror: &str,
    ) {
        let arch_name = arch.map_or(DEFAULT_ARCH, |a| a.value.as_str());
        let suite_known = known_suite(&suite.value);
        let arch_known = ARCHES.contains(&arch_name);
        if suite_known && arch_known {
            return;
        }
        let suite_key = format!("images.{image}.suite");
        let arch_key = format!("images.{image}.arch");
        // The architecture's own key, or the suite's when it is the default.
        let arch_origin = arch.map_or(&suite.origin, |a| &a.origin).clone();
        let arch_at = if arch.is_some() {
            &arch_key
        } else {
            &suite_key
        };
        let near_suite = did_you_mean(&suite.value, SUITES.iter().copied());
        match (self.archive)(mirror, &suite.value) {
            Answer::Found(release) => {
                let has = &release.architectures;
                if !has.is_empty() && !has.iter().any(|a| a == arch_name) {
                    let listed: Vec<&str> = has
                        .iter()
                        .map(String::as_str)
                        .filter(|a| *a != "all")
                        .collect();
                    self.error(
                        arch_origin,
                        arch_at,
                        format!(
                            "{arch_name:?} is not an architecture of {} in {mirror} (it has {}){}",
                            suite.value,
                            listed.join(", "),
                            did_you_mean(arch_name, listed.iter().copied())
                        ),
                    );
                }
            }
            Answer::Missing(why) => self.error(
                suite.origin.clone(),
                &suite_key,
                format!(
                    "{:?} is not a suite of {mirror} ({why}){near_suite}",
                    suite.value
                ),
            ),
            Answer::Unreachable(why) => {
                if !suite_known {
                    self.warn(
                        suite.origin.clone(),
                        &suite_key,
                        format!(
                            "{:?} is not a Debian suite ddc knows, and {mirror} could not be asked ({why}){near_suite}",
                            suite.value
                        ),
                    );
                }
                if !arch_known {
                    self.warn(
                        arch_origin,
                        arch_at,
                        format!(
                            "{arch_name:?} is not a Debian architecture ddc knows, and {mirror} could not be asked ({why}){}",
                            did_you_mean(arch_name, ARCHES.iter().copied())
                        ),
                    );
                }
            }
        }
    }

    fn warn(&mut self, origin: Origin, key: &str, message: String) {
        self.warnings.push(ConfigError {
            origin,
            key: key.to_string(),
            message,
        });
    }
}
