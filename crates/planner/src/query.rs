//! SELECT planning: persistent queries (CREATE ... AS SELECT, INSERT INTO ... SELECT),
//! push queries and pull queries.

use crate::bind::{AggMode, Binder, Bound, Scope, err_at, ident_name};
use crate::ddl::{check_formats, check_timestamp, source_props};
use crate::{Catalog, PlanError, Result, lookup};
use sluice_common::{
    Column, ColumnRole, DataType, FormatKind, FormatSpec, Schema, SourceDef, SourceKind,
    WindowKind, WindowSpec,
};
use sluice_expr::{AggKind, Expr};
use sluice_plan::{AggregatePushPlan, Operator, PushPlan, QueryPlan, TableFunction, WindowPlan};
use sluice_sql::{Expr as SqlExpr, Name, Properties, Select, SelectItem, WindowClauseKind};
use sqlparser::ast::BinaryOperator;

/// A column of a query's result as a client sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputColumn {
    pub name: String,
    pub data_type: DataType,
    pub role: ColumnRole,
    /// Set when the column is a header column of the source read (`HEADERS`, or
    /// `HEADER('k')`), which pull queries on tables show in their schema.
    pub header: Option<sluice_sql::HeaderSpec>,
}

/// One projected item: its output name, bound expression and, when it is a bare column
/// reference, which source column it reads.
pub(crate) struct Item {
    name: String,
    pub(crate) bound: Bound,
    pub(crate) source_column: Option<String>,
    expr: Option<SqlExpr>,
    table_fn: Option<TableFunction>,
}

/// Names projection items as ksqlDB does (ColumnNames.columnAliasGenerator): the alias; a
/// column's name; for `s->f`, the field's name, made unique against the source's columns
/// (`F`, then `F_1`, `F_2`, ... skipping numbers a source column `F_n` already has); for any
/// other expression `KSQL_COL_<n>`, counting from 0 and skipping the `n`s of source columns
/// named `KSQL_COL_<n>`.
pub(crate) struct Namer {
    /// Per base name (a name without its `_<digits>` suffix): the generator of its aliases.
    generators: std::collections::HashMap<String, AliasGenerator>,
    /// A joined row's sources: a column that more than one of them has is named
    /// `ALIAS_COLUMN` after the source it is read from.
    joined: Vec<crate::bind::JoinedColumns>,
}

const GENERATED_ALIAS_PREFIX: &str = "KSQL_COL";

/// One base name's aliases: the base itself (index 0; never for KSQL_COL), then
/// `base_1`, `base_2`, ..., skipping the indexes the source's columns hold.
struct AliasGenerator {
    base: String,
    used: std::collections::HashSet<u64>,
    next: u64,
}

impl AliasGenerator {
    fn next(&mut self) -> String {
        let mut idx = self.next;
        while self.used.contains(&idx) {
            idx += 1;
        }
        self.next = idx + 1;
        if idx == 0 && self.base != GENERATED_ALIAS_PREFIX {
            self.base.clone()
        } else {
            format!("{}_{idx}", self.base)
        }
    }
}

/// `COL_12` -> ("COL", 12); `COL` -> ("COL", 0), as ksqlDB's NUMBERED_COLUMN_PATTERN reads
/// a column name.
fn split_numbered(name: &str) -> (&str, u64) {
    if let Some((base, digits)) = name.rsplit_once('_')
        && !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && let Ok(n) = digits.parse::<u64>()
    {
        return (base, n);
    }
    (name, 0)
}

impl Namer {
    /// A namer whose generated names cannot clash with `source`'s columns.
    pub(crate) fn for_source(source: &SourceDef) -> Namer {
        let mut generators: std::collections::HashMap<String, AliasGenerator> =
            std::collections::HashMap::new();
        for c in &source.schema.columns {
            let (base, n) = split_numbered(&c.name);
            generators
                .entry(base.to_string())
                .or_insert_with(|| AliasGenerator {
                    base: base.to_string(),
                    used: Default::default(),
                    next: 0,
                })
                .used
                .insert(n);
        }
        Namer {
            generators,
            joined: Vec::new(),
        }
    }

    /// A namer for a projection over `scope`, a joined row's or a source's.
    pub(crate) fn for_scope(source: &SourceDef, scope: &Scope) -> Namer {
        let mut n = Namer::for_source(source);
        n.joined = scope.joined.clone();
        n
    }

    /// In a join, a column reference's name: the column's own unless another joined
    /// source has a column of that name too (ksqlDB's AstSanitizer).
    fn joined_column_name(&self, qualifier: Option<&str>, column: String) -> String {
        let holders: Vec<&crate::bind::JoinedColumns> =
            crate::bind::holders(&self.joined, &column).collect();
        if holders.len() < 2 {
            return column;
        }
        match qualifier.and_then(|q| holders.iter().find(|j| j.qualifiers.iter().any(|x| x == q))) {
            Some(j) => format!("{}_{column}", j.prefix),
            None => column,
        }
    }

    fn generator(&mut self, name: &str) -> &mut AliasGenerator {
        let (base, _) = split_numbered(name);
        self.generators
            .entry(base.to_string())
            .or_insert_with(|| AliasGenerator {
                base: base.to_string(),
                used: Default::default(),
                next: 0,
            })
    }

    pub(crate) fn name(&mut self, expr: &SqlExpr, alias: Option<&Name>) -> String {
        if let Some(a) = alias {
            return a.value.clone();
        }
        match expr {
            SqlExpr::Identifier(id) if !self.joined.is_empty() => {
                self.joined_column_name(None, ident_name(id))
            }
            SqlExpr::CompoundIdentifier(parts) if parts.len() == 2 && !self.joined.is_empty() => {
                self.joined_column_name(Some(&ident_name(&parts[0])), ident_name(&parts[1]))
            }
            SqlExpr::Identifier(id) => ident_name(id),
            SqlExpr::CompoundIdentifier(parts) if parts.len() == 2 => ident_name(&parts[1]),
            SqlExpr::BinaryOp {
                op: BinaryOperator::Arrow,
                right,
                ..
            } if matches!(right.as_ref(), SqlExpr::Identifier(_)) => match right.as_ref() {
                SqlExpr::Identifier(id) => self.generator(&ident_name(id)).next(),
                _ => self.next(),
            },
            _ => self.next(),
        }
    }

    fn next(&mut self) -> String {
        self.generator(GENERATED_ALIAS_PREFIX).next()
    }
}

pub(crate) fn column_ref(expr: &SqlExpr) -> Option<String> {
    match expr {
        SqlExpr::Identifier(id) => Some(ident_name(id)),
        SqlExpr::CompoundIdentifier(parts) if parts.len() == 2 => Some(ident_name(&parts[1])),
        SqlExpr::Nested(inner) => column_ref(inner),
        _ => None,
    }
}

pub(crate) fn no_table_functions(items: &[Item], context: &str) -> Result<()> {
    match items.iter().find(|i| i.table_fn.is_some()) {
        Some(i) => match &i.expr {
            Some(e) => err_at(
                e,
                format!("Table functions are not supported in {context} yet"),
            ),
            None => Err(PlanError::new(
                format!("Table functions are not supported in {context} yet"),
                0,
                0,
            )),
        },
        None => Ok(()),
    }
}

/// `EXPLODE(arr)->f->g` as `EXPLODE(TRANSFORM(arr, e => e->f->g))`, or None when `expr`
/// is not a dereference of an EXPLODE call.
fn explode_dereference(expr: &SqlExpr) -> Option<SqlExpr> {
    let mut fields = Vec::new();
    let mut cur = expr;
    while let SqlExpr::BinaryOp {
        left,
        op: BinaryOperator::Arrow,
        right,
    } = cur
    {
        fields.push(right.as_ref().clone());
        cur = left.as_ref();
    }
    let SqlExpr::Function(f) = cur else {
        return None;
    };
    if fields.is_empty() || !f.name.to_string().eq_ignore_ascii_case("EXPLODE") {
        return None;
    }
    let sqlparser::ast::FunctionArguments::List(list) = &f.args else {
        return None;
    };
    let [sqlparser::ast::FunctionArg::Unnamed(sqlparser::ast::FunctionArgExpr::Expr(arg))] =
        list.args.as_slice()
    else {
        return None;
    };
    let param = sqlparser::ast::Ident::new("KSQL_EXPLODED_ELEMENT");
    let mut body = SqlExpr::Identifier(param.clone());
    for field in fields.into_iter().rev() {
        body = SqlExpr::BinaryOp {
            left: Box::new(body),
            op: BinaryOperator::Arrow,
            right: Box::new(field),
        };
    }
    let lambda = SqlExpr::Lambda(sqlparser::ast::LambdaFunction {
        params: sqlparser::ast::OneOrManyWithParens::Many(vec![
            sqlparser::ast::LambdaFunctionParameter {
                name: param,
                data_type: None,
            },
        ]),
        body: Box::new(body),
        syntax: sqlparser::ast::LambdaSyntax::Arrow,
    });
    let call = |name: &str, args: Vec<SqlExpr>| {
        let mut g = f.clone();
        g.name = sqlparser::ast::ObjectName::from(vec![sqlparser::ast::Ident::new(name)]);
        if let sqlparser::ast::FunctionArguments::List(l) = &mut g.args {
            l.args = args
                .into_iter()
                .map(|a| {
                    sqlparser::ast::FunctionArg::Unnamed(sqlparser::ast::FunctionArgExpr::Expr(a))
                })
                .collect();
        }
        SqlExpr::Function(g)
    };
    let transform = call("TRANSFORM", vec![arg.clone(), lambda]);
    Some(call("EXPLODE", vec![transform]))
}

/// Binds one projection item; a table function call (EXPLODE, CUBE_EXPLODE) binds to its
/// array argument and is marked, since it changes the number of rows, not a value.
fn bind_item(scope: &Scope, expr: &SqlExpr) -> Result<(Bound, Option<TableFunction>)> {
    // `EXPLODE(a)->f` dereferences each element: it is `EXPLODE(TRANSFORM(a, x => x->f))`.
    if let Some(rewritten) = explode_dereference(expr) {
        return bind_item(scope, &rewritten);
    }
    if let SqlExpr::Function(f) = expr {
        let name = f.name.to_string().to_ascii_uppercase();
        let tf = match name.as_str() {
            "EXPLODE" => Some(TableFunction::Explode),
            "CUBE_EXPLODE" => Some(TableFunction::CubeExplode),
            _ => None,
        };
        if let Some(tf) = tf {
            let args: Vec<&SqlExpr> = match &f.args {
                sqlparser::ast::FunctionArguments::List(l) => l
                    .args
                    .iter()
                    .filter_map(|a| match a {
                        sqlparser::ast::FunctionArg::Unnamed(
                            sqlparser::ast::FunctionArgExpr::Expr(x),
                        ) => Some(x),
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            };
            let [arg] = args.as_slice() else {
                return err_at(expr, format!("Function {name} takes one ARRAY argument"));
            };
            let b = Binder::plain(scope).in_clause("SELECT").bind(arg)?;
            let ty = match (&b.ty, tf) {
                (Some(DataType::Array(item)), TableFunction::Explode) => {
                    Some(item.as_ref().clone())
                }
                (Some(t @ DataType::Array(_)), TableFunction::CubeExplode) => Some(t.clone()),
                (other, _) => {
                    return err_at(
                        arg,
                        format!(
                            "Function '{}' does not accept parameters ({}).{}",
                            name.to_ascii_lowercase(),
                            crate::bind::ty_name(other),
                            // ksqlDB lists the signatures it has.
                            match tf {
                                TableFunction::Explode =>
                                    "\nValid alternatives are:\nexplode(ARRAY<DECIMAL> input)\nexplode(ARRAY<T> list)",
                                TableFunction::CubeExplode =>
                                    "\nValid alternatives are:\ncube_explode(ARRAY<T> list)",
                            }
                        ),
                    );
                }
            };
            return Ok((Bound { expr: b.expr, ty }, Some(tf)));
        }
    }
    Ok((Binder::plain(scope).in_clause("SELECT").bind(expr)?, None))
}

/// Binds a non-aggregate projection over a source row.
pub(crate) fn project(select: &Select, source: &SourceDef, scope: &Scope) -> Result<Vec<Item>> {
    let mut items = Vec::new();
    let mut namer = Namer::for_scope(source, scope);
    for item in &select.items {
        match item {
            SelectItem::QualifiedWildcard(q) if !scope.qualifiers.contains(&q.value) => {
                return Err(PlanError::at_name(
                    format!("'{}' is not a valid stream/table name or alias.", q.value),
                    q,
                ));
            }
            SelectItem::StructAll { qualifier, path } => {
                if let Some(q) = qualifier
                    && !scope.qualifiers.contains(&q.value)
                {
                    return Err(PlanError::at_name(
                        format!("'{}' is not a valid stream/table name or alias.", q.value),
                        q,
                    ));
                }
                let column = scope
                    .resolve(qualifier.as_ref().map(|q| q.value.as_str()), &path[0].value)
                    .unwrap_or_else(|| path[0].value.clone());
                let mut cur = match scope.index_of(&column) {
                    Some(i) => Bound {
                        expr: Expr::Column(i),
                        ty: Some(scope.columns[i].1.clone()),
                    },
                    None => {
                        return Err(PlanError::at_name(
                            format!("SELECT column '{}' cannot be resolved.", path[0].value),
                            &path[0],
                        ));
                    }
                };
                for field in &path[1..] {
                    let ty = match &cur.ty {
                        Some(DataType::Struct(fields)) => fields
                            .iter()
                            .find(|(n, _)| *n == field.value)
                            .map(|(_, t)| t.clone()),
                        _ => None,
                    };
                    let Some(ty) = ty else {
                        return Err(PlanError::at_name(
                            format!("Unknown field '{}'", field.value),
                            field,
                        ));
                    };
                    cur = Bound {
                        expr: Expr::Field {
                            expr: Box::new(cur.expr),
                            name: field.value.clone(),
                        },
                        ty: Some(ty),
                    };
                }
                let Some(DataType::Struct(fields)) = &cur.ty else {
                    return Err(PlanError::at_name(
                        format!(
                            "{} is not a STRUCT; ->* needs one",
                            path[path.len() - 1].value
                        ),
                        &path[0],
                    ));
                };
                for (n, t) in fields {
                    items.push(Item {
                        name: n.clone(),
                        bound: Bound {
                            expr: Expr::Field {
                                expr: Box::new(cur.expr.clone()),
                                name: n.clone(),
                            },
                            ty: Some(t.clone()),
                        },
                        source_column: None,
                        expr: None,
                        table_fn: None,
                    });
                }
            }
            SelectItem::Wildcard | SelectItem::QualifiedWildcard(_) if !scope.joined.is_empty() => {
                let qualifier = match item {
                    SelectItem::QualifiedWildcard(q) => Some(q.value.as_str()),
                    _ => None,
                };
                let mut names: Vec<&String> = Vec::new();
                if qualifier.is_none()
                    && let Some((k, _)) = scope.columns.first()
                    && !k.is_empty()
                {
                    names.push(k);
                }
                for j in &scope.joined {
                    if qualifier.is_none_or(|q| j.qualifiers.iter().any(|x| x == q)) {
                        names.extend(j.star.iter());
                    }
                }
                for n in names {
                    let Some(idx) = scope.index_of(n) else {
                        continue;
                    };
                    items.push(Item {
                        name: n.clone(),
                        bound: Bound {
                            expr: Expr::Column(idx),
                            ty: Some(scope.columns[idx].1.clone()),
                        },
                        source_column: Some(n.clone()),
                        expr: None,
                        table_fn: None,
                    });
                }
            }
            SelectItem::Wildcard | SelectItem::QualifiedWildcard(_) => {
                for c in &source.schema.columns {
                    let idx = scope.index_of(&c.name).unwrap_or(0);
                    items.push(Item {
                        name: c.name.clone(),
                        bound: Bound {
                            expr: Expr::Column(idx),
                            ty: Some(c.data_type.clone()),
                        },
                        source_column: Some(c.name.clone()),
                        expr: None,
                        table_fn: None,
                    });
                }
            }
            SelectItem::Expr { expr, alias } => {
                let (bound, table_fn) = bind_item(scope, expr)?;
                items.push(Item {
                    name: namer.name(expr, alias.as_ref()),
                    bound,
                    source_column: column_ref(expr),
                    expr: Some(expr.clone()),
                    table_fn,
                });
            }
        }
    }
    check_unique_names(&items)?;
    Ok(items)
}

/// ` TYPE` after a column name in a message, when the type is known.
fn typed_suffix(ty: &Option<DataType>) -> String {
    ty.as_ref().map_or(String::new(), |t| format!(" {t}"))
}

fn check_unique_names(items: &[Item]) -> Result<()> {
    for (i, a) in items.iter().enumerate() {
        if items[..i].iter().any(|b| b.name == a.name) {
            let (line, column) = a.expr.as_ref().map_or((0, 0), |e| {
                use sqlparser::ast::Spanned;
                let s = e.span().start;
                (s.line, s.column)
            });
            return Err(PlanError::new(
                format!(
                    "Duplicate value columns found in schema: `{}`{}",
                    a.name,
                    typed_suffix(&a.bound.ty)
                ),
                line,
                column,
            ));
        }
    }
    Ok(())
}

pub(crate) fn concrete(e: Option<&SqlExpr>, name: &str, ty: Option<DataType>) -> Result<DataType> {
    match ty {
        Some(t) => Ok(t),
        None => match e {
            Some(e) => err_at(
                e,
                format!(
                    "Can't infer a type of null. Please explicitly cast it to a required type, e.g. CAST(null AS VARCHAR). (column {name})"
                ),
            ),
            None => Err(PlanError::new(
                format!("Can't infer a type of null for column {name}"),
                0,
                0,
            )),
        },
    }
}

/// The result of planning a persistent query.
#[derive(Debug, Clone)]
pub struct PlannedQuery {
    pub sink: SourceDef,
    pub plan: QueryPlan,
    /// Partitions for the sink topic when it must be created.
    pub partitions: Option<u32>,
}

/// Identifiers the caller allocates for a new persistent query and its sink.
pub struct NewIds {
    pub sink_id: u64,
    pub query_num: u64,
    pub query_id: String,
}

/// What a persistent query reads: its FROM source, or for a join the joined row (as a
/// source) and the planned join.
fn input_of(
    select: &Select,
    catalog: &dyn Catalog,
) -> Result<(SourceDef, Option<crate::join::PlannedJoin>)> {
    let source = lookup(catalog, &select.from)?;
    if select.joins.is_empty() {
        return Ok((source, None));
    }
    let joined = crate::join::plan_join(select, catalog)?;
    Ok((joined.source.clone(), Some(joined)))
}

/// Plans CREATE STREAM/TABLE ... AS SELECT.
#[allow(clippy::too_many_arguments)]
pub fn plan_create_as(
    ids: NewIds,
    kind: SourceKind,
    name: &Name,
    props: &Properties,
    select: &Select,
    catalog: &dyn Catalog,
    sql: &str,
    cfg: &crate::SessionConfig,
) -> Result<PlannedQuery> {
    let (source, joined) = input_of(select, catalog)?;
    let p = source_props(props, name)?;
    for (set, prop) in [
        (p.window_type.is_some(), "WINDOW_TYPE"),
        (p.window_size.is_some(), "WINDOW_SIZE"),
    ] {
        if set {
            return Err(PlanError::at_name(
                format!("Invalid config variable(s) in the WITH clause: {prop}"),
                name,
            ));
        }
    }
    if source.window.is_some() && source.kind == SourceKind::Table {
        return Err(PlanError::at_name(
            "KSQL does not support persistent queries on windowed tables.",
            name,
        ));
    }
    if source.window.is_some() && (!select.group_by.is_empty() || !select.partition_by.is_empty()) {
        return Err(PlanError::at_name(
            format!(
                "{} is windowed: re-keying or aggregating a windowed stream is not supported yet",
                source.name
            ),
            name,
        ));
    }
    if let Some(ts) = &p.timestamp
        && !projects_column(select, &source, ts)
    {
        // ksqlDB checks the WITH clause before the projection.
        return Err(PlanError::at_name(
            format!(
                "The TIMESTAMP column set in the WITH clause does not exist in the schema: '{ts}'"
            ),
            name,
        ));
    }
    let (mut op, schema) = plan_operator(kind, name, select, &source, joined.as_ref(), cfg)?;
    apply_collect_limits(&mut op, cfg);
    if p.key_format
        .as_ref()
        .is_some_and(|f| f.kind != FormatKind::None)
        && schema.key_count() == 0
    {
        return Err(PlanError::at_name(
            "Key format specified for stream without key columns.",
            name,
        ));
    }
    let key_format = match (&p.key_format, schema.key_count()) {
        (_, 0) => FormatSpec::new(FormatKind::None),
        (Some(f), _) => f.clone(),
        // A keyless source has no key format to inherit: the session default, else KAFKA.
        (None, _) if source.key_format.kind == FormatKind::None => {
            FormatSpec::new(cfg.default_key_format.unwrap_or(FormatKind::Kafka))
        }
        (None, _) => source.key_format.clone(),
    };
    let inherited = FormatSpec {
        wrap_single_value: None,
        ..source.value_format.clone()
    };
    let mut value_format = p
        .value_format_or(Some(&inherited), name)?
        .unwrap_or(FormatSpec::new(FormatKind::Json));
    if p.value_format.is_some() && p.wrap_single_value.is_none() {
        value_format.wrap_single_value = None;
    }
    if p.wrap_single_value.is_none()
        && schema.values().len() == 1
        && cfg.wrap_single_values.is_some()
    {
        value_format.wrap_single_value = cfg.wrap_single_values;
    }
    if value_format.kind == FormatKind::Delimited
        && p.value_format.is_none()
        && p.value_delimiter.is_none()
    {
        value_format.delimiter = source.value_format.delimiter;
    }
    // A multi-column key in the KAFKA format is an error, as in ksqlDB, not a silent
    // switch to JSON: the user chooses the key format (KEY_FORMAT='JSON').
    let mut key_format = key_format;
    if p.key_format.is_some() || p.key_delimiter.is_some() {
        key_format.delimiter = None;
    }
    p.apply_key_delimiter(&mut key_format, name)?;
    check_formats(&schema, 0, &key_format, &value_format, name)?;
    let timestamp_column = check_timestamp(
        &schema,
        p.timestamp.as_deref(),
        p.timestamp_format.as_deref(),
        name,
    )?;
    let sink = SourceDef {
        id: ids.sink_id,
        name: name.value.clone(),
        kind,
        schema,
        topic: p
            .topic
            .clone()
            .unwrap_or_else(|| format!("{}{}", cfg.topic_prefix, name.value)),
        key_format,
        value_format,
        timestamp_column,
        timestamp_format: p.timestamp_format.clone(),
        headers: Vec::new(),
        written_by: Some(ids.query_id.clone()),
        sql: sql.to_string(),
        read_only: false,
        // A projection of a windowed stream keeps each record's window in its key; a
        // windowed aggregation's key carries its windows.
        window: match &op {
            Operator::Aggregate {
                window: Some(w), ..
            } => Some(WindowSpec {
                kind: w.kind,
                size_ms: (w.kind != WindowKind::Session).then_some(w.size_ms),
            }),
            _ => source.window,
        },
    };
    if source.window.is_some()
        && let Operator::Select { projection, .. } = &mut op
    {
        let scope = Scope::of_source(&source, None);
        for bound in [sluice_common::WINDOWSTART, sluice_common::WINDOWEND] {
            if let Some(i) = scope.index_of(bound) {
                projection.push(Expr::Column(i));
            }
        }
    }
    let plan = QueryPlan {
        id: ids.query_id,
        num: ids.query_num,
        source,
        sink: sink.clone(),
        op,
        join: joined.map(|j| j.plan),
    };
    Ok(PlannedQuery {
        sink,
        plan,
        partitions: p.partitions,
    })
}

/// Plans INSERT INTO target SELECT ...: the query's result must match the target's schema.
/// `INSERT INTO target SELECT ...`, planned under the session's settings (`cfg`), which
/// are stored with the query so a restart plans it the same way.
pub fn plan_insert_select(
    ids: NewIds,
    target: &SourceDef,
    select: &Select,
    catalog: &dyn Catalog,
    cfg: &crate::SessionConfig,
) -> Result<QueryPlan> {
    let (source, joined) = input_of(select, catalog)?;
    let at = Name {
        value: target.name.clone(),
        line: select.from.line,
        column: select.from.column,
    };
    if !target.headers.is_empty() {
        return Err(PlanError::at_name(
            format!(
                "Cannot insert into {} because it has header columns",
                target.name
            ),
            &at,
        ));
    }
    if target.kind != SourceKind::Stream {
        return Err(PlanError::at_name(
            format!(
                "INSERT INTO can only be used to insert into a stream. {} is a table.",
                target.name
            ),
            &at,
        ));
    }
    if source.window.is_some() || target.window.is_some() || select.window.is_some() {
        return Err(PlanError::at_name(
            "INSERT INTO ... SELECT with windowed streams is not supported yet",
            &at,
        ));
    }
    let (mut op, schema) = plan_operator(
        SourceKind::Stream,
        &at,
        select,
        &source,
        joined.as_ref(),
        cfg,
    )?;
    apply_collect_limits(&mut op, cfg);
    let names = |s: &Schema| {
        s.columns
            .iter()
            .map(|c| format!("`{}` {}", c.name, c.data_type))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let same = schema.len() == target.schema.len()
        && schema
            .columns
            .iter()
            .zip(&target.schema.columns)
            .all(|(a, b)| {
                a.name == b.name && a.data_type == b.data_type && a.role.is_key() == b.role.is_key()
            });
    if !same {
        return Err(PlanError::at_name(
            format!(
                "Incompatible schema between results and sink.\nResult schema is {}\nSink schema is {}",
                names(&schema),
                names(&target.schema)
            ),
            &at,
        ));
    }
    Ok(QueryPlan {
        id: ids.query_id,
        num: ids.query_num,
        source,
        sink: target.clone(),
        op,
        join: joined.map(|j| j.plan),
    })
}

fn plan_operator(
    kind: SourceKind,
    name: &Name,
    select: &Select,
    source: &SourceDef,
    join: Option<&crate::join::PlannedJoin>,
    cfg: &crate::SessionConfig,
) -> Result<(Operator, Schema)> {
    check_reserved_names(select)?;
    let scope = match join {
        Some(j) => j.scope.clone(),
        None => Scope::of_source(source, select.alias.as_ref().map(|a| a.value.as_str())),
    };
    no_window_bounds_in_where(select, select.window.is_some())?;
    let filter = select
        .selection
        .as_ref()
        .map(|w| bind_predicate(&scope, w))
        .transpose()?;
    let key_role = if kind == SourceKind::Table {
        ColumnRole::PrimaryKey
    } else {
        ColumnRole::Key
    };
    if select.emit_final && select.window.is_none() {
        return Err(PlanError::at_name(
            "EMIT FINAL is only supported for windowed aggregations.",
            name,
        ));
    }
    if !select.group_by.is_empty() {
        if kind == SourceKind::Stream {
            return Err(PlanError::at_name(
                "Invalid result type. Your SELECT query produces a TABLE. Please use CREATE TABLE AS SELECT statement instead.",
                name,
            ));
        }
        let window = window_plan(select, source)?;
        return plan_aggregate(select, source, &scope, filter, window, name);
    }
    // Aggregates without GROUP BY: ksqlDB names what is wrong.
    let aggregated: Vec<&sqlparser::ast::Function> = select
        .items
        .iter()
        .filter_map(|i| match i {
            SelectItem::Expr { expr, .. } => crate::bind::find_aggregate(expr),
            _ => None,
        })
        .collect();
    if !aggregated.is_empty() {
        let plain: Vec<String> = select
            .items
            .iter()
            .filter_map(|i| match i {
                SelectItem::Expr { expr, .. } if crate::bind::find_aggregate(expr).is_none() => {
                    Some(crate::bind::ksql_text(expr))
                }
                _ => None,
            })
            .collect();
        if !plain.is_empty() {
            return Err(PlanError::at_name(
                format!(
                    "Non-aggregate SELECT expression(s) not part of GROUP BY: {}\nEither add the column(s) to the GROUP BY or remove them from the SELECT.",
                    plain.join(", ")
                ),
                name,
            ));
        }
        let calls: Vec<String> = aggregated
            .iter()
            .map(|f| crate::bind::aggregate_text(f))
            .collect();
        return Err(PlanError::at_name(
            format!(
                "CREATE {kind} AS SELECT statement does not support aggregate function [{}] without a GROUP BY clause.",
                calls.join(", ")
            ),
            name,
        ));
    }
    if select.window.is_some() {
        return Err(PlanError::at_name(
            "WINDOW clause requires a GROUP BY clause.",
            name,
        ));
    }
    if kind == SourceKind::Table && source.kind == SourceKind::Stream {
        return Err(PlanError::at_name(
            "Invalid result type. Your SELECT query produces a STREAM. Please use CREATE STREAM AS SELECT statement instead.",
            name,
        ));
    }
    if kind == SourceKind::Stream && source.kind == SourceKind::Table {
        return Err(PlanError::at_name(
            "Invalid result type. Your SELECT query produces a TABLE. Please use CREATE TABLE AS SELECT statement instead.",
            name,
        ));
    }
    if select.having.is_some() {
        return Err(PlanError::at_name(
            "HAVING requires a GROUP BY clause",
            name,
        ));
    }
    if !select.partition_by.is_empty() {
        if source.kind == SourceKind::Table {
            return err_at(
                &select.partition_by[0],
                "PARTITION BY is not supported on tables: a table's key is its primary key. Use GROUP BY to re-key a table.",
            );
        }
        return plan_partition_by(select, source, &scope, filter, name);
    }
    let items = project(select, source, &scope)?;
    if source.kind == SourceKind::Table && items.iter().any(|i| i.table_fn.is_some()) {
        return Err(PlanError::at_name(
            "Table source is not supported with table functions",
            name,
        ));
    }
    if let Some(j) = join {
        return join_projection(name, &items, j, key_role, filter);
    }
    // Each source key column must be projected exactly once; it stays the sink's key.
    let mut keys: Vec<&Item> = Vec::new();
    let mut missing = Vec::new();
    for k in source.schema.keys() {
        let refs: Vec<&Item> = items
            .iter()
            .filter(|i| i.source_column.as_deref() == Some(k.name.as_str()))
            .collect();
        match refs.len() {
            0 => missing.push(k.name.clone()),
            1 => keys.push(refs[0]),
            _ => {
                let aliases: Vec<&str> = refs.iter().map(|i| i.name.as_str()).collect();
                return Err(PlanError::at_name(
                    format!(
                        "The projection contains a key column (`{}`) more than once, aliased as: {}.",
                        k.name,
                        aliases.join(" and ")
                    ),
                    name,
                ));
            }
        }
    }
    // ksqlDB's newer planner lets a stream drop key columns (the result keeps those it
    // projects, in projection order, or has no key); a table's rows need their key.
    let keys_free = cfg.new_query_planner && source.kind == SourceKind::Stream;
    if keys_free {
        keys.sort_by_key(|k| {
            items
                .iter()
                .position(|i| std::ptr::eq(i, *k))
                .unwrap_or(usize::MAX)
        });
    }
    if !missing.is_empty() && !keys_free {
        // ksqlDB names every key column, not only the missing ones.
        let missing: Vec<String> = source
            .schema
            .keys()
            .iter()
            .map(|k| k.name.clone())
            .collect();
        let (noun, list) = if missing.len() == 1 {
            ("column", missing[0].clone())
        } else {
            (
                "columns",
                format!(
                    "{} and {}",
                    missing[..missing.len() - 1].join(", "),
                    missing[missing.len() - 1]
                ),
            )
        };
        return Err(PlanError::at_name(
            format!(
                "The query used to build `{}` must include the key {noun} {list} in its projection (eg, SELECT {}...).",
                name.value,
                missing.join(", ")
            ),
            name,
        ));
    }
    let mut columns = Vec::new();
    let mut projection = Vec::new();
    for k in &keys {
        columns.push(Column {
            name: k.name.clone(),
            data_type: concrete(k.expr.as_ref(), &k.name, k.bound.ty.clone())?,
            role: key_role,
        });
        projection.push(k.bound.expr.clone());
    }
    let values = items
        .iter()
        .filter(|i| !keys.iter().any(|k| std::ptr::eq(*k, *i)));
    select_operator(name, columns, projection, values, filter)
}

/// The Select operator and the sink's schema: the key `columns` computed by `projection`,
/// then every item of `values` as a value column (table functions expanding theirs).
fn select_operator<'i>(
    name: &Name,
    mut columns: Vec<Column>,
    mut projection: Vec<Expr>,
    values: impl Iterator<Item = &'i Item>,
    filter: Option<Expr>,
) -> Result<(Operator, Schema)> {
    let mut table_functions = Vec::new();
    for i in values {
        if let Some(tf) = i.table_fn {
            table_functions.push((projection.len(), tf));
        }
        columns.push(Column {
            name: i.name.clone(),
            data_type: concrete(i.expr.as_ref(), &i.name, i.bound.ty.clone())?,
            role: ColumnRole::Value,
        });
        projection.push(i.bound.expr.clone());
    }
    let schema = Schema { columns };
    if schema.values().is_empty() {
        return Err(PlanError::at_name(
            format!(
                "The projection contains no value columns. (building `{}`)",
                name.value
            ),
            name,
        ));
    }
    Ok((
        Operator::Select {
            filter,
            projection,
            table_functions,
        },
        schema,
    ))
}

/// A join's projection: the first item reading the join key (either side's key column,
/// or the synthetic key) is the result's key, computed as the join key itself (a RIGHT or
/// FULL join's row may lack the side that item reads); every other item is a value.
fn join_projection(
    name: &Name,
    items: &[Item],
    j: &crate::join::PlannedJoin,
    key_role: ColumnRole,
    filter: Option<Expr>,
) -> Result<(Operator, Schema)> {
    // A foreign-key join's key is the left table's key, every column of it projected.
    if j.plan.foreign_key {
        return foreign_key_projection(name, items, j, key_role, filter);
    }
    // The left side's join column when projected, else the right's (ksqlDB's
    // buildJoinKey), as the first item reading it.
    let key = j.key_columns.iter().find_map(|&k| {
        items
            .iter()
            .find(|i| matches!(i.bound.expr, Expr::Column(c) if c == k))
            .map(|i| (i, k))
    });
    let Some((key, key_column)) = key else {
        let exprs = match j.key_texts.len() {
            1 => format!("join expression {}", j.key_texts[0]),
            _ => format!("join expressions {}", j.key_texts.join(" or ")),
        };
        let mut message = format!(
            "Key missing from projection (ie, SELECT). {}\nThe query used to build `{}` must include the {exprs} in its projection (eg, SELECT {}...).",
            if j.synthetic.is_some() {
                "See https://cnfl.io/2LV7ouS."
            } else {
                ""
            },
            name.value,
            j.key_texts[0],
        );
        if let Some(k) = &j.synthetic {
            message.push_str(&format!(
                "\n{k} was added as a synthetic key column because the join criteria did not match any source column. This expression must be included in the projection and may be aliased. "
            ));
        }
        return Err(PlanError::at_name(message, name));
    };
    let same = |i: &Item| matches!(i.bound.expr, Expr::Column(c) if c == key_column);
    let mut aliases: Vec<&str> = items
        .iter()
        .filter(|i| same(i))
        .map(|i| i.name.as_str())
        .collect();
    aliases.sort_unstable();
    if aliases.len() > 1 {
        // Named as the joined row names it; a synthetic key column is named by the item.
        let column = &j.source.schema.columns[key_column].name;
        let column = if column.is_empty() { &key.name } else { column };
        return Err(PlanError::at_name(
            format!(
                "The projection contains a key column (`{column}`) more than once, aliased as: {}.",
                aliases.join(" and ")
            ),
            name,
        ));
    }
    let columns = vec![Column {
        name: key.name.clone(),
        data_type: j.source.schema.columns[0].data_type.clone(),
        role: key_role,
    }];
    let values = items.iter().filter(|i| !std::ptr::eq(*i, key));
    select_operator(name, columns, vec![Expr::Column(0)], values, filter)
}

/// A foreign-key join's projection: the left table's key columns, every one projected
/// once, are the result's key, in the left table's order.
fn foreign_key_projection(
    name: &Name,
    items: &[Item],
    j: &crate::join::PlannedJoin,
    key_role: ColumnRole,
    filter: Option<Expr>,
) -> Result<(Operator, Schema)> {
    let Some(left_def) = j.plan.left_source() else {
        return Err(PlanError::at_name(
            "A foreign-key join's left side must be a table",
            name,
        ));
    };
    let left = &left_def.name;
    let reading = |k: usize| -> Vec<&Item> {
        items
            .iter()
            .filter(|i| matches!(i.bound.expr, Expr::Column(c) if c == k))
            .collect()
    };
    let missing: Vec<String> = j
        .key_columns
        .iter()
        .zip(left_def.schema.keys().iter())
        .filter(|(k, _)| reading(**k).is_empty())
        .map(|(_, c)| format!("`{}`", c.name))
        .collect();
    if !missing.is_empty() {
        let noun = if missing.len() == 1 {
            "column"
        } else {
            "columns"
        };
        return Err(PlanError::at_name(
            format!(
                "Primary key {noun} missing in projection. For foreign-key table-table joins, the projection must include all primary key columns from the left input table (`{left}`). Missing {noun}: {}.",
                missing.join(", ")
            ),
            name,
        ));
    }
    let mut keys: Vec<&Item> = Vec::new();
    for (k, text) in j.key_columns.iter().zip(&j.key_texts) {
        let refs = reading(*k);
        if refs.len() > 1 {
            let mut aliases: Vec<&str> = refs.iter().map(|i| i.name.as_str()).collect();
            aliases.sort_unstable();
            return Err(PlanError::at_name(
                format!(
                    "The projection contains a key column (`{text}`) more than once, aliased as: {}.",
                    aliases.join(" and ")
                ),
                name,
            ));
        }
        keys.extend(refs);
    }
    let mut columns = Vec::new();
    let mut projection = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        columns.push(Column {
            name: k.name.clone(),
            data_type: j.source.schema.columns[i].data_type.clone(),
            role: key_role,
        });
        projection.push(Expr::Column(i));
    }
    let values = items
        .iter()
        .filter(|i| !keys.iter().any(|k| std::ptr::eq(*k, *i)));
    select_operator(name, columns, projection, values, filter)
}

/// Pseudo columns cannot become columns of a persistent query's sink.
fn check_reserved_names(select: &Select) -> Result<()> {
    // In a join, `s.ROWTIME` is named `S_ROWTIME`: every source has the column.
    let joined = !select.joins.is_empty();
    const RESERVED: &[&str] = &[
        "ROWTIME",
        "ROWPARTITION",
        "ROWOFFSET",
        "WINDOWSTART",
        "WINDOWEND",
    ];
    for item in &select.items {
        let SelectItem::Expr { expr, alias } = item else {
            continue;
        };
        // `x.ROWTIME AS ROWTIME` names the column by its own name: ksqlDB reports it as
        // the column, not as an alias.
        let same_name = alias
            .as_ref()
            .is_some_and(|a| column_ref(expr).as_deref() == Some(a.value.as_str()));
        let alias = alias.as_ref().filter(|_| !same_name);
        match alias {
            Some(a) if RESERVED.contains(&a.value.as_str()) => {
                return Err(PlanError::at_name(
                    format!(
                        "`{}` is a reserved column name. You cannot use it as an alias for a column.",
                        a.value
                    ),
                    a,
                ));
            }
            Some(_) => {}
            None if joined && !same_name && matches!(expr, SqlExpr::CompoundIdentifier(_)) => {}
            None => {
                if let Some(c) = column_ref(expr).filter(|c| RESERVED.contains(&c.as_str())) {
                    return err_at(
                        expr,
                        format!(
                            "Reserved column name in select: `{c}`. Please remove or alias the column."
                        ),
                    );
                }
            }
        }
    }
    Ok(())
}

fn is_null_literal(e: &SqlExpr) -> bool {
    matches!(e, SqlExpr::Value(v) if matches!(v.value, sqlparser::ast::Value::Null))
}

fn derived_name(i: usize) -> String {
    format!("KSQL_COL_{i}")
}

/// The key column name a PARTITION BY expression gets when not aliased in the projection.
fn partition_key_name(e: &SqlExpr, i: usize) -> String {
    match e {
        SqlExpr::BinaryOp {
            op: BinaryOperator::Arrow,
            right,
            ..
        } => match right.as_ref() {
            SqlExpr::Identifier(id) => ident_name(id),
            _ => derived_name(i),
        },
        other => column_ref(other).unwrap_or_else(|| derived_name(i)),
    }
}

/// Whether a projection may produce a column of this name (an alias, a projected column or,
/// with `*` or `col->*`, possibly any).
fn projects_column(select: &Select, source: &SourceDef, name: &str) -> bool {
    select.items.iter().any(|item| match item {
        SelectItem::Wildcard | SelectItem::QualifiedWildcard(_) => {
            source.schema.columns.iter().any(|c| c.name == name)
        }
        SelectItem::StructAll { .. } => true,
        SelectItem::Expr { alias: Some(a), .. } => a.value == name,
        SelectItem::Expr { expr, alias: None } => match column_ref(expr) {
            Some(c) => c == name,
            // A generated name (KSQL_COL_n) or a struct field's name.
            None => true,
        },
    })
}

/// Whether two GROUP BY expressions are the same: one column, written with or without a
/// qualifier, or the same text.
pub(crate) fn same_column_or_text(a: &SqlExpr, b: &SqlExpr, qualifiers: &[String]) -> bool {
    let column = |e: &SqlExpr| match e {
        SqlExpr::Identifier(i) => Some(ident_name(i)),
        SqlExpr::CompoundIdentifier(parts) if parts.len() == 2 => {
            let q = ident_name(&parts[0]);
            qualifiers.contains(&q).then(|| ident_name(&parts[1]))
        }
        _ => None,
    };
    match (column(a), column(b)) {
        (Some(x), Some(y)) => x == y,
        _ => crate::bind::ksql_text(a) == crate::bind::ksql_text(b),
    }
}

/// Whether two expressions are the same in `scope`: column references that name the same
/// column (in a joined row, of the same source: `l.k` and `r.k` are not), else the same
/// text.
fn same_expr(scope: &Scope, a: &SqlExpr, b: &SqlExpr) -> bool {
    let resolved = |e: &SqlExpr| {
        let name = column_ref(e)?;
        let mut inner = e;
        while let SqlExpr::Nested(x) = inner {
            inner = x;
        }
        let qualifier = match inner {
            SqlExpr::CompoundIdentifier(p) if p.len() == 2 => Some(ident_name(&p[0])),
            _ => None,
        };
        scope.resolve(qualifier.as_deref(), &name)
    };
    match (resolved(a), resolved(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a.to_string().eq_ignore_ascii_case(&b.to_string()),
    }
}

/// CREATE STREAM ... AS SELECT ... PARTITION BY: re-keys a stream by expressions; the
/// records then land in the partitions their new keys hash to.
fn plan_partition_by(
    select: &Select,
    source: &SourceDef,
    scope: &Scope,
    filter: Option<Expr>,
    name: &Name,
) -> Result<(Operator, Schema)> {
    let keyless = select.partition_by.len() == 1 && is_null_literal(&select.partition_by[0]);
    if select.partition_by.len() > 1 && select.partition_by.iter().any(is_null_literal) {
        return err_at(
            &select.partition_by[0],
            "Cannot PARTITION BY multiple columns including NULL",
        );
    }
    // PARTITION BY applies to the input row, before the projection.
    for p in &select.partition_by {
        Binder::plain(scope)
            .in_clause("PARTITION BY")
            .bind(p)
            .map_err(|mut e| {
                if let Some(col) = column_ref(p)
                    && e.message.ends_with("cannot be resolved.")
                    && select.items.iter().any(|i| {
                        matches!(i, SelectItem::Expr { alias: Some(a), .. } if a.value == col)
                    })
                {
                    e.message.push_str(&format!(
                        " '{col}' must be a column in the source schema since PARTITION BY is applied on the input."
                    ));
                }
                e
            })?;
    }
    let mut key_cols: Vec<(String, Bound)> = Vec::new();
    let mut value_cols: Vec<(String, Bound, Option<SqlExpr>)> = Vec::new();
    let star = select
        .items
        .iter()
        .any(|i| matches!(i, SelectItem::Wildcard | SelectItem::QualifiedWildcard(_)));
    if star {
        if !keyless {
            for (i, p) in select.partition_by.iter().enumerate() {
                key_cols.push((
                    partition_key_name(p, i),
                    Binder::plain(scope).in_clause("PARTITION BY").bind(p)?,
                ));
            }
        }
        let used: Vec<String> = if keyless {
            Vec::new()
        } else {
            select.partition_by.iter().filter_map(column_ref).collect()
        };
        let ordered = source.schema.values().iter().chain(source.schema.keys());
        for c in ordered {
            // A joined row's own key column has no name: it is the join key, which a
            // source column of the row holds too.
            if used.contains(&c.name) || c.name.is_empty() {
                continue;
            }
            let idx = scope.index_of(&c.name).unwrap_or(0);
            value_cols.push((
                c.name.clone(),
                Bound {
                    expr: Expr::Column(idx),
                    ty: Some(c.data_type.clone()),
                },
                None,
            ));
        }
        let mut namer = Namer::for_scope(source, scope);
        for item in &select.items {
            if let SelectItem::Expr { expr, alias } = item {
                let b = Binder::plain(scope).in_clause("SELECT").bind(expr)?;
                value_cols.push((namer.name(expr, alias.as_ref()), b, Some(expr.clone())));
            }
        }
    } else {
        let items = project(select, source, scope)?;
        no_table_functions(&items, "PARTITION BY queries")?;
        let mut keys: Vec<Option<&Item>> = vec![
            None;
            if keyless {
                0
            } else {
                select.partition_by.len()
            }
        ];
        for item in &items {
            let hit = if keyless {
                None
            } else {
                select
                    .partition_by
                    .iter()
                    .position(|p| item.expr.as_ref().is_some_and(|e| same_expr(scope, e, p)))
            };
            match hit {
                Some(k) => {
                    if let Some(first) = keys[k] {
                        return Err(PlanError::at_name(
                            format!(
                                "The projection contains a key column (`{}`) more than once, aliased as: {} and {}.",
                                partition_key_name(&select.partition_by[k], k),
                                first.name,
                                item.name
                            ),
                            name,
                        ));
                    }
                    keys[k] = Some(item);
                }
                None => value_cols.push((item.name.clone(), item.bound.clone(), item.expr.clone())),
            }
        }
        let mut missing = Vec::new();
        for (k, key) in keys.iter().enumerate() {
            match key {
                Some(item) => key_cols.push((item.name.clone(), item.bound.clone())),
                None => missing.push(k),
            }
        }
        if let Some(&first) = missing.first() {
            // ksqlDB names every partitioning expression, not only the missing ones, with
            // columns qualified by the source.
            let qualifier = scope.qualifiers.last().map(String::as_str);
            let texts: Vec<String> = select
                .partition_by
                .iter()
                .map(|p| crate::bind::ksql_text_qualified(p, qualifier))
                .collect();
            let (noun, list) = match texts.as_slice() {
                [one] => ("expression", one.clone()),
                [init @ .., last] => ("expressions", format!("{} and {last}", init.join(", "))),
                [] => ("expression", String::new()),
            };
            return err_at(
                &select.partition_by[first],
                format!(
                    "The query used to build `{}` must include the partitioning {noun} {list} in its projection (eg, SELECT {}...).",
                    name.value,
                    texts.join(", ")
                ),
            );
        }
    }
    let mut columns = Vec::new();
    let mut projection = Vec::new();
    for (n, b) in key_cols {
        let t = concrete(None, &n, b.ty)?;
        if matches!(t, DataType::Map(..))
            || matches!(&t, DataType::Array(inner) if matches!(inner.as_ref(), DataType::Map(..)))
        {
            return Err(PlanError::at_name(
                format!(
                    "Map keys, including types that contain maps, are not supported as they may lead to unexpected behavior due to inconsistent serialization. Key column name: `{n}`. Column type: {t}. See https://github.com/confluentinc/ksql/issues/6621 for more."
                ),
                name,
            ));
        }
        columns.push(Column {
            name: n,
            data_type: t,
            role: ColumnRole::Key,
        });
        projection.push(b.expr);
    }
    for (n, b, e) in value_cols {
        if columns.iter().any(|c| c.name == n) {
            return Err(PlanError::at_name(
                format!(
                    "Duplicate value columns found in schema: `{n}`{}",
                    typed_suffix(&b.ty)
                ),
                name,
            ));
        }
        columns.push(Column {
            name: n.clone(),
            data_type: concrete(e.as_ref(), &n, b.ty)?,
            role: ColumnRole::Value,
        });
        projection.push(b.expr);
    }
    let schema = Schema { columns };
    if schema.values().is_empty() {
        return Err(PlanError::at_name(
            "The projection contains no value columns.",
            name,
        ));
    }
    Ok((
        Operator::Select {
            filter,
            projection,
            table_functions: Vec::new(),
        },
        schema,
    ))
}

pub(crate) fn bind_predicate(scope: &Scope, w: &SqlExpr) -> Result<Expr> {
    bind_predicate_shown(scope, w, w)
}

/// An error binding a HAVING clause, worded as ksqlDB words it.
pub(crate) fn having_error(mut e: PlanError) -> PlanError {
    if let Some(rest) = e
        .message
        .strip_prefix("Non-aggregate SELECT expression(s) not part of GROUP BY: ")
    {
        e.message = format!("Non-aggregate HAVING expression not part of GROUP BY: {rest}");
    } else if e.message.starts_with("Cannot compare")
        || e.message.starts_with("Error processing expression")
    {
        e.message = format!("Error in HAVING expression: {}", e.message);
    }
    e
}

/// Binds `w` as a WHERE clause. Type errors read as ksqlDB's: "Error in WHERE expression:
/// ..." followed by the clause as ksqlDB prints it (`shown`, which is the clause as
/// written when `w` is a rewritten form of it).
pub(crate) fn bind_predicate_shown(scope: &Scope, w: &SqlExpr, shown: &SqlExpr) -> Result<Expr> {
    let b = Binder::plain(scope)
        .in_clause("WHERE")
        .bind(w)
        .map_err(|mut e| {
            if e.message.starts_with("Cannot compare")
                || e.message.starts_with("Error processing expression")
                || e.message.starts_with("Comparison with NULL")
            {
                e.message = format!(
                    "Error in WHERE expression: {}\nStatement: {}",
                    e.message,
                    crate::bind::ksql_text(shown)
                );
            }
            e
        })?;
    match b.ty {
        None | Some(DataType::Boolean) => Ok(b.expr),
        Some(t) => err_at(
            w,
            format!(
                "Type error in WHERE expression: Should evaluate to boolean but is {} ({t}) instead.",
                crate::bind::ksql_text(shown)
            ),
        ),
    }
}

/// Whether ksqlDB keeps an aggregate's intermediate state as a STRUCT, ARRAY or MAP.
pub(crate) fn has_structured_state(kind: AggKind) -> bool {
    use AggKind as K;
    matches!(
        kind,
        K::Avg
            | K::StddevSamp
            | K::VarianceSamp
            | K::Correlation
            | K::TopK
            | K::TopKDistinct
            | K::CollectList
            | K::CollectSet
            | K::Histogram
            | K::CountDistinct
            | K::LatestByOffset
            | K::EarliestByOffset
    )
}

/// A windowed aggregation's WHERE clause filters the records before they are windowed,
/// so it cannot read the window's bounds; ksqlDB's error says so.
pub(crate) fn no_window_bounds_in_where(select: &Select, windowed: bool) -> Result<()> {
    if let (true, Some(w)) = (windowed, &select.selection)
        && let Some(bound) = crate::bind::window_bound_in(w)
    {
        return err_at(
            w,
            format!("Error in WHERE expression: Unknown column {bound}."),
        );
    }
    Ok(())
}

/// The windows of `select`'s WINDOW clause, with Kafka Streams' defaults and checks.
pub(crate) fn window_plan(select: &Select, source: &SourceDef) -> Result<Option<WindowPlan>> {
    let Some(w) = &select.window else {
        return Ok(None);
    };
    let err = |message: String| Err(PlanError::new(message, w.line, w.column));
    if source.kind == SourceKind::Table {
        return err(format!(
            "WINDOW clauses can only aggregate streams: {} is a table.",
            source.name
        ));
    }
    let (kind, size_ms, advance_ms) = match w.kind {
        WindowClauseKind::Tumbling { size_ms } => (WindowKind::Tumbling, size_ms, size_ms),
        WindowClauseKind::Hopping {
            size_ms,
            advance_ms,
        } => (WindowKind::Hopping, size_ms, advance_ms),
        WindowClauseKind::Session { gap_ms } => (WindowKind::Session, gap_ms, gap_ms),
    };
    if size_ms <= 0 {
        return err("Window size must be larger than zero.".into());
    }
    if advance_ms <= 0 || advance_ms > size_ms {
        return err(format!(
            "Window advance interval should be more than zero and less than or equal to window duration (size {size_ms} ms, advance {advance_ms} ms)."
        ));
    }
    // Without a GRACE PERIOD, updates keep coming for 24 hours after a window ends, but
    // EMIT FINAL emits at the window's end: its results are not held back a day.
    let grace_ms = match (w.grace_ms, select.emit_final) {
        (Some(g), _) => g,
        (None, true) => 0,
        (None, false) => sluice_plan::DEFAULT_GRACE_MS,
    };
    let retention_ms = match w.retention_ms {
        Some(r) if r < size_ms.saturating_add(grace_ms) => {
            return err(format!(
                "The retention period of a window must be no smaller than its window size plus the grace period. Got size=[{size_ms}], grace=[{grace_ms}], retention=[{r}]"
            ));
        }
        Some(r) => r,
        None => size_ms.saturating_add(grace_ms),
    };
    Ok(Some(WindowPlan {
        kind,
        size_ms,
        advance_ms,
        grace_ms,
        retention_ms,
        emit_final: select.emit_final,
    }))
}

fn plan_aggregate(
    select: &Select,
    source: &SourceDef,
    scope: &Scope,
    filter: Option<Expr>,
    window: Option<WindowPlan>,
    name: &Name,
) -> Result<(Operator, Schema)> {
    if source.value_format.kind == FormatKind::Kafka {
        return Err(PlanError::at_name(
            format!(
                "Source(s) {} are using the 'KAFKA' value format. This format does not yet support GROUP BY.",
                source.name
            ),
            name,
        ));
    }
    let mut group_by = Vec::with_capacity(select.group_by.len());
    let mut group_types = Vec::with_capacity(select.group_by.len());
    for item in &select.items {
        if let SelectItem::Expr {
            expr: SqlExpr::Function(f),
            ..
        } = item
            && matches!(
                f.name.to_string().to_ascii_uppercase().as_str(),
                "EXPLODE" | "CUBE_EXPLODE"
            )
        {
            return Err(PlanError::at_name(
                "Table functions cannot be used with aggregations.",
                name,
            ));
        }
    }
    for (i, g) in select.group_by.iter().enumerate() {
        if let Some(f) = crate::bind::find_aggregate(g) {
            let fname = f.name.to_string().to_ascii_uppercase();
            return err_at(
                g,
                format!(
                    "GROUP BY does not support aggregate functions: {fname} is an aggregate function."
                ),
            );
        }
        let text = crate::bind::ksql_text(g);
        if select.group_by[..i]
            .iter()
            .any(|p| same_column_or_text(p, g, &scope.qualifiers))
        {
            return err_at(g, format!("Duplicate GROUP BY expression: {text}"));
        }
        let b = Binder::plain(scope).in_clause("GROUP BY").bind(g)?;
        group_types.push(concrete(Some(g), &g.to_string(), b.ty)?);
        group_by.push(b.expr);
    }
    let mut aggregates = Vec::new();
    let mut keys: Vec<Option<(String, usize)>> = vec![None; group_by.len()];
    let mut values: Vec<(String, Bound, SqlExpr)> = Vec::new();
    let mut not_grouped: Vec<String> = Vec::new();
    let mut missing_keys: Vec<String> = Vec::new();
    let mut namer = Namer::for_scope(source, scope);
    // `*` stands for every source column, each then a grouping key or an error.
    let mut items: Vec<SelectItem> = Vec::with_capacity(select.items.len());
    for item in &select.items {
        match item {
            SelectItem::Wildcard | SelectItem::QualifiedWildcard(_) => {
                items.extend(source.schema.columns.iter().map(|c| SelectItem::Expr {
                    expr: SqlExpr::Identifier(sqlparser::ast::Ident::with_quote('`', &c.name)),
                    alias: None,
                }))
            }
            other => items.push(other.clone()),
        }
    }
    for item in &items {
        let SelectItem::Expr { expr, alias } = item else {
            return Err(PlanError::at_name(
                "Only columns and expressions may be selected with GROUP BY",
                name,
            ));
        };
        let item_name = namer.name(expr, alias.as_ref());
        let text = crate::bind::ksql_text(expr);
        if let Some(g) = select
            .group_by
            .iter()
            .position(|g| crate::bind::ksql_text(g) == text)
        {
            if let Some((first, _)) = &keys[g] {
                return Err(PlanError::at_name(
                    format!(
                        "The projection contains a key column more than once: `{first}` and `{item_name}`."
                    ),
                    name,
                ));
            }
            keys[g] = Some((item_name, g));
            continue;
        }
        let mut binder = Binder::new(
            scope,
            AggMode::Collect {
                group_by: &select.group_by,
                source: scope,
                aggs: &mut aggregates,
                window: window.is_some(),
            },
        )
        .in_clause("SELECT");
        match binder.bind(expr) {
            Ok(bound) => values.push((item_name, bound, expr.clone())),
            // Collected, so the error lists every offending expression as ksqlDB does.
            Err(e) if e.message.starts_with("Non-aggregate") => {
                not_grouped.push(crate::bind::ksql_text(expr))
            }
            Err(e) => return Err(e),
        }
    }
    if !not_grouped.is_empty()
        && !select.items.iter().any(|i| {
            matches!(i, SelectItem::Expr { expr, .. } if crate::bind::find_aggregate(expr).is_some())
        })
        && select
            .having
            .as_ref()
            .is_none_or(|h| crate::bind::find_aggregate(h).is_none())
    {
        return Err(PlanError::at_name(
            "GROUP BY requires aggregate functions in either the SELECT or HAVING clause.",
            name,
        ));
    }
    if !not_grouped.is_empty() {
        return Err(PlanError::at_name(
            format!(
                "Non-aggregate SELECT expression(s) not part of GROUP BY: {}\nEither add the column(s) to the GROUP BY or remove them from the SELECT.",
                not_grouped.join(", ")
            ),
            name,
        ));
    }
    let having = match &select.having {
        Some(h) => {
            let mut binder = Binder::new(
                scope,
                AggMode::Collect {
                    group_by: &select.group_by,
                    source: scope,
                    aggs: &mut aggregates,
                    window: window.is_some(),
                },
            )
            .in_clause("HAVING");
            let b = binder.bind(h).map_err(crate::query::having_error)?;
            if !b.ty.as_ref().is_none_or(|t| *t == DataType::Boolean) {
                return err_at(h, format!("HAVING expression {h} must be BOOLEAN"));
            }
            Some(b.expr)
        }
        None => None,
    };
    let mut columns = Vec::new();
    let mut projection = Vec::new();
    for (g, key) in keys.iter().enumerate() {
        match key {
            Some((n, _)) => {
                columns.push(Column {
                    name: n.clone(),
                    data_type: group_types[g].clone(),
                    role: ColumnRole::PrimaryKey,
                });
                projection.push(Expr::Column(g));
            }
            None => missing_keys.push(crate::bind::ksql_text(&select.group_by[g])),
        }
    }
    if !missing_keys.is_empty() {
        let (noun, list) = match missing_keys.as_slice() {
            [one] => ("expression", one.clone()),
            [init @ .., last] => ("expressions", format!("{} and {last}", init.join(", "))),
            [] => ("expression", String::new()),
        };
        return Err(PlanError::at_name(
            format!(
                "Key missing from projection (ie, SELECT). See https://cnfl.io/2LV7ouS.\nThe query used to build `{}` must include the grouping {noun} {list} in its projection (eg, SELECT {}...).",
                name.value,
                missing_keys.join(", ")
            ),
            name,
        ));
    }
    if aggregates.is_empty() {
        return Err(PlanError::at_name(
            "GROUP BY requires aggregate functions in either the SELECT or HAVING clause.",
            name,
        ));
    }
    // ksqlDB keeps aggregation state in the source's value format; DELIMITED cannot hold
    // the struct, array or map states of these functions.
    if source.value_format.kind == FormatKind::Delimited
        && aggregates.iter().any(|a| has_structured_state(a.kind))
    {
        return Err(PlanError::at_name(
            "One of the functions used in the statement has an intermediate type that the value format can not handle. Please remove the function or change the format.",
            name,
        ));
    }
    for (n, b, e) in values {
        if columns.iter().any(|c| c.name == n) {
            return err_at(
                &e,
                format!(
                    "Duplicate value columns found in schema: `{n}`{}",
                    typed_suffix(&b.ty)
                ),
            );
        }
        columns.push(Column {
            name: n.clone(),
            data_type: concrete(Some(&e), &n, b.ty)?,
            role: ColumnRole::Value,
        });
        projection.push(b.expr);
    }
    let schema = Schema { columns };
    if schema.values().is_empty() {
        return Err(PlanError::at_name(
            format!(
                "The projection contains no value columns. (building `{}`)",
                name.value
            ),
            name,
        ));
    }
    if window.is_some_and(|w| w.kind == WindowKind::Session) {
        for a in aggregates.iter_mut() {
            a.sequenced = a.kind == AggKind::LatestByOffset;
        }
    }
    if window.is_some_and(|w| w.kind == WindowKind::Session)
        && let Some(a) = aggregates.iter().find(|a| !a.supports_merge())
    {
        return Err(PlanError::at_name(
            format!(
                "The aggregation function {} cannot be used with SESSION windows yet: merging two sessions' {} states is not supported.",
                a.kind.name(),
                a.kind.name()
            ),
            name,
        ));
    }
    if source.kind == SourceKind::Table {
        let mut stuck: Vec<&str> = Vec::new();
        for a in aggregates.iter().filter(|a| !a.supports_retract()) {
            if !stuck.contains(&a.kind.name()) {
                stuck.push(a.kind.name());
            }
        }
        if let [init @ .., last] = stuck.as_slice() {
            let (noun, list) = if init.is_empty() {
                ("function", last.to_string())
            } else {
                ("functions", format!("{} and {last}", init.join(", ")))
            };
            return Err(PlanError::at_name(
                format!(
                    "The aggregation {noun} {list} cannot be applied to a table source, only to a stream source."
                ),
                name,
            ));
        }
    }
    Ok((
        Operator::Aggregate {
            filter,
            group_by,
            aggregates,
            having,
            projection,
            window,
        },
        schema,
    ))
}

/// The session's COLLECT_LIST/COLLECT_SET limits bound how many values those aggregates keep.
fn apply_collect_limits(op: &mut Operator, cfg: &crate::SessionConfig) {
    if let Operator::Aggregate { aggregates, .. } = op {
        for a in aggregates.iter_mut() {
            let limit = match a.kind {
                AggKind::CollectList => cfg.collect_list_limit,
                AggKind::CollectSet => cfg.collect_set_limit,
                _ => None,
            };
            if limit.is_some() {
                a.n = limit;
            }
        }
    }
}

/// Inserts a windowed source's WINDOWSTART and WINDOWEND after its key columns where
/// `select` has a `*`: ksqlDB's `*` over a windowed source shows the window.
pub(crate) fn star_window_bounds(
    select: &Select,
    source: &SourceDef,
    scope: &Scope,
    items: &mut Vec<Item>,
) {
    if source.window.is_none()
        || !select
            .items
            .iter()
            .any(|i| matches!(i, SelectItem::Wildcard | SelectItem::QualifiedWildcard(_)))
    {
        return;
    }
    let keys = source.schema.key_count();
    let at = items
        .iter()
        .position(|i| {
            i.expr.is_none()
                && i.source_column.as_deref()
                    == source.schema.keys().last().map(|c| c.name.as_str())
        })
        .map_or(keys.min(items.len()), |p| p + 1);
    for (n, bound) in [sluice_common::WINDOWSTART, sluice_common::WINDOWEND]
        .into_iter()
        .enumerate()
    {
        let idx = scope.index_of(bound).unwrap_or(0);
        items.insert(
            at + n,
            Item {
                name: bound.to_string(),
                bound: Bound {
                    expr: Expr::Column(idx),
                    ty: Some(DataType::BigInt),
                },
                source_column: Some(bound.to_string()),
                expr: None,
                table_fn: None,
            },
        );
    }
}

pub(crate) fn output_columns(items: &[Item], source: &SourceDef) -> Result<Vec<OutputColumn>> {
    items
        .iter()
        .map(|i| {
            let role = match &i.source_column {
                Some(c) => source
                    .schema
                    .column(c)
                    .map_or(ColumnRole::Value, |col| col.role),
                None => ColumnRole::Value,
            };
            let header = i.source_column.as_ref().and_then(|c| {
                source
                    .headers
                    .iter()
                    .find(|(h, _)| h == c)
                    .map(|(_, k)| match k {
                        Some(k) => sluice_sql::HeaderSpec::Key(k.clone()),
                        None => sluice_sql::HeaderSpec::All,
                    })
            });
            Ok(OutputColumn {
                header,
                name: i.name.clone(),
                data_type: concrete(i.expr.as_ref(), &i.name, i.bound.ty.clone())?,
                role,
            })
        })
        .collect()
}

/// Whether a push query runs as a scalable push query, by ksqlDB's rules
/// (`ScalablePushUtil`): `ksql.query.push.v2.enabled`, reading from the latest offset, no
/// GROUP BY, HAVING, PARTITION BY or aggregation, a source written by exactly one
/// persistent query (`writers`), and no ROWPARTITION or ROWOFFSET. Other push queries run
/// as ordinary ones.
pub fn is_scalable_push(select: &Select, cfg: &crate::QueryConfig, writers: usize) -> bool {
    let items = select.items.iter().filter_map(|i| match i {
        SelectItem::Expr { expr, .. } => Some(expr),
        _ => None,
    });
    let plain = |e: &SqlExpr| {
        crate::pull::disallowed_columns(e).is_empty() && crate::bind::find_aggregate(e).is_none()
    };
    cfg.push_v2_enabled
        && cfg.offset_reset_latest
        && select.emit_changes
        && select.joins.is_empty()
        && select.group_by.is_empty()
        && select.having.is_none()
        && select.partition_by.is_empty()
        && writers == 1
        && items.clone().all(plain)
        && select.selection.as_ref().is_none_or(plain)
}

/// A planned push query.
#[derive(Debug, Clone)]
pub enum PushKind {
    /// Each source record's row, filtered and projected.
    Plain(PushPlan),
    /// A transient aggregation (GROUP BY, or aggregates over the whole source).
    Aggregate(AggregatePushPlan),
}

/// What a push query reads: its FROM source, or for a join the joined row, read as one
/// source (its columns named as in ksqlDB, `I1_K`), with the planned join.
fn push_input(
    select: &Select,
    catalog: &dyn Catalog,
    source: SourceDef,
) -> Result<(SourceDef, Scope, Option<Box<sluice_plan::JoinPlan>>)> {
    if select.joins.is_empty() {
        let scope = Scope::of_source(&source, select.alias.as_ref().map(|a| a.value.as_str()));
        return Ok((source, scope, None));
    }
    check_reserved_names(select)?;
    let joined = crate::join::plan_join(select, catalog)?;
    Ok((joined.source, joined.scope, Some(Box::new(joined.plan))))
}

/// Plans a push query (SELECT ... EMIT CHANGES).
pub fn plan_push(select: &Select, catalog: &dyn Catalog) -> Result<(PushKind, Vec<OutputColumn>)> {
    let source = lookup(catalog, &select.from)?;
    if select.emit_final && select.window.is_none() {
        return Err(PlanError::at_name(
            "EMIT FINAL is only supported for windowed aggregations.",
            &select.from,
        ));
    }
    if let Some(w) = &select.window
        && select.group_by.is_empty()
    {
        return Err(PlanError::new(
            "WINDOW clause requires a GROUP BY clause.",
            w.line,
            w.column,
        ));
    }
    let aggregated = !select.group_by.is_empty()
        || select.having.is_some()
        || select.items.iter().any(|i| {
            matches!(i, SelectItem::Expr { expr, .. } if crate::bind::find_aggregate(expr).is_some())
        });
    if aggregated && select.partition_by.is_empty() {
        let (source, scope, join) = push_input(select, catalog, source)?;
        let (plan, columns) = crate::push_agg::plan_push_aggregate(select, source, scope, join)?;
        return Ok((PushKind::Aggregate(plan), columns));
    }
    if !select.partition_by.is_empty() {
        return err_at(
            &select.partition_by[0],
            "PARTITION BY is not supported in push queries",
        );
    }
    let (source, scope, join) = push_input(select, catalog, source)?;
    let filter = select
        .selection
        .as_ref()
        .map(|w| bind_predicate(&scope, w))
        .transpose()?;
    let mut items = project(select, &source, &scope)?;
    no_table_functions(&items, "push queries")?;
    // A push query's `*` over a windowed source shows the window after the key, as
    // ksqlDB's does.
    star_window_bounds(select, &source, &scope, &mut items);
    let columns = output_columns(&items, &source)?;
    let projection = items.into_iter().map(|i| i.bound.expr).collect();
    Ok((
        PushKind::Plain(PushPlan {
            source,
            filter,
            projection,
            limit: select.limit,
            skip_null_keys: false,
            join,
        }),
        columns,
    ))
}

/// Conjuncts of a WHERE clause.
pub(crate) fn conjuncts<'e>(e: &'e SqlExpr, out: &mut Vec<&'e SqlExpr>) {
    match e {
        SqlExpr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            conjuncts(left, out);
            conjuncts(right, out);
        }
        SqlExpr::Nested(inner) => conjuncts(inner, out),
        other => out.push(other),
    }
}
#[cfg(test)]
mod insert_select_tests {
    use super::*;
    use sluice_common::{Column, ColumnRole, FormatKind, FormatSpec, Schema};
    use std::collections::HashMap;

    struct Cat(HashMap<String, SourceDef>);
    impl Catalog for Cat {
        fn source(&self, name: &str) -> Option<SourceDef> {
            self.0.get(name).cloned()
        }
        fn source_names(&self) -> Vec<String> {
            self.0.keys().cloned().collect()
        }
    }

    fn stream(id: u64, name: &str, columns: &[(&str, ColumnRole)]) -> SourceDef {
        SourceDef {
            id,
            name: name.into(),
            kind: SourceKind::Stream,
            schema: Schema::new(
                columns
                    .iter()
                    .map(|(n, role)| Column {
                        name: n.to_string(),
                        data_type: DataType::Int,
                        role: *role,
                    })
                    .collect(),
            ),
            topic: name.to_lowercase(),
            key_format: FormatSpec::new(FormatKind::Kafka),
            value_format: FormatSpec::new(FormatKind::Json),
            timestamp_column: None,
            timestamp_format: None,
            headers: Vec::new(),
            written_by: None,
            sql: String::new(),
            read_only: false,
            window: None,
        }
    }

    /// The session's settings reach INSERT ... SELECT as they reach CREATE ... AS SELECT:
    /// under ksqlDB's newer planner a stream's projection may leave its key out.
    #[test]
    fn insert_select_is_planned_under_the_sessions_settings() {
        let src = stream(1, "S", &[("K", ColumnRole::Key), ("V", ColumnRole::Value)]);
        let target = stream(2, "T", &[("V", ColumnRole::Value)]);
        let cat = Cat(HashMap::from([
            ("S".to_string(), src),
            ("T".to_string(), target.clone()),
        ]));
        let mut stmts = sluice_sql::parse("INSERT INTO t SELECT v FROM s;").unwrap();
        let sluice_sql::StatementKind::InsertSelect { query, .. } = stmts.remove(0).kind else {
            panic!("not an INSERT ... SELECT");
        };
        let ids = || NewIds {
            sink_id: 2,
            query_num: 3,
            query_id: "INSERTQUERY_3".into(),
        };
        let default = crate::SessionConfig::default();
        assert!(plan_insert_select(ids(), &target, &query, &cat, &default).is_err());
        let newer = crate::SessionConfig {
            new_query_planner: true,
            ..crate::SessionConfig::default()
        };
        let plan = plan_insert_select(ids(), &target, &query, &cat, &newer).unwrap();
        assert_eq!(plan.sink.name, "T");
    }
}

#[cfg(test)]
mod namer_tests {
    use super::*;
    use sluice_common::{Column, ColumnRole, FormatKind, FormatSpec, Schema};

    fn source(columns: &[&str]) -> SourceDef {
        SourceDef {
            id: 1,
            name: "S".into(),
            kind: sluice_common::SourceKind::Stream,
            schema: Schema::new(
                columns
                    .iter()
                    .map(|n| Column {
                        name: n.to_string(),
                        data_type: DataType::Int,
                        role: ColumnRole::Value,
                    })
                    .collect(),
            ),
            topic: "s".into(),
            key_format: FormatSpec::new(FormatKind::Kafka),
            value_format: FormatSpec::new(FormatKind::Json),
            timestamp_column: None,
            timestamp_format: None,
            headers: Vec::new(),
            written_by: None,
            sql: String::new(),
            read_only: false,
            window: None,
        }
    }

    fn expr(sql: &str) -> SqlExpr {
        sluice_sql::parse_expr(sql).unwrap()
    }

    #[test]
    fn generated_names_skip_the_sources_columns() {
        let mut n = Namer::for_source(&source(&["KSQL_COL_1", "KSQL_COL_3", "B", "C_1"]));
        assert_eq!(n.name(&expr("ABS(x)"), None), "KSQL_COL_0");
        assert_eq!(n.name(&expr("ABS(x)"), None), "KSQL_COL_2");
        assert_eq!(n.name(&expr("ABS(x)"), None), "KSQL_COL_4");
        // A field named like a source column gets the next free number.
        assert_eq!(n.name(&expr("a->b"), None), "B_1");
        assert_eq!(n.name(&expr("x->b"), None), "B_2");
        assert_eq!(n.name(&expr("a->c"), None), "C");
        assert_eq!(n.name(&expr("a->c"), None), "C_2");
        assert_eq!(n.name(&expr("a->d"), None), "D");
        assert_eq!(n.name(&expr("b"), None), "B");
    }
}
