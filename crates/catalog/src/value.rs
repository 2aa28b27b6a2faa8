//! The values a statement binds and a row holds, the same for both engines,
//! so each part writes its SQL and its reads once.

use std::error::Error as StdError;

use postgres::types::{IsNull, Kind, ToSql, Type, to_sql_checked};
use rusqlite::types::{ToSqlOutput, ValueRef};

use crate::error::DbError;

/// A value bound to a statement or read from a row.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// An integer (INTEGER, BIGINT).
    Int(i64),
    /// A float (REAL, DOUBLE PRECISION).
    Real(f64),
    /// Text.
    Text(String),
    /// A flag (BOOLEAN; SQLite keeps it as 0 or 1).
    Bool(bool),
    /// Bytes (BLOB, BYTEA).
    Bytes(Vec<u8>),
}

/// The parameters of a statement: `params![a, b]`, each anything a
/// [`Value`] is made from.
#[macro_export]
macro_rules! params {
    () => { &[] as &[$crate::Value] };
    ($($value:expr),+ $(,)?) => { &[$($crate::Value::from($value)),+] as &[$crate::Value] };
}

macro_rules! value_from {
    ($($t:ty => $variant:ident via $conv:expr),* $(,)?) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Value {
                Value::$variant($conv(v))
            }
        }
    )*};
}

value_from! {
    i64 => Int via |v| v,
    i32 => Int via i64::from,
    u32 => Int via i64::from,
    f64 => Real via |v| v,
    bool => Bool via |v| v,
    String => Text via |v| v,
    &str => Text via str::to_string,
    &String => Text via String::clone,
    Vec<u8> => Bytes via |v| v,
    &[u8] => Bytes via <[u8]>::to_vec,
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Value {
        v.map_or(Value::Null, Into::into)
    }
}

/// What a column's [`Value`] can be read as.
pub trait FromValue: Sized {
    /// Reads `value`, the row's column `column`, or says why it cannot.
    fn from_value(value: Value, column: usize) -> Result<Self, DbError>;
}

fn mismatch<T>(value: &Value, column: usize, wanted: &str) -> Result<T, DbError> {
    Err(DbError::Decode {
        column,
        reason: format!("expected {wanted}, found {value:?}"),
    })
}

impl FromValue for i64 {
    fn from_value(value: Value, column: usize) -> Result<Self, DbError> {
        match value {
            Value::Int(v) => Ok(v),
            other => mismatch(&other, column, "an integer"),
        }
    }
}

macro_rules! narrow_int {
    ($($t:ty),*) => {$(
        impl FromValue for $t {
            fn from_value(value: Value, column: usize) -> Result<Self, DbError> {
                let wide = i64::from_value(value, column)?;
                <$t>::try_from(wide).map_err(|_| DbError::Decode {
                    column,
                    reason: format!("{wide} does not fit in {}", stringify!($t)),
                })
            }
        }
    )*};
}

narrow_int!(i32, u32, u64, usize);

impl FromValue for f64 {
    fn from_value(value: Value, column: usize) -> Result<Self, DbError> {
        match value {
            Value::Real(v) => Ok(v),
            // SQLite gives a REAL column's whole numbers back as they were bound.
            #[allow(clippy::cast_precision_loss)]
            Value::Int(v) => Ok(v as f64),
            other => mismatch(&other, column, "a number"),
        }
    }
}

impl FromValue for bool {
    fn from_value(value: Value, column: usize) -> Result<Self, DbError> {
        match value {
            Value::Bool(v) => Ok(v),
            Value::Int(0) => Ok(false),
            Value::Int(1) => Ok(true),
            other => mismatch(&other, column, "a flag"),
        }
    }
}

impl FromValue for String {
    fn from_value(value: Value, column: usize) -> Result<Self, DbError> {
        match value {
            Value::Text(v) => Ok(v),
            other => mismatch(&other, column, "text"),
        }
    }
}

impl FromValue for Vec<u8> {
    fn from_value(value: Value, column: usize) -> Result<Self, DbError> {
        match value {
            Value::Bytes(v) => Ok(v),
            other => mismatch(&other, column, "bytes"),
        }
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(value: Value, column: usize) -> Result<Self, DbError> {
        match value {
            Value::Null => Ok(None),
            other => T::from_value(other, column).map(Some),
        }
    }
}

/// One row of a query's answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Row(pub(crate) Vec<Value>);

impl Row {
    /// Column `index` (from 0) read as `T`.
    pub fn get<T: FromValue>(&self, index: usize) -> Result<T, DbError> {
        let value = self.0.get(index).cloned().ok_or_else(|| DbError::Decode {
            column: index,
            reason: format!("the row has only {} columns", self.0.len()),
        })?;
        T::from_value(value, index)
    }
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Value::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::Int(v) => ToSqlOutput::Borrowed(ValueRef::Integer(*v)),
            Value::Real(v) => ToSqlOutput::Borrowed(ValueRef::Real(*v)),
            Value::Text(v) => ToSqlOutput::Borrowed(ValueRef::Text(v.as_bytes())),
            Value::Bool(v) => ToSqlOutput::Borrowed(ValueRef::Integer(i64::from(*v))),
            Value::Bytes(v) => ToSqlOutput::Borrowed(ValueRef::Blob(v)),
        })
    }
}

pub(crate) fn from_sqlite(value: ValueRef<'_>) -> Value {
    match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(v) => Value::Int(v),
        ValueRef::Real(v) => Value::Real(v),
        ValueRef::Text(v) => Value::Text(String::from_utf8_lossy(v).into_owned()),
        ValueRef::Blob(v) => Value::Bytes(v.to_vec()),
    }
}

/// Binds to whatever type PostgreSQL inferred for the parameter, so the same
/// `Value::Int` fills an INTEGER or a BIGINT column (checked to fit).
impl ToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(v) if *ty == Type::INT2 => i16::try_from(*v)?.to_sql(ty, out),
            Value::Int(v) if *ty == Type::INT4 => i32::try_from(*v)?.to_sql(ty, out),
            #[allow(clippy::cast_precision_loss)]
            Value::Int(v) if *ty == Type::FLOAT8 => (*v as f64).to_sql(ty, out),
            // SQLite keeps BOOLEANs as 0 and 1: rows it gave, copied here.
            Value::Int(v) if *ty == Type::BOOL => (*v != 0).to_sql(ty, out),
            Value::Int(v) => v.to_sql(ty, out),
            #[allow(clippy::cast_possible_truncation)]
            Value::Real(v) if *ty == Type::FLOAT4 => (*v as f32).to_sql(ty, out),
            Value::Real(v) => v.to_sql(ty, out),
            Value::Bool(v) => v.to_sql(ty, out),
            Value::Text(v) => v.to_sql(ty, out),
            Value::Bytes(v) => v.to_sql(ty, out),
        }
    }

    fn accepts(ty: &Type) -> bool {
        !matches!(ty.kind(), Kind::Array(_) | Kind::Composite(_))
    }

    to_sql_checked!();
}

fn get<'a, T: postgres::types::FromSql<'a>>(
    row: &'a postgres::Row,
    index: usize,
) -> Result<Option<T>, DbError> {
    row.try_get(index).map_err(|e| DbError::Decode {
        column: index,
        reason: e.to_string(),
    })
}

pub(crate) fn from_postgres(row: &postgres::Row, index: usize) -> Result<Value, DbError> {
    let ty = row.columns()[index].type_().clone();
    let value = if ty == Type::INT2 {
        get::<i16>(row, index)?.map(|v| Value::Int(v.into()))
    } else if ty == Type::INT4 {
        get::<i32>(row, index)?.map(|v| Value::Int(v.into()))
    } else if ty == Type::INT8 {
        get::<i64>(row, index)?.map(Value::Int)
    } else if ty == Type::FLOAT4 {
        get::<f32>(row, index)?.map(|v| Value::Real(v.into()))
    } else if ty == Type::FLOAT8 {
        get::<f64>(row, index)?.map(Value::Real)
    } else if ty == Type::BOOL {
        get::<bool>(row, index)?.map(Value::Bool)
    } else if ty == Type::BYTEA {
        get::<Vec<u8>>(row, index)?.map(Value::Bytes)
    } else if [Type::TEXT, Type::VARCHAR, Type::BPCHAR, Type::NAME].contains(&ty) {
        get::<String>(row, index)?.map(Value::Text)
    } else {
        return Err(DbError::Decode {
            column: index,
            reason: format!("columns of type {ty} are not read by tread; cast it in the query"),
        });
    };
    Ok(value.unwrap_or(Value::Null))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_read_from_sqlite_integers_and_postgres_booleans() {
        assert!(bool::from_value(Value::Int(1), 0).expect("1 is true"));
        assert!(!bool::from_value(Value::Bool(false), 0).expect("false"));
        assert!(bool::from_value(Value::Int(2), 0).is_err());
    }

    #[test]
    fn narrow_integers_are_checked() {
        assert_eq!(u32::from_value(Value::Int(7), 0).expect("fits"), 7);
        let err = u32::from_value(Value::Int(-1), 3).expect_err("negative");
        assert!(err.to_string().contains("column 3"), "{err}");
    }

    #[test]
    fn options_read_null_as_none() {
        assert_eq!(
            Option::<String>::from_value(Value::Null, 0).expect("null"),
            None
        );
        assert_eq!(Value::from(None::<i64>), Value::Null);
    }
}
