//! `TopsAsOf`: the recent tops of book of one symbol, for the top *as of* a past event time (the decide step's
//! join in `decision/pipeline.py`; the rule it keeps: `tests/oracle/tops.py`).
//!
//! The tops are held as columns, not as Python objects: a few thousand of them per symbol save as one byte
//! string (the agent's snapshot blocks its thread while it pickles) and give the garbage collector nothing to
//! walk. A top becomes a `schemas.records.TopOfBook` again only when it is asked for.

use pyo3::exceptions::PyValueError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict, PyString, PyType};

use crate::state::{Reader, Writer};

/// The text fields of a top, in this order: event_id, bid_price, bid_size, ask_price, ask_size.
const TEXTS: usize = 5;

/// Everything of a top but its event time (`Tops::times`, the column searched).
#[derive(Clone, Copy, Debug)]
struct Row {
    ints: [i64; 3],       // ts_exchange_ns, ts_recv_ns, update_id
    floats: [f64; 2],     // mid, microprice
    ends: [usize; TEXTS], // where each text field ends in `Tops::texts`
}

impl PartialEq for Row {
    /// Floats by their bits: a restored NaN mid equals the saved one.
    fn eq(&self, other: &Self) -> bool {
        self.ints == other.ints
            && self.ends == other.ends
            && self.floats.map(f64::to_bits) == other.floats.map(f64::to_bits)
    }
}

/// One top as read from a record.
#[derive(Clone, Debug, PartialEq)]
pub struct Top<'a> {
    pub ts_event_ns: i64,
    pub ints: [i64; 3],
    pub floats: [f64; 2],
    pub texts: [&'a str; TEXTS],
}

/// The tops of one symbol in event-time order; at least the newest `kept` of them once that many came.
#[derive(Clone, Debug, PartialEq)]
pub struct Tops {
    kept: usize,
    venue: String,
    symbol: String,
    times: Vec<i64>, // ts_event_ns
    rows: Vec<Row>,
    texts: String, // every top's text fields, one after another
}

impl Tops {
    pub fn new(kept: usize) -> Tops {
        Tops { kept, venue: String::new(), symbol: String::new(), times: vec![], rows: vec![], texts: String::new() }
    }

    pub fn len(&self) -> usize {
        self.times.len()
    }

    /// Whether a top of this time would be kept: one older than the newest held is not (that newer top already
    /// stands for its time).
    pub fn takes(&self, ts_event_ns: i64) -> bool {
        self.times.last().is_none_or(|&newest| ts_event_ns >= newest)
    }

    /// Keep a top of the symbol; at twice `kept` tops, the oldest go so that `kept` remain (a column cannot drop
    /// its head one at a time cheaply, so it drops half of it at once).
    pub fn add(&mut self, venue: &str, symbol: &str, top: &Top<'_>) {
        if !self.takes(top.ts_event_ns) {
            return;
        }
        if self.venue != venue || self.symbol != symbol {
            (self.venue, self.symbol) = (venue.to_owned(), symbol.to_owned());
        }
        self.push(top);
        if self.len() >= 2 * self.kept {
            self.drop_oldest(self.len() - self.kept);
        }
    }

    fn push(&mut self, top: &Top<'_>) {
        let ends = top.texts.map(|text| {
            self.texts.push_str(text);
            self.texts.len()
        });
        self.times.push(top.ts_event_ns);
        self.rows.push(Row { ints: top.ints, floats: top.floats, ends });
    }

    fn drop_oldest(&mut self, count: usize) {
        let cut = self.rows[count - 1].ends[TEXTS - 1];
        self.times.drain(..count);
        self.rows.drain(..count);
        self.texts.drain(..cut);
        self.rows.iter_mut().flat_map(|row| &mut row.ends).for_each(|end| *end -= cut);
    }

    /// The newest top at or before `ts_ns`, if one is held.
    pub fn as_of(&self, ts_ns: i64) -> Option<Top<'_>> {
        let i = self.times.partition_point(|&t| t <= ts_ns).checked_sub(1)?;
        Some(self.top(i))
    }

    fn top(&self, i: usize) -> Top<'_> {
        let row = &self.rows[i];
        let mut start = if i == 0 { 0 } else { self.rows[i - 1].ends[TEXTS - 1] };
        let texts = row.ends.map(|end| {
            let text = &self.texts[start..end];
            start = end;
            text
        });
        Top { ts_event_ns: self.times[i], ints: row.ints, floats: row.floats, texts }
    }

    /// Venue and symbol, then each top: time, ints, floats, texts.
    pub fn save(&self) -> Vec<u8> {
        let mut out = Writer::default();
        out.str(&self.venue);
        out.str(&self.symbol);
        out.u64(self.len() as u64);
        for i in 0..self.len() {
            let top = self.top(i);
            out.i64(top.ts_event_ns);
            top.ints.into_iter().for_each(|v| out.i64(v));
            top.floats.into_iter().for_each(|v| out.f64(v));
            top.texts.into_iter().for_each(|v| out.str(v));
        }
        out.into_bytes()
    }

    /// What `save` wrote, kept `kept` from the next add on; None for bytes it did not write (truncated, foreign,
    /// or tops out of event-time order).
    pub fn load(kept: usize, bytes: &[u8]) -> Option<Tops> {
        let mut input = Reader::new(bytes);
        let mut tops = Tops::new(kept);
        (tops.venue, tops.symbol) = (input.str()?.to_owned(), input.str()?.to_owned());
        for _ in 0..input.len(6 * 8 + TEXTS * 8)? {
            let ts_event_ns = input.i64()?;
            let ints = [input.i64()?, input.i64()?, input.i64()?];
            let floats = [input.f64()?, input.f64()?];
            let texts = [input.str()?, input.str()?, input.str()?, input.str()?, input.str()?];
            if !tops.takes(ts_event_ns) {
                return None;
            }
            tops.push(&Top { ts_event_ns, ints, floats, texts });
        }
        input.done().then_some(tops)
    }
}

static TOP_OF_BOOK: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// The recent tops of book of one symbol, for the top as of a past event time (the decide step's join).
///
/// Held as columns, not as `TopOfBook` objects: a snapshot pickles them as one byte string, and the garbage
/// collector has nothing to walk. `TopOfBook` objects go in, and come out again when asked for.
#[pyclass(module = "liqbot_core", name = "TopsAsOf")]
pub struct PyTops(Tops);

#[pymethods]
impl PyTops {
    /// At least the newest `kept` tops are held once that many came (ValueError below 1).
    #[new]
    fn new(kept: usize) -> PyResult<Self> {
        if kept == 0 {
            return Err(PyValueError::new_err("TopsAsOf keeps at least 1 top"));
        }
        Ok(PyTops(Tops::new(kept)))
    }

    /// Keep a `TopOfBook` (its fields read by name); one older than the newest held is ignored.
    fn add(&mut self, top: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = top.py();
        let ts_event_ns = top.getattr(intern!(py, "ts_event_ns"))?.extract()?;
        if !self.0.takes(ts_event_ns) {
            return Ok(()); // read no further, as the rule's `add` does
        }
        let (venue, symbol) = (text(top, intern!(py, "venue"))?, text(top, intern!(py, "symbol"))?);
        let ints = [
            long(top, intern!(py, "ts_exchange_ns"))?,
            long(top, intern!(py, "ts_recv_ns"))?,
            long(top, intern!(py, "update_id"))?,
        ];
        let floats = [float(top, intern!(py, "mid"))?, float(top, intern!(py, "microprice"))?];
        let fields = [
            text(top, intern!(py, "event_id"))?,
            text(top, intern!(py, "bid_price"))?,
            text(top, intern!(py, "bid_size"))?,
            text(top, intern!(py, "ask_price"))?,
            text(top, intern!(py, "ask_size"))?,
        ];
        let mut texts = [""; TEXTS];
        for (text, field) in texts.iter_mut().zip(&fields) {
            *text = field.to_str()?;
        }
        self.0.add(venue.to_str()?, symbol.to_str()?, &Top { ts_event_ns, ints, floats, texts });
        Ok(())
    }

    /// The newest top with `ts_event_ns <= ts_ns` as a `TopOfBook`; None when none held is that old.
    fn as_of<'py>(&self, py: Python<'py>, ts_ns: i64) -> PyResult<Option<Bound<'py, PyAny>>> {
        let Some(top) = self.0.as_of(ts_ns) else { return Ok(None) };
        let [event_id, bid_price, bid_size, ask_price, ask_size] = top.texts;
        let [ts_exchange_ns, ts_recv_ns, update_id] = top.ints;
        let [mid, microprice] = top.floats;
        let fields = PyDict::new(py);
        fields.set_item(intern!(py, "venue"), &self.0.venue)?;
        fields.set_item(intern!(py, "symbol"), &self.0.symbol)?;
        fields.set_item(intern!(py, "event_id"), event_id)?;
        fields.set_item(intern!(py, "ts_event_ns"), top.ts_event_ns)?;
        fields.set_item(intern!(py, "ts_exchange_ns"), ts_exchange_ns)?;
        fields.set_item(intern!(py, "ts_recv_ns"), ts_recv_ns)?;
        fields.set_item(intern!(py, "update_id"), update_id)?;
        fields.set_item(intern!(py, "bid_price"), bid_price)?;
        fields.set_item(intern!(py, "bid_size"), bid_size)?;
        fields.set_item(intern!(py, "ask_price"), ask_price)?;
        fields.set_item(intern!(py, "ask_size"), ask_size)?;
        fields.set_item(intern!(py, "mid"), mid)?;
        fields.set_item(intern!(py, "microprice"), microprice)?;
        let class = TOP_OF_BOOK.import(py, "schemas.records", "TopOfBook")?;
        class.call((), Some(&fields)).map(Some)
    }

    /// How many tops are held.
    fn __len__(&self) -> usize {
        self.0.len()
    }

    fn __eq__(&self, other: &Self) -> bool {
        self.0 == other.0
    }

    fn __repr__(&self) -> String {
        let Tops { kept, venue, symbol, .. } = &self.0;
        format!("TopsAsOf(kept={kept}, venue={venue:?}, symbol={symbol:?}, held={})", self.0.len())
    }

    fn __getnewargs__(&self) -> (usize,) {
        (self.0.kept,)
    }

    /// The held tops as compact bytes (the agents' snapshots).
    fn __getstate__<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.0.save())
    }

    fn __setstate__(&mut self, state: &[u8]) -> PyResult<()> {
        self.0 = Tops::load(self.0.kept, state).ok_or_else(|| {
            PyValueError::new_err("not a saved TopsAsOf: the state is truncated, foreign or out of event-time order")
        })?;
        Ok(())
    }
}

fn long<'py>(top: &Bound<'py, PyAny>, name: &Bound<'py, PyString>) -> PyResult<i64> {
    top.getattr(name)?.extract()
}

fn float<'py>(top: &Bound<'py, PyAny>, name: &Bound<'py, PyString>) -> PyResult<f64> {
    top.getattr(name)?.extract()
}

fn text<'py>(top: &Bound<'py, PyAny>, name: &Bound<'py, PyString>) -> PyResult<Bound<'py, PyString>> {
    Ok(top.getattr(name)?.cast_into::<PyString>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn top(ts_event_ns: i64, id: &str) -> Top<'_> {
        Top {
            ts_event_ns,
            ints: [ts_event_ns - 1, ts_event_ns + 1, 7],
            floats: [1.5, f64::NAN],
            texts: [id, "1", "é", "2", ""],
        }
    }

    fn ids(tops: &Tops) -> Vec<&str> {
        (0..tops.len()).map(|i| tops.top(i).texts[0]).collect()
    }

    #[test]
    fn as_of_is_the_newest_top_at_or_before_a_time() {
        let mut tops = Tops::new(100);
        for (ts, id) in [(10, "a"), (20, "b"), (20, "c"), (30, "d")] {
            tops.add("v", "S", &top(ts, id));
        }
        let id = |ts| tops.as_of(ts).map(|t| t.texts[0]);
        assert_eq!(
            [id(9), id(10), id(19), id(20), id(29), id(30), id(i64::MAX)],
            [None, Some("a"), Some("a"), Some("c"), Some("c"), Some("d"), Some("d")]
        );
        assert_eq!(tops.as_of(20).map(|t| (t.ints, t.texts)), Some(([19, 21, 7], ["c", "1", "é", "2", ""])));
    }

    #[test]
    fn an_older_top_is_ignored_and_venue_and_symbol_come_from_the_newest() {
        let mut tops = Tops::new(100);
        tops.add("v", "S", &top(10, "a"));
        tops.add("w", "T", &top(9, "old"));
        assert_eq!((ids(&tops), tops.symbol.as_str()), (vec!["a"], "S"));
        tops.add("w", "T", &top(10, "b"));
        assert_eq!((ids(&tops), tops.venue.as_str(), tops.symbol.as_str()), (vec!["a", "b"], "w", "T"));
    }

    #[test]
    fn at_twice_kept_the_oldest_go_so_that_kept_remain() {
        let mut tops = Tops::new(3);
        let names: Vec<String> = (0..12).map(|i| format!("id{i}")).collect();
        let mut sizes = vec![];
        for (i, name) in names.iter().enumerate() {
            tops.add("v", "S", &top(i as i64, name));
            sizes.push(tops.len());
        }
        assert_eq!(sizes, [1, 2, 3, 4, 5, 3, 4, 5, 3, 4, 5, 3]);
        assert_eq!(ids(&tops), ["id9", "id10", "id11"]);
        assert!(tops.as_of(8).is_none());
        assert_eq!(tops.as_of(9).map(|t| t.texts), Some(["id9", "1", "é", "2", ""]));
    }

    #[test]
    fn saved_tops_load_equal_and_bad_bytes_do_not() {
        let mut tops = Tops::new(2);
        for (ts, id) in [(1, "a"), (2, "b"), (3, "ü"), (3, "d")] {
            tops.add("v", "S", &top(ts, id));
        }
        let saved = tops.save();
        assert_eq!(Tops::load(2, &saved), Some(tops.clone())); // NaN microprices equal by their bits
        assert_ne!(Tops::load(3, &saved), Some(tops.clone()));
        assert!((0..saved.len()).all(|n| Tops::load(2, &saved[..n]).is_none()));
        assert!(Tops::load(2, &[saved.as_slice(), &[0]].concat()).is_none());
        let mut reordered = Tops::new(2);
        reordered.push(&top(5, "x"));
        reordered.push(&top(4, "y"));
        assert!(Tops::load(2, &reordered.save()).is_none());
    }
}
