//! The values shell completion offers for arguments that name one of a known set (`--task`,
//! `--role`, `--provider`), from the definitions the domain uses, so that completion never
//! offers file names there. Parsing is unchanged: each argument keeps its own parser, and the
//! daemon still decides on what it receives.

use std::ffi::OsStr;

use clap::builder::{PossibleValue, TypedValueParser};

/// A value parser that parses with `parse` and offers `values` to completion (and to `--help`
/// unless the argument hides them).
#[derive(Clone)]
pub(crate) struct Offered<P> {
    parse: P,
    values: fn() -> Vec<String>,
}

impl<P: TypedValueParser> TypedValueParser for Offered<P> {
    type Value = P::Value;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<Self::Value, clap::Error> {
        self.parse.parse_ref(cmd, arg, value)
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(
            (self.values)().into_iter().map(PossibleValue::new),
        ))
    }
}

/// `parse`, with `values` offered to completion.
pub(crate) fn offered<P: TypedValueParser>(parse: P, values: fn() -> Vec<String>) -> Offered<P> {
    Offered { parse, values }
}

/// A parser that takes any text as it is (the daemon checks it).
type AnyText = fn(&str) -> Result<String, String>;

/// Any text, with `values` offered to completion (an argument the daemon checks).
pub(crate) fn offered_text(values: fn() -> Vec<String>) -> Offered<AnyText> {
    fn text(s: &str) -> Result<String, String> {
        Ok(s.to_owned())
    }
    offered(text as AnyText, values)
}

/// The root tasks of the default catalogue (`change-root-password`, ...).
pub(crate) fn tasks() -> Vec<String> {
    crate::custody::policy::default_catalogue()
        .into_iter()
        .map(|t| t.id)
        .collect()
}

/// The providers the domain knows by name (others are accepted too).
pub(crate) fn providers() -> Vec<String> {
    use crate::custody::Provider;
    [Provider::Aws, Provider::AwsUsGov, Provider::AwsCn]
        .iter()
        .map(|p| p.as_str().to_owned())
        .collect()
}

/// The roles of custody users.
pub(crate) fn user_roles() -> Vec<String> {
    use crate::custody::Role;
    [Role::Officer, Role::Operator, Role::Auditor]
        .iter()
        .map(|r| r.as_str().to_owned())
        .collect()
}

/// The roles of devices.
pub(crate) fn device_roles() -> Vec<String> {
    use crate::custody::DeviceRole;
    [DeviceRole::Primary, DeviceRole::Backup]
        .iter()
        .map(|r| format!("{r:?}").to_lowercase())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offered_values_are_the_ones_the_parsers_accept() {
        for r in user_roles() {
            assert!(crate::custody::Role::parse(&r).is_ok(), "{r}");
        }
        for p in providers() {
            let parsed = crate::custody::Provider::parse(&p).expect("provider");
            assert!(!matches!(parsed, crate::custody::Provider::Other(_)), "{p}");
        }
        assert_eq!(device_roles(), ["primary", "backup"]);
        assert!(tasks().contains(&"change-root-password".to_owned()));
    }
}
