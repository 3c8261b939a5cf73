//! String functions beyond the basics: padding, masking, searching, splitting, regular
//! expressions and byte encodings. Positions count characters, 1-based, as in ksqlDB.

use super::ScalarFunction;
use super::support::{all_strings, count, expect, int_arg, is_integral, is_string, str_arg};
use super::{Param as P, Sig};
use base64::Engine as _;
use regex::Regex;
use sluice_common::{DataType, Value};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

const PAD: &[Sig] = &[
    Sig::of(&[P::String, P::Int, P::String]),
    Sig::of(&[P::Bytes, P::Int, P::Bytes]),
];
const SPLIT: &[Sig] = &[
    Sig::of(&[P::String, P::String]),
    Sig::of(&[P::Bytes, P::Bytes]),
];
const CONCAT_WS: &[Sig] = &[
    Sig::variadic(&[P::String, P::String]),
    Sig::variadic(&[P::Bytes, P::Bytes]),
];
const INSTR: &[Sig] = &[
    Sig::of(&[P::String, P::String]),
    Sig::of(&[P::String, P::String, P::Int]),
    Sig::of(&[P::String, P::String, P::Int, P::Int]),
];

fn string_or_bytes(t: &DataType) -> bool {
    matches!(t, DataType::String | DataType::Bytes)
}

/// Java's String.trim whitespace: every character up to U+0020.
pub(crate) fn java_space(c: char) -> bool {
    c <= ' '
}

fn initcap(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut next_upper = true;
    for c in s.chars() {
        if c.is_whitespace() {
            out.push(c);
            next_upper = true;
        } else if next_upper {
            out.extend(c.to_uppercase());
            next_upper = false;
        } else {
            out.extend(c.to_lowercase());
        }
    }
    out
}

/// INSTR: a negative position searches backwards from that many characters before the end.
fn instr(args: &[Value]) -> Value {
    let (Some(s), Some(sub)) = (str_arg(args, 0), str_arg(args, 1)) else {
        return Value::Int(0);
    };
    let position = if args.len() > 2 {
        int_arg(args, 2)
    } else {
        Some(1)
    };
    let occurrence = if args.len() > 3 {
        int_arg(args, 3)
    } else {
        Some(1)
    };
    let (Some(position), Some(occurrence)) = (position, occurrence) else {
        return Value::Null;
    };
    if occurrence <= 0 {
        return Value::Null;
    }
    if position == 0 {
        return Value::Int(0);
    }
    let hay: Vec<char> = s.chars().collect();
    let needle: Vec<char> = sub.chars().collect();
    let n = hay.len() as i64;
    let m = needle.len() as i64;
    let matches_at =
        |i: i64| i >= 0 && i + m <= n && hay[i as usize..(i + m) as usize] == needle[..];
    let mut index: i64;
    if position > 0 {
        index = position - 2;
        for _ in 0..occurrence {
            let from = (index + 1).max(0);
            match (from..=n - m).find(|&i| matches_at(i)) {
                Some(i) => index = i,
                None => return Value::Int(0),
            }
        }
    } else {
        index = n + position + 1;
        for _ in 0..occurrence {
            let from = (index - 1).min(n - m);
            match (0..=from).rev().find(|&i| matches_at(i)) {
                Some(i) => index = i,
                None => return Value::Int(0),
            }
        }
    }
    Value::Int((index + 1) as i32)
}

fn pad_rule(args: &[DataType]) -> Result<DataType, String> {
    count(args, 3, 3)?;
    expect(args, 0, "STRING or BYTES", string_or_bytes)?;
    expect(args, 1, "INTEGER", is_integral)?;
    if args[2] != args[0] && args[2] != DataType::String {
        return Err(format!(
            "expects a {} third argument, got {}",
            args[0], args[2]
        ));
    }
    Ok(args[0].clone())
}

/// LPAD/RPAD over any element type: NULL for a negative length or empty padding.
fn pad<T: Clone>(input: &[T], len: i64, padding: &[T], left: bool) -> Option<Vec<T>> {
    // A length a client can choose must not become an allocation that aborts the server:
    // nothing longer than a function may return is built.
    let max = i64::try_from(crate::limits::max_value_bytes()).unwrap_or(i64::MAX);
    if !(0..=max).contains(&len) || padding.is_empty() {
        return None;
    }
    let len = len as usize;
    if input.len() >= len {
        return Some(input[..len].to_vec());
    }
    let fill: Vec<T> = padding
        .iter()
        .cycle()
        .take(len - input.len())
        .cloned()
        .collect();
    Some(if left {
        [fill, input.to_vec()].concat()
    } else {
        [input.to_vec(), fill].concat()
    })
}

fn pad_eval(args: &[Value], left: bool) -> Value {
    let Some(len) = int_arg(args, 1) else {
        return Value::Null;
    };
    match (args.first(), args.get(2)) {
        (Some(Value::String(s)), Some(Value::String(p))) => {
            let s: Vec<char> = s.chars().collect();
            let p: Vec<char> = p.chars().collect();
            pad(&s, len, &p, left).map_or(Value::Null, |v| Value::String(v.into_iter().collect()))
        }
        (Some(Value::Bytes(s)), Some(Value::Bytes(p))) => {
            pad(s, len, p, left).map_or(Value::Null, Value::Bytes)
        }
        _ => Value::Null,
    }
}

/// Replacement characters for each class of character; `None` leaves that class as is.
struct Masks([Option<char>; 4]);

impl Masks {
    /// Reads the optional mask arguments starting at `from`; an absent argument keeps the
    /// default, a NULL one disables masking for its class.
    fn from_args(args: &[Value], from: usize) -> Masks {
        let defaults = ['X', 'x', 'n', '-'];
        let mut m = [None; 4];
        for (i, d) in defaults.into_iter().enumerate() {
            m[i] = match args.get(from + i) {
                None => Some(d),
                Some(Value::String(s)) => s.chars().next(),
                Some(_) => None,
            };
        }
        Masks(m)
    }

    fn mask(&self, c: char) -> char {
        let class = if c.is_uppercase() {
            0
        } else if c.is_lowercase() {
            1
        } else if c.is_ascii_digit() {
            2
        } else {
            3
        };
        self.0[class].unwrap_or(c)
    }
}

fn mask_rule(args: &[DataType], counted: bool) -> Result<DataType, String> {
    let fixed = if counted { 2 } else { 1 };
    count(args, fixed, fixed + 4)?;
    expect(args, 0, "STRING", is_string)?;
    if counted {
        expect(args, 1, "INTEGER", is_integral)?;
    }
    all_strings(args, fixed)?;
    Ok(DataType::String)
}

/// Masks the characters whose index `masked(index, length)` says so.
fn mask_eval(args: &[Value], counted: bool, masked: fn(usize, usize, usize) -> bool) -> Value {
    let Some(s) = str_arg(args, 0) else {
        return Value::Null;
    };
    let n = if counted {
        match int_arg(args, 1) {
            Some(n) if n >= 0 => n as usize,
            _ => return Value::Null,
        }
    } else {
        0
    };
    let masks = Masks::from_args(args, if counted { 2 } else { 1 });
    let len = s.chars().count();
    Value::String(
        s.chars()
            .enumerate()
            .map(|(i, c)| if masked(i, len, n) { masks.mask(c) } else { c })
            .collect(),
    )
}

thread_local! {
    static REGEX_CACHE: RefCell<HashMap<String, Option<Rc<Regex>>>> = RefCell::new(HashMap::new());
}

/// Compiles a (Java-style) pattern, remembering recent ones: patterns are nearly always
/// literals, so the same few recur for every row. Patterns the regex crate can't express
/// (look-around, back-references) give `None`. Shared through `Rc`, not cloned: a cloned
/// `Regex` gets a fresh match-cache pool, which made every call allocate its search
/// caches anew (Nexmark q21 ran at a tenth of q22's speed).
fn regex(pattern: &str) -> Option<Rc<Regex>> {
    REGEX_CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some(r) = cache.get(pattern) {
            return r.clone();
        }
        if cache.len() >= 64 {
            cache.clear();
        }
        let compiled = compile_regex(pattern).ok().map(Rc::new);
        cache.insert(pattern.to_string(), compiled.clone());
        compiled
    })
}

/// Compiles a pattern within `--max-regex-bytes` (its program and its lazy DFA's cache
/// both): the regex crate matches in linear time, so the compiled size is what a
/// pattern can cost. The cache above holds at most 64, so a thread's patterns stay
/// within 64 x (program + cache).
fn compile_regex(pattern: &str) -> Result<Regex, regex::Error> {
    let limit = crate::limits::max_regex_bytes();
    regex::RegexBuilder::new(pattern)
        .size_limit(limit)
        .dfa_size_limit(limit)
        .build()
}

/// Which argument of a regular-expression function is its pattern, by function name.
pub fn regex_pattern_arg(function: &str) -> Option<usize> {
    match function {
        "REGEXP_EXTRACT" | "REGEXP_EXTRACT_ALL" => Some(0),
        "REGEXP_REPLACE" | "REGEXP_SPLIT_TO_ARRAY" => Some(1),
        _ => None,
    }
}

/// Refuses a pattern whose compiled program is over `--max-regex-bytes`, naming the
/// limit. Other compile errors are not refused here: ksqlDB reports an invalid pattern
/// per record (the call is NULL), and so does Sluice.
pub fn check_regex_size(pattern: &str) -> Result<(), String> {
    match compile_regex(pattern) {
        Err(regex::Error::CompiledTooBig(_)) => Err(format!(
            "the regular expression compiles to more than {} bytes, the server's limit max-regex-bytes",
            crate::limits::max_regex_bytes()
        )),
        _ => Ok(()),
    }
}

fn regexp_extract(args: &[Value]) -> Value {
    let (Some(p), Some(s)) = (str_arg(args, 0), str_arg(args, 1)) else {
        return Value::Null;
    };
    let group = if args.len() > 2 {
        int_arg(args, 2)
    } else {
        Some(0)
    };
    let (Some(re), Some(group)) = (regex(p), group) else {
        return Value::Null;
    };
    let Ok(group) = usize::try_from(group) else {
        return Value::Null;
    };
    re.captures(s)
        .and_then(|c| c.get(group))
        .map_or(Value::Null, |m| Value::String(m.as_str().to_string()))
}

fn regexp_extract_all(args: &[Value]) -> Value {
    let (Some(p), Some(s)) = (str_arg(args, 0), str_arg(args, 1)) else {
        return Value::Null;
    };
    let group = if args.len() > 2 {
        int_arg(args, 2)
    } else {
        Some(0)
    };
    let (Some(re), Some(group)) = (regex(p), group) else {
        return Value::Null;
    };
    let Ok(group) = usize::try_from(group) else {
        return Value::Null;
    };
    if group >= re.captures_len() {
        return Value::Null;
    }
    Value::Array(
        re.captures_iter(s)
            .map(|c| {
                c.get(group)
                    .map_or(Value::Null, |m| Value::String(m.as_str().to_string()))
            })
            .collect(),
    )
}

/// Rewrites a Java replacement string (`$1`, `${name}`, `\$`) into the regex crate's syntax.
fn java_replacement(rep: &str, groups: usize) -> Option<String> {
    let mut out = String::with_capacity(rep.len());
    let mut chars = rep.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next()? {
                '$' => out.push_str("$$"),
                other => out.push(other),
            },
            '$' => {
                if chars.peek() == Some(&'{') {
                    chars.next();
                    let mut name = String::new();
                    loop {
                        match chars.next()? {
                            '}' => break,
                            ch => name.push(ch),
                        }
                    }
                    out.push_str(&format!("${{{name}}}"));
                } else {
                    // Java reads digits while the group number stays valid.
                    let first = chars.next()?.to_digit(10)? as usize;
                    if first >= groups {
                        return None;
                    }
                    let mut n = first;
                    while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
                        let next = n * 10 + d as usize;
                        if next >= groups {
                            break;
                        }
                        n = next;
                        chars.next();
                    }
                    out.push_str(&format!("${{{n}}}"));
                }
            }
            other => out.push(other),
        }
    }
    Some(out)
}

fn regexp_replace(args: &[Value]) -> Value {
    let (Some(s), Some(p), Some(r)) = (str_arg(args, 0), str_arg(args, 1), str_arg(args, 2)) else {
        return Value::Null;
    };
    let Some(re) = regex(p) else {
        return Value::Null;
    };
    match java_replacement(r, re.captures_len()) {
        Some(rep) => Value::String(re.replace_all(s, rep.as_str()).into_owned()),
        None => Value::Null,
    }
}

fn regexp_split(args: &[Value]) -> Value {
    let (Some(s), Some(p)) = (str_arg(args, 0), str_arg(args, 1)) else {
        return Value::Null;
    };
    let Some(re) = regex(p) else {
        return Value::Null;
    };
    let mut parts: Vec<Value> = re
        .split(s)
        .map(|part| Value::String(part.to_string()))
        .collect();
    // Java drops the empty leading piece a zero-width match at the start produces.
    if s.is_empty() {
        return Value::Array(vec![Value::String(String::new())]);
    }
    if parts.len() > 1
        && parts.first() == Some(&Value::String(String::new()))
        && re.find(s).is_some_and(|m| m.start() == 0 && m.end() == 0)
    {
        parts.remove(0);
    }
    Value::Array(parts)
}

fn split_bytes(s: &[u8], delim: &[u8]) -> Vec<Vec<u8>> {
    if delim.is_empty() {
        if s.is_empty() {
            return vec![Vec::new()];
        }
        return s.iter().map(|b| vec![*b]).collect();
    }
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i + delim.len() <= s.len() {
        if &s[i..i + delim.len()] == delim {
            out.push(s[start..i].to_vec());
            i += delim.len();
            start = i;
        } else {
            i += 1;
        }
    }
    out.push(s[start..].to_vec());
    out
}

fn split(args: &[Value]) -> Value {
    match (args.first(), args.get(1)) {
        (Some(Value::String(s)), Some(Value::String(d))) => Value::Array(if d.is_empty() {
            if s.is_empty() {
                vec![Value::String(String::new())]
            } else {
                s.chars().map(|c| Value::String(c.to_string())).collect()
            }
        } else {
            s.split(d.as_str())
                .map(|p| Value::String(p.to_string()))
                .collect()
        }),
        (Some(Value::Bytes(s)), Some(Value::Bytes(d))) => {
            Value::Array(split_bytes(s, d).into_iter().map(Value::Bytes).collect())
        }
        _ => Value::Null,
    }
}

fn split_to_map(args: &[Value]) -> Value {
    let (Some(s), Some(entry), Some(kv)) = (str_arg(args, 0), str_arg(args, 1), str_arg(args, 2))
    else {
        return Value::Null;
    };
    if entry.is_empty() || kv.is_empty() {
        return Value::Null;
    }
    let mut out: Vec<(Value, Value)> = Vec::new();
    for e in s.split(entry).filter(|e| !e.is_empty()) {
        let mut parts = e.split(kv);
        let (Some(k), Some(v)) = (parts.next(), parts.next()) else {
            continue;
        };
        let k = Value::String(k.to_string());
        let v = Value::String(v.to_string());
        match out.iter_mut().find(|(existing, _)| *existing == k) {
            Some(slot) => slot.1 = v,
            None => out.push((k, v)),
        }
    }
    Value::Map(out)
}

/// CHR of a code point, or of `\uXXXX` escapes (a surrogate pair spells one character).
fn chr(args: &[Value]) -> Value {
    match args.first() {
        Some(Value::Int(_) | Value::BigInt(_)) => int_arg(args, 0)
            .and_then(|c| u32::try_from(c).ok())
            .and_then(char::from_u32)
            .map_or(Value::Null, |c| Value::String(c.to_string())),
        Some(Value::String(s)) => {
            if s.len() < 6 || !s.starts_with("\\u") {
                return Value::Null;
            }
            let mut units = Vec::new();
            for part in s.split("\\u").skip(1) {
                if part.len() != 4 {
                    return Value::Null;
                }
                match u16::from_str_radix(part, 16) {
                    Ok(u) => units.push(u),
                    Err(_) => return Value::Null,
                }
            }
            String::from_utf16(&units).map_or(Value::Null, Value::String)
        }
        _ => Value::Null,
    }
}

fn base64_lenient() -> base64::engine::GeneralPurpose {
    base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    )
}

/// Hex text to bytes: bare digits, `X'..'` or `0x..`. Only the `0x` form may have an
/// odd number of digits, read as if it had a leading zero (as ksqlDB's hex decoder does).
fn hex_decode(text: &str) -> Option<Vec<u8>> {
    let padded;
    let digits = if let Some(rest) = text.strip_prefix("0x") {
        if rest.len() % 2 != 0 {
            padded = format!("0{rest}");
            padded.as_str()
        } else {
            rest
        }
    } else if let Some(rest) = text.strip_prefix("X'").or_else(|| text.strip_prefix("x'")) {
        rest.strip_suffix('\'')?
    } else {
        text
    };
    if digits.len() % 2 != 0 {
        return None;
    }
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(digits.get(i..i + 2)?, 16).ok())
        .collect()
}

#[derive(Clone, Copy, PartialEq)]
enum Encoding {
    Hex,
    Utf8,
    Ascii,
    Base64,
}

impl Encoding {
    fn parse(name: &str) -> Option<Encoding> {
        Some(match name.to_ascii_lowercase().as_str() {
            "hex" => Encoding::Hex,
            "utf8" => Encoding::Utf8,
            "ascii" => Encoding::Ascii,
            "base64" => Encoding::Base64,
            _ => return None,
        })
    }

    fn decode(self, text: &str) -> Option<Vec<u8>> {
        match self {
            Encoding::Hex => hex_decode(text),
            Encoding::Utf8 => Some(text.as_bytes().to_vec()),
            // Java's US-ASCII encoder writes '?' for what it can't represent.
            Encoding::Ascii => Some(
                text.chars()
                    .map(|c| if c.is_ascii() { c as u8 } else { b'?' })
                    .collect(),
            ),
            Encoding::Base64 => base64_lenient().decode(text).ok(),
        }
    }

    fn encode(self, bytes: &[u8], upper_hex: bool) -> String {
        match self {
            Encoding::Hex => bytes
                .iter()
                .map(|b| {
                    if upper_hex {
                        format!("{b:02X}")
                    } else {
                        format!("{b:02x}")
                    }
                })
                .collect(),
            Encoding::Utf8 => String::from_utf8_lossy(bytes).into_owned(),
            Encoding::Ascii => bytes
                .iter()
                .map(|&b| if b.is_ascii() { b as char } else { '\u{fffd}' })
                .collect(),
            Encoding::Base64 => base64::engine::general_purpose::STANDARD.encode(bytes),
        }
    }
}

fn encode(args: &[Value]) -> Value {
    let (Some(s), Some(from), Some(to)) = (str_arg(args, 0), str_arg(args, 1), str_arg(args, 2))
    else {
        return Value::Null;
    };
    let (Some(from), Some(to)) = (Encoding::parse(from), Encoding::parse(to)) else {
        return Value::Null;
    };
    from.decode(s)
        .map_or(Value::Null, |b| Value::String(to.encode(&b, false)))
}

fn from_bytes(args: &[Value]) -> Value {
    match (args.first(), str_arg(args, 1).and_then(Encoding::parse)) {
        (Some(Value::Bytes(b)), Some(enc)) => Value::String(enc.encode(b, true)),
        _ => Value::Null,
    }
}

fn to_bytes(args: &[Value]) -> Value {
    match (str_arg(args, 0), str_arg(args, 1).and_then(Encoding::parse)) {
        (Some(s), Some(enc)) => enc.decode(s).map_or(Value::Null, Value::Bytes),
        _ => Value::Null,
    }
}

/// Lower-case hex, as ksqlDB's MD5 writes its digest (Hex.encodeHexString).
fn lower_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

fn md5_hex(data: &[u8]) -> String {
    use md5::Digest;
    lower_hex(&md5::Md5::digest(data))
}

/// A version 4 UUID from the operating system's secure random source, as ksqlDB's
/// `UUID.randomUUID()`: guessable values would let one client predict another's keys.
/// Canonical lower-case 8-4-4-4-12 form, as Java's `UUID.toString()`.
fn uuid_v4() -> String {
    uuid::Uuid::new_v4().hyphenated().to_string()
}

fn concat_ws(args: &[Value]) -> Value {
    match args.first() {
        Some(Value::String(sep)) => Value::String(
            args[1..]
                .iter()
                .filter_map(|v| v.as_str())
                .collect::<Vec<_>>()
                .join(sep),
        ),
        Some(Value::Bytes(sep)) => Value::Bytes(
            args[1..]
                .iter()
                .filter_map(|v| match v {
                    Value::Bytes(b) => Some(b.as_slice()),
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join(sep.as_slice()),
        ),
        _ => Value::Null,
    }
}

/// Reads a fixed-width number from bytes, big-endian unless told 'LITTLE_ENDIAN'.
fn from_bytes_number<const N: usize>(args: &[Value], make: fn([u8; N]) -> Value) -> Value {
    let Some(Value::Bytes(b)) = args.first() else {
        return Value::Null;
    };
    let little = match args.get(1) {
        None => false,
        Some(Value::String(order)) => match order.to_ascii_uppercase().as_str() {
            "BIG_ENDIAN" => false,
            "LITTLE_ENDIAN" => true,
            _ => return Value::Null,
        },
        Some(_) => return Value::Null,
    };
    let Ok(mut raw) = <[u8; N]>::try_from(b.as_slice()) else {
        return Value::Null;
    };
    if little {
        raw.reverse();
    }
    make(raw)
}

fn from_bytes_rule(args: &[DataType], out: DataType) -> Result<DataType, String> {
    count(args, 1, 2)?;
    expect(args, 0, "BYTES", |t| *t == DataType::Bytes)?;
    expect(args, 1, "STRING", is_string)?;
    Ok(out)
}

pub(super) static FUNCTIONS: &[ScalarFunction] = &[
    ScalarFunction {
        name: "CONCAT_WS",
        sigs: CONCAT_WS,
        signature: "CONCAT_WS(separator, expr, ...)",
        description: "The concatenation of the non-NULL arguments, separated by separator.",
        return_type: |a| {
            count(a, 2, usize::MAX)?;
            expect(a, 0, "STRING or BYTES", string_or_bytes)?;
            for i in 1..a.len() {
                if a[i] != a[0] && a[i] != DataType::String {
                    return Err(format!(
                        "expects {} arguments only, got {} at position {}",
                        a[0],
                        a[i],
                        i + 1
                    ));
                }
            }
            Ok(a[0].clone())
        },
        eval: concat_ws,
    },
    ScalarFunction {
        name: "INITCAP",
        sigs: &[],
        signature: "INITCAP(string)",
        description: "The string with the first letter of each word in upper case and the rest in lower case.",
        return_type: |a| {
            count(a, 1, 1)?;
            expect(a, 0, "STRING", is_string)?;
            Ok(DataType::String)
        },
        eval: |a| str_arg(a, 0).map_or(Value::Null, |s| Value::String(initcap(s))),
    },
    ScalarFunction {
        name: "INSTR",
        sigs: INSTR,
        signature: "INSTR(string, substring [, position [, occurrence]])",
        description: "The 1-based position of the occurrence-th substring from position (negative: searching backwards from the end), or 0.",
        return_type: |a| {
            count(a, 2, 4)?;
            all_strings(&a[..2], 0)?;
            expect(a, 2, "INTEGER", is_integral)?;
            expect(a, 3, "INTEGER", is_integral)?;
            Ok(DataType::Int)
        },
        eval: instr,
    },
    ScalarFunction {
        name: "LPAD",
        sigs: PAD,
        signature: "LPAD(input, length, padding)",
        description: "The input padded on the left with padding, or truncated, to length characters (bytes).",
        return_type: pad_rule,
        eval: |a| pad_eval(a, true),
    },
    ScalarFunction {
        name: "RPAD",
        sigs: PAD,
        signature: "RPAD(input, length, padding)",
        description: "The input padded on the right with padding, or truncated, to length characters (bytes).",
        return_type: pad_rule,
        eval: |a| pad_eval(a, false),
    },
    ScalarFunction {
        name: "MASK",
        sigs: &[],
        signature: "MASK(string [, upper, lower, digit, other])",
        description: "The string with upper case letters, lower case letters, digits and other characters masked (defaults X, x, n, -; NULL keeps).",
        return_type: |a| mask_rule(a, false),
        eval: |a| mask_eval(a, false, |_, _, _| true),
    },
    ScalarFunction {
        name: "MASK_KEEP_LEFT",
        sigs: &[],
        signature: "MASK_KEEP_LEFT(string, n [, upper, lower, digit, other])",
        description: "The string masked except for its first n characters.",
        return_type: |a| mask_rule(a, true),
        eval: |a| mask_eval(a, true, |i, _, n| i >= n),
    },
    ScalarFunction {
        name: "MASK_KEEP_RIGHT",
        sigs: &[],
        signature: "MASK_KEEP_RIGHT(string, n [, upper, lower, digit, other])",
        description: "The string masked except for its last n characters.",
        return_type: |a| mask_rule(a, true),
        eval: |a| mask_eval(a, true, |i, len, n| i + n < len),
    },
    ScalarFunction {
        name: "MASK_LEFT",
        sigs: &[],
        signature: "MASK_LEFT(string, n [, upper, lower, digit, other])",
        description: "The string with its first n characters masked.",
        return_type: |a| mask_rule(a, true),
        eval: |a| mask_eval(a, true, |i, _, n| i < n),
    },
    ScalarFunction {
        name: "MASK_RIGHT",
        sigs: &[],
        signature: "MASK_RIGHT(string, n [, upper, lower, digit, other])",
        description: "The string with its last n characters masked.",
        return_type: |a| mask_rule(a, true),
        eval: |a| mask_eval(a, true, |i, len, n| i + n >= len),
    },
    ScalarFunction {
        name: "REGEXP_EXTRACT",
        sigs: &[],
        signature: "REGEXP_EXTRACT(pattern, string [, group])",
        description: "The first substring matching the regular expression, or its capture group.",
        return_type: |a| {
            count(a, 2, 3)?;
            all_strings(&a[..2], 0)?;
            expect(a, 2, "INTEGER", is_integral)?;
            Ok(DataType::String)
        },
        eval: regexp_extract,
    },
    ScalarFunction {
        name: "REGEXP_EXTRACT_ALL",
        sigs: &[],
        signature: "REGEXP_EXTRACT_ALL(pattern, string [, group])",
        description: "Every substring matching the regular expression, or its capture group.",
        return_type: |a| {
            count(a, 2, 3)?;
            all_strings(&a[..2], 0)?;
            expect(a, 2, "INTEGER", is_integral)?;
            Ok(DataType::Array(Box::new(DataType::String)))
        },
        eval: regexp_extract_all,
    },
    ScalarFunction {
        name: "REGEXP_REPLACE",
        sigs: &[],
        signature: "REGEXP_REPLACE(string, pattern, replacement)",
        description: "The string with every match of the regular expression replaced ($n refers to groups).",
        return_type: |a| {
            count(a, 3, 3)?;
            all_strings(a, 0)?;
            Ok(DataType::String)
        },
        eval: regexp_replace,
    },
    ScalarFunction {
        name: "REGEXP_SPLIT_TO_ARRAY",
        sigs: &[],
        signature: "REGEXP_SPLIT_TO_ARRAY(string, pattern)",
        description: "The pieces of the string between matches of the regular expression.",
        return_type: |a| {
            count(a, 2, 2)?;
            all_strings(a, 0)?;
            Ok(DataType::Array(Box::new(DataType::String)))
        },
        eval: regexp_split,
    },
    ScalarFunction {
        name: "SPLIT",
        sigs: SPLIT,
        signature: "SPLIT(input, delimiter)",
        description: "The pieces of a string (or bytes) between occurrences of the delimiter; an empty delimiter splits every character.",
        return_type: |a| {
            count(a, 2, 2)?;
            expect(a, 0, "STRING or BYTES", string_or_bytes)?;
            if a[1] != a[0] && a[1] != DataType::String {
                return Err(format!("expects a {} second argument, got {}", a[0], a[1]));
            }
            Ok(DataType::Array(Box::new(a[0].clone())))
        },
        eval: split,
    },
    ScalarFunction {
        name: "SPLIT_TO_MAP",
        sigs: &[],
        signature: "SPLIT_TO_MAP(input, entryDelimiter, kvDelimiter)",
        description: "A map from the key/value pairs in a delimited string.",
        return_type: |a| {
            count(a, 3, 3)?;
            all_strings(a, 0)?;
            Ok(DataType::Map(
                Box::new(DataType::String),
                Box::new(DataType::String),
            ))
        },
        eval: split_to_map,
    },
    ScalarFunction {
        name: "LTRIM",
        sigs: &[],
        signature: "LTRIM(string)",
        description: "The string without leading whitespace.",
        return_type: |a| {
            count(a, 1, 1)?;
            expect(a, 0, "STRING", is_string)?;
            Ok(DataType::String)
        },
        eval: |a| {
            str_arg(a, 0).map_or(Value::Null, |s| {
                Value::String(s.trim_start_matches(java_space).to_string())
            })
        },
    },
    ScalarFunction {
        name: "RTRIM",
        sigs: &[],
        signature: "RTRIM(string)",
        description: "The string without trailing whitespace.",
        return_type: |a| {
            count(a, 1, 1)?;
            expect(a, 0, "STRING", is_string)?;
            Ok(DataType::String)
        },
        eval: |a| {
            str_arg(a, 0).map_or(Value::Null, |s| {
                Value::String(s.trim_end_matches(java_space).to_string())
            })
        },
    },
    ScalarFunction {
        name: "CHR",
        sigs: &[],
        signature: "CHR(code)",
        description: "The character with a Unicode code point (INTEGER) or '\\uXXXX' escape (STRING).",
        return_type: |a| {
            count(a, 1, 1)?;
            expect(a, 0, "INTEGER or STRING", |t| {
                is_integral(t) || is_string(t)
            })?;
            Ok(DataType::String)
        },
        eval: chr,
    },
    ScalarFunction {
        name: "ELT",
        sigs: &[],
        signature: "ELT(n, string, ...)",
        description: "The n-th (1-based) of the string arguments, or NULL when out of range.",
        return_type: |a| {
            count(a, 2, usize::MAX)?;
            expect(a, 0, "INTEGER", is_integral)?;
            all_strings(a, 1)?;
            Ok(DataType::String)
        },
        eval: |a| match int_arg(a, 0) {
            Some(n) if n >= 1 && (n as usize) < a.len() => match &a[n as usize] {
                v @ Value::String(_) => v.clone(),
                _ => Value::Null,
            },
            _ => Value::Null,
        },
    },
    ScalarFunction {
        name: "FIELD",
        sigs: &[],
        signature: "FIELD(string, candidate, ...)",
        description: "The 1-based position of the first candidate equal to string, or 0.",
        return_type: |a| {
            count(a, 1, usize::MAX)?;
            all_strings(a, 0)?;
            Ok(DataType::Int)
        },
        eval: |a| {
            let Some(s) = str_arg(a, 0) else {
                return Value::Int(0);
            };
            let pos = a[1..].iter().position(|v| v.as_str() == Some(s));
            Value::Int(pos.map_or(0, |p| p as i32 + 1))
        },
    },
    ScalarFunction {
        name: "UUID",
        sigs: &[],
        signature: "UUID()",
        description: "A random (version 4) UUID string.",
        return_type: |a| {
            count(a, 0, 0)?;
            Ok(DataType::String)
        },
        eval: |_| Value::String(uuid_v4()),
    },
    ScalarFunction {
        name: "ENCODE",
        sigs: &[],
        signature: "ENCODE(string, inputEncoding, outputEncoding)",
        description: "The string converted between the encodings hex, utf8, ascii and base64.",
        return_type: |a| {
            count(a, 3, 3)?;
            all_strings(a, 0)?;
            Ok(DataType::String)
        },
        eval: encode,
    },
    ScalarFunction {
        name: "FROM_BYTES",
        sigs: &[],
        signature: "FROM_BYTES(bytes, encoding)",
        description: "The bytes as a string in the encoding hex, utf8, ascii or base64.",
        return_type: |a| {
            count(a, 2, 2)?;
            expect(a, 0, "BYTES", |t| *t == DataType::Bytes)?;
            expect(a, 1, "STRING", is_string)?;
            Ok(DataType::String)
        },
        eval: from_bytes,
    },
    ScalarFunction {
        name: "TO_BYTES",
        sigs: &[],
        signature: "TO_BYTES(string, encoding)",
        description: "The bytes a string spells in the encoding hex, utf8, ascii or base64.",
        return_type: |a| {
            count(a, 2, 2)?;
            all_strings(a, 0)?;
            Ok(DataType::Bytes)
        },
        eval: to_bytes,
    },
    ScalarFunction {
        name: "INT_FROM_BYTES",
        sigs: &[],
        signature: "INT_FROM_BYTES(bytes [, byteOrder])",
        description: "The INTEGER 4 bytes encode, big-endian unless byteOrder is 'LITTLE_ENDIAN'.",
        return_type: |a| from_bytes_rule(a, DataType::Int),
        eval: |a| from_bytes_number::<4>(a, |b| Value::Int(i32::from_be_bytes(b))),
    },
    ScalarFunction {
        name: "BIGINT_FROM_BYTES",
        sigs: &[],
        signature: "BIGINT_FROM_BYTES(bytes [, byteOrder])",
        description: "The BIGINT 8 bytes encode, big-endian unless byteOrder is 'LITTLE_ENDIAN'.",
        return_type: |a| from_bytes_rule(a, DataType::BigInt),
        eval: |a| from_bytes_number::<8>(a, |b| Value::BigInt(i64::from_be_bytes(b))),
    },
    ScalarFunction {
        name: "DOUBLE_FROM_BYTES",
        sigs: &[],
        signature: "DOUBLE_FROM_BYTES(bytes [, byteOrder])",
        description: "The DOUBLE 8 bytes encode, big-endian unless byteOrder is 'LITTLE_ENDIAN'.",
        return_type: |a| from_bytes_rule(a, DataType::Double),
        eval: |a| from_bytes_number::<8>(a, |b| Value::Double(f64::from_be_bytes(b))),
    },
    ScalarFunction {
        name: "MD5",
        sigs: &[],
        signature: "MD5(string)",
        description: "The MD5 digest of the string's UTF-8 bytes, as 32 hex digits.",
        return_type: |a| {
            count(a, 1, 1)?;
            expect(a, 0, "STRING", is_string)?;
            Ok(DataType::String)
        },
        eval: |a| str_arg(a, 0).map_or(Value::Null, |s| Value::String(md5_hex(s.as_bytes()))),
    },
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::testing::{call, rule};

    fn s(v: &str) -> Value {
        Value::String(v.into())
    }

    fn strs(v: &[&str]) -> Value {
        Value::Array(v.iter().map(|x| s(x)).collect())
    }

    /// A pattern whose program is over max-regex-bytes (1 MiB by default) is refused by
    /// name at planning and does not match at run time; an ordinary one does.
    #[test]
    fn patterns_past_the_regex_size_limit_do_not_compile() {
        let huge = "(a{1,1000}){1,1000}";
        let e = check_regex_size(huge).unwrap_err();
        assert!(e.contains("max-regex-bytes"), "{e}");
        assert_eq!(call("REGEXP_EXTRACT", &[s(huge), s("aaa")]), Value::Null);
        assert!(check_regex_size("a+").is_ok());
        // Invalid syntax is left to the call, which is NULL, as in ksqlDB.
        assert!(check_regex_size("(").is_ok());
        assert_eq!(call("REGEXP_EXTRACT", &[s("a+"), s("baa")]), s("aa"));
        assert_eq!(regex_pattern_arg("REGEXP_REPLACE"), Some(1));
        assert_eq!(regex_pattern_arg("UCASE"), None);
    }

    #[test]
    fn hex_decode_odd_lengths() {
        assert_eq!(hex_decode("0x578"), Some(vec![0x05, 0x78]));
        assert_eq!(hex_decode("578"), None);
        assert_eq!(hex_decode("x'578'"), None);
        assert_eq!(hex_decode("0x"), Some(vec![]));
        assert_eq!(hex_decode("0x0x"), None);
        assert_eq!(hex_decode("X'4a'"), Some(vec![0x4a]));
    }

    #[test]
    fn initcap_keeps_spacing() {
        assert_eq!(
            call("INITCAP", &[s("the   Quick br0wn fOx")]),
            s("The   Quick Br0wn Fox")
        );
        assert_eq!(call("INITCAP", &[s("some_string")]), s("Some_string"));
        assert_eq!(call("INITCAP", &[s("")]), s(""));
        assert_eq!(call("INITCAP", &[Value::Null]), Value::Null);
    }

    #[test]
    fn instr_forwards_and_backwards() {
        let src = s("corporate floor");
        let or = s("or");
        assert_eq!(call("INSTR", &[src.clone(), or.clone()]), Value::Int(2));
        assert_eq!(
            call("INSTR", &[src.clone(), or.clone(), Value::Int(4)]),
            Value::Int(5)
        );
        assert_eq!(
            call(
                "INSTR",
                &[src.clone(), or.clone(), Value::Int(4), Value::Int(2)]
            ),
            Value::Int(14)
        );
        assert_eq!(
            call("INSTR", &[src.clone(), or.clone(), Value::Int(-4)]),
            Value::Int(5)
        );
        assert_eq!(
            call(
                "INSTR",
                &[src.clone(), or.clone(), Value::Int(-4), Value::Int(2)]
            ),
            Value::Int(2)
        );
        assert_eq!(call("INSTR", &[s("short"), or.clone()]), Value::Int(3));
        assert_eq!(call("INSTR", &[s("x"), or.clone()]), Value::Int(0));
        assert_eq!(call("INSTR", &[Value::Null, or.clone()]), Value::Int(0));
        assert_eq!(
            call("INSTR", &[src.clone(), or.clone(), Value::Int(100)]),
            Value::Int(0)
        );
        assert_eq!(call("INSTR", &[src, or, Value::Int(-100)]), Value::Int(0));
        assert!(rule("INSTR", &[DataType::String, DataType::Int]).is_err());
        assert_eq!(
            rule(
                "INSTR",
                &[DataType::String, DataType::String, DataType::Int]
            ),
            Ok(DataType::Int)
        );
    }

    #[test]
    fn padding_strings_and_bytes() {
        let foo = s("foo");
        assert_eq!(
            call("LPAD", &[foo.clone(), Value::Int(7), s("Bar")]),
            s("BarBfoo")
        );
        assert_eq!(
            call("RPAD", &[foo.clone(), Value::Int(5), s("Bar")]),
            s("fooBa")
        );
        assert_eq!(
            call("LPAD", &[foo.clone(), Value::Int(2), s("Bar")]),
            s("fo")
        );
        assert_eq!(
            call("LPAD", &[foo.clone(), Value::Int(-1), s("Bar")]),
            Value::Null
        );
        assert_eq!(
            call("LPAD", &[foo.clone(), Value::Int(7), s("")]),
            Value::Null
        );
        assert_eq!(
            call("LPAD", &[s(""), Value::Int(7), s("Bar")]),
            s("BarBarB")
        );
        assert_eq!(call("RPAD", &[foo, Value::Null, s("Bar")]), Value::Null);
        assert_eq!(
            call(
                "LPAD",
                &[
                    Value::Bytes(b"yes".to_vec()),
                    Value::Int(8),
                    Value::Bytes(b"no".to_vec())
                ]
            ),
            Value::Bytes(b"nononyes".to_vec())
        );
        assert!(rule("LPAD", &[DataType::Int, DataType::Int, DataType::String]).is_err());
        assert_eq!(
            rule("RPAD", &[DataType::Bytes, DataType::Int, DataType::Bytes]),
            Ok(DataType::Bytes)
        );
    }

    #[test]
    fn masks() {
        let v = s("AbC-12 z");
        assert_eq!(call("MASK", std::slice::from_ref(&v)), s("XxX-nn-x"));
        assert_eq!(
            call("MASK", &[v.clone(), s("U"), Value::Null, s("#"), s("*")]),
            s("UbU*##*z")
        );
        assert_eq!(
            call("MASK_KEEP_LEFT", &[v.clone(), Value::Int(3)]),
            s("AbC-nn-x")
        );
        assert_eq!(
            call("MASK_KEEP_RIGHT", &[v.clone(), Value::Int(2)]),
            s("XxX-nn z")
        );
        assert_eq!(
            call("MASK_LEFT", &[v.clone(), Value::Int(2)]),
            s("XxC-12 z")
        );
        assert_eq!(
            call("MASK_RIGHT", &[v.clone(), Value::Int(100)]),
            s("XxX-nn-x")
        );
        assert_eq!(call("MASK_LEFT", &[v, Value::Int(-1)]), Value::Null);
        assert_eq!(call("MASK", &[Value::Null]), Value::Null);
        assert!(rule("MASK_LEFT", &[DataType::String]).is_err());
        assert!(rule("MASK", &[DataType::String, DataType::Int]).is_err());
    }

    #[test]
    fn regexes() {
        assert_eq!(
            call("REGEXP_EXTRACT", &[s("test."), s("some_test_string")]),
            s("test_")
        );
        assert_eq!(
            call("REGEXP_EXTRACT", &[s("test."), s("anothertest")]),
            Value::Null
        );
        assert_eq!(
            call(
                "REGEXP_EXTRACT",
                &[s("(.*) (.*)"), s("andy coates"), Value::Int(2)]
            ),
            s("coates")
        );
        assert_eq!(
            call("REGEXP_EXTRACT", &[s("(.*) (.*)"), s("a b"), Value::Int(9)]),
            Value::Null
        );
        assert_eq!(
            call(
                "REGEXP_EXTRACT_ALL",
                &[s(r"(\w+) (\w*)"), s("apurva mehta agavra "), Value::Int(2)]
            ),
            strs(&["mehta", ""])
        );
        assert_eq!(
            call("REGEXP_EXTRACT_ALL", &[s("test."), s("nothing")]),
            strs(&[])
        );
        assert_eq!(
            call("REGEXP_REPLACE", &[s("baabbabaa"), s("(ab)+"), s("cat")]),
            s("bacatbcataa")
        );
        assert_eq!(
            call(
                "REGEXP_REPLACE",
                &[s("a-b"), s("(\\w)-(\\w)"), s("$2\\$$1")]
            ),
            s("b$a")
        );
        assert_eq!(
            call("REGEXP_REPLACE", &[s("ab"), s("("), s("x")]),
            Value::Null
        );
        assert_eq!(
            call("REGEXP_SPLIT_TO_ARRAY", &[s("aabcda"), s("(ab|cd)")]),
            strs(&["a", "", "a"])
        );
        assert_eq!(
            call("REGEXP_SPLIT_TO_ARRAY", &[s("zxy"), Value::Null]),
            Value::Null
        );
    }

    #[test]
    fn splitting() {
        assert_eq!(call("SPLIT", &[s(".abc."), s(".")]), strs(&["", "abc", ""]));
        assert_eq!(call("SPLIT", &[s(""), s(".")]), strs(&[""]));
        assert_eq!(call("SPLIT", &[s("abc"), s("")]), strs(&["a", "b", "c"]));
        assert_eq!(call("SPLIT", &[s(""), s("")]), strs(&[""]));
        assert_eq!(call("SPLIT", &[s("a"), Value::Null]), Value::Null);
        assert_eq!(
            call(
                "SPLIT",
                &[Value::Bytes(b"a$$b".to_vec()), Value::Bytes(b"$$".to_vec())]
            ),
            Value::Array(vec![
                Value::Bytes(b"a".to_vec()),
                Value::Bytes(b"b".to_vec())
            ])
        );
        let m = call(
            "SPLIT_TO_MAP",
            &[s("apple:green/banana:yellow//x"), s("/"), s(":")],
        );
        assert_eq!(
            m,
            Value::Map(vec![(s("apple"), s("green")), (s("banana"), s("yellow"))])
        );
        assert_eq!(
            call("SPLIT_TO_MAP", &[s("a:b"), s(""), s(":")]),
            Value::Null
        );
        assert_eq!(
            rule("SPLIT", &[DataType::Bytes, DataType::Bytes]),
            Ok(DataType::Array(Box::new(DataType::Bytes)))
        );
    }

    #[test]
    fn small_string_functions() {
        assert_eq!(call("LTRIM", &[s(" \t a ")]), s("a "));
        assert_eq!(call("RTRIM", &[s(" a \t")]), s(" a"));
        assert_eq!(call("CHR", &[Value::Int(75)]), s("K"));
        assert_eq!(call("CHR", &[Value::Int(99000)]), s("\u{182b8}"));
        assert_eq!(call("CHR", &[Value::Int(-1)]), Value::Null);
        assert_eq!(call("CHR", &[s("\\ud820\\udeb8")]), s("\u{182b8}"));
        assert_eq!(call("CHR", &[s("75")]), Value::Null);
        assert_eq!(call("CHR", &[s("\\uzzzz")]), Value::Null);
        assert_eq!(call("ELT", &[Value::Int(2), s("a"), s("b")]), s("b"));
        assert_eq!(call("ELT", &[Value::Int(3), s("a"), s("b")]), Value::Null);
        assert_eq!(call("ELT", &[Value::Int(0), s("a")]), Value::Null);
        assert_eq!(
            call("FIELD", &[s("b"), s("a"), Value::Null, s("b")]),
            Value::Int(3)
        );
        assert_eq!(call("FIELD", &[Value::Null, Value::Null]), Value::Int(0));
        assert_eq!(
            call("CONCAT_WS", &[s(", "), s("a"), Value::Null, s("b")]),
            s("a, b")
        );
        assert_eq!(call("CONCAT_WS", &[Value::Null, s("a")]), Value::Null);
        assert!(rule("ELT", &[DataType::String, DataType::String]).is_err());
        assert!(rule("UUID", &[DataType::String]).is_err());
    }

    #[test]
    fn encodings() {
        assert_eq!(
            call("ENCODE", &[s("0x4578616d706C6521"), s("hex"), s("utf8")]),
            s("Example!")
        );
        assert_eq!(
            call("ENCODE", &[s("X'4578'"), s("hex"), s("base64")]),
            s("RXg=")
        );
        assert_eq!(call("ENCODE", &[s("x''"), s("hex"), s("ascii")]), s(""));
        assert_eq!(
            call("ENCODE", &[s("0x0x"), s("hex"), s("ascii")]),
            Value::Null
        );
        assert_eq!(
            call("ENCODE", &[s("X'"), s("hex"), s("ascii")]),
            Value::Null
        );
        assert_eq!(
            call("ENCODE", &[s("c39c"), s("hex"), s("ascii")]),
            s("\u{fffd}\u{fffd}")
        );
        assert_eq!(
            call("ENCODE", &[s("\u{395}x"), s("ascii"), s("hex")]),
            s("3f78")
        );
        assert_eq!(
            call("ENCODE", &[s("abc"), s("null"), s("hex")]),
            Value::Null
        );
        assert_eq!(
            call("FROM_BYTES", &[Value::Bytes(vec![0x1a, 0xb2]), s("hex")]),
            s("1AB2")
        );
        assert_eq!(
            call("TO_BYTES", &[s("1aB2"), s("hex")]),
            Value::Bytes(vec![0x1a, 0xb2])
        );
        assert_eq!(
            call("TO_BYTES", &[s("IQ"), s("base64")]),
            Value::Bytes(vec![b'!'])
        );
        assert_eq!(call("TO_BYTES", &[s("zz"), s("hex")]), Value::Null);
        assert!(rule("FROM_BYTES", &[DataType::String, DataType::String]).is_err());
    }

    #[test]
    fn numbers_from_bytes() {
        let b = |v: &[u8]| Value::Bytes(v.to_vec());
        assert_eq!(
            call("INT_FROM_BYTES", &[b(&[0, 0, 7, 0xe5])]),
            Value::Int(2021)
        );
        assert_eq!(
            call("INT_FROM_BYTES", &[b(&[0xe5, 7, 0, 0]), s("little_endian")]),
            Value::Int(2021)
        );
        assert_eq!(call("INT_FROM_BYTES", &[b(&[1, 2])]), Value::Null);
        assert_eq!(
            call("BIGINT_FROM_BYTES", &[b(&5_000_000_000i64.to_be_bytes())]),
            Value::BigInt(5_000_000_000)
        );
        assert_eq!(
            call(
                "DOUBLE_FROM_BYTES",
                &[b(&1.5f64.to_le_bytes()), s("LITTLE_ENDIAN")]
            ),
            Value::Double(1.5)
        );
        assert_eq!(
            call("DOUBLE_FROM_BYTES", &[b(&[0; 8]), s("MIDDLE")]),
            Value::Null
        );
        assert!(rule("INT_FROM_BYTES", &[DataType::String]).is_err());
    }

    #[test]
    fn md5_digests() {
        assert_eq!(call("MD5", &[s("")]), s("d41d8cd98f00b204e9800998ecf8427e"));
        assert_eq!(
            call("MD5", &[s("r1")]),
            s("7c92cf1eee8d99cc85f8355a3d6e4b86")
        );
        assert_eq!(
            call("MD5", &[s(&"a".repeat(100))]),
            s("36a92cc94a9e0fa21f625f8bfb007adf")
        );
        assert_eq!(call("MD5", &[Value::Null]), Value::Null);
        // RFC 1321's test suite, including inputs that span more than one 64-byte block.
        for (input, digest) in [
            ("a", "0cc175b9c0f1b6a831c399e269772661"),
            ("abc", "900150983cd24fb0d6963f7d28e17f72"),
            ("message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
            (
                "abcdefghijklmnopqrstuvwxyz",
                "c3fcd3d76192e4007dfb496cca67e13b",
            ),
            (
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
                "d174ab98d277d9f5a5611c2c9f419d9f",
            ),
            (
                "12345678901234567890123456789012345678901234567890123456789012345678901234567890",
                "57edf4a22be3c955ac49da2e2107b67a",
            ),
        ] {
            assert_eq!(call("MD5", &[s(input)]), s(digest), "MD5({input})");
        }
        // The UTF-8 bytes are hashed, not UTF-16 units.
        assert_eq!(
            call("MD5", &[s("é")]),
            s("66ddcd97cfdeabb2f6fb8a999b4bc76f")
        );
    }

    #[test]
    fn uuid_is_canonical_version_4() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            let Value::String(u) = call("UUID", &[]) else {
                panic!("UUID() not a string")
            };
            let groups: Vec<&str> = u.split('-').collect();
            assert_eq!(
                groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
                [8, 4, 4, 4, 12],
                "{u}"
            );
            assert!(
                u.chars()
                    .all(|c| c == '-' || matches!(c, '0'..='9' | 'a'..='f')),
                "{u}"
            );
            // Version nibble 4; variant bits 10 (RFC 4122), as Java's randomUUID sets them.
            assert!(groups[2].starts_with('4'), "{u}");
            assert!(groups[3].starts_with(['8', '9', 'a', 'b']), "{u}");
            assert!(seen.insert(u));
        }
    }
}
