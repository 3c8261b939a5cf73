//! Logical schemas: key columns first, then value columns, as ksqlDB orders them.

use crate::types::DataType;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ColumnRole {
    /// A stream's key column (`KEY`).
    Key,
    /// A table's key column (`PRIMARY KEY`).
    PrimaryKey,
    Value,
}

impl ColumnRole {
    pub fn is_key(self) -> bool {
        !matches!(self, ColumnRole::Value)
    }

    pub fn label(self) -> &'static str {
        match self {
            ColumnRole::Key => "KEY",
            ColumnRole::PrimaryKey => "PRIMARY KEY",
            ColumnRole::Value => "",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    pub data_type: DataType,
    pub role: ColumnRole,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Schema {
    /// Key columns first, then value columns.
    pub columns: Vec<Column>,
}

impl Schema {
    /// Builds a schema, moving key columns ahead of value columns (stable within each group).
    pub fn new(columns: Vec<Column>) -> Schema {
        let (mut keys, values): (Vec<Column>, Vec<Column>) =
            columns.into_iter().partition(|c| c.role.is_key());
        keys.extend(values);
        Schema { columns: keys }
    }

    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    pub fn key_count(&self) -> usize {
        self.columns.iter().filter(|c| c.role.is_key()).count()
    }

    pub fn keys(&self) -> &[Column] {
        &self.columns[..self.key_count()]
    }

    pub fn values(&self) -> &[Column] {
        &self.columns[self.key_count()..]
    }

    pub fn len(&self) -> usize {
        self.columns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }
}
