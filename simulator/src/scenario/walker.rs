//! The walker: reads JSON values into typed ones, one field at a time, and records every
//! problem with its path instead of stopping at the first. The scenario's own shape (which
//! fields, which references) is in `parse`; this is what any JSON document would need.

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use serde_json::{Map, Value};

use sequence_core::error::Problems;
use sequence_core::time::{parse_time_zone, LocalTime};
use sequence_core::validate::validate_email;
use sequence_core::ValidationErrors;

/// The path of the document itself, for problems that belong to no field.
pub(super) const ROOT: &str = "$";

/// Reads one JSON object's fields, remembering which were read, so that the rest can be
/// reported as unknown.
pub(super) struct Obj<'a> {
    path: String,
    map: &'a Map<String, Value>,
    seen: Vec<&'static str>,
}

/// The path of field `key` of the object at `path` (`key` alone at the root).
pub(super) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

impl<'a> Obj<'a> {
    /// Field `key` and its path, marking it read; `None` when it is absent or null.
    pub(super) fn get(&mut self, key: &'static str) -> Option<(&'a Value, String)> {
        self.seen.push(key);
        self.map
            .get(key)
            .filter(|v| !v.is_null())
            .map(|v| (v, join(&self.path, key)))
    }
}

#[derive(Default)]
/// Collects the problems of one document while its values are read.
pub(super) struct Walker {
    /// Every problem so far, in the order found.
    pub(super) problems: Problems,
}

impl Walker {
    /// Record a problem at `path` ([`ROOT`] when it is empty).
    pub(super) fn push(&mut self, path: &str, reason: impl std::fmt::Display) {
        let path = if path.is_empty() { ROOT } else { path };
        self.problems.push(path, reason.to_string());
    }

    /// Record every problem the domain found in the value at `path`; their paths are
    /// relative to it.
    pub(super) fn push_all(&mut self, path: &str, errors: ValidationErrors) {
        self.problems.extend_prefixed(path, errors);
    }

    /// `v` as an object whose fields can be read one by one.
    pub(super) fn object<'a>(&mut self, v: &'a Value, path: &str) -> Option<Obj<'a>> {
        if let Value::Object(map) = v {
            Some(Obj {
                path: path.to_owned(),
                map,
                seen: Vec::new(),
            })
        } else {
            self.push(path, format!("expected an object, found {}", kind(v)));
            None
        }
    }

    /// Report every field of `obj` that was never read as unknown.
    pub(super) fn finish(&mut self, obj: &Obj<'_>) {
        for key in obj.map.keys() {
            if !obj.seen.contains(&key.as_str()) {
                self.push(&join(&obj.path, key), "unknown field");
            }
        }
    }

    /// Field `key` of `obj`, reported when missing.
    pub(super) fn required<'a>(
        &mut self,
        obj: &mut Obj<'a>,
        key: &'static str,
    ) -> Option<(&'a Value, String)> {
        let got = obj.get(key);
        if got.is_none() {
            self.push(&join(&obj.path, key), "is required");
        }
        got
    }

    /// `v` as a string.
    pub(super) fn string(&mut self, v: &Value, path: &str) -> Option<String> {
        if let Value::String(s) = v {
            Some(s.clone())
        } else {
            self.push(path, format!("expected a string, found {}", kind(v)));
            None
        }
    }

    /// `v` as an id: a string that is not blank.
    pub(super) fn id(&mut self, v: &Value, path: &str) -> Option<String> {
        let s = self.string(v, path)?;
        if s.trim().is_empty() {
            self.push(path, "must not be empty");
            return None;
        }
        Some(s)
    }

    /// `v` as a whole number from 0 to `max`.
    pub(super) fn uint(&mut self, v: &Value, path: &str, max: u64) -> Option<u64> {
        match v.as_u64() {
            Some(n) if n <= max => Some(n),
            Some(n) => {
                self.push(path, format!("{n} is more than the largest allowed, {max}"));
                None
            }
            None if v.as_i64().is_some_and(|n| n < 0) => {
                self.push(path, format!("must not be negative, found {v}"));
                None
            }
            None => {
                self.push(
                    path,
                    format!("expected a whole number, found {}", kind_and_value(v)),
                );
                None
            }
        }
    }

    /// `v` as a whole number from 0 to `max`, as a `u32`.
    pub(super) fn u32_field(&mut self, v: &Value, path: &str, max: u32) -> Option<u32> {
        self.uint(v, path, u64::from(max))
            .and_then(|n| u32::try_from(n).ok())
    }

    /// One of a few names, each standing for a value; `what` names the kind in the problem.
    pub(super) fn choice<T: Copy>(
        &mut self,
        v: &Value,
        path: &str,
        what: &str,
        names: &[(&str, T)],
    ) -> Option<T> {
        let s = self.string(v, path)?;
        if let Some((_, value)) = names.iter().find(|(name, _)| *name == s) {
            return Some(*value);
        }
        let expected: Vec<String> = names.iter().map(|(n, _)| format!("{n:?}")).collect();
        self.push(
            path,
            format!(
                "{s:?} is not {what}: expected one of {}",
                expected.join(", ")
            ),
        );
        None
    }

    /// A whole number from 1 to `max`.
    pub(super) fn positive(&mut self, v: &Value, path: &str, max: u32) -> Option<u32> {
        let n = self.u32_field(v, path, max)?;
        if n == 0 {
            self.push(path, "must be at least 1");
            return None;
        }
        Some(n)
    }

    /// `v` as `true` or `false`.
    pub(super) fn boolean(&mut self, v: &Value, path: &str) -> Option<bool> {
        if let Value::Bool(b) = v {
            Some(*b)
        } else {
            self.push(path, format!("expected true or false, found {}", kind(v)));
            None
        }
    }

    /// `v` as an RFC 3339 instant.
    pub(super) fn instant(&mut self, v: &Value, path: &str) -> Option<DateTime<Utc>> {
        let s = self.string(v, path)?;
        match DateTime::parse_from_rfc3339(&s) {
            Ok(t) => Some(t.with_timezone(&Utc)),
            Err(e) => {
                self.push(path, format!("{s:?} is not an RFC 3339 instant ({e})"));
                None
            }
        }
    }

    /// `v` as a date, `YYYY-MM-DD`.
    pub(super) fn date(&mut self, v: &Value, path: &str) -> Option<NaiveDate> {
        let s = self.string(v, path)?;
        match NaiveDate::parse_from_str(&s, "%Y-%m-%d") {
            Ok(d) => Some(d),
            Err(e) => {
                self.push(path, format!("{s:?} is not a date YYYY-MM-DD ({e})"));
                None
            }
        }
    }

    /// `v` as an IANA time zone name.
    pub(super) fn zone(&mut self, v: &Value, path: &str) -> Option<Tz> {
        let s = self.string(v, path)?;
        match parse_time_zone(&s) {
            Ok(tz) => Some(tz),
            Err(e) => {
                self.push(path, e);
                None
            }
        }
    }

    /// `v` as an email address, checked by the domain's rule.
    pub(super) fn email(&mut self, v: &Value, path: &str) -> Option<String> {
        let s = self.string(v, path)?;
        match validate_email(path, &s) {
            Ok(()) => Some(s),
            Err(e) => {
                // The domain's problems carry `path` already.
                self.push_all("", e);
                None
            }
        }
    }

    /// `v` as a list.
    pub(super) fn array<'a>(&mut self, v: &'a Value, path: &str) -> Option<&'a Vec<Value>> {
        if let Value::Array(items) = v {
            Some(items)
        } else {
            self.push(path, format!("expected a list, found {}", kind(v)));
            None
        }
    }

    /// `v` as a local time, `HH:MM`.
    pub(super) fn local_time(&mut self, v: &Value, path: &str) -> Option<LocalTime> {
        let s = self.string(v, path)?;
        match s.parse::<LocalTime>() {
            Ok(t) => Some(t),
            Err(e) => {
                self.push(path, e);
                None
            }
        }
    }

    /// Each element through `item`; `None` when the list or any element is invalid.
    pub(super) fn list<T>(
        &mut self,
        v: &Value,
        path: &str,
        mut item: impl FnMut(&mut Self, &Value, &str) -> Option<T>,
    ) -> Option<Vec<T>> {
        let items = self.array(v, path)?;
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, v) in items.iter().enumerate() {
            match item(self, v, &format!("{path}[{i}]")) {
                Some(x) => out.push(x),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }
}

/// What `v` is, for a problem's message: `a string`, `a list`, ...
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// What `v` is, with its value where it is short: `3`, `the string "x"`, ...
fn kind_and_value(v: &Value) -> String {
    match v {
        Value::Number(n) => format!("{n}"),
        Value::String(s) => format!("the string {s:?}"),
        other => kind(other).to_owned(),
    }
}
