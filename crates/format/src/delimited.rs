//! The DELIMITED format: one line of fields separated by a delimiter, with CSV quoting
//! (quotes doubled inside a quoted field). An empty field is NULL.
//!
//! Writing follows Apache commons-csv's MINIMAL quote mode, which ksqlDB uses, so the bytes
//! match: see [`needs_quotes`].

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
        if needs_quotes(&text, i == 0, delimiter) {
            out.push('"');
            out.push_str(&text.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(&text);
        }
    }
    Ok(out.into_bytes())
}

/// commons-csv's MINIMAL rule for whether a (non-null) field is written quoted:
/// - an empty field is quoted only when it is the first on the line (else the line would be
///   empty);
/// - the first field is quoted unless it starts with an ASCII letter or digit;
/// - any field starting with a character up to `#` (space, `!`, `"`, `#`, control characters)
///   is quoted;
/// - any field holding a line break, a quote or the delimiter is quoted;
/// - any field ending in a character up to space (trailing blank or control) is quoted.
///
/// NULL is written as nothing and never quoted.
fn needs_quotes(text: &str, first: bool, delimiter: char) -> bool {
    let (Some(head), Some(last)) = (text.chars().next(), text.chars().last()) else {
        return first;
    };
    if first && !head.is_ascii_alphanumeric() {
        return true;
    }
    if head <= '#' {
        return true;
    }
    if text
        .chars()
        .any(|c| c == '\n' || c == '\r' || c == '"' || c == delimiter)
    {
        return true;
    }
    last <= ' '
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

#[cfg(test)]
mod tests {
    use super::*;

    fn line(values: Vec<Value>) -> String {
        String::from_utf8(encode(&values, ',').unwrap()).unwrap()
    }

    #[test]
    fn first_field_is_quoted_unless_it_starts_alphanumeric() {
        assert_eq!(line(vec![Value::Int(-10)]), "\"-10\"");
        assert_eq!(line(vec![Value::Int(10)]), "10");
        assert_eq!(line(vec![Value::String("é".into())]), "\"é\"");
        assert_eq!(line(vec![Value::Int(1), Value::Int(-5)]), "1,-5");
        assert_eq!(line(vec![Value::Int(1), Value::String("é".into())]), "1,é");
    }

    #[test]
    fn low_leading_and_trailing_characters_are_quoted() {
        assert_eq!(
            line(vec![
                Value::String("!".into()),
                Value::String("#".into()),
                Value::String("$".into())
            ]),
            "\"!\",\"#\",$"
        );
        assert_eq!(
            line(vec![Value::Int(1), Value::String("a ".into())]),
            "1,\"a \""
        );
        assert_eq!(
            line(vec![Value::Int(1), Value::String("a\tb".into())]),
            "1,a\tb"
        );
    }

    #[test]
    fn specials_inside_and_empties() {
        assert_eq!(
            line(vec![Value::Int(1), Value::String("a\"b".into())]),
            "1,\"a\"\"b\""
        );
        assert_eq!(
            line(vec![Value::Int(1), Value::String("a\nb".into())]),
            "1,\"a\nb\""
        );
        assert_eq!(
            line(vec![Value::String(String::new()), Value::Int(1)]),
            "\"\",1"
        );
        assert_eq!(
            line(vec![Value::Int(1), Value::String(String::new())]),
            "1,"
        );
        assert_eq!(line(vec![Value::Null, Value::Null]), ",");
        assert_eq!(
            String::from_utf8(encode(&[Value::Int(1), Value::String("a;b".into())], ';').unwrap())
                .unwrap(),
            "1;\"a;b\""
        );
    }
}
