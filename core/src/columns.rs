//! Avro bodies of one schema straight into Arrow column buffers, for the ClickHouse sink.
//!
//! `streams/history/arrow.py` is the specification: `decode_batch_python` (fastavro, then pyarrow) gives the
//! same columns, and the same reason for every row a column cannot hold. A bad row is rolled back and left
//! out; the others are decoded. Columns come in `columns_for` order: a field each, and for an array of records
//! one list column per field of the record (`bids.price`, `bids.size`).

use std::collections::{HashMap, HashSet};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use pyo3::Bound;
use serde_json::Value;

/// What one column holds, as ClickHouse (and so Arrow) sees it.
#[derive(Clone)]
enum Scalar {
    Str,
    Bytes,
    Enum(Vec<String>),
    Decimal,
    Time,
    Long,
    Int,
    Double,
    Bool,
}

struct Leaf {
    scalar: Scalar,
    path: String,
    column: usize,
}

/// How one top-level field is read into its column(s).
enum Field {
    /// A scalar, or a `["null", T]` union (`null_branch` is the index of "null").
    Value { leaf: Leaf, null_branch: Option<u64> },
    /// An array of scalars: one list column.
    List(Leaf),
    /// An array of records: one list column per field of the record, sharing the offsets.
    Records(Vec<Leaf>),
}

/// Why a row has no place in the table.
enum Bad {
    /// The bytes are not a body of the schema (fastavro, run again, names the field).
    Malformed(String),
    /// A value the column cannot hold exactly (the message `check_decimal`/`check_time` give).
    Value(String),
}

fn malformed(what: &str) -> Bad {
    Bad::Malformed(format!("malformed body: {what}"))
}

/// The growing buffers of one column: values, and validity for a nullable one; lists add offsets.
struct Column {
    scalar: Scalar,
    nullable: bool,
    list: Option<Vec<i32>>,
    valid: Vec<u8>,
    nulls: usize,
    values: Vec<u8>,
    offsets: Vec<i32>,
    len: usize,
}

/// A column's lengths before a row, to roll a bad row back.
#[derive(Clone, Copy)]
struct Mark {
    list: usize,
    valid: usize,
    nulls: usize,
    values: usize,
    offsets: usize,
    len: usize,
}

fn width(scalar: &Scalar) -> usize {
    match scalar {
        Scalar::Decimal => 16,
        Scalar::Time | Scalar::Long | Scalar::Double => 8,
        Scalar::Int => 4,
        Scalar::Bool => 1,
        Scalar::Str | Scalar::Bytes | Scalar::Enum(_) => 0,
    }
}

fn variable(scalar: &Scalar) -> bool {
    matches!(scalar, Scalar::Str | Scalar::Bytes | Scalar::Enum(_))
}

impl Column {
    fn new(scalar: Scalar, nullable: bool, list: bool) -> Self {
        let offsets = if variable(&scalar) { vec![0] } else { Vec::new() };
        let list = list.then(|| vec![0]);
        Column { scalar, nullable, list, valid: Vec::new(), nulls: 0, values: Vec::new(), offsets, len: 0 }
    }

    fn mark(&self) -> Mark {
        Mark {
            list: self.list.as_ref().map_or(0, Vec::len),
            valid: self.valid.len(),
            nulls: self.nulls,
            values: self.values.len(),
            offsets: self.offsets.len(),
            len: self.len,
        }
    }

    fn rollback(&mut self, mark: Mark) {
        if let Some(list) = self.list.as_mut() {
            list.truncate(mark.list);
        }
        self.valid.truncate(mark.valid);
        self.nulls = mark.nulls;
        self.values.truncate(mark.values);
        self.offsets.truncate(mark.offsets);
        self.len = mark.len;
    }

    fn end_item(&mut self) -> Result<(), Bad> {
        self.len += 1;
        if variable(&self.scalar) {
            let end = i32::try_from(self.values.len()).map_err(|_| Bad::Value("a batch over 2 GiB of text".into()))?;
            self.offsets.push(end);
        }
        if self.nullable {
            self.valid.push(1);
        }
        Ok(())
    }

    fn null(&mut self) {
        self.len += 1;
        self.nulls += 1;
        self.valid.push(0);
        if variable(&self.scalar) {
            let end = *self.offsets.last().expect("offsets start at 0");
            self.offsets.push(end);
        } else {
            self.values.resize(self.values.len() + width(&self.scalar), 0);
        }
    }

    fn end_list(&mut self) -> Result<(), Bad> {
        let len = i32::try_from(self.len).map_err(|_| Bad::Value("a batch over 2^31 list items".into()))?;
        self.list.as_mut().expect("a list column").push(len);
        Ok(())
    }
}

struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn long(&mut self) -> Result<i64, Bad> {
        let mut value: u64 = 0;
        let mut shift = 0;
        loop {
            let byte = *self.data.get(self.at).ok_or_else(|| malformed("the body ends inside a value"))?;
            self.at += 1;
            if shift >= 64 {
                return Err(malformed("a varint longer than 10 bytes"));
            }
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(((value >> 1) as i64) ^ -((value & 1) as i64));
            }
            shift += 7;
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Bad> {
        let end = self.at.checked_add(n).filter(|end| *end <= self.data.len());
        let end = end.ok_or_else(|| malformed("the body ends inside a value"))?;
        let slice = &self.data[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn index(&mut self) -> Result<u64, Bad> {
        u64::try_from(self.long()?).map_err(|_| malformed("a negative length or index"))
    }

    fn sized(&mut self) -> Result<&'a [u8], Bad> {
        let n = self.index()?;
        self.take(usize::try_from(n).map_err(|_| malformed("a length beyond memory"))?)
    }

    fn text(&mut self) -> Result<&'a str, Bad> {
        std::str::from_utf8(self.sized()?).map_err(|_| malformed("a string that is not UTF-8"))
    }

    /// The item count of the next array block; 0 ends the array.
    fn block(&mut self) -> Result<u64, Bad> {
        let count = self.long()?;
        if count < 0 {
            self.long()?; // the block's size in bytes
        }
        Ok(count.unsigned_abs())
    }
}

const POW10: [i128; 39] = {
    let mut table = [1i128; 39];
    let mut i = 1;
    while i < 39 {
        table[i] = table[i - 1] * 10;
        i += 1;
    }
    table
};

/// The common case in one pass: at most 19 digits, at most `scale` decimal places. `None` leaves the rest (and
/// every error, with its message) to `decimal`; a book row's ~140 prices and sizes made this the decode's hot spot.
fn decimal_fast(raw: &[u8], scale: usize) -> Option<i128> {
    let (negative, body) = match raw.first() {
        Some(b'-') => (true, &raw[1..]),
        Some(b'+') => (false, &raw[1..]),
        _ => (false, raw),
    };
    let (mut value, mut digits, mut places): (u64, usize, Option<usize>) = (0, 0, None);
    for &b in body {
        match b {
            b'0'..=b'9' if digits < 19 => {
                value = value * 10 + u64::from(b - b'0');
                digits += 1;
                places = places.map(|p| p + 1);
            }
            b'.' if places.is_none() => places = Some(0),
            _ => return None,
        }
    }
    let places = places.unwrap_or(0);
    if digits == 0 || places > scale || digits - places > 38 - scale {
        return None;
    }
    let value = i128::from(value) * POW10[scale - places];
    Some(if negative { -value } else { value })
}

/// The value of decimal `text` scaled to `scale` places, or why Decimal(38, scale) cannot hold it exactly.
fn decimal(path: &str, text: &str, scale: usize) -> Result<i128, Bad> {
    let not_decimal = || Bad::Value(format!("field {path}: '{text}' is not a decimal number"));
    let (negative, body) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let (integer, fraction) = body.split_once('.').unwrap_or((body, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !digits(integer) || !digits(fraction) || (integer.is_empty() && fraction.is_empty()) {
        return Err(not_decimal());
    }
    let (integer, fraction) = (integer.trim_start_matches('0'), fraction.trim_end_matches('0'));
    if fraction.len() > scale {
        return Err(Bad::Value(format!(
            "field {path}: '{text}' has more than {scale} decimal places; Decimal(38, {scale}) would round it"
        )));
    }
    if integer.len() > 38 - scale {
        return Err(Bad::Value(format!(
            "field {path}: '{text}' has more than {} integer digits; Decimal(38, {scale}) cannot hold it",
            38 - scale
        )));
    }
    let mut value: i128 = 0;
    for b in integer.bytes().chain(fraction.bytes()).chain(std::iter::repeat_n(b'0', scale - fraction.len())) {
        value = value * 10 + i128::from(b - b'0');
    }
    Ok(if negative { -value } else { value })
}

/// One schema compiled to a program that appends each body's values to its columns.
#[pyclass(frozen, module = "liqbot_core", name = "ColumnDecoder")]
pub struct ColumnDecoder {
    fields: Vec<Field>,
    columns: Vec<(Scalar, bool, bool)>,
    scale: usize,
    time_min_ns: i64,
}

fn invalid(what: String) -> PyErr {
    PyValueError::new_err(what)
}

struct Compiler<'a> {
    decimals: &'a HashSet<String>,
    times: &'a HashSet<String>,
    named: HashMap<String, Value>,
    columns: Vec<(Scalar, bool, bool)>,
}

impl Compiler<'_> {
    /// A named type's definition, remembered under its short and full names.
    fn resolve(&mut self, schema: &Value) -> PyResult<Value> {
        if let Value::String(name) = schema {
            if let Some(found) =
                self.named.get(name).or_else(|| self.named.get(name.rsplit('.').next().unwrap_or(name)))
            {
                return Ok(found.clone());
            }
            return Ok(schema.clone());
        }
        if let Some(name) = schema.get("name").and_then(Value::as_str) {
            self.named.insert(name.to_string(), schema.clone());
            if let Some(ns) = schema.get("namespace").and_then(Value::as_str) {
                self.named.insert(format!("{ns}.{name}"), schema.clone());
            }
        }
        Ok(schema.clone())
    }

    fn scalar(&mut self, path: &str, schema: &Value) -> PyResult<Scalar> {
        let schema = self.resolve(schema)?;
        let kind = match &schema {
            Value::String(kind) => kind.as_str(),
            Value::Object(map) => match map.get("type") {
                Some(Value::String(kind)) if kind == "enum" => {
                    let symbols = map.get("symbols").and_then(Value::as_array);
                    let symbols = symbols.ok_or_else(|| invalid(format!("field {path}: an enum without symbols")))?;
                    return Ok(Scalar::Enum(
                        symbols.iter().map(|s| s.as_str().unwrap_or_default().to_string()).collect(),
                    ));
                }
                Some(inner) => return self.scalar(path, inner),
                None => return Err(invalid(format!("field {path}: a schema without a type"))),
            },
            _ => return Err(invalid(format!("field {path}: {schema} has no column"))),
        };
        Ok(match kind {
            "string" if self.decimals.contains(path) => Scalar::Decimal,
            "string" => Scalar::Str,
            "bytes" => Scalar::Bytes,
            "long" if self.times.contains(path) => Scalar::Time,
            "long" => Scalar::Long,
            "int" => Scalar::Int,
            "double" => Scalar::Double,
            "boolean" => Scalar::Bool,
            other => return Err(invalid(format!("field {path}: Avro type {other} has no column"))),
        })
    }

    fn column(&mut self, scalar: Scalar, nullable: bool, list: bool) -> usize {
        self.columns.push((scalar, nullable, list));
        self.columns.len() - 1
    }

    fn field(&mut self, field: &Value) -> PyResult<Field> {
        let name = field.get("name").and_then(Value::as_str).ok_or_else(|| invalid("a field without a name".into()))?;
        let schema = field.get("type").ok_or_else(|| invalid(format!("field {name} has no type")))?;
        if let Value::Array(branches) = schema {
            let null = branches.iter().position(|b| b == "null");
            let (Some(null), 2) = (null, branches.len()) else {
                return Err(invalid(format!("field {name}: only unions of null and one type have a column")));
            };
            let scalar = self.scalar(name, &branches[1 - null])?;
            let column = self.column(scalar.clone(), true, false);
            return Ok(Field::Value {
                leaf: Leaf { scalar, path: name.into(), column },
                null_branch: Some(null as u64),
            });
        }
        let resolved = self.resolve(schema)?;
        if resolved.get("type").and_then(Value::as_str) == Some("array") {
            let items = self.resolve(&resolved["items"])?;
            if items.get("type").and_then(Value::as_str) == Some("record") {
                let subfields = items["fields"].as_array().cloned().unwrap_or_default();
                let mut leaves = Vec::with_capacity(subfields.len());
                for sub in &subfields {
                    let sub_name = sub.get("name").and_then(Value::as_str).unwrap_or_default();
                    let path = format!("{name}.{sub_name}");
                    let scalar = self.scalar(&path, &sub["type"])?;
                    let column = self.column(scalar.clone(), false, true);
                    leaves.push(Leaf { scalar, path, column });
                }
                return Ok(Field::Records(leaves));
            }
            let scalar = self.scalar(name, &items)?;
            let column = self.column(scalar.clone(), false, true);
            return Ok(Field::List(Leaf { scalar, path: name.into(), column }));
        }
        let scalar = self.scalar(name, &resolved)?;
        let column = self.column(scalar.clone(), false, false);
        Ok(Field::Value { leaf: Leaf { scalar, path: name.into(), column }, null_branch: None })
    }
}

impl ColumnDecoder {
    fn columns_of(&self, bodies: &[&[u8]], offset: usize) -> (Vec<Column>, Vec<(usize, String)>) {
        let mut columns: Vec<Column> =
            self.columns.iter().map(|(scalar, nullable, list)| Column::new(scalar.clone(), *nullable, *list)).collect();
        let mut bad = Vec::new();
        let mut marks: Vec<Mark> = columns.iter().map(Column::mark).collect();
        for (index, payload) in bodies.iter().enumerate() {
            let outcome = match payload.get(offset..) {
                Some(data) => self.row(&mut columns, &mut Reader { data, at: 0 }),
                None => Err(malformed("the payload is shorter than its header")),
            };
            match outcome {
                Ok(()) => marks.iter_mut().zip(&columns).for_each(|(mark, column)| *mark = column.mark()),
                Err(Bad::Malformed(why) | Bad::Value(why)) => {
                    columns.iter_mut().zip(&marks).for_each(|(column, mark)| column.rollback(*mark));
                    bad.push((index, why));
                }
            }
        }
        (columns, bad)
    }

    fn value(&self, leaf: &Leaf, column: &mut Column, reader: &mut Reader<'_>) -> Result<(), Bad> {
        match &leaf.scalar {
            Scalar::Str | Scalar::Bytes => {
                let bytes =
                    if matches!(leaf.scalar, Scalar::Str) { reader.text()?.as_bytes() } else { reader.sized()? };
                column.values.extend_from_slice(bytes);
            }
            Scalar::Enum(symbols) => {
                let index = reader.index()?;
                let symbol = usize::try_from(index).ok().and_then(|i| symbols.get(i));
                column
                    .values
                    .extend_from_slice(symbol.ok_or_else(|| malformed("an enum index out of range"))?.as_bytes());
            }
            Scalar::Decimal => {
                let raw = reader.sized()?;
                let value = match decimal_fast(raw, self.scale) {
                    Some(value) => value,
                    None => decimal(
                        &leaf.path,
                        std::str::from_utf8(raw).map_err(|_| malformed("a string that is not UTF-8"))?,
                        self.scale,
                    )?,
                };
                column.values.extend_from_slice(&value.to_le_bytes());
            }
            Scalar::Time => {
                let ns = reader.long()?;
                if ns < self.time_min_ns {
                    return Err(Bad::Value(format!(
                        "field {}: {ns} ns is outside DateTime64(9)'s range 1900-01-01 .. 2262-04-11",
                        leaf.path
                    )));
                }
                column.values.extend_from_slice(&ns.to_le_bytes());
            }
            Scalar::Long => column.values.extend_from_slice(&reader.long()?.to_le_bytes()),
            Scalar::Int => {
                let value = reader.long()?;
                let value = i32::try_from(value)
                    .map_err(|_| Bad::Value(format!("field {}: {value} is outside Int32's range", leaf.path)))?;
                column.values.extend_from_slice(&value.to_le_bytes());
            }
            Scalar::Double => column.values.extend_from_slice(reader.take(8)?),
            // fastavro reads any byte but 0 as true; so does this, so both paths agree
            Scalar::Bool => column.values.push(u8::from(reader.take(1)?[0] != 0)),
        }
        column.end_item()
    }

    fn row(&self, columns: &mut [Column], reader: &mut Reader<'_>) -> Result<(), Bad> {
        for field in &self.fields {
            match field {
                Field::Value { leaf, null_branch } => {
                    let column = &mut columns[leaf.column];
                    if let Some(null) = null_branch {
                        match reader.index()? {
                            branch if branch == *null => {
                                column.null();
                                continue;
                            }
                            branch if branch == 1 - null => {}
                            _ => return Err(malformed("a union branch out of range")),
                        }
                    }
                    self.value(leaf, column, reader)?;
                }
                Field::List(leaf) => {
                    let column = &mut columns[leaf.column];
                    loop {
                        let count = reader.block()?;
                        if count == 0 {
                            break;
                        }
                        for _ in 0..count {
                            self.value(leaf, column, reader)?;
                        }
                    }
                    column.end_list()?;
                }
                Field::Records(leaves) => {
                    loop {
                        let count = reader.block()?;
                        if count == 0 {
                            break;
                        }
                        for _ in 0..count {
                            for leaf in leaves {
                                self.value(leaf, &mut columns[leaf.column], reader)?;
                            }
                        }
                    }
                    for leaf in leaves {
                        columns[leaf.column].end_list()?;
                    }
                }
            }
        }
        if reader.at != reader.data.len() {
            return Err(malformed(&format!("{} bytes left after the last field", reader.data.len() - reader.at)));
        }
        Ok(())
    }
}

/// A column as Arrow buffers: (length, null count, buffers, child column of a list).
type RawColumn = (usize, usize, Vec<Option<Py<PyBytes>>>, Option<Py<PyAny>>);

/// The columns of the good rows, and each bad row's index and reason.
type Decoded = (Vec<RawColumn>, Vec<(usize, String)>);

fn bitmap(bits: &[u8]) -> Vec<u8> {
    let mut packed = vec![0u8; bits.len().div_ceil(8)];
    for (i, bit) in bits.iter().enumerate() {
        packed[i / 8] |= bit << (i % 8);
    }
    packed
}

fn offsets(values: &[i32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn raw(py: Python<'_>, column: Column) -> PyResult<RawColumn> {
    let bytes = |data: &[u8]| Some(PyBytes::new(py, data).unbind());
    let validity = if column.nulls > 0 { bytes(&bitmap(&column.valid)) } else { None };
    let mut buffers = vec![validity];
    if variable(&column.scalar) {
        buffers.push(bytes(&offsets(&column.offsets)));
        buffers.push(bytes(&column.values));
    } else if matches!(column.scalar, Scalar::Bool) {
        buffers.push(bytes(&bitmap(&column.values)));
    } else {
        buffers.push(bytes(&column.values));
    }
    let values: RawColumn = (column.len, column.nulls, buffers, None);
    match column.list {
        None => Ok(values),
        Some(list) => {
            let child = values.into_pyobject(py)?.into_any().unbind();
            Ok((list.len() - 1, 0, vec![None, bytes(&offsets(&list))], Some(child)))
        }
    }
}

#[pymethods]
impl ColumnDecoder {
    /// Compile `schema` (JSON text); string fields named in `decimal_fields` become Decimal(38, `scale`),
    /// long fields in `time_fields` nanosecond times no earlier than `time_min_ns`.
    #[new]
    fn new(
        schema: &str,
        decimal_fields: Vec<String>,
        time_fields: Vec<String>,
        scale: usize,
        time_min_ns: i64,
    ) -> PyResult<Self> {
        if scale > 38 {
            return Err(invalid(format!("scale {scale} is beyond Decimal128's 38 digits")));
        }
        let parsed: Value = serde_json::from_str(schema).map_err(|e| invalid(format!("schema is not JSON: {e}")))?;
        let decimals: HashSet<String> = decimal_fields.into_iter().collect();
        let times: HashSet<String> = time_fields.into_iter().collect();
        let mut compiler = Compiler { decimals: &decimals, times: &times, named: HashMap::new(), columns: Vec::new() };
        let record = compiler.resolve(&parsed)?;
        if record.get("type").and_then(Value::as_str) != Some("record") {
            return Err(invalid("the schema is not a record".into()));
        }
        let fields = record["fields"].as_array().cloned().unwrap_or_default();
        let fields = fields.iter().map(|f| compiler.field(f)).collect::<PyResult<Vec<_>>>()?;
        Ok(ColumnDecoder { fields, columns: compiler.columns, scale, time_min_ns })
    }

    /// Each payload's body (from `offset`) into the columns; the bad rows are left out and listed with why.
    fn decode(&self, py: Python<'_>, payloads: Vec<Bound<'_, PyBytes>>, offset: usize) -> PyResult<Decoded> {
        let bodies: Vec<&[u8]> = payloads.iter().map(|p| p.as_bytes()).collect();
        // Without the GIL: the sink's insert thread runs its Python while a batch is decoded here.
        let (columns, bad) = py.detach(|| self.columns_of(&bodies, offset));
        let raw = columns.into_iter().map(|c| raw(py, c)).collect::<PyResult<Vec<_>>>()?;
        Ok((raw, bad))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_scale_exactly_or_refuse() {
        assert_eq!(decimal("p", "1.5", 18).ok(), Some(1_500_000_000_000_000_000));
        assert_eq!(decimal("p", "-0.000000000000000001", 18).ok(), Some(-1));
        assert_eq!(decimal("p", "+007.", 2).ok(), Some(700));
        assert_eq!(decimal("p", ".25", 2).ok(), Some(25));
        assert_eq!(decimal("p", "1.2500", 2).ok(), Some(125));
        let message = |r: Result<i128, Bad>| match r {
            Err(Bad::Value(m) | Bad::Malformed(m)) => m,
            Ok(v) => format!("ok {v}"),
        };
        assert_eq!(message(decimal("p", ".", 18)), "field p: '.' is not a decimal number");
        assert_eq!(message(decimal("p", "1e5", 18)), "field p: '1e5' is not a decimal number");
        assert_eq!(message(decimal("p", "", 18)), "field p: '' is not a decimal number");
        assert_eq!(
            message(decimal("p", "0.1234", 3)),
            "field p: '0.1234' has more than 3 decimal places; Decimal(38, 3) would round it"
        );
        assert_eq!(
            message(decimal("p", &"9".repeat(21), 18)),
            format!("field p: '{}' has more than 20 integer digits; Decimal(38, 18) cannot hold it", "9".repeat(21))
        );
        assert_eq!(decimal("p", &"9".repeat(38), 0).ok(), Some(10i128.pow(38) - 1));
    }

    #[test]
    fn the_fast_path_agrees_with_the_exact_one() {
        let cases = [
            "0",
            "1.5",
            "-0.000000000000000001",
            "+007.",
            ".25",
            "1.2500",
            "98234.5",
            "-1",
            "1234567890123456789",
            "12345678901234567890",
            "0.0000000000000000001",
            "1e5",
            ".",
            "",
            "-",
            "1.2.3",
            "00000000000000000000001",
        ];
        for text in cases {
            for scale in [0, 2, 18, 38] {
                let exact = decimal("p", text, scale).ok();
                let fast = decimal_fast(text.as_bytes(), scale);
                assert!(fast.is_none() || fast == exact, "{text} at scale {scale}: {fast:?} vs {exact:?}");
            }
        }
        assert_eq!(decimal_fast(b"98234.5", 18), Some(98_234_500_000_000_000_000_000));
        assert_eq!(decimal_fast(b"1.2500", 2), None); // trailing zeros past the scale: the exact path decides
    }

    #[test]
    fn a_bad_row_rolls_back_to_its_mark() {
        let mut column = Column::new(Scalar::Str, true, true);
        let mark = column.mark();
        column.values.extend_from_slice(b"abc");
        column.end_item().ok();
        column.null();
        column.end_list().ok();
        column.rollback(mark);
        assert_eq!(
            (column.len, column.nulls, column.values.len(), column.offsets, column.list),
            (0, 0, 0, vec![0], Some(vec![0]))
        );
    }

    #[test]
    fn bitmaps_are_least_significant_bit_first() {
        assert_eq!(bitmap(&[1, 0, 1, 1, 0, 0, 0, 0, 1]), vec![0b0000_1101, 0b1]);
    }
}
