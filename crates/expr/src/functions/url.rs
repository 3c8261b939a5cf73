//! URL functions, following java.net.URI's parts (decoded path, query and fragment) and
//! URLEncoder/URLDecoder for parameters, as ksqlDB does. A URL that doesn't parse gives
//! NULL.

use super::ScalarFunction;
use super::support::{all_strings, count, str_arg};
use sluice_common::{DataType, Value};

#[derive(Debug, Default, PartialEq)]
struct Url<'a> {
    scheme: Option<&'a str>,
    authority: Option<&'a str>,
    path: Option<&'a str>,
    query: Option<&'a str>,
    fragment: Option<&'a str>,
}

/// Characters java.net.URI rejects anywhere in a URI.
fn illegal(c: char) -> bool {
    c.is_control() || c.is_whitespace() || "<>\"{}|\\^`".contains(c)
}

fn parse_url(text: &str) -> Option<Url<'_>> {
    if text.is_empty() || text.chars().any(illegal) {
        return None;
    }
    let mut url = Url::default();
    let (rest, fragment) = match text.split_once('#') {
        Some((r, f)) => (r, Some(f)),
        None => (text, None),
    };
    url.fragment = fragment;
    let mut rest = rest;
    if let Some(colon) = rest.find(':') {
        let candidate = &rest[..colon];
        let valid = candidate
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
            && candidate
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
        if valid {
            url.scheme = Some(candidate);
            rest = &rest[colon + 1..];
            // An opaque URI (mailto:x) has no hierarchical parts.
            if !rest.starts_with('/') {
                return (!rest.is_empty()).then_some(url);
            }
        }
    }
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    url.query = query;
    if let Some(after) = rest.strip_prefix("//") {
        let end = after.find('/').unwrap_or(after.len());
        url.authority = Some(&after[..end]);
        url.path = Some(&after[end..]);
    } else {
        url.path = Some(rest);
    }
    Some(url)
}

impl Url<'_> {
    /// Host and port of a server-based authority: `[user@]host[:port]`.
    fn host_port(&self) -> Option<(&str, Option<&str>)> {
        let auth = self.authority?;
        let hostport = auth.rsplit_once('@').map_or(auth, |(_, h)| h);
        let (host, port) = if hostport.starts_with('[') {
            let close = hostport.find(']')?;
            let port = hostport[close + 1..].strip_prefix(':');
            (&hostport[..=close], port)
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        if host.is_empty() {
            return None;
        }
        Some((host, port.filter(|p| !p.is_empty())))
    }
}

fn hex_val(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Decodes %XX escapes (and, for form parameters, '+' as space); NULL when malformed.
fn percent_decode(s: &str, plus_is_space: bool) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hi = hex_val(*bytes.get(i + 1)?)?;
                let lo = hex_val(*bytes.get(i + 2)?)?;
                out.push(hi * 16 + lo);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// java.net.URLEncoder with UTF-8.
fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'*' | b'_' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn part(args: &[Value], f: fn(&Url) -> Option<String>) -> Value {
    str_arg(args, 0)
        .and_then(parse_url)
        .and_then(|u| f(&u))
        .map_or(Value::Null, Value::String)
}

fn extract_parameter(args: &[Value]) -> Value {
    let (Some(url), Some(name)) = (str_arg(args, 0).and_then(parse_url), str_arg(args, 1)) else {
        return Value::Null;
    };
    let Some(query) = url.query else {
        return Value::Null;
    };
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if percent_decode(k, true).as_deref() == Some(name) {
            return percent_decode(v, true).map_or(Value::Null, Value::String);
        }
    }
    Value::Null
}

fn url_rule(args: &[DataType], n: usize, out: DataType) -> Result<DataType, String> {
    count(args, n, n)?;
    all_strings(args, 0)?;
    Ok(out)
}

pub(super) static FUNCTIONS: &[ScalarFunction] = &[
    ScalarFunction {
        name: "URL_DECODE_PARAM",
        sigs: &[],
        signature: "URL_DECODE_PARAM(string)",
        description: "The string with application/x-www-form-urlencoded escapes decoded.",
        return_type: |a| url_rule(a, 1, DataType::String),
        eval: |a| {
            str_arg(a, 0)
                .and_then(|s| percent_decode(s, true))
                .map_or(Value::Null, Value::String)
        },
    },
    ScalarFunction {
        name: "URL_ENCODE_PARAM",
        sigs: &[],
        signature: "URL_ENCODE_PARAM(string)",
        description: "The string escaped as an application/x-www-form-urlencoded value.",
        return_type: |a| url_rule(a, 1, DataType::String),
        eval: |a| str_arg(a, 0).map_or(Value::Null, |s| Value::String(form_encode(s))),
    },
    ScalarFunction {
        name: "URL_EXTRACT_FRAGMENT",
        sigs: &[],
        signature: "URL_EXTRACT_FRAGMENT(url)",
        description: "The decoded fragment of a URL.",
        return_type: |a| url_rule(a, 1, DataType::String),
        eval: |a| part(a, |u| percent_decode(u.fragment?, false)),
    },
    ScalarFunction {
        name: "URL_EXTRACT_HOST",
        sigs: &[],
        signature: "URL_EXTRACT_HOST(url)",
        description: "The host of a URL.",
        return_type: |a| url_rule(a, 1, DataType::String),
        eval: |a| part(a, |u| u.host_port().map(|(h, _)| h.to_string())),
    },
    ScalarFunction {
        name: "URL_EXTRACT_PARAMETER",
        sigs: &[],
        signature: "URL_EXTRACT_PARAMETER(url, name)",
        description: "The decoded value of the first query parameter called name.",
        return_type: |a| url_rule(a, 2, DataType::String),
        eval: extract_parameter,
    },
    ScalarFunction {
        name: "URL_EXTRACT_PATH",
        sigs: &[],
        signature: "URL_EXTRACT_PATH(url)",
        description: "The decoded path of a URL.",
        return_type: |a| url_rule(a, 1, DataType::String),
        eval: |a| part(a, |u| percent_decode(u.path?, false)),
    },
    ScalarFunction {
        name: "URL_EXTRACT_PORT",
        sigs: &[],
        signature: "URL_EXTRACT_PORT(url)",
        description: "The port of a URL, or NULL when it names none.",
        return_type: |a| url_rule(a, 1, DataType::Int),
        eval: |a| {
            str_arg(a, 0)
                .and_then(parse_url)
                .and_then(|u| u.host_port()?.1?.parse::<u16>().ok())
                .map_or(Value::Null, |p| Value::Int(i32::from(p)))
        },
    },
    ScalarFunction {
        name: "URL_EXTRACT_PROTOCOL",
        sigs: &[],
        signature: "URL_EXTRACT_PROTOCOL(url)",
        description: "The scheme of a URL.",
        return_type: |a| url_rule(a, 1, DataType::String),
        eval: |a| part(a, |u| u.scheme.map(str::to_string)),
    },
    ScalarFunction {
        name: "URL_EXTRACT_QUERY",
        sigs: &[],
        signature: "URL_EXTRACT_QUERY(url)",
        description: "The decoded query of a URL.",
        return_type: |a| url_rule(a, 1, DataType::String),
        eval: |a| part(a, |u| percent_decode(u.query?, false)),
    },
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::lookup;
    use crate::functions::testing::call;

    fn s(v: &str) -> Value {
        Value::String(v.into())
    }

    const URL: &str = "https://user@docs.confluent.io:8080/current/ksql%20docs/index.html?query=a%20b&lang=en+gb#frag%21";

    #[test]
    fn parts() {
        let u = || s(URL);
        assert_eq!(call("URL_EXTRACT_PROTOCOL", &[u()]), s("https"));
        assert_eq!(call("URL_EXTRACT_HOST", &[u()]), s("docs.confluent.io"));
        assert_eq!(call("URL_EXTRACT_PORT", &[u()]), Value::Int(8080));
        assert_eq!(
            call("URL_EXTRACT_PATH", &[u()]),
            s("/current/ksql docs/index.html")
        );
        assert_eq!(call("URL_EXTRACT_QUERY", &[u()]), s("query=a b&lang=en+gb"));
        assert_eq!(call("URL_EXTRACT_FRAGMENT", &[u()]), s("frag!"));
        assert_eq!(call("URL_EXTRACT_PARAMETER", &[u(), s("lang")]), s("en gb"));
        assert_eq!(
            call("URL_EXTRACT_PARAMETER", &[u(), s("missing")]),
            Value::Null
        );
    }

    #[test]
    fn absent_parts_and_bad_urls() {
        let plain = s("http://example.com/a");
        assert_eq!(
            call("URL_EXTRACT_PORT", std::slice::from_ref(&plain)),
            Value::Null
        );
        assert_eq!(
            call("URL_EXTRACT_QUERY", std::slice::from_ref(&plain)),
            Value::Null
        );
        assert_eq!(call("URL_EXTRACT_FRAGMENT", &[plain]), Value::Null);
        assert_eq!(
            call("URL_EXTRACT_HOST", &[s("http://[::1]:80/x")]),
            s("[::1]")
        );
        assert_eq!(call("URL_EXTRACT_PATH", &[s("mailto:a@b.c")]), Value::Null);
        assert_eq!(
            call("URL_EXTRACT_PATH", &[s("/relative/p")]),
            s("/relative/p")
        );
        assert_eq!(
            call("URL_EXTRACT_HOST", &[s("http://a b.com/")]),
            Value::Null
        );
        assert_eq!(call("URL_EXTRACT_PATH", &[s("http://x/%zz")]), Value::Null);
        assert_eq!(call("URL_EXTRACT_HOST", &[Value::Null]), Value::Null);
    }

    #[test]
    fn params() {
        assert_eq!(
            call("URL_ENCODE_PARAM", &[s("a b&c=d/é*")]),
            s("a+b%26c%3Dd%2F%C3%A9*")
        );
        assert_eq!(
            call("URL_DECODE_PARAM", &[s("a+b%26c%3Dd%2F%C3%A9*")]),
            s("a b&c=d/é*")
        );
        assert_eq!(call("URL_DECODE_PARAM", &[s("%4")]), Value::Null);
        assert_eq!(call("URL_ENCODE_PARAM", &[s("")]), s(""));
        let rule = |n: &str, a: &[DataType]| (lookup(n).unwrap().return_type)(a);
        assert!(rule("URL_EXTRACT_HOST", &[DataType::Int]).is_err());
        assert!(rule("URL_EXTRACT_PARAMETER", &[DataType::String]).is_err());
        assert_eq!(
            rule("URL_EXTRACT_PORT", &[DataType::String]),
            Ok(DataType::Int)
        );
    }
}
