//! The DELIMITED format: one line of fields separated by a delimiter, with CSV quoting
//! (a field holding the delimiter or a quote is quoted, quotes doubled). An empty field is
//! NULL.

use crate::json::parse_text;
use crate::{Result, invalid};
use sluice_common::{Column, Value};

pub(crate) fn encode(values: &[Value], delimiter: char) -> Result<Vec<u8>> {
    let mut out = String::new();
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push(delimiter);
        }
        let text = match v {
            Value::Null => continue,
            Value::Bytes(b) => {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD.encode(b)
            }
            Value::Array(_) | Value::Map(_) | Value::Struct(_) => {
                return invalid("The 'DELIMITED' format does not support nested values");
            }
            other => other.to_string(),
        };
        if text.contains(delimiter) || text.contains('"') || text.contains('\n') {
            out.push('"');
            out.push_str(&text.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(&text);
        }
    }
    Ok(out.into_bytes())
}

fn split(line: &str, delimiter: char) -> Result<Vec<Option<String>>> {
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        let mut field = String::new();
        let mut quoted = false;
        if chars.peek() == Some(&'"') {
            quoted = true;
            chars.next();
            loop {
                match chars.next() {
                    None => return invalid("unterminated quoted field"),
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                }
            }
        }
        loop {
            match chars.peek() {
                None => break,
                Some(&c) if c == delimiter => break,
                Some(&c) => {
                    if quoted {
                        return invalid(format!("unexpected character '{c}' after a quoted field"));
                    }
                    field.push(c);
                    chars.next();
                }
            }
        }
        fields.push(if field.is_empty() && !quoted {
            None
        } else {
            Some(field)
        });
        if chars.next().is_none() {
            return Ok(fields);
        }
    }
}

pub(crate) fn decode(columns: &[Column], bytes: &[u8], delimiter: char) -> Result<Vec<Value>> {
    let line = std::str::from_utf8(bytes).or_else(|_| invalid("invalid UTF-8"))?;
    let line = line.strip_suffix('\n').unwrap_or(line);
    let line = line.strip_suffix('\r').unwrap_or(line);
    let fields = split(line, delimiter)?;
    if fields.len() != columns.len() {
        return invalid(format!(
            "Unexpected field count, csvFields:{} schemaFields:{} line: {line}",
            fields.len(),
            columns.len()
        ));
    }
    fields
        .into_iter()
        .zip(columns)
        .map(|(f, c)| match f {
            None => Ok(Value::Null),
            Some(text) => parse_text(&text, &c.data_type)
                .map_err(|e| crate::FormatError::Invalid(format!("column {}: {e}", c.name))),
        })
        .collect()
}
