//! Market record bodies straight into the feature engine's events, with no Python record object in between.
//!
//! The features agent's hot path: most of its records (book updates above all) are read by no other agent, and
//! building their dataclasses (a `BookLevel` per level) cost more than folding them in. A body is taken here
//! only when it carries the header of a current market schema and is exactly one body of it, under the checks
//! `decode.rs` makes; anything else returns None and `streams/serde.py` decides (a record, or a dead letter).
//! Numbers stay text until the engine applies the event, so a late or duplicate record with bad text is counted
//! and skipped as the record path would (tests/decision/test_market_events.py).

use std::collections::HashMap;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFloat, PyString};
use serde_json::Value;

use crate::book::{Level, Text};
use crate::features::{Event, Levels, Meta};

enum Node {
    Null,
    Boolean,
    Int,
    Long,
    Double,
    String,
    Enum(Vec<String>),
    Union(Vec<Node>),
    Array(Box<Node>),
    Levels, // an array of {price: string, size: string} records: a book side, read without a value per level
    Record(Vec<(String, Node)>),
}

/// A decoded value, borrowing the body's text and the schema's symbols.
enum Datum<'a> {
    Null,
    Bool,
    Long(i64),
    Double(f64),
    Str(&'a str),
    Array, // read through (its items checked), not kept: the features read no other array
    Levels(Vec<(&'a str, &'a str)>),
    Record(&'a [(String, Node)], Vec<Datum<'a>>),
}

/// Compile the subset of Avro the market schemas use; None for anything else (then this path is not taken).
fn compile(schema: &Value, named: &mut HashMap<String, Vec<(String, Value)>>) -> Option<Node> {
    Some(match schema {
        Value::String(name) => match name.as_str() {
            "null" => Node::Null,
            "boolean" => Node::Boolean,
            "int" => Node::Int,
            "long" => Node::Long,
            "double" => Node::Double,
            "string" => Node::String,
            other => record(named.get(other)?.clone(), named)?,
        },
        Value::Array(branches) => Node::Union(branches.iter().map(|b| compile(b, named)).collect::<Option<_>>()?),
        Value::Object(map) if !map.contains_key("logicalType") => match map.get("type")?.as_str()? {
            "record" => {
                let fields: Vec<(String, Value)> = map
                    .get("fields")?
                    .as_array()?
                    .iter()
                    .map(|f| Some((f.get("name")?.as_str()?.to_owned(), f.get("type")?.clone())))
                    .collect::<Option<_>>()?;
                named.insert(map.get("name")?.as_str()?.to_owned(), fields.clone());
                record(fields, named)?
            }
            "enum" => Node::Enum(
                map.get("symbols")?.as_array()?.iter().map(|s| s.as_str().map(str::to_owned)).collect::<Option<_>>()?,
            ),
            "array" => match compile(map.get("items")?, named)? {
                Node::Record(fields) if is_level(&fields) => Node::Levels,
                items => Node::Array(Box::new(items)),
            },
            _ => return None,
        },
        _ => return None,
    })
}

fn is_level(fields: &[(String, Node)]) -> bool {
    matches!(fields, [(price, Node::String), (size, Node::String)] if price == "price" && size == "size")
}

fn record(fields: Vec<(String, Value)>, named: &mut HashMap<String, Vec<(String, Value)>>) -> Option<Node> {
    let nodes = fields.into_iter().map(|(name, t)| Some((name, compile(&t, named)?))).collect::<Option<_>>()?;
    Some(Node::Record(nodes))
}

struct Body<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Body<'a> {
    fn byte(&mut self) -> Option<u8> {
        let byte = *self.data.get(self.at)?;
        self.at += 1;
        Some(byte)
    }

    fn long(&mut self) -> Option<i64> {
        let (mut value, mut shift) = (0u64, 0);
        loop {
            let byte = self.byte()?;
            if shift >= 64 {
                return None;
            }
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(((value >> 1) as i64) ^ -((value & 1) as i64));
            }
            shift += 7;
        }
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n).filter(|end| *end <= self.data.len())?;
        let slice = &self.data[self.at..end];
        self.at = end;
        Some(slice)
    }

    fn index(&mut self) -> Option<usize> {
        usize::try_from(self.long()?).ok()
    }

    fn text(&mut self) -> Option<&'a str> {
        let n = self.index()?;
        std::str::from_utf8(self.take(n)?).ok()
    }

    /// An array's items, block by block, each read by `item(body, items left in its block)`.
    fn blocks(&mut self, mut item: impl FnMut(&mut Self, usize) -> Option<()>) -> Option<()> {
        loop {
            let mut count = self.long()?;
            if count == 0 {
                return Some(());
            }
            if count < 0 {
                count = count.checked_neg()?;
                self.long()?; // the block's size in bytes
            }
            for left in (1..=usize::try_from(count).ok()?).rev() {
                item(self, left)?;
            }
        }
    }

    /// One value of `node`, under the checks `decode.rs` makes; None where it raises.
    fn value<'s: 'a>(&mut self, node: &'s Node) -> Option<Datum<'a>> {
        Some(match node {
            Node::Null => Datum::Null,
            Node::Boolean => match self.byte()? {
                0 | 1 => Datum::Bool,
                _ => return None,
            },
            Node::Int => Datum::Long(i64::from(i32::try_from(self.long()?).ok()?)),
            Node::Long => Datum::Long(self.long()?),
            Node::Double => Datum::Double(f64::from_le_bytes(self.take(8)?.try_into().ok()?)),
            Node::String => Datum::Str(self.text()?),
            Node::Enum(symbols) => Datum::Str(symbols.get(self.index()?)?),
            Node::Union(branches) => {
                let branch = branches.get(self.index()?)?;
                self.value(branch)?
            }
            Node::Array(items) => {
                self.blocks(|body, _| body.value(items).map(drop))?;
                Datum::Array
            }
            Node::Levels => {
                let mut levels = Vec::new();
                self.blocks(|body, left| {
                    // a level takes two bytes at least: a damaged count must not reserve memory for nothing
                    levels.reserve(left.min((body.data.len() - body.at) / 2));
                    levels.push((body.text()?, body.text()?));
                    Some(())
                })?;
                Datum::Levels(levels)
            }
            Node::Record(fields) => {
                Datum::Record(fields, fields.iter().map(|(_, n)| self.value(n)).collect::<Option<_>>()?)
            }
        })
    }
}

impl<'a> Datum<'a> {
    fn field(&self, name: &str) -> Option<&Datum<'a>> {
        let Datum::Record(fields, values) = self else { return None };
        fields.iter().position(|(n, _)| n == name).map(|i| &values[i])
    }

    fn text(&self, name: &str) -> Option<&'a str> {
        match self.field(name)? {
            Datum::Str(s) => Some(s),
            _ => None,
        }
    }

    fn owned(&self, name: &str) -> Option<String> {
        self.text(name).map(str::to_owned)
    }

    /// A `["null", T]` field's text: Some(None) for null.
    fn optional_text(&self, name: &str) -> Option<Option<String>> {
        match self.field(name)? {
            Datum::Null => Some(None),
            Datum::Str(s) => Some(Some((*s).to_owned())),
            _ => None,
        }
    }

    fn long(&self, name: &str) -> Option<i64> {
        match self.field(name)? {
            Datum::Long(v) => Some(*v),
            _ => None,
        }
    }

    fn double(&self, name: &str) -> Option<f64> {
        match self.field(name)? {
            Datum::Double(v) => Some(*v),
            _ => None,
        }
    }

    fn levels(&self, name: &str) -> Option<Vec<(Text, Text)>> {
        let Datum::Levels(levels) = self.field(name)? else { return None };
        Some(levels.iter().map(|(price, size)| (Text::new(price), Text::new(size))).collect())
    }
}

/// What a market record brings the features, its numbers still text (parsed when it is applied).
pub enum Fields {
    Liquidation { long: bool, price: String, size: String },
    Trade { buy: bool, price: String, size: String },
    Top { bid: String, ask: String, mid: f64, microprice: f64 },
    Book { kind: String, bids: Vec<(Text, Text)>, asks: Vec<(Text, Text)>, update_id: i64 },
    Ticker { funding_rate: Option<String>, next_funding_ns: Option<i64>, open_interest: Option<String> },
}

/// One market record decoded for the feature engine: what `FeatureEngine.update` reads of its record, and what
/// a feature vector names it by. Folded in once.
#[pyclass(module = "liqbot_core", name = "MarketEvent")]
pub struct MarketEvent {
    #[pyo3(get, name = "SCHEMA")]
    schema: Py<PyString>,
    #[pyo3(get)]
    pub venue: String,
    #[pyo3(get)]
    pub symbol: String,
    #[pyo3(get)]
    event_id: String,
    #[pyo3(get)]
    pub ts_event_ns: i64,
    #[pyo3(get)]
    ts_recv_ns: i64,
    /// A liquidation's side ("LONG" or "SHORT"); None for other records.
    #[pyo3(get)]
    position_side: Option<&'static str>,
    pub name: &'static str,
    fields: Option<Fields>,
}

impl MarketEvent {
    pub fn meta(&self) -> Meta<'_> {
        let schema = self.name;
        Meta {
            venue: &self.venue,
            symbol: &self.symbol,
            schema,
            event_id: &self.event_id,
            ts_event_ns: self.ts_event_ns,
            windowed: matches!(schema, "liqbot.Liquidation" | "liqbot.Trade"),
        }
    }

    /// What it brings the engine; an error the second time (an event is folded in once).
    pub fn take_fields(&mut self) -> PyResult<Fields> {
        self.fields.take().ok_or_else(|| PyValueError::new_err("a market event is folded in once"))
    }
}

/// The engine's event, the text parsed now (where the record path parses a record's).
pub fn event(py: Python<'_>, fields: Fields) -> PyResult<Event> {
    Ok(match fields {
        Fields::Liquidation { long, price, size } => {
            Event::Liquidation { long, notional: number(py, &price)? * number(py, &size)? }
        }
        Fields::Trade { buy, price, size } => {
            Event::Trade { price: number(py, &price)?, size: number(py, &size)?, buy }
        }
        Fields::Top { bid, ask, mid, microprice } => {
            Event::Top { bid: number(py, &bid)?, ask: number(py, &ask)?, mid, microprice }
        }
        Fields::Book { kind, bids, asks, update_id } => match kind.as_str() {
            "SNAPSHOT" => Event::Snapshot(levels(&bids, &asks, update_id)),
            "RESYNC" => Event::Resync,
            _ => Event::Delta(levels(&bids, &asks, update_id)),
        },
        Fields::Ticker { funding_rate, next_funding_ns, open_interest } => Event::Ticker {
            funding_rate: funding_rate.map(|t| number(py, &t)).transpose()?,
            next_funding_ns,
            open_interest: open_interest.map(|t| number(py, &t)).transpose()?,
        },
    })
}

const SCHEMAS: [&str; 5] =
    ["liqbot.Liquidation", "liqbot.Trade", "liqbot.TopOfBook", "liqbot.BookUpdate", "liqbot.Ticker"];

/// `float(text)`: parsed here when Rust reads it as Python does, else by Python (which may raise).
fn number(py: Python<'_>, text: &str) -> PyResult<f64> {
    if let Ok(parsed) = text.parse::<f64>() {
        return Ok(parsed);
    }
    py.get_type::<PyFloat>().call1((text,))?.extract()
}

fn levels(bids: &[(Text, Text)], asks: &[(Text, Text)], update_id: i64) -> Levels {
    let side = |field: &str, pairs: &[(Text, Text)]| {
        pairs
            .iter()
            .map(|(p, s)| {
                Level::new(p, s).ok_or_else(|| {
                    PyValueError::new_err(format!("field {field}: level ({p}, {s}) is not decimal text"))
                })
            })
            .collect::<PyResult<Vec<_>>>()
    };
    Ok((side("bids", bids)?, side("asks", asks)?, update_id))
}

fn fields(schema: &str, record: &Datum<'_>) -> Option<(Fields, Option<&'static str>)> {
    Some(match schema {
        "liqbot.Liquidation" => {
            let long = record.text("position_side")? == "LONG";
            let fields =
                Fields::Liquidation { long, price: record.owned("bankruptcy_price")?, size: record.owned("size")? };
            (fields, Some(if long { "LONG" } else { "SHORT" }))
        }
        "liqbot.Trade" => {
            let buy = record.text("taker_side")? == "BUY";
            (Fields::Trade { buy, price: record.owned("price")?, size: record.owned("size")? }, None)
        }
        "liqbot.TopOfBook" => (
            Fields::Top {
                bid: record.owned("bid_price")?,
                ask: record.owned("ask_price")?,
                mid: record.double("mid")?,
                microprice: record.double("microprice")?,
            },
            None,
        ),
        "liqbot.BookUpdate" => (
            Fields::Book {
                kind: record.owned("update_type")?,
                bids: record.levels("bids")?,
                asks: record.levels("asks")?,
                update_id: record.long("update_id")?,
            },
            None,
        ),
        "liqbot.Ticker" => {
            let next_funding_ns = match record.field("next_funding_time_ns")? {
                Datum::Null => None,
                Datum::Long(v) => Some(*v),
                _ => return None,
            };
            let (funding_rate, open_interest) =
                (record.optional_text("funding_rate")?, record.optional_text("open_interest")?);
            (Fields::Ticker { funding_rate, next_funding_ns, open_interest }, None)
        }
        _ => return None,
    })
}

/// The market schemas' bodies behind the headers the serde writes for them (`Serde.header`).
#[pyclass(frozen, module = "liqbot_core", name = "MarketDecoder")]
pub struct MarketDecoder {
    by_header: HashMap<Vec<u8>, (Py<PyString>, &'static str, Node)>,
    header_lengths: Vec<usize>,
}

#[pymethods]
impl MarketDecoder {
    /// `schemas`: each header to (schema name, schema JSON text); a schema this path cannot read is left out.
    #[new]
    fn new(py: Python<'_>, schemas: &Bound<'_, PyDict>) -> PyResult<Self> {
        let mut by_header = HashMap::new();
        for (header, named) in schemas.iter() {
            let (name, text): (String, String) = named.extract()?;
            let parsed: Value = serde_json::from_str(&text).map_err(|e| PyValueError::new_err(e.to_string()))?;
            let known = SCHEMAS.iter().copied().find(|s| *s == name);
            if let (Some(known), Some(node)) = (known, compile(&parsed, &mut HashMap::new())) {
                by_header.insert(header.extract::<Vec<u8>>()?, (PyString::intern(py, known).unbind(), known, node));
            }
        }
        let mut header_lengths: Vec<usize> = by_header.keys().map(Vec::len).collect();
        header_lengths.sort_unstable();
        header_lengths.dedup();
        Ok(MarketDecoder { by_header, header_lengths })
    }

    /// The event in `payload`; None unless it is exactly one body of a market schema behind that schema's header.
    fn decode(&self, py: Python<'_>, payload: &[u8]) -> Option<MarketEvent> {
        self.event(py, payload)
    }
}

impl MarketDecoder {
    pub fn event(&self, py: Python<'_>, payload: &[u8]) -> Option<MarketEvent> {
        let (n, (schema, name, node)) =
            self.header_lengths.iter().find_map(|&n| Some((n, self.by_header.get(payload.get(..n)?)?)))?;
        let mut body = Body { data: &payload[n..], at: 0 };
        let record = body.value(node)?;
        if body.at != body.data.len() {
            return None;
        }
        let (fields, position_side) = fields(name, &record)?;
        Some(MarketEvent {
            schema: schema.clone_ref(py),
            venue: record.owned("venue")?,
            symbol: record.owned("symbol")?,
            event_id: record.owned("event_id")?,
            ts_event_ns: record.long("ts_event_ns")?,
            ts_recv_ns: record.long("ts_recv_ns")?,
            position_side,
            name,
            fields: Some(fields),
        })
    }
}
