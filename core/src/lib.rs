//! liqbot-core: the compiled per-event work, live and in replay (ingest, books, record decoding, features).
//!
//! Frames: Binance USD-M `trade`, `aggTrade`, `bookTicker` and `depthUpdate`, Bybit v5 `orderbook.*`, parsed
//! and Avro-encoded in one call. The Python parsers (`streams/binance/parse.py`, `streams/bybit/parse.py`) are
//! the specification: this path only accepts a frame its parser accepts, and then yields exactly the bytes that
//! parser plus fastavro would; anything else returns None and the Python parser decides. The tests compare both
//! on every frame of the real captures and on mutated frames.
//!
//! Books (`book.rs`): both paths apply book updates to the same `BookBuilder`, which publishes the update, the
//! top of book and RESYNC markers as Avro bodies; `streams/orderbook.py` is its Python face.
//!
//! Records (`decode.rs`): Avro bodies back to the project's record objects, for the consumers' hot path;
//! market bodies straight into the feature engine's events (`market.rs`), for the features agent's.
//!
//! Columns (`columns.rs`): Avro bodies straight into Arrow buffers, for the ClickHouse sink.
//!
//! Features (`features.rs`, `windows.rs`): the per-symbol feature state the agents and replays fold records
//! into; `features_py.rs` is its Python class and `decision/features.py` the product's face of it.
//!
//! Agents (`merge.rs`, `fold.rs`): the event-time merge of an agent's inputs, and the features agent's whole
//! consumed batch (freshness, decode, merge, fold) in one call.
//!
//! Decisions (`tops.rs`, `risk.rs`): the decide step's recent tops of book per symbol, for the top as of a past
//! time, and its per-symbol risk state (heartbeat, circuit breaker) that every market record is folded into.

mod avro;
mod binance;
mod book;
mod bybit;
mod columns;
mod decode;
mod features;
mod features_py;
mod fold;
mod json;
mod market;
mod merge;
mod pyfloat;
mod risk;
mod state;
mod tops;
mod windows;

use pyo3::exceptions::PyValueError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyString, PyTuple};

use book::{Builder, Level, Meta, Schema, Update, UpdateType};

/// A record, Avro-encoded: all a sink needs to produce it.
#[pyclass(frozen, get_all, module = "liqbot_core")]
struct Encoded {
    kind: Py<PyString>,
    schema: Py<PyString>,
    key: Py<PyString>,
    body: Py<PyBytes>,
    ts_exchange_ns: i64,
}

/// What one book update produced: the records to publish in order, and whether it revealed a gap or was dropped.
#[pyclass(frozen, get_all, module = "liqbot_core")]
struct BookStep {
    /// What the frame was: "book".
    kind: Py<PyString>,
    records: Py<PyTuple>,
    gap: bool,
    dropped: bool,
    reason: String,
    /// The venue topic or stream of the frame (to resubscribe on a gap); "" when applied from a record.
    topic: String,
    symbol: Py<PyString>,
    update_type: Py<PyString>,
    ts_exchange_ns: i64,
}

/// An interned Python string for the names the records carry (kinds, schemas, update types).
fn name(py: Python<'_>, value: &'static str) -> Py<PyString> {
    let interned = match value {
        "trade" => intern!(py, "trade"),
        "top_of_book" => intern!(py, "top_of_book"),
        "book" => intern!(py, "book"),
        "liqbot.Trade" => intern!(py, "liqbot.Trade"),
        "liqbot.TopOfBook" => intern!(py, "liqbot.TopOfBook"),
        "liqbot.BookUpdate" => intern!(py, "liqbot.BookUpdate"),
        "SNAPSHOT" => intern!(py, "SNAPSHOT"),
        "DELTA" => intern!(py, "DELTA"),
        "RESYNC" => intern!(py, "RESYNC"),
        other => return PyString::intern(py, other).unbind(),
    };
    interned.clone().unbind()
}

fn schema_name(schema: Schema) -> &'static str {
    match schema {
        Schema::Trade => "liqbot.Trade",
        Schema::TopOfBook => "liqbot.TopOfBook",
        Schema::BookUpdate => "liqbot.BookUpdate",
    }
}

fn type_name(kind: UpdateType) -> &'static str {
    match kind {
        UpdateType::Snapshot => "SNAPSHOT",
        UpdateType::Delta => "DELTA",
        UpdateType::Resync => "RESYNC",
    }
}

/// The order books of a feed (`book::Builder`).
#[pyclass(module = "liqbot_core", name = "BookBuilder")]
#[derive(Default)]
struct PyBookBuilder(Builder);

#[pymethods]
impl PyBookBuilder {
    #[new]
    fn new() -> Self {
        Self::default()
    }

    /// Apply a `BookUpdate` record; ValueError (naming the field) when it is not one the schema can carry.
    fn apply(&mut self, py: Python<'_>, update: &Bound<'_, PyAny>) -> PyResult<BookStep> {
        book_step(py, &mut self.0, record_update(update)?, String::new())
    }

    /// A copy of one book as it is now, None while there is none (before a snapshot, after a gap).
    fn book(&self, venue: &str, symbol: &str, depth: i64) -> Option<PyBook> {
        self.0.book(venue, symbol, depth).cloned().map(PyBook)
    }
}

/// (price, size) text of levels, best first.
type Pairs<'a> = Vec<(&'a str, &'a str)>;
type OwnedPairs = Vec<(String, String)>;

/// One order book on its own, levels only (no continuity): what feature code folds records into.
#[pyclass(module = "liqbot_core", name = "Book")]
#[derive(Default)]
pub(crate) struct PyBook(pub(crate) book::Book);

#[pymethods]
impl PyBook {
    #[new]
    fn new() -> Self {
        Self::default()
    }

    /// The book a `BookUpdate` snapshot describes.
    fn reset(&mut self, update: &Bound<'_, PyAny>) -> PyResult<()> {
        let (bids, asks) = (levels(update, "bids")?, levels(update, "asks")?);
        self.0.reset(bids, asks, long(update, "update_id")?);
        Ok(())
    }

    /// A `BookUpdate` delta's levels applied.
    fn apply(&mut self, update: &Bound<'_, PyAny>) -> PyResult<()> {
        let (bids, asks) = (levels(update, "bids")?, levels(update, "asks")?);
        self.0.apply(bids, asks, long(update, "update_id")?);
        Ok(())
    }

    #[getter]
    fn update_id(&self) -> i64 {
        self.0.update_id
    }

    #[getter]
    fn fresh(&self) -> bool {
        self.0.fresh
    }

    /// The best `levels` (price, size) of each side: bids highest first, asks lowest first.
    fn top(&self, levels: usize) -> (Pairs<'_>, Pairs<'_>) {
        let side = |bid| self.0.side(bid).take(levels).map(|l| (&*l.price, &*l.size)).collect();
        (side(true), side(false))
    }

    /// How many levels one side has.
    fn count(&self, bid: bool) -> usize {
        self.0.len(bid)
    }

    /// The (price, size) at a price, if the side has it.
    fn level(&self, bid: bool, price: f64) -> Option<(&str, &str)> {
        self.0.level(bid, price).map(|l| (&*l.price, &*l.size))
    }

    /// The prices of one side, best first.
    fn prices(&self, bid: bool) -> Vec<f64> {
        self.0.side(bid).map(|l| l.price_f).collect()
    }

    /// Pickling (feature state is saved and restored): levels as text, update id, freshness.
    fn __getstate__(&self) -> (Pairs<'_>, Pairs<'_>, i64, bool) {
        let side = |bid| self.0.side(bid).map(|l| (&*l.price, &*l.size)).collect();
        (side(true), side(false), self.0.update_id, self.0.fresh)
    }

    fn __setstate__(&mut self, state: (OwnedPairs, OwnedPairs, i64, bool)) -> PyResult<()> {
        let (bids, asks, update_id, fresh) = state;
        let parse = |pairs: OwnedPairs| -> PyResult<Vec<Level>> {
            pairs
                .iter()
                .map(|(p, s)| Level::new(p, s).ok_or_else(|| bad("state", "a level is not decimal text")))
                .collect()
        };
        self.0.reset(parse(bids)?, parse(asks)?, update_id);
        self.0.fresh = fresh;
        Ok(())
    }
}

fn book_step(py: Python<'_>, builder: &mut Builder, update: Update, topic: String) -> PyResult<BookStep> {
    let symbol = PyString::new(py, &update.meta.symbol).unbind();
    let (update_type, ts_exchange_ns) = (name(py, type_name(update.meta.kind)), update.meta.ts_exchange_ns);
    let step = builder.apply(update);
    let records = step
        .records
        .into_iter()
        .map(|r| {
            let (kind, schema) = (name(py, "book"), name(py, schema_name(r.schema)));
            let body = PyBytes::new(py, &r.body).unbind();
            Py::new(py, Encoded { kind, schema, key: symbol.clone_ref(py), body, ts_exchange_ns: r.ts_exchange_ns })
        })
        .collect::<PyResult<Vec<_>>>()?;
    let records = PyTuple::new(py, records)?.unbind();
    let kind = name(py, "book");
    Ok(BookStep {
        kind,
        records,
        gap: step.gap,
        dropped: step.dropped,
        reason: step.reason,
        topic,
        symbol,
        update_type,
        ts_exchange_ns,
    })
}

fn bad(field: &str, what: &str) -> PyErr {
    PyValueError::new_err(format!("field {field}: {what}"))
}

pub(crate) fn attr<'py>(record: &Bound<'py, PyAny>, field: &str) -> PyResult<Bound<'py, PyAny>> {
    record.getattr(field).map_err(|_| bad(field, "missing"))
}

fn string(record: &Bound<'_, PyAny>, field: &str) -> PyResult<String> {
    attr(record, field)?.extract().map_err(|_| bad(field, "not a string"))
}

/// A `long` (or `int`) field: any Python int in range, True and False too, as fastavro writes them.
pub(crate) fn long(record: &Bound<'_, PyAny>, field: &str) -> PyResult<i64> {
    attr(record, field)?.extract().map_err(|_| bad(field, "not an integer of 64 bits"))
}

/// A `["null", "long"]` field: fastavro's union takes None or an int, not a bool.
fn optional_long(record: &Bound<'_, PyAny>, field: &str) -> PyResult<Option<i64>> {
    let value = attr(record, field)?;
    if value.is_none() {
        return Ok(None);
    }
    if value.is_instance_of::<PyBool>() {
        return Err(bad(field, "a bool, not null or a long"));
    }
    value.extract().map(Some).map_err(|_| bad(field, "not null or an integer of 64 bits"))
}

/// A str's text; None for anything else, and for a str with lone surrogates (not UTF-8).
pub(crate) fn text<'a>(value: &'a Bound<'_, PyAny>) -> Option<&'a str> {
    value.cast::<PyString>().ok()?.to_str().ok()
}

/// A side's `BookLevel`s: price and size are decimal text.
pub(crate) fn levels(record: &Bound<'_, PyAny>, field: &str) -> PyResult<Vec<Level>> {
    let py = record.py();
    let names = (intern!(py, "price"), intern!(py, "size")); // made once: a book update has dozens of levels
    let mut out = Vec::new();
    for item in attr(record, field)?.try_iter().map_err(|_| bad(field, "not a sequence of levels"))? {
        let item = item?;
        let price = item.getattr(names.0).map_err(|_| bad("price", "missing"))?;
        let size = item.getattr(names.1).map_err(|_| bad("size", "missing"))?;
        let level = match (text(&price), text(&size)) {
            (Some(p), Some(s)) => Level::new(p, s),
            _ => None,
        };
        out.push(level.ok_or_else(|| bad(field, &format!("level ({price}, {size}) is not decimal text")))?);
    }
    Ok(out)
}

/// A `BookUpdate` record as the builder's update; ValueError unless every field fits the schema.
fn record_update(record: &Bound<'_, PyAny>) -> PyResult<Update> {
    let kind = match string(record, "update_type")?.as_str() {
        "SNAPSHOT" => UpdateType::Snapshot,
        "DELTA" => UpdateType::Delta,
        "RESYNC" => UpdateType::Resync,
        _ => return Err(bad("update_type", "not SNAPSHOT, DELTA or RESYNC")),
    };
    let meta = Meta {
        venue: string(record, "venue")?,
        symbol: string(record, "symbol")?,
        event_id: string(record, "event_id")?,
        ts_event_ns: long(record, "ts_event_ns")?,
        ts_exchange_ns: long(record, "ts_exchange_ns")?,
        ts_recv_ns: long(record, "ts_recv_ns")?,
        kind,
        depth: long(record, "depth")?,
        update_id: long(record, "update_id")?,
        seq: optional_long(record, "seq")?,
        prev_update_id: optional_long(record, "prev_update_id")?,
    };
    Ok(Update { meta, bids: levels(record, "bids")?, asks: levels(record, "asks")? })
}

/// The records of a Binance trade, aggTrade or bookTicker frame (an `Encoded`), or the `BookStep` of a depth
/// update applied to `books`; None when the Python parser must decide.
#[pyfunction]
fn binance_hot<'py>(
    py: Python<'py>,
    frame: &Bound<'py, PyAny>,
    ts_recv_ns: i64,
    venue: &str,
    books: &Bound<'py, PyBookBuilder>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let Some(frame) = text(frame) else { return Ok(None) }; // bytes, or lone surrogates: Python's call
    Ok(match binance::frame(frame, ts_recv_ns, venue) {
        None => None,
        Some(binance::Frame::Record(kind, schema, key, body, ts_exchange_ns)) => {
            let (kind, schema) = (name(py, kind), name(py, schema_name(schema)));
            let (key, body) = (PyString::new(py, &key).unbind(), PyBytes::new(py, &body).unbind());
            Some(Bound::new(py, Encoded { kind, schema, key, body, ts_exchange_ns })?.into_any())
        }
        Some(binance::Frame::Book(update, topic)) => {
            Some(Bound::new(py, book_step(py, &mut books.borrow_mut().0, update, topic)?)?.into_any())
        }
    })
}

/// The `BookStep` of a Bybit order-book frame applied to `books`; None when the Python parser must decide.
#[pyfunction]
fn bybit_hot(
    py: Python<'_>,
    frame: &Bound<'_, PyAny>,
    ts_recv_ns: i64,
    venue: &str,
    books: &Bound<'_, PyBookBuilder>,
) -> PyResult<Option<BookStep>> {
    let Some(frame) = text(frame) else { return Ok(None) };
    match bybit::book_frame(frame, ts_recv_ns, venue) {
        None => Ok(None),
        Some((update, topic)) => book_step(py, &mut books.borrow_mut().0, update, topic).map(Some),
    }
}

#[pymodule]
fn liqbot_core(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<Encoded>()?;
    module.add_class::<BookStep>()?;
    module.add_class::<PyBook>()?;
    module.add_class::<PyBookBuilder>()?;
    module.add_class::<decode::RecordDecoder>()?;
    module.add_class::<columns::ColumnDecoder>()?;
    module.add_class::<features_py::PyFeatureEngine>()?;
    module.add_class::<market::MarketDecoder>()?;
    module.add_class::<market::MarketEvent>()?;
    module.add_class::<merge::PyMerge>()?;
    module.add_class::<merge::PyOrdered>()?;
    module.add_class::<fold::MarketFold>()?;
    module.add_class::<tops::PyTops>()?;
    module.add_class::<risk::PySymbolRisk>()?;
    module.add_function(wrap_pyfunction!(binance_hot, module)?)?;
    module.add_function(wrap_pyfunction!(bybit_hot, module)?)
}
