//! CREATE STREAM / CREATE TABLE over a topic, and the WITH properties shared with
//! CREATE ... AS SELECT.

use crate::{PlanError, PlanErrorKind, Result};
use sluice_common::{
    Column, ColumnRole, DataType, FormatKind, FormatSpec, Schema, SourceDef, SourceKind,
    WindowKind, WindowSpec,
};
use sluice_sql::{ColumnDef, HeaderSpec, KeyKind, Name, PropValue, Properties};

const KNOWN_PROPERTIES: &[&str] = &[
    "KAFKA_TOPIC",
    "VALUE_FORMAT",
    "KEY_FORMAT",
    "FORMAT",
    "PARTITIONS",
    "REPLICAS",
    "TIMESTAMP",
    "TIMESTAMP_FORMAT",
    "WRAP_SINGLE_VALUE",
    "VALUE_DELIMITER",
    "KEY_DELIMITER",
    "RETENTION_MS",
    "WINDOW_TYPE",
    "WINDOW_SIZE",
];

/// WITH (...) properties, checked.
#[derive(Debug, Clone, Default)]
pub struct SourceProps {
    pub topic: Option<String>,
    pub key_format: Option<FormatSpec>,
    pub value_format: Option<FormatSpec>,
    pub partitions: Option<u32>,
    pub timestamp: Option<String>,
    pub timestamp_format: Option<String>,
    pub wrap_single_value: Option<bool>,
    /// VALUE_DELIMITER, checked against the value format once that is known (it may be
    /// the session default or the source's).
    pub value_delimiter: Option<char>,
    /// KEY_DELIMITER, for a DELIMITED key.
    pub key_delimiter: Option<char>,
    /// WINDOW_TYPE and WINDOW_SIZE: a windowed source (CREATE STREAM/TABLE only).
    pub window_type: Option<String>,
    pub window_size: Option<String>,
}

impl SourceProps {
    /// KEY_DELIMITER onto a key format, which must then be DELIMITED.
    pub fn apply_key_delimiter(&self, f: &mut FormatSpec, at: &Name) -> Result<()> {
        if let Some(c) = self.key_delimiter {
            if f.kind != FormatKind::Delimited {
                return Err(PlanError::at_name(
                    format!(
                        "{} does not support the following configs: [delimiter]",
                        f.kind
                    ),
                    at,
                ));
            }
            f.delimiter = Some(c);
        }
        Ok(())
    }

    /// The value format (this one, else `default`) with WRAP_SINGLE_VALUE and
    /// VALUE_DELIMITER applied.
    pub fn value_format_or(
        &self,
        default: Option<&FormatSpec>,
        at: &Name,
    ) -> Result<Option<FormatSpec>> {
        let Some(mut f) = self.value_format.clone().or_else(|| default.cloned()) else {
            return Ok(None);
        };
        if self.wrap_single_value.is_some() {
            f.wrap_single_value = self.wrap_single_value;
        }
        if let Some(c) = self.value_delimiter {
            if f.kind != FormatKind::Delimited {
                return Err(PlanError::at_name(
                    format!(
                        "{} does not support the following configs: [delimiter]",
                        f.kind
                    ),
                    at,
                ));
            }
            f.delimiter = Some(c);
        }
        Ok(Some(f))
    }
}

fn parse_format(value: &PropValue, at: &Name) -> Result<FormatKind> {
    Ok(match value.to_string().to_ascii_uppercase().as_str() {
        "JSON" | "JSON_SR" => FormatKind::Json,
        "KAFKA" => FormatKind::Kafka,
        "DELIMITED" => FormatKind::Delimited,
        "NONE" => FormatKind::None,
        other => {
            return Err(PlanError::at_name(format!("Unknown format: {other}"), at));
        }
    })
}

pub fn source_props(props: &Properties, at: &Name) -> Result<SourceProps> {
    let mut out = SourceProps::default();
    for key in props.values.keys() {
        if !KNOWN_PROPERTIES.contains(&key.as_str()) {
            return Err(PlanError::at_name(
                format!("Invalid config variable(s) in the WITH clause: {key}"),
                at,
            ));
        }
    }
    let get = |k: &str| props.values.get(k);
    out.topic = get("KAFKA_TOPIC").map(|v| v.to_string());
    if let Some(t) = &out.topic
        && t.is_empty()
    {
        return Err(PlanError::at_name("KAFKA_TOPIC must not be empty", at));
    }
    if let Some(f) = get("FORMAT") {
        for other in ["KEY_FORMAT", "VALUE_FORMAT"] {
            if get(other).is_some() {
                return Err(PlanError::at_name(
                    format!(
                        "Cannot supply both '{other}' and 'FORMAT' properties, as 'FORMAT' sets both key and value formats. Either use just 'FORMAT', or use 'KEY_FORMAT' and 'VALUE_FORMAT'."
                    ),
                    at,
                ));
            }
        }
        let kind = parse_format(f, at)?;
        out.value_format = Some(FormatSpec::new(kind));
        out.key_format = Some(FormatSpec::new(kind));
    }
    if let Some(f) = get("VALUE_FORMAT") {
        out.value_format = Some(FormatSpec::new(parse_format(f, at)?));
    }
    if let Some(f) = get("KEY_FORMAT") {
        out.key_format = Some(FormatSpec::new(parse_format(f, at)?));
    }
    if let Some(p) = get("PARTITIONS") {
        let n: u32 = p.to_string().parse().map_err(|_| {
            PlanError::at_name(
                format!("PARTITIONS must be a positive integer, got {p}"),
                at,
            )
        })?;
        if n == 0 || n > 1024 {
            return Err(PlanError::at_name(
                format!("PARTITIONS must be between 1 and 1024, got {n}"),
                at,
            ));
        }
        out.partitions = Some(n);
    }
    if let Some(v) = get("WRAP_SINGLE_VALUE") {
        out.wrap_single_value = Some(match v {
            PropValue::Bool(b) => *b,
            other => match other.to_string().to_ascii_lowercase().as_str() {
                "true" => true,
                "false" => false,
                _ => {
                    return Err(PlanError::at_name(
                        format!("WRAP_SINGLE_VALUE must be true or false, got {other}"),
                        at,
                    ));
                }
            },
        });
    }
    if let Some(d) = get("VALUE_DELIMITER") {
        out.value_delimiter = Some(parse_delimiter("VALUE_DELIMITER", &d.to_string(), at)?);
    }
    if let Some(d) = get("KEY_DELIMITER") {
        out.key_delimiter = Some(parse_delimiter("KEY_DELIMITER", &d.to_string(), at)?);
    }
    out.window_type = get("WINDOW_TYPE").map(|v| v.to_string());
    out.window_size = get("WINDOW_SIZE").map(|v| v.to_string());
    out.timestamp = get("TIMESTAMP").map(|v| v.to_string().to_ascii_uppercase());
    out.timestamp_format = get("TIMESTAMP_FORMAT").map(|v| v.to_string());
    Ok(out)
}

/// WINDOW_TYPE / WINDOW_SIZE as ksqlDB checks them.
fn window_spec(p: &SourceProps, at: &Name) -> Result<Option<WindowSpec>> {
    let Some(kind) = &p.window_type else {
        if p.window_size.is_some() {
            return Err(PlanError::at_name(
                "'WINDOW_SIZE' is set without 'WINDOW_TYPE'",
                at,
            ));
        }
        return Ok(None);
    };
    let kind = match kind.trim().to_ascii_uppercase().as_str() {
        "SESSION" => WindowKind::Session,
        "TUMBLING" => WindowKind::Tumbling,
        "HOPPING" => WindowKind::Hopping,
        _ => {
            return Err(PlanError::at_name(
                format!(
                    "Invalid value {kind} for property WINDOW_TYPE: String must be one of: SESSION, HOPPING, TUMBLING, null"
                ),
                at,
            ));
        }
    };
    let size_ms = match (&p.window_size, kind) {
        (Some(_), WindowKind::Session) => {
            return Err(PlanError::at_name(
                "'WINDOW_SIZE' should not be set for SESSION windows.",
                at,
            ));
        }
        (None, WindowKind::Session) => None,
        (None, _) => {
            return Err(PlanError::at_name(
                format!(
                    "{kind} windows require 'WINDOW_SIZE' to be provided in the WITH clause. For example: 'WINDOW_SIZE'='10 SECONDS'"
                ),
                at,
            ));
        }
        (Some(text), _) => Some(parse_duration_ms(text).ok_or_else(|| {
            PlanError::at_name(
                format!(
                    "Invalid WINDOW_SIZE '{text}': expected a number and a unit, e.g. '10 SECONDS' (units: MILLISECONDS, SECONDS, MINUTES, HOURS, DAYS)"
                ),
                at,
            )
        })?),
    };
    Ok(Some(WindowSpec { kind, size_ms }))
}

/// `10 SECONDS`, `1 minute`: a duration as ksqlDB's DurationParser reads it, in ms.
pub fn parse_duration_ms(text: &str) -> Option<i64> {
    let mut parts = text.trim().trim_matches('\'').split_whitespace();
    let n: i64 = parts.next()?.parse().ok()?;
    let unit = parts.next()?.to_ascii_uppercase();
    if parts.next().is_some() || n < 0 {
        return None;
    }
    let ms: i64 = match unit.trim_end_matches('S') {
        "MILLISECOND" => 1,
        "SECOND" => 1_000,
        "MINUTE" => 60_000,
        "HOUR" => 3_600_000,
        "DAY" => 86_400_000,
        _ => return None,
    };
    n.checked_mul(ms)
}

/// A VALUE_DELIMITER or KEY_DELIMITER: one character, or TAB or SPACE.
fn parse_delimiter(config: &str, text: &str, at: &Name) -> Result<char> {
    Ok(match text.to_ascii_uppercase().as_str() {
        "TAB" => '\t',
        "SPACE" => ' ',
        // A blank delimiter reads as empty, as in ksqlDB: spell it TAB or SPACE.
        t if t.trim().is_empty() => {
            return Err(PlanError::at_name(
                format!(
                    "Failed to prepare statement: Configuration {config} is invalid: Delimiter cannot be empty, if you meant to have a tab or space for delimiter, please use the special values 'TAB' or 'SPACE'\nExample valid value: ';'"
                ),
                at,
            ));
        }
        _ if text.chars().count() == 1 => text.chars().next().unwrap_or(','),
        _ => {
            return Err(PlanError::at_name(
                format!(
                    "Failed to prepare statement: Configuration {config} is invalid: Invalid delimiter value: '{text}'. Delimiter must be a single character or TAB,SPACE\nExample valid value: ';'"
                ),
                at,
            ));
        }
    })
}

/// Plans CREATE STREAM/TABLE over a topic. Returns the source and the partition count to
/// create its topic with when the topic does not exist.
pub fn plan_create_source(
    id: u64,
    kind: SourceKind,
    name: &Name,
    columns: &[ColumnDef],
    props: &Properties,
    sql: &str,
    cfg: &crate::SessionConfig,
) -> Result<(SourceDef, Option<u32>)> {
    let p = source_props(props, name)?;
    let topic = p.topic.clone().ok_or_else(|| {
        PlanError::at_name(
            "Missing required property \"KAFKA_TOPIC\" which has no default value.",
            name,
        )
    })?;
    let default_value = cfg.default_value_format.map(FormatSpec::new);
    let mut value_format = p.value_format_or(default_value.as_ref(), name)?.ok_or_else(|| {
        PlanError::at_name(
            "Statement is missing the 'VALUE_FORMAT' property from the WITH clause. Either provide one or set a default via the 'ksql.persistence.default.format.value' config.",
            name,
        )
    })?;
    if value_format.wrap_single_value.is_none()
        && columns
            .iter()
            .filter(|c| c.key == KeyKind::None && c.header.is_none())
            .count()
            == 1
    {
        value_format.wrap_single_value = cfg.wrap_single_values;
    }
    let mut cols = Vec::with_capacity(columns.len());
    let mut header_cols: Vec<(Column, Option<String>)> = Vec::new();
    for c in columns {
        if cols.iter().any(|x: &Column| x.name == c.name.value) {
            return Err(PlanError::at_name(
                format!("Duplicate column names: {}", c.name.value),
                &c.name,
            ));
        }
        let role = match (kind, c.key) {
            (_, KeyKind::None) => ColumnRole::Value,
            (SourceKind::Stream, KeyKind::Key) => ColumnRole::Key,
            (SourceKind::Table, KeyKind::PrimaryKey) => ColumnRole::PrimaryKey,
            (SourceKind::Stream, KeyKind::PrimaryKey) => {
                return Err(PlanError::at_name(
                    format!(
                        "Column `{}` is a 'PRIMARY KEY' column: please use 'KEY' for streams.\nTables have PRIMARY KEYs, which are unique and NON NULL.\nStreams have KEYs, which have no uniqueness or NON NULL constraints.",
                        c.name.value
                    ),
                    &c.name,
                ));
            }
            (SourceKind::Table, KeyKind::Key) => {
                return Err(PlanError::at_name(
                    format!(
                        "Column `{}` is a 'KEY' column: please use 'PRIMARY KEY' for tables.\nTables have PRIMARY KEYs, which are unique and NON NULL.\nStreams have KEYs, which have no uniqueness or NON NULL constraints.",
                        c.name.value
                    ),
                    &c.name,
                ));
            }
        };
        if matches!(
            c.name.value.as_str(),
            "ROWTIME" | "ROWPARTITION" | "ROWOFFSET"
        ) {
            return Err(PlanError::at_name(
                format!(
                    "'{}' is a reserved column name. You cannot use it as a name for a column.",
                    c.name.value
                ),
                &c.name,
            ));
        }
        if let Some(h) = &c.header {
            let headers_type = DataType::Array(Box::new(DataType::Struct(vec![
                ("KEY".into(), DataType::String),
                ("VALUE".into(), DataType::Bytes),
            ])));
            let (want, label) = match h {
                HeaderSpec::All => (headers_type, "HEADERS".to_string()),
                HeaderSpec::Key(k) => (DataType::Bytes, format!("HEADER('{k}')")),
            };
            if c.data_type != want {
                return Err(PlanError::at_name(
                    format!(
                        "Invalid type for {label} column: expected {want}, got {}",
                        c.data_type
                    ),
                    &c.name,
                ));
            }
            if role != ColumnRole::Value {
                return Err(PlanError::at_name(
                    format!(
                        "Column {} cannot be both a key and a header column",
                        c.name.value
                    ),
                    &c.name,
                ));
            }
            header_cols.push((
                Column {
                    name: c.name.value.clone(),
                    data_type: c.data_type.clone(),
                    role,
                },
                match h {
                    HeaderSpec::All => None,
                    HeaderSpec::Key(k) => Some(k.clone()),
                },
            ));
            continue;
        }
        cols.push(Column {
            name: c.name.value.clone(),
            data_type: c.data_type.clone(),
            role,
        });
    }
    // Header columns come after the value columns the format carries.
    let headers: Vec<(String, Option<String>)> = header_cols
        .iter()
        .map(|(c, k)| (c.name.clone(), k.clone()))
        .collect();
    cols.extend(header_cols.into_iter().map(|(c, _)| c));
    if cols.is_empty() {
        return Err(PlanError::at_name(
            format!(
                "The statement does not define any columns for {}",
                name.value
            ),
            name,
        ));
    }
    let schema = Schema::new(cols);
    if kind == SourceKind::Table && schema.key_count() == 0 {
        return Err(PlanError::at_name(
            format!(
                "Tables require a PRIMARY KEY. Please define the PRIMARY KEY. ({} has none)",
                name.value
            ),
            name,
        ));
    }
    let mut key_format = match p.key_format.clone() {
        Some(f) => f,
        None if schema.key_count() == 0 => FormatSpec::new(FormatKind::None),
        None => FormatSpec::new(cfg.default_key_format.unwrap_or(FormatKind::Kafka)),
    };
    p.apply_key_delimiter(&mut key_format, name)?;
    // A keyless source keeps a key format it was declared with (FORMAT='JSON'): queries
    // that give its rows a key inherit it, as in ksqlDB. Undeclared, it has none.
    let key_format = if schema.key_count() == 0 && p.key_format.is_none() {
        FormatSpec::new(FormatKind::None)
    } else {
        key_format
    };
    check_formats(&schema, headers.len(), &key_format, &value_format, name)?;
    let timestamp_column = check_timestamp(
        &schema,
        p.timestamp.as_deref(),
        p.timestamp_format.as_deref(),
        name,
    )?;
    let window = window_spec(&p, name)?;
    if window.is_some() && schema.key_count() == 0 {
        return Err(PlanError::at_name(
            "Windowed sources require a key column.",
            name,
        ));
    }
    let def = SourceDef {
        id,
        name: name.value.clone(),
        kind,
        schema,
        topic,
        key_format,
        value_format,
        timestamp_column,
        timestamp_format: p.timestamp_format.clone(),
        headers: headers.clone(),
        written_by: None,
        sql: sql.to_string(),
        read_only: false,
        window,
    };
    Ok((def, p.partitions))
}

pub(crate) fn contains_map(t: &sluice_common::DataType) -> bool {
    use sluice_common::DataType;
    match t {
        DataType::Map(..) => true,
        DataType::Array(i) => contains_map(i),
        DataType::Struct(fields) => fields.iter().any(|(_, t)| contains_map(t)),
        _ => false,
    }
}

fn has_non_string_map_key(t: &sluice_common::DataType) -> bool {
    use sluice_common::DataType;
    match t {
        DataType::Map(k, v) => **k != DataType::String || has_non_string_map_key(v),
        DataType::Array(i) => has_non_string_map_key(i),
        DataType::Struct(fields) => fields.iter().any(|(_, t)| has_non_string_map_key(t)),
        _ => false,
    }
}

pub(crate) fn check_formats(
    schema: &Schema,
    header_columns: usize,
    key: &FormatSpec,
    value: &FormatSpec,
    at: &Name,
) -> Result<()> {
    let values = schema.values();
    let payload = &values[..values.len() - header_columns.min(values.len())];
    for k in schema.keys() {
        if contains_map(&k.data_type) {
            return Err(PlanError::at_name(
                format!(
                    "Map keys, including types that contain maps, are not supported as they may lead to unexpected behavior due to inconsistent serialization. Key column name: `{}`. Column type: {}. See https://github.com/confluentinc/ksql/issues/6621 for more.",
                    k.name, k.data_type
                ),
                at,
            ));
        }
    }
    if value.wrap_single_value == Some(true)
        && matches!(value.kind, FormatKind::Delimited | FormatKind::Kafka)
    {
        return Err(PlanError::at_name(
            format!(
                "Format '{}' does not support 'WRAP_SINGLE_VALUE' set to 'true'.",
                value.kind
            ),
            at,
        ));
    }
    if value.kind == FormatKind::Json
        && payload.iter().any(|c| has_non_string_map_key(&c.data_type))
    {
        return Err(PlanError::at_name(
            "JSON only supports MAP types with STRING keys",
            at,
        ));
    }
    if value.wrap_single_value.is_some() && payload.len() != 1 {
        return Err(PlanError::at_name(
            "'WRAP_SINGLE_VALUE' is only valid for single-field value schemas",
            at,
        ));
    }
    sluice_format::validate(key, schema.keys(), true)
        .map_err(|e| PlanError::at_name(e.to_string(), at))?;
    sluice_format::validate(value, payload, false)
        .map_err(|e| PlanError::at_name(e.to_string(), at))?;
    if value.kind == FormatKind::None && !payload.is_empty() {
        return Err(PlanError::at_name(
            "VALUE_FORMAT 'NONE' cannot carry value columns",
            at,
        ));
    }
    Ok(())
}

pub(crate) fn check_timestamp(
    schema: &Schema,
    ts: Option<&str>,
    format: Option<&str>,
    at: &Name,
) -> Result<Option<String>> {
    let Some(ts) = ts else {
        if format.is_some() {
            return Err(PlanError::at_name(
                "TIMESTAMP_FORMAT requires a TIMESTAMP column in the WITH clause",
                at,
            ));
        }
        return Ok(None);
    };
    match schema.column(ts) {
        Some(c)
            if matches!(
                c.data_type,
                sluice_common::DataType::BigInt | sluice_common::DataType::Timestamp
            ) =>
        {
            Ok(Some(ts.to_string()))
        }
        Some(c) if c.data_type == sluice_common::DataType::String && format.is_some() => {
            if let Some(f) = format
                && let Err(e) = sluice_expr::temporal::Pattern::compile(f)
            {
                return Err(PlanError::at_name(
                    format!("Invalid TIMESTAMP_FORMAT '{f}': {e}"),
                    at,
                ));
            }
            Ok(Some(ts.to_string()))
        }
        Some(c) => Err(PlanError::at_name(
            format!(
                "Timestamp column, `{ts}`, should be LONG(INT64), TIMESTAMP, or a String with a timestamp_format specified. Got {}",
                c.data_type
            ),
            at,
        )),
        None => Err(PlanError::at_name(
            format!(
                "The TIMESTAMP column set in the WITH clause does not exist in the schema: '{ts}'"
            ),
            at,
        )
        .with_kind(PlanErrorKind::Invalid)),
    }
}

#[cfg(test)]
mod window_tests {
    use super::parse_duration_ms;

    #[test]
    fn window_sizes_read_as_ksqldb_reads_them() {
        assert_eq!(parse_duration_ms("30 seconds"), Some(30_000));
        assert_eq!(parse_duration_ms("1 SECOND"), Some(1_000));
        assert_eq!(parse_duration_ms("'2 MILLISECONDS'"), Some(2));
        assert_eq!(parse_duration_ms("1 day"), Some(86_400_000));
        for bad in [
            "",
            "30",
            "seconds",
            "1 fortnight",
            "1 second extra",
            "-1 second",
            "99999999999999999 days",
        ] {
            assert_eq!(parse_duration_ms(bad), None, "{bad}");
        }
    }
}
