//! Avro bodies to the project's record objects, for a body written with the same schema the reader holds.
//!
//! `streams/serde.py` stays the specification: it uses this only when the writer's schema is the one compiled
//! here, and on any error it decodes the payload again with fastavro, whose error names the field. A record
//! is built as its dataclass would build it from fastavro's dict (`AvroRecord.from_avro`): every field set,
//! arrays as tuples, enums as their symbols, nested records as their classes.

use std::collections::HashMap;

use pyo3::exceptions::PyValueError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyFloat, PyString, PyTuple};
use serde_json::Value;

enum Node {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    Enum(Vec<Py<PyString>>),
    Union(Vec<Node>),
    Array(Box<Node>),
    Record(usize),
}

struct Record {
    cls: Py<PyAny>,
    new: Py<PyAny>,
    fields: Vec<(Py<PyString>, Node)>,
}

/// One schema compiled to a decoding program; the classes it builds come from `classes` by full name.
#[pyclass(frozen, module = "liqbot_core", name = "RecordDecoder")]
pub struct RecordDecoder {
    root: Node,
    records: Vec<Record>,
}

struct Compiler<'py, 'a> {
    py: Python<'py>,
    classes: &'a Bound<'py, PyDict>,
    records: Vec<Record>,
    named: HashMap<String, NamedRef>,
}

#[derive(Clone)]
enum NamedRef {
    Record(usize),
    Enum(Vec<String>),
}

fn invalid(what: String) -> PyErr {
    PyValueError::new_err(what)
}

impl<'py> Compiler<'py, '_> {
    fn full_name(name: &str, namespace: &str) -> String {
        if name.contains('.') || namespace.is_empty() {
            name.to_string()
        } else {
            format!("{namespace}.{name}")
        }
    }

    fn named(&self, name: &str, namespace: &str) -> PyResult<Node> {
        let found = self.named.get(&Self::full_name(name, namespace)).or_else(|| self.named.get(name));
        match found {
            Some(NamedRef::Record(index)) => Ok(Node::Record(*index)),
            Some(NamedRef::Enum(symbols)) => Ok(self.enumeration(symbols)),
            None => Err(invalid(format!("unknown type {name}"))),
        }
    }

    fn enumeration(&self, symbols: &[String]) -> Node {
        Node::Enum(symbols.iter().map(|s| PyString::intern(self.py, s).unbind()).collect())
    }

    fn compile(&mut self, schema: &Value, namespace: &str) -> PyResult<Node> {
        match schema {
            Value::String(name) => match name.as_str() {
                "null" => Ok(Node::Null),
                "boolean" => Ok(Node::Boolean),
                "int" => Ok(Node::Int),
                "long" => Ok(Node::Long),
                "float" => Ok(Node::Float),
                "double" => Ok(Node::Double),
                "bytes" => Ok(Node::Bytes),
                "string" => Ok(Node::String),
                other => self.named(other, namespace),
            },
            Value::Array(branches) => {
                let nodes = branches.iter().map(|b| self.compile(b, namespace)).collect::<PyResult<_>>()?;
                Ok(Node::Union(nodes))
            }
            Value::Object(map) => {
                if map.contains_key("logicalType") {
                    return Err(invalid("logical types are not compiled".into()));
                }
                let kind = map.get("type").ok_or_else(|| invalid("a schema without a type".into()))?;
                match kind.as_str() {
                    Some("record") => self.record(map, namespace),
                    Some("enum") => {
                        let symbols: Vec<String> = map
                            .get("symbols")
                            .and_then(Value::as_array)
                            .ok_or_else(|| invalid("an enum without symbols".into()))?
                            .iter()
                            .map(|s| s.as_str().unwrap_or_default().to_string())
                            .collect();
                        let name = map.get("name").and_then(Value::as_str).unwrap_or_default();
                        let ns = map.get("namespace").and_then(Value::as_str).unwrap_or(namespace);
                        self.named.insert(Self::full_name(name, ns), NamedRef::Enum(symbols.clone()));
                        Ok(self.enumeration(&symbols))
                    }
                    Some("array") => {
                        let items = map.get("items").ok_or_else(|| invalid("an array without items".into()))?;
                        Ok(Node::Array(Box::new(self.compile(items, namespace)?)))
                    }
                    Some(_) => Err(invalid(format!("type {kind} is not compiled"))),
                    None => self.compile(kind, namespace),
                }
            }
            _ => Err(invalid(format!("not a schema: {schema}"))),
        }
    }

    fn record(&mut self, map: &serde_json::Map<String, Value>, namespace: &str) -> PyResult<Node> {
        let name = map.get("name").and_then(Value::as_str).ok_or_else(|| invalid("a record without a name".into()))?;
        let ns = map.get("namespace").and_then(Value::as_str).unwrap_or(namespace).to_string();
        let full = Self::full_name(name, &ns);
        let cls = self.classes.get_item(&full)?.ok_or_else(|| invalid(format!("no class for record {full}")))?;
        let new = cls.getattr("__new__")?;
        let index = self.records.len();
        self.records.push(Record { cls: cls.unbind(), new: new.unbind(), fields: Vec::new() });
        self.named.insert(full, NamedRef::Record(index));
        let fields = map.get("fields").and_then(Value::as_array).ok_or_else(|| invalid("no fields".into()))?;
        let mut compiled = Vec::with_capacity(fields.len());
        for field in fields {
            let field_name = field.get("name").and_then(Value::as_str).unwrap_or_default();
            let field_type = field.get("type").ok_or_else(|| invalid(format!("field {field_name} has no type")))?;
            compiled.push((PyString::intern(self.py, field_name).unbind(), self.compile(field_type, &ns)?));
        }
        self.records[index].fields = compiled;
        Ok(Node::Record(index))
    }
}

struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn truncated() -> PyErr {
        invalid("the body ends inside a value".into())
    }

    fn byte(&mut self) -> PyResult<u8> {
        let byte = *self.data.get(self.at).ok_or_else(Self::truncated)?;
        self.at += 1;
        Ok(byte)
    }

    fn long(&mut self) -> PyResult<i64> {
        let mut value: u64 = 0;
        let mut shift = 0;
        loop {
            let byte = self.byte()?;
            if shift >= 64 {
                return Err(invalid("a varint longer than 10 bytes".into()));
            }
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(((value >> 1) as i64) ^ -((value & 1) as i64));
            }
            shift += 7;
        }
    }

    fn take(&mut self, n: usize) -> PyResult<&[u8]> {
        let end = self.at.checked_add(n).filter(|end| *end <= self.data.len()).ok_or_else(Self::truncated)?;
        let slice = &self.data[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn length(&mut self) -> PyResult<usize> {
        usize::try_from(self.long()?).map_err(|_| invalid("a negative length".into()))
    }
}

impl RecordDecoder {
    fn value(&self, py: Python<'_>, node: &Node, reader: &mut Reader<'_>) -> PyResult<Py<PyAny>> {
        Ok(match node {
            Node::Null => py.None(),
            Node::Boolean => match reader.byte()? {
                0 => false.into_pyobject(py)?.to_owned().into_any().unbind(),
                1 => true.into_pyobject(py)?.to_owned().into_any().unbind(),
                _ => return Err(invalid("a boolean that is neither 0 nor 1".into())),
            },
            Node::Int => {
                let value = reader.long()?;
                i32::try_from(value).map_err(|_| invalid("an int out of range".into()))?;
                value.into_pyobject(py)?.into_any().unbind()
            }
            Node::Long => reader.long()?.into_pyobject(py)?.into_any().unbind(),
            Node::Float => {
                let raw: [u8; 4] = reader.take(4)?.try_into().expect("4 bytes");
                PyFloat::new(py, f64::from(f32::from_le_bytes(raw))).into_any().unbind()
            }
            Node::Double => {
                let raw: [u8; 8] = reader.take(8)?.try_into().expect("8 bytes");
                PyFloat::new(py, f64::from_le_bytes(raw)).into_any().unbind()
            }
            Node::Bytes => {
                let n = reader.length()?;
                PyBytes::new(py, reader.take(n)?).into_any().unbind()
            }
            Node::String => {
                let n = reader.length()?;
                let text =
                    std::str::from_utf8(reader.take(n)?).map_err(|_| invalid("a string that is not UTF-8".into()))?;
                PyString::new(py, text).into_any().unbind()
            }
            Node::Enum(symbols) => {
                let index = reader.length()?;
                symbols.get(index).ok_or_else(|| invalid("an enum index out of range".into()))?.clone_ref(py).into_any()
            }
            Node::Union(branches) => {
                let index = reader.length()?;
                let branch = branches.get(index).ok_or_else(|| invalid("a union branch out of range".into()))?;
                self.value(py, branch, reader)?
            }
            Node::Array(items) => {
                let mut values = Vec::new();
                loop {
                    let mut count = reader.long()?;
                    if count == 0 {
                        break;
                    }
                    if count < 0 {
                        count = -count;
                        reader.long()?; // the block's size in bytes
                    }
                    for _ in 0..count {
                        values.push(self.value(py, items, reader)?);
                    }
                }
                PyTuple::new(py, values)?.into_any().unbind()
            }
            Node::Record(index) => self.record(py, &self.records[*index], reader)?,
        })
    }

    fn record(&self, py: Python<'_>, record: &Record, reader: &mut Reader<'_>) -> PyResult<Py<PyAny>> {
        // `cls.__new__(cls)`, then each slot set as object.__setattr__ would: the dataclass is frozen
        let object = record.new.bind(py).call1((record.cls.bind(py),))?;
        for (name, node) in &record.fields {
            let value = self.value(py, node, reader)?;
            // SAFETY: the three pointers are live Python objects held by this frame
            let status = unsafe { ffi::PyObject_GenericSetAttr(object.as_ptr(), name.as_ptr(), value.as_ptr()) };
            if status != 0 {
                return Err(PyErr::fetch(py));
            }
        }
        Ok(object.unbind())
    }
}

#[pymethods]
impl RecordDecoder {
    /// Compile `schema` (JSON text); `classes` maps every record's full name to the class that holds it.
    #[new]
    fn new(py: Python<'_>, schema: &str, classes: &Bound<'_, PyDict>) -> PyResult<Self> {
        let parsed: Value = serde_json::from_str(schema).map_err(|e| invalid(format!("schema is not JSON: {e}")))?;
        let mut compiler = Compiler { py, classes, records: Vec::new(), named: HashMap::new() };
        let root = compiler.compile(&parsed, "")?;
        Ok(RecordDecoder { root, records: compiler.records })
    }

    /// The record in `payload[offset:]`; ValueError when it is not exactly one body of this schema.
    fn decode(&self, py: Python<'_>, payload: &[u8], offset: usize) -> PyResult<Py<PyAny>> {
        let data = payload.get(offset..).ok_or_else(Reader::truncated)?;
        let mut reader = Reader { data, at: 0 };
        let value = self.value(py, &self.root, &mut reader)?;
        if reader.at != data.len() {
            return Err(invalid(format!("{} bytes left after the last field", data.len() - reader.at)));
        }
        Ok(value)
    }
}
