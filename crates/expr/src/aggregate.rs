//! Aggregate functions as accumulators over a small state vector, so that a group's whole
//! state is one row that the engine stores in RocksDB and updates once per event.

use crate::eval::Expr;
use sluice_common::{DataType, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggKind {
    CountStar,
    Count,
    Sum,
    Avg,
    Min,
    Max,
    LatestByOffset,
    EarliestByOffset,
    CollectList,
    CollectSet,
    TopK,
    TopKDistinct,
    Histogram,
    CountDistinct,
    /// STDDEV_SAMPLE: the sample standard deviation.
    StddevSamp,
    /// STDDEV_SAMP: ksqlDB's implementation returns the sample *variance* (no square
    /// root); Sluice follows it so results match.
    VarianceSamp,
    Correlation,
    Attr,
    SumList,
}

/// Aggregate names with their signature and description, for SHOW FUNCTIONS.
pub static AGGREGATES: &[(&str, &str, &str)] = &[
    (
        "COUNT",
        "COUNT(*) | COUNT(col)",
        "The number of rows, or of non-NULL values of col.",
    ),
    ("SUM", "SUM(number)", "The sum of the non-NULL values."),
    (
        "AVG",
        "AVG(number)",
        "The mean of the non-NULL values, as DOUBLE.",
    ),
    ("MIN", "MIN(value)", "The smallest non-NULL value."),
    ("MAX", "MAX(value)", "The largest non-NULL value."),
    (
        "LATEST_BY_OFFSET",
        "LATEST_BY_OFFSET(col)",
        "The value of the most recent record with a non-NULL col.",
    ),
    (
        "COLLECT_LIST",
        "COLLECT_LIST(col)",
        "An array of every value, in arrival order.",
    ),
    (
        "COLLECT_SET",
        "COLLECT_SET(col)",
        "An array of the distinct values, in arrival order.",
    ),
    (
        "TOPK",
        "TOPK(col, k)",
        "The k largest values, largest first.",
    ),
    (
        "TOPKDISTINCT",
        "TOPKDISTINCT(col, k)",
        "The k largest distinct values, largest first.",
    ),
    (
        "HISTOGRAM",
        "HISTOGRAM(col)",
        "A map from each distinct value to how often it occurred.",
    ),
    (
        "COUNT_DISTINCT",
        "COUNT_DISTINCT(col)",
        "The number of distinct non-NULL values.",
    ),
    (
        "STDDEV_SAMP",
        "STDDEV_SAMP(col)",
        "The sample variance of the non-NULL values (what ksqlDB's STDDEV_SAMP returns).",
    ),
    (
        "STDDEV_SAMPLE",
        "STDDEV_SAMPLE(col)",
        "The sample standard deviation of the non-NULL values.",
    ),
    (
        "CORRELATION",
        "CORRELATION(x, y)",
        "The Pearson correlation of two numeric columns.",
    ),
    (
        "ATTR",
        "ATTR(col)",
        "The value when every row has the same one, else NULL.",
    ),
    (
        "SUM_LIST",
        "SUM_LIST(array)",
        "The sum of every element of every array.",
    ),
    (
        "EARLIEST_BY_OFFSET",
        "EARLIEST_BY_OFFSET(col)",
        "The value of the earliest record with a non-NULL col.",
    ),
];

impl AggKind {
    /// The function's SQL name.
    pub fn name(self) -> &'static str {
        match self {
            AggKind::CountStar | AggKind::Count => "COUNT",
            AggKind::Sum => "SUM",
            AggKind::Avg => "AVG",
            AggKind::Min => "MIN",
            AggKind::Max => "MAX",
            AggKind::LatestByOffset => "LATEST_BY_OFFSET",
            AggKind::EarliestByOffset => "EARLIEST_BY_OFFSET",
            AggKind::CollectList => "COLLECT_LIST",
            AggKind::CollectSet => "COLLECT_SET",
            AggKind::TopK => "TOPK",
            AggKind::TopKDistinct => "TOPKDISTINCT",
            AggKind::Histogram => "HISTOGRAM",
            AggKind::CountDistinct => "COUNT_DISTINCT",
            AggKind::StddevSamp => "STDDEV_SAMPLE",
            AggKind::VarianceSamp => "STDDEV_SAMP",
            AggKind::Correlation => "CORRELATION",
            AggKind::Attr => "ATTR",
            AggKind::SumList => "SUM_LIST",
        }
    }

    pub fn from_name(name: &str, star: bool) -> Option<AggKind> {
        Some(match name.to_ascii_uppercase().as_str() {
            "COUNT" if star => AggKind::CountStar,
            "COUNT" => AggKind::Count,
            "SUM" => AggKind::Sum,
            "AVG" => AggKind::Avg,
            "MIN" => AggKind::Min,
            "MAX" => AggKind::Max,
            "LATEST_BY_OFFSET" => AggKind::LatestByOffset,
            "EARLIEST_BY_OFFSET" => AggKind::EarliestByOffset,
            "COLLECT_LIST" => AggKind::CollectList,
            "COLLECT_SET" => AggKind::CollectSet,
            "TOPK" => AggKind::TopK,
            "TOPKDISTINCT" => AggKind::TopKDistinct,
            "HISTOGRAM" => AggKind::Histogram,
            "COUNT_DISTINCT" => AggKind::CountDistinct,
            "STDDEV_SAMPLE" => AggKind::StddevSamp,
            "STDDEV_SAMP" => AggKind::VarianceSamp,
            "CORRELATION" => AggKind::Correlation,
            "ATTR" => AggKind::Attr,
            "SUM_LIST" => AggKind::SumList,
            _ => return None,
        })
    }

    /// The result type for the argument type(s), or why the arguments are not accepted.
    pub fn return_type(self, arg: Option<&DataType>, n: Option<usize>) -> Result<DataType, String> {
        let need = |ok: bool, what: &str| {
            if ok {
                Ok(())
            } else {
                Err(format!(
                    "expects {what}, got {}",
                    arg.map_or("no argument".to_string(), |t| t.to_string())
                ))
            }
        };
        let is_complex = |t: &DataType| {
            matches!(
                t,
                DataType::Array(_) | DataType::Map(..) | DataType::Struct(_)
            )
        };
        let comparable = |t: &DataType| match t {
            // TOPK over whole rows sorts by the struct's first field.
            DataType::Struct(fields) if self == AggKind::TopK => fields
                .first()
                .is_some_and(|(n, t)| n == "sort_col" && !is_complex(t)),
            t => !is_complex(t),
        };
        let any = arg.cloned().unwrap_or(DataType::String);
        match self {
            AggKind::CountStar | AggKind::Count | AggKind::CountDistinct => Ok(DataType::BigInt),
            AggKind::Sum => {
                need(arg.is_some_and(DataType::is_numeric), "a numeric argument")?;
                Ok(any)
            }
            AggKind::Avg | AggKind::StddevSamp | AggKind::VarianceSamp | AggKind::Correlation => {
                need(arg.is_some_and(DataType::is_numeric), "a numeric argument")?;
                Ok(DataType::Double)
            }
            AggKind::Min | AggKind::Max => {
                need(arg.is_some_and(comparable), "a comparable argument")?;
                Ok(any)
            }
            AggKind::LatestByOffset | AggKind::EarliestByOffset => {
                need(arg.is_some(), "one argument")?;
                Ok(if n.is_some() {
                    DataType::Array(Box::new(any))
                } else {
                    any
                })
            }
            AggKind::CollectList | AggKind::CollectSet => Ok(DataType::Array(Box::new(any))),
            AggKind::TopK | AggKind::TopKDistinct => {
                need(arg.is_some_and(comparable), "a comparable argument")?;
                Ok(DataType::Array(Box::new(any)))
            }
            AggKind::Histogram => {
                need(arg == Some(&DataType::String), "a STRING argument")?;
                Ok(DataType::Map(
                    Box::new(DataType::String),
                    Box::new(DataType::BigInt),
                ))
            }
            AggKind::Attr => Ok(any),
            AggKind::SumList => match arg {
                Some(DataType::Array(item)) if item.is_numeric() => Ok(item.as_ref().clone()),
                _ => Err(format!(
                    "expects an ARRAY of numbers, got {}",
                    arg.map_or("no argument".to_string(), |t| t.to_string())
                )),
            },
        }
    }
}

/// What TOPK sorts an entry by: the value, or a row's `sort_col`.
fn topk_sort_value(v: &Value) -> &Value {
    match v {
        Value::Struct(fields) => fields.first().map_or(&Value::Null, |(_, s)| s),
        other => other,
    }
}

#[derive(Debug, Clone)]
pub struct AggCall {
    pub kind: AggKind,
    pub arg: Option<Expr>,
    pub arg_type: Option<DataType>,
    /// CORRELATION's second column.
    pub arg2: Option<Expr>,
    /// How many values to keep (TOPK's k, LATEST_BY_OFFSET's n).
    pub n: Option<usize>,
    /// LATEST/EARLIEST_BY_OFFSET skip NULLs unless told otherwise.
    pub ignore_nulls: bool,
    /// LATEST_BY_OFFSET in a session-windowed aggregation: each kept value carries the
    /// sequence it was folded at, so merging two sessions keeps the later, as ksqlDB's
    /// `STRUCT<SEQ, VAL>` state does.
    pub sequenced: bool,
}

impl AggCall {
    pub fn new(kind: AggKind, arg: Option<Expr>, arg_type: Option<DataType>) -> AggCall {
        AggCall {
            kind,
            arg,
            arg_type,
            arg2: None,
            n: None,
            ignore_nulls: true,
            sequenced: false,
        }
    }

    /// How many state slots this aggregate uses.
    pub fn slots(&self) -> usize {
        match self.kind {
            AggKind::Avg => 2,
            // The value, and whether one was taken (a kept NULL looks like nothing).
            AggKind::EarliestByOffset if self.n.is_none() => 2,
            // The value and its sequence.
            AggKind::LatestByOffset if self.sequenced && self.n.is_none() => 2,
            AggKind::StddevSamp | AggKind::VarianceSamp => 3,
            AggKind::Correlation => 6,
            _ => 1,
        }
    }

    pub fn init(&self, state: &mut Vec<Value>) {
        match self.kind {
            AggKind::CountStar | AggKind::Count => state.push(Value::BigInt(0)),
            AggKind::Sum => state.push(zero(self.arg_type.as_ref())),
            AggKind::SumList => state.push(zero(match self.arg_type.as_ref() {
                Some(DataType::Array(item)) => Some(item.as_ref()),
                _ => None,
            })),
            // ksqlDB's AverageUdaf: STRUCT<SUM, COUNT>, the sum in the argument's type.
            AggKind::Avg => {
                state.push(typed_sum_zero(self.arg_type.as_ref()));
                state.push(Value::BigInt(0));
            }
            // ksqlDB's StandardDeviationSamp(le)Udaf: STRUCT<SUM, COUNT, M2>.
            AggKind::StddevSamp | AggKind::VarianceSamp => state.extend([
                typed_sum_zero(self.arg_type.as_ref()),
                Value::BigInt(0),
                Value::Double(0.0),
            ]),
            AggKind::Correlation => {
                state.push(Value::BigInt(0));
                state.extend(std::iter::repeat_n(Value::Double(0.0), 5));
            }
            // Each value seen (NULL included) and how many times, so a table can retract.
            AggKind::Attr => state.push(Value::Map(Vec::new())),
            AggKind::CollectList | AggKind::CollectSet | AggKind::TopK | AggKind::TopKDistinct => {
                state.push(Value::Array(Vec::new()))
            }
            // The distinct values' memcomparable encodings, sorted, as map keys.
            AggKind::CountDistinct => state.push(Value::Map(Vec::new())),
            AggKind::LatestByOffset | AggKind::EarliestByOffset if self.n.is_some() => {
                state.push(Value::Array(Vec::new()))
            }
            AggKind::EarliestByOffset => state.extend([Value::Null, Value::Boolean(false)]),
            // ksqlDB's initial state takes a fresh sequence: it is the newest so far.
            AggKind::LatestByOffset if self.sequenced => {
                state.extend([Value::Null, Value::BigInt(i64::MAX)])
            }
            AggKind::Histogram => state.push(Value::Map(Vec::new())),
            _ => state.push(Value::Null),
        }
    }

    /// Folds one input row into `state` (this aggregate's slots only).
    pub fn update(&self, state: &mut [Value], row: &[Value]) {
        self.update_at(state, row, 0);
    }

    /// [`AggCall::update`] for the row folded at sequence `seq` (processing order), which
    /// a sequenced LATEST_BY_OFFSET keeps with its value.
    pub fn update_at(&self, state: &mut [Value], row: &[Value], seq: i64) {
        let v = match &self.arg {
            Some(e) => e.eval(row),
            None => Value::Null,
        };
        if self.kind == AggKind::LatestByOffset && self.sequenced {
            if v.is_null() && self.ignore_nulls {
                return;
            }
            match (self.n, &mut state[0]) {
                (Some(n), Value::Array(items)) => {
                    items.push(Value::Struct(vec![
                        ("SEQ".into(), Value::BigInt(seq)),
                        ("VAL".into(), v),
                    ]));
                    if items.len() > n {
                        let excess = items.len() - n;
                        items.drain(..excess);
                    }
                }
                _ => {
                    state[0] = v;
                    state[1] = Value::BigInt(seq);
                }
            }
            return;
        }
        match self.kind {
            AggKind::CountStar => bump(&mut state[0], 1),
            AggKind::Count => {
                if !v.is_null() {
                    bump(&mut state[0], 1)
                }
            }
            AggKind::Sum => {
                if !v.is_null() {
                    state[0] = add(&state[0], &v);
                }
            }
            AggKind::SumList => {
                if let Value::Array(items) = v {
                    for i in items.iter().filter(|i| !i.is_null()) {
                        state[0] = add(&state[0], i);
                    }
                }
            }
            AggKind::Avg => {
                if !v.is_null() {
                    state[0] = typed_sum_add(&state[0], &v, 1);
                    bump(&mut state[1], 1);
                }
            }
            AggKind::StddevSamp | AggKind::VarianceSamp => {
                // The Youngs-Cramer update ksqlDB uses, with its typed arithmetic.
                if !v.is_null() {
                    let count = state[1].as_i64().unwrap_or(0);
                    let new_count = count.wrapping_add(1);
                    let m2 = if count > 0 {
                        let delta = stddev_delta(&state[0], count, &v);
                        delta * delta / new_count.wrapping_mul(count) as f64
                    } else {
                        0.0
                    };
                    state[0] = typed_sum_add(&state[0], &v, 1);
                    state[1] = Value::BigInt(new_count);
                    state[2] = Value::Double(state[2].as_f64().unwrap_or(0.0) + m2);
                }
            }
            AggKind::Correlation => {
                let y = self.arg2.as_ref().map_or(Value::Null, |e| e.eval(row));
                if let (Some(x), Some(y)) = (v.as_f64(), y.as_f64()) {
                    bump(&mut state[0], 1);
                    for (slot, add) in [(1, x), (2, y), (3, x * y), (4, x * x), (5, y * y)] {
                        state[slot] = Value::Double(state[slot].as_f64().unwrap_or(0.0) + add);
                    }
                }
            }
            AggKind::Min => {
                if !v.is_null()
                    && (state[0].is_null()
                        || v.sql_cmp(&state[0]) == Some(std::cmp::Ordering::Less))
                {
                    state[0] = v;
                }
            }
            AggKind::Max => {
                if !v.is_null()
                    && (state[0].is_null()
                        || v.sql_cmp(&state[0]) == Some(std::cmp::Ordering::Greater))
                {
                    state[0] = v;
                }
            }
            AggKind::LatestByOffset | AggKind::EarliestByOffset => {
                if v.is_null() && self.ignore_nulls {
                    return;
                }
                let latest = self.kind == AggKind::LatestByOffset;
                match (self.n, &mut state[0]) {
                    (Some(n), Value::Array(items)) => {
                        if latest {
                            items.push(v);
                            if items.len() > n {
                                items.remove(0);
                            }
                        } else if items.len() < n {
                            items.push(v);
                        }
                    }
                    _ if latest => state[0] = v,
                    _ => {
                        if state[1] != Value::Boolean(true) {
                            state[0] = v;
                            state[1] = Value::Boolean(true);
                        }
                    }
                }
            }
            // With a session limit (n), values beyond it are dropped, as in ksqlDB.
            AggKind::CollectList => {
                if let Value::Array(items) = &mut state[0]
                    && self.n.is_none_or(|n| items.len() < n)
                {
                    items.push(v);
                }
            }
            AggKind::CollectSet => {
                if let Value::Array(items) = &mut state[0]
                    && !items.contains(&v)
                    && self.n.is_none_or(|n| items.len() < n)
                {
                    items.push(v);
                }
            }
            AggKind::CountDistinct => {
                if !v.is_null() {
                    count_distinct_add(&mut state[0], &v);
                }
            }
            AggKind::TopK | AggKind::TopKDistinct => {
                if topk_sort_value(&v).is_null() {
                    return;
                }
                if let Value::Array(items) = &mut state[0] {
                    if self.kind == AggKind::TopKDistinct && items.contains(&v) {
                        return;
                    }
                    // Stable: among equal values the earlier one stays ahead.
                    items.push(v);
                    items.sort_by(|a, b| {
                        topk_sort_value(b)
                            .sql_cmp(topk_sort_value(a))
                            .unwrap_or(std::cmp::Ordering::Equal)
                    });
                    items.truncate(self.n.unwrap_or(1));
                }
            }
            AggKind::Histogram => {
                if let (Value::Map(entries), false) = (&mut state[0], v.is_null()) {
                    match entries.iter_mut().find(|(k, _)| *k == v) {
                        Some((_, c)) => bump(c, 1),
                        None => entries.push((v, Value::BigInt(1))),
                    }
                }
            }
            // A NULL is a value like any other: NULL then '2' is a conflict.
            AggKind::Attr => {
                if let Value::Map(entries) = &mut state[0] {
                    match entries.iter_mut().find(|(k, _)| *k == v) {
                        Some((_, c)) => bump(c, 1),
                        None => entries.push((v, Value::BigInt(1))),
                    }
                }
            }
        }
    }

    /// Whether [`AggCall::merge`] can combine two states (needed by session windows,
    /// which merge when a record bridges their gap). LATEST_BY_OFFSET and
    /// EARLIEST_BY_OFFSET cannot: ksqlDB merges them by a sequence number their state here
    /// does not keep; STDDEV and VARIANCE are not merged yet.
    pub fn supports_merge(&self) -> bool {
        match self.kind {
            AggKind::LatestByOffset => self.sequenced,
            AggKind::EarliestByOffset | AggKind::StddevSamp | AggKind::VarianceSamp => false,
            _ => true,
        }
    }

    /// ksqlDB's order of two `(value, sequence)` states: by sequence, and when NULLs are
    /// ignored a NULL value before any other.
    fn by_offset_order(&self, a: (&Value, i64), b: (&Value, i64)) -> std::cmp::Ordering {
        if self.ignore_nulls {
            match (a.0.is_null(), b.0.is_null()) {
                (true, true) => return std::cmp::Ordering::Equal,
                (true, false) => return std::cmp::Ordering::Less,
                (false, true) => return std::cmp::Ordering::Greater,
                _ => {}
            }
        }
        a.1.cmp(&b.1)
    }

    /// Folds `other` (another state of this aggregate, its slots only) into `state`, as
    /// ksqlDB's UDAF `merge` does for session windows: `other` is the later operand.
    pub fn merge(&self, state: &mut [Value], other: &[Value]) {
        match self.kind {
            AggKind::CountStar | AggKind::Count => {
                bump(&mut state[0], other[0].as_i64().unwrap_or(0));
            }
            AggKind::Sum | AggKind::SumList => {
                if !other[0].is_null() {
                    state[0] = if state[0].is_null() {
                        other[0].clone()
                    } else {
                        add(&state[0], &other[0])
                    };
                }
            }
            AggKind::Avg => {
                state[0] = typed_sum_add(&state[0], &other[0], 1);
                bump(&mut state[1], other[1].as_i64().unwrap_or(0));
            }
            AggKind::Correlation => {
                bump(&mut state[0], other[0].as_i64().unwrap_or(0));
                for slot in 1..6 {
                    state[slot] = Value::Double(
                        state[slot].as_f64().unwrap_or(0.0) + other[slot].as_f64().unwrap_or(0.0),
                    );
                }
            }
            AggKind::Min | AggKind::Max => {
                let want = if self.kind == AggKind::Min {
                    std::cmp::Ordering::Less
                } else {
                    std::cmp::Ordering::Greater
                };
                if !other[0].is_null()
                    && (state[0].is_null() || other[0].sql_cmp(&state[0]) == Some(want))
                {
                    state[0] = other[0].clone();
                }
            }
            AggKind::CollectList | AggKind::CollectSet => {
                if let (Value::Array(items), Value::Array(more)) = (&mut state[0], &other[0]) {
                    for v in more {
                        if self.n.is_some_and(|n| items.len() >= n) {
                            break;
                        }
                        if self.kind == AggKind::CollectList || !items.contains(v) {
                            items.push(v.clone());
                        }
                    }
                }
            }
            AggKind::TopK | AggKind::TopKDistinct => {
                if let (Value::Array(items), Value::Array(more)) = (&mut state[0], &other[0]) {
                    for v in more {
                        if self.kind == AggKind::TopK || !items.contains(v) {
                            items.push(v.clone());
                        }
                    }
                    items.sort_by(|a, b| {
                        topk_sort_value(b)
                            .sql_cmp(topk_sort_value(a))
                            .unwrap_or(std::cmp::Ordering::Equal)
                    });
                    items.truncate(self.n.unwrap_or(1));
                }
            }
            AggKind::Histogram | AggKind::Attr => {
                if let (Value::Map(entries), Value::Map(more)) = (&mut state[0], &other[0]) {
                    for (k, c) in more {
                        let n = c.as_i64().unwrap_or(0);
                        match entries.iter_mut().find(|(e, _)| e == k) {
                            Some((_, count)) => bump(count, n),
                            None => entries.push((k.clone(), Value::BigInt(n))),
                        }
                    }
                }
            }
            AggKind::CountDistinct => {
                if let (Value::Map(entries), Value::Map(more)) = (&mut state[0], &other[0]) {
                    entries.extend(more.iter().cloned());
                    entries.sort_by(|(a, _), (b, _)| match (a, b) {
                        (Value::Bytes(a), Value::Bytes(b)) => a.cmp(b),
                        _ => std::cmp::Ordering::Equal,
                    });
                    entries.dedup_by(|(a, _), (b, _)| a == b);
                }
            }
            AggKind::LatestByOffset if self.sequenced => match (self.n, &mut state[0]) {
                (Some(n), Value::Array(items)) => {
                    if let Value::Array(more) = &other[0] {
                        items.extend(more.iter().cloned());
                    }
                    let entry = |v: &Value| match v {
                        Value::Struct(f) => (
                            f.get(1).map_or(Value::Null, |(_, v)| v.clone()),
                            f.first().and_then(|(_, s)| s.as_i64()).unwrap_or(0),
                        ),
                        _ => (Value::Null, 0),
                    };
                    items.sort_by(|a, b| {
                        let (a, b) = (entry(a), entry(b));
                        self.by_offset_order((&a.0, a.1), (&b.0, b.1))
                    });
                    if items.len() > n {
                        let excess = items.len() - n;
                        items.drain(..excess);
                    }
                }
                _ => {
                    let mine = (&state[0], state[1].as_i64().unwrap_or(0));
                    let theirs = (&other[0], other[1].as_i64().unwrap_or(0));
                    if self.by_offset_order(mine, theirs) == std::cmp::Ordering::Less {
                        state[0] = other[0].clone();
                        state[1] = other[1].clone();
                    }
                }
            },
            // Refused by the planner (see supports_merge).
            AggKind::LatestByOffset
            | AggKind::EarliestByOffset
            | AggKind::StddevSamp
            | AggKind::VarianceSamp => {}
        }
    }

    /// Whether [`AggCall::retract`] can undo an update (needed to aggregate a table, whose
    /// rows are replaced and deleted).
    pub fn supports_retract(&self) -> bool {
        matches!(
            self.kind,
            AggKind::CountStar
                | AggKind::Count
                | AggKind::Sum
                | AggKind::Avg
                | AggKind::StddevSamp
                | AggKind::VarianceSamp
                | AggKind::CollectList
                | AggKind::Histogram
                | AggKind::Attr
        )
    }

    /// Removes one earlier input row from `state`.
    pub fn retract(&self, state: &mut [Value], row: &[Value]) {
        let v = match &self.arg {
            Some(e) => e.eval(row),
            None => Value::Null,
        };
        match self.kind {
            AggKind::CountStar => bump(&mut state[0], -1),
            AggKind::Count if !v.is_null() => bump(&mut state[0], -1),
            AggKind::Sum if !v.is_null() => state[0] = add(&state[0], &negate(&v)),
            AggKind::Avg if !v.is_null() => {
                state[0] = typed_sum_add(&state[0], &v, -1);
                bump(&mut state[1], -1);
            }
            // ksqlDB's undo: the delta is taken against the state before the removal.
            AggKind::StddevSamp | AggKind::VarianceSamp if !v.is_null() => {
                let count = state[1].as_i64().unwrap_or(0);
                let new_count = count.wrapping_sub(1);
                let m2 = if new_count > 0 {
                    let delta = stddev_delta(&state[0], count, &v);
                    delta * delta / new_count.wrapping_mul(count) as f64
                } else {
                    0.0
                };
                state[0] = typed_sum_add(&state[0], &v, -1);
                state[1] = Value::BigInt(new_count);
                state[2] = Value::Double(state[2].as_f64().unwrap_or(0.0) - m2);
            }
            AggKind::CollectList => {
                if let Value::Array(items) = &mut state[0]
                    && let Some(i) = items.iter().position(|x| *x == v)
                {
                    items.remove(i);
                }
            }
            AggKind::Histogram | AggKind::Attr => {
                if let Value::Map(entries) = &mut state[0]
                    && let Some(i) = entries.iter().position(|(k, _)| *k == v)
                {
                    bump(&mut entries[i].1, -1);
                    // A value no longer counted leaves the histogram, as in ksqlDB.
                    if entries[i].1.as_i64().is_some_and(|n| n <= 0) {
                        entries.remove(i);
                    }
                }
            }
            // Not retractable; the planner refuses these over tables.
            _ => {}
        }
    }

    pub fn result(&self, state: &[Value]) -> Value {
        match self.kind {
            // No values yet averages to 0.0 in ksqlDB, not NULL.
            AggKind::Avg => match (state[0].as_f64(), state[1].as_i64()) {
                (Some(sum), Some(n)) if n != 0 => Value::Double(sum / n as f64),
                _ => Value::Double(0.0),
            },
            // Fewer than two values have no spread: 0.0, as in ksqlDB.
            AggKind::StddevSamp | AggKind::VarianceSamp => {
                match (state[1].as_i64(), state[2].as_f64()) {
                    (Some(n), Some(m2)) if n >= 2 => {
                        let variance = m2 / (n - 1) as f64;
                        Value::Double(if self.kind == AggKind::StddevSamp {
                            variance.sqrt()
                        } else {
                            variance
                        })
                    }
                    _ => Value::Double(0.0),
                }
            }
            AggKind::Correlation => {
                let n = state[0].as_i64().unwrap_or(0) as f64;
                let f = |i: usize| state[i].as_f64().unwrap_or(0.0);
                let (sx, sy, sxy, sxx, syy) = (f(1), f(2), f(3), f(4), f(5));
                let cov = sxy - sx * sy / n;
                let vx = sxx - sx * sx / n;
                let vy = syy - sy * sy / n;
                if n < 2.0 || vx <= 0.0 || vy <= 0.0 {
                    Value::Double(f64::NAN)
                } else {
                    Value::Double(cov / (vx * vy).sqrt())
                }
            }
            AggKind::CountDistinct => match &state[0] {
                Value::Map(entries) => Value::BigInt(entries.len() as i64),
                Value::Array(items) => Value::BigInt(items.len() as i64),
                _ => Value::BigInt(0),
            },
            AggKind::LatestByOffset if self.sequenced && self.n.is_some() => match &state[0] {
                Value::Array(items) => Value::Array(
                    items
                        .iter()
                        .map(|i| match i {
                            Value::Struct(f) => f.get(1).map_or(Value::Null, |(_, v)| v.clone()),
                            _ => Value::Null,
                        })
                        .collect(),
                ),
                _ => Value::Null,
            },
            // The one value every current row agrees on, else NULL.
            AggKind::Attr => match &state[0] {
                Value::Map(entries) if entries.len() == 1 => entries[0].0.clone(),
                _ => Value::Null,
            },
            _ => state[0].clone(),
        }
    }
}

/// The zero of a typed sum as ksqlDB's AVG and STDDEV keep it: INTEGER and BIGINT sums
/// stay integral (and wrap, as Java's do), anything else sums as a DOUBLE.
fn typed_sum_zero(t: Option<&DataType>) -> Value {
    match t {
        Some(DataType::Int) => Value::Int(0),
        Some(DataType::BigInt) => Value::BigInt(0),
        _ => Value::Double(0.0),
    }
}

/// `sum + sign * v` in the sum's own type.
fn typed_sum_add(sum: &Value, v: &Value, sign: i32) -> Value {
    match (sum, v) {
        (Value::Int(a), Value::Int(b)) => Value::Int(if sign < 0 {
            a.wrapping_sub(*b)
        } else {
            a.wrapping_add(*b)
        }),
        (Value::BigInt(a), b) if b.as_i64().is_some() => {
            let b = b.as_i64().unwrap_or(0);
            Value::BigInt(if sign < 0 {
                a.wrapping_sub(b)
            } else {
                a.wrapping_add(b)
            })
        }
        (s, b) => {
            Value::Double(s.as_f64().unwrap_or(0.0) + f64::from(sign) * b.as_f64().unwrap_or(0.0))
        }
    }
}

/// ksqlDB's `createDelta`: `v * (count + 1) - (sum + v)`, computed in Java's types (int
/// sums add as int, the product as long) and then made a double.
fn stddev_delta(sum: &Value, count: i64, v: &Value) -> f64 {
    let n = count.wrapping_add(1);
    match (sum, v) {
        (Value::Int(s), Value::Int(x)) => i64::from(*x)
            .wrapping_mul(n)
            .wrapping_sub(i64::from(s.wrapping_add(*x)))
            as f64,
        (Value::BigInt(s), x) if x.as_i64().is_some() => {
            let x = x.as_i64().unwrap_or(0);
            x.wrapping_mul(n).wrapping_sub(s.wrapping_add(x)) as f64
        }
        (s, x) => {
            let (s, x) = (s.as_f64().unwrap_or(0.0), x.as_f64().unwrap_or(0.0));
            x * n as f64 - (s + x)
        }
    }
}

fn zero(t: Option<&DataType>) -> Value {
    match t {
        Some(DataType::Int) => Value::Int(0),
        Some(DataType::Double) => Value::Double(0.0),
        Some(DataType::Decimal { scale, .. }) => Value::Decimal {
            unscaled: 0,
            scale: *scale,
        },
        _ => Value::BigInt(0),
    }
}

fn negate(v: &Value) -> Value {
    match v {
        Value::Int(i) => Value::Int(i.wrapping_neg()),
        Value::BigInt(i) => Value::BigInt(i.wrapping_neg()),
        Value::Double(d) => Value::Double(-d),
        Value::Decimal { unscaled, scale } => Value::Decimal {
            unscaled: unscaled.wrapping_neg(),
            scale: *scale,
        },
        other => other.clone(),
    }
}

fn bump(v: &mut Value, n: i64) {
    if let Value::BigInt(c) = v {
        *c += n;
    }
}

fn add(acc: &Value, v: &Value) -> Value {
    match (acc, v) {
        (Value::Int(a), Value::Int(b)) => Value::Int(a.wrapping_add(*b)),
        (Value::BigInt(a), b) if b.as_i64().is_some() => {
            Value::BigInt(a.wrapping_add(b.as_i64().unwrap_or(0)))
        }
        (Value::Double(a), b) => Value::Double(a + b.as_f64().unwrap_or(0.0)),
        (
            Value::Decimal { unscaled: a, scale },
            Value::Decimal {
                unscaled: b,
                scale: sb,
            },
        ) => match Value::decimal_rescale(*b, *sb, *scale) {
            Some(b) => Value::Decimal {
                unscaled: a + b,
                scale: *scale,
            },
            None => acc.clone(),
        },
        _ => acc.clone(),
    }
}

/// Adds a value to a COUNT_DISTINCT state: the sorted memcomparable encodings of the values
/// seen, so a membership test is a binary search rather than a scan (a hot group can hold
/// hundreds of thousands of values). States written by older builds held the values
/// themselves in arrival order, as an array; they are converted on their first update.
fn count_distinct_add(state: &mut Value, v: &Value) {
    let encode = |v: &Value| {
        let mut k = Vec::with_capacity(16);
        sluice_common::keycodec::encode_key_value(v, &mut k);
        k
    };
    if let Value::Array(items) = state {
        let mut keys: Vec<Vec<u8>> = items.iter().filter(|i| !i.is_null()).map(encode).collect();
        keys.sort_unstable();
        keys.dedup();
        *state = Value::Map(
            keys.into_iter()
                .map(|k| (Value::Bytes(k), Value::Null))
                .collect(),
        );
    }
    let Value::Map(entries) = state else { return };
    let key = encode(v);
    let found = entries.binary_search_by(|(k, _)| match k {
        Value::Bytes(b) => b.as_slice().cmp(key.as_slice()),
        _ => std::cmp::Ordering::Less,
    });
    if let Err(i) = found {
        entries.insert(i, (Value::Bytes(key), Value::Null));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Folds `a` and `b` into two states, merges the second into the first, and returns
    /// the result, beside the result of folding `a` then `b` into one state.
    fn merged(call: &AggCall, a: &[Value], b: &[Value]) -> (Value, Value) {
        let fold = |vals: &[Value], seq0: i64| {
            let mut state = Vec::new();
            call.init(&mut state);
            for (i, v) in vals.iter().enumerate() {
                call.update_at(&mut state, std::slice::from_ref(v), seq0 + i as i64);
            }
            state
        };
        let mut one = fold(a, 0);
        call.merge(&mut one, &fold(b, 100));
        let mut all = a.to_vec();
        all.extend_from_slice(b);
        (call.result(&one), call.result(&fold(&all, 0)))
    }

    #[test]
    fn merging_two_states_is_folding_both_inputs() {
        let ints = |v: &[i32]| v.iter().map(|i| Value::Int(*i)).collect::<Vec<_>>();
        let (a, b) = (ints(&[3, 9, 1]), ints(&[7, 2]));
        for kind in [
            AggKind::CountStar,
            AggKind::Count,
            AggKind::Sum,
            AggKind::Avg,
            AggKind::Min,
            AggKind::Max,
            AggKind::CollectList,
            AggKind::CollectSet,
            AggKind::Histogram,
            AggKind::CountDistinct,
        ] {
            let call = AggCall::new(kind, Some(Expr::Column(0)), Some(DataType::Int));
            assert!(call.supports_merge(), "{kind:?}");
            let (m, f) = merged(&call, &a, &b);
            assert_eq!(m, f, "{kind:?}");
        }
        let mut topk = AggCall::new(AggKind::TopK, Some(Expr::Column(0)), Some(DataType::Int));
        topk.n = Some(3);
        assert_eq!(merged(&topk, &a, &b).0, Value::Array(ints(&[9, 7, 3])));
        let mut list = AggCall::new(AggKind::CollectList, Some(Expr::Column(0)), None);
        list.n = Some(4);
        assert_eq!(
            merged(&list, &a, &b).0,
            Value::Array(ints(&[3, 9, 1, 7])),
            "the limit holds"
        );
    }

    #[test]
    fn a_sequenced_latest_by_offset_merges_by_sequence_skipping_nulls() {
        let mut call = AggCall::new(AggKind::LatestByOffset, Some(Expr::Column(0)), None);
        call.sequenced = true;
        assert!(call.supports_merge());
        let v = |s: &str| Value::String(s.into());
        // The later state's latest value wins; one that only saw NULLs does not.
        assert_eq!(merged(&call, &[v("a"), v("b")], &[v("c")]).0, v("c"));
        assert_eq!(merged(&call, &[v("a")], &[Value::Null]).0, v("a"));
        let mut keep_nulls = call.clone();
        keep_nulls.ignore_nulls = false;
        assert_eq!(
            merged(&keep_nulls, &[v("a")], &[Value::Null]).0,
            Value::Null
        );
        // Without a sequence there is nothing to merge by.
        let plain = AggCall::new(AggKind::LatestByOffset, Some(Expr::Column(0)), None);
        assert!(!plain.supports_merge());
    }

    fn run(kind: AggKind, t: DataType, inputs: &[Value]) -> Value {
        let call = AggCall::new(kind, Some(Expr::Column(0)), Some(t));
        let mut state = Vec::new();
        call.init(&mut state);
        for v in inputs {
            call.update(&mut state, std::slice::from_ref(v));
        }
        call.result(&state)
    }

    #[test]
    fn collect_limits_drop_values_beyond_n() {
        for kind in [AggKind::CollectList, AggKind::CollectSet] {
            let mut call = AggCall::new(kind, Some(Expr::Column(0)), Some(DataType::Int));
            call.n = Some(2);
            let mut state = Vec::new();
            call.init(&mut state);
            for v in [1, 1, 2, 3].map(Value::Int) {
                call.update(&mut state, std::slice::from_ref(&v));
            }
            let expected = if kind == AggKind::CollectList {
                vec![Value::Int(1), Value::Int(1)]
            } else {
                vec![Value::Int(1), Value::Int(2)]
            };
            assert_eq!(call.result(&state), Value::Array(expected));
        }
        let unlimited = run(AggKind::CollectList, DataType::Int, &vec![Value::Int(1); 3]);
        assert_eq!(unlimited, Value::Array(vec![Value::Int(1); 3]));
    }

    #[test]
    fn count_distinct_counts_each_value_once() {
        let xs: Vec<Value> = [5, 1, 5, 3, 1, 9, 3]
            .map(Value::Int)
            .into_iter()
            .chain([Value::Null])
            .collect();
        assert_eq!(
            run(AggKind::CountDistinct, DataType::Int, &xs),
            Value::BigInt(4)
        );
        let strings = ["b", "a", "b", "", "a"].map(|s| Value::String(s.into()));
        assert_eq!(
            run(AggKind::CountDistinct, DataType::String, &strings),
            Value::BigInt(3)
        );
    }

    #[test]
    fn count_distinct_continues_a_state_from_an_older_build() {
        // Older builds kept the distinct values themselves, in arrival order.
        let call = AggCall::new(
            AggKind::CountDistinct,
            Some(Expr::Column(0)),
            Some(DataType::Int),
        );
        let mut state = vec![Value::Array(vec![Value::Int(7), Value::Int(2)])];
        assert_eq!(call.result(&state), Value::BigInt(2));
        for v in [2, 4, 7, 4].map(Value::Int) {
            call.update(&mut state, std::slice::from_ref(&v));
        }
        assert_eq!(call.result(&state), Value::BigInt(3));
    }

    #[test]
    fn aggregates_skip_nulls() {
        let xs = [Value::Int(3), Value::Null, Value::Int(1), Value::Int(5)];
        assert_eq!(run(AggKind::Count, DataType::Int, &xs), Value::BigInt(3));
        assert_eq!(
            run(AggKind::CountStar, DataType::Int, &xs),
            Value::BigInt(4)
        );
        assert_eq!(run(AggKind::Sum, DataType::Int, &xs), Value::Int(9));
        assert_eq!(run(AggKind::Avg, DataType::Int, &xs), Value::Double(3.0));
        assert_eq!(run(AggKind::Min, DataType::Int, &xs), Value::Int(1));
        assert_eq!(run(AggKind::Max, DataType::Int, &xs), Value::Int(5));
        assert_eq!(
            run(AggKind::LatestByOffset, DataType::Int, &xs),
            Value::Int(5)
        );
        assert_eq!(
            run(AggKind::EarliestByOffset, DataType::Int, &xs),
            Value::Int(3)
        );
    }

    #[test]
    fn topk_of_rows_sorts_by_sort_col_and_keeps_earlier_ties_first() {
        let row = |s: Option<i32>, name: &str| {
            Value::Struct(vec![
                ("sort_col".into(), s.map_or(Value::Null, Value::Int)),
                ("col0".into(), Value::String(name.into())),
            ])
        };
        let t = DataType::Struct(vec![
            ("sort_col".into(), DataType::Int),
            ("col0".into(), DataType::String),
        ]);
        assert!(AggKind::TopK.return_type(Some(&t), Some(2)).is_ok());
        let mut call = AggCall::new(AggKind::TopK, Some(Expr::Column(0)), Some(t));
        call.n = Some(2);
        let mut state = Vec::new();
        call.init(&mut state);
        for v in [
            row(Some(1), "a"),
            row(None, "x"),
            row(Some(5), "b"),
            row(Some(5), "c"),
        ] {
            call.update(&mut state, &[v]);
        }
        assert_eq!(
            call.result(&state),
            Value::Array(vec![row(Some(5), "b"), row(Some(5), "c")])
        );
    }

    #[test]
    fn stddev_sample_and_ksqldbs_stddev_samp() {
        let xs = [Value::Double(10.0), Value::Null, Value::Double(12.0)];
        assert_eq!(
            run(AggKind::StddevSamp, DataType::Double, &xs[..1]),
            Value::Double(0.0)
        );
        assert_eq!(
            run(AggKind::VarianceSamp, DataType::Double, &xs[..1]),
            Value::Double(0.0)
        );
        assert_eq!(
            run(AggKind::VarianceSamp, DataType::Double, &xs),
            Value::Double(2.0)
        );
        assert_eq!(
            run(AggKind::StddevSamp, DataType::Double, &xs),
            Value::Double(2f64.sqrt())
        );
        // ksqlDB maps fewer than two values to 0.0, none included.
        assert_eq!(
            run(AggKind::StddevSamp, DataType::Double, &[]),
            Value::Double(0.0)
        );
        // Youngs-Cramer over (SUM, COUNT, M2): each value adds
        // (x * (n + 1) - (sum + x))^2 / ((n + 1) * n), which is what ksqlDB's digits are.
        let ints = [Value::Int(1), Value::Int(2), Value::Int(4)];
        let m2 = 1.0 / 2.0 + 25.0 / 6.0;
        assert_eq!(
            run(AggKind::VarianceSamp, DataType::Int, &ints),
            Value::Double(m2 / 2.0)
        );
        let call = AggCall::new(
            AggKind::VarianceSamp,
            Some(Expr::Column(0)),
            Some(DataType::Int),
        );
        assert!(call.supports_retract());
        let mut state = Vec::new();
        call.init(&mut state);
        for x in &ints {
            call.update(&mut state, std::slice::from_ref(x));
        }
        assert_eq!(state[0], Value::Int(7));
        call.retract(&mut state, &[Value::Int(4)]);
        assert_eq!(call.result(&state), Value::Double(m2 - 25.0 / 6.0));
        assert_eq!(
            AggKind::from_name("STDDEV_SAMP", false),
            Some(AggKind::VarianceSamp)
        );
        for kind in [
            AggKind::VarianceSamp,
            AggKind::TopK,
            AggKind::LatestByOffset,
        ] {
            assert_eq!(AggKind::from_name(kind.name(), false), Some(kind));
        }
    }

    #[test]
    fn attr_counts_a_leading_null_as_a_value() {
        let s = |t: &str| Value::String(t.into());
        assert_eq!(
            run(AggKind::Attr, DataType::String, &[s("a"), s("a")]),
            s("a")
        );
        assert_eq!(
            run(
                AggKind::Attr,
                DataType::String,
                &[Value::Null, s("2"), s("2")]
            ),
            Value::Null
        );
        assert_eq!(
            run(AggKind::Attr, DataType::String, &[s("a"), s("b"), s("a")]),
            Value::Null
        );
    }

    #[test]
    fn attr_over_a_table_recovers_when_the_conflict_is_retracted() {
        let s = |t: &str| Value::String(t.into());
        let call = AggCall::new(AggKind::Attr, Some(Expr::Column(0)), Some(DataType::String));
        let mut state = Vec::new();
        call.init(&mut state);
        call.update(&mut state, &[s("1")]);
        call.update(&mut state, &[s("2")]);
        assert_eq!(call.result(&state), Value::Null);
        call.retract(&mut state, &[s("1")]);
        assert_eq!(call.result(&state), s("2"));
        call.retract(&mut state, &[s("2")]);
        assert_eq!(call.result(&state), Value::Null);
    }

    #[test]
    fn retract_undoes_update() {
        for kind in [
            AggKind::CountStar,
            AggKind::Count,
            AggKind::Sum,
            AggKind::Avg,
        ] {
            let call = AggCall::new(kind, Some(Expr::Column(0)), Some(DataType::BigInt));
            assert!(call.supports_retract());
            let mut state = Vec::new();
            call.init(&mut state);
            call.update(&mut state, &[Value::BigInt(4)]);
            call.update(&mut state, &[Value::BigInt(6)]);
            call.retract(&mut state, &[Value::BigInt(4)]);
            let want = match kind {
                AggKind::Avg => Value::Double(6.0),
                AggKind::Sum => Value::BigInt(6),
                _ => Value::BigInt(1),
            };
            assert_eq!(call.result(&state), want, "{kind:?}");
        }
        let max = AggCall::new(AggKind::Max, Some(Expr::Column(0)), Some(DataType::BigInt));
        assert!(!max.supports_retract());
    }

    #[test]
    fn empty_inputs() {
        assert_eq!(run(AggKind::Sum, DataType::BigInt, &[]), Value::BigInt(0));
        assert_eq!(run(AggKind::Avg, DataType::BigInt, &[]), Value::Double(0.0));
        // AVG sums in the argument's type, so a BIGINT average is exact before dividing.
        let big = [Value::BigInt(i64::MAX / 2), Value::BigInt(i64::MAX / 2 + 1)];
        assert_eq!(
            run(AggKind::Avg, DataType::BigInt, &big),
            Value::Double((i64::MAX / 2 + i64::MAX / 2 + 1) as f64 / 2.0)
        );
        assert_eq!(
            run(AggKind::Max, DataType::BigInt, &[Value::Null]),
            Value::Null
        );
    }

    #[test]
    fn sum_types() {
        assert!(
            AggKind::Sum
                .return_type(Some(&DataType::String), None)
                .is_err()
        );
        assert_eq!(
            AggKind::Avg.return_type(Some(&DataType::Int), None),
            Ok(DataType::Double)
        );
    }
}
