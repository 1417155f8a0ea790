//! Columns for PostgreSQL's `unnest` as array literals in its text format (`{1,NULL,"a\"b"}`):
//! asyncpg encodes a Python list parameter element by element with an `isinstance` check on
//! each (2.4 µs a row of 13 columns, measured), against one string here; PostgreSQL parses
//! the literal through the `text` -> array cast. Held equal to the values by
//! tests/integration/test_pg_array.py (literal → array → the same values, on a real server).

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyInt, PyList, PyString};
use std::fmt::Write;

/// `values` (each None, an int, or a str; bools are refused: PostgreSQL's int arrays do not
/// take them) as a one-dimensional array literal.
#[pyfunction]
pub fn pg_array(values: &Bound<'_, PyList>) -> PyResult<String> {
    let mut out = String::with_capacity(2 + values.len() * 12);
    out.push('{');
    for (i, value) in values.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        if value.is_none() {
            out.push_str("NULL");
        } else if let Ok(text) = value.downcast::<PyString>() {
            quoted(&mut out, text.to_str()?);
        } else if value.is_instance_of::<PyInt>() && !value.is_instance_of::<PyBool>() {
            let n: i64 = value.extract()?;
            write!(out, "{n}").expect("writing to a String");
        } else {
            return Err(PyTypeError::new_err(format!(
                "pg_array: element {i} is a {}, not None, an int or a str",
                value.get_type().name()?
            )));
        }
    }
    out.push('}');
    Ok(out)
}

/// An element in double quotes, its backslashes and double quotes escaped (PostgreSQL's
/// array input then takes everything else as it is: commas, braces, spaces, "NULL").
fn quoted(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}
