//! `FeatureEngine`, the Python face of `features.rs`: records in as the project's record objects, values out.

use pyo3::exceptions::PyKeyError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyFloat, PyString, PyTuple};

use crate::features::{bad_state, Engine, Event, Levels, Meta, Spec};
use crate::market::{self, MarketEvent};
use crate::{attr, levels, long, text, PyBook};

/// The spec's numbers in constructor order (what pickling passes back to `__new__`): liquidation windows (ns,
/// published indices, acceleration index pairs), burst (sums index, window ns, baseline windows, sigma floor),
/// largest and median windows, trade windows, depth levels, open interest windows, lateness (ns).
type SpecArgs = (
    (Vec<i64>, Vec<usize>, Vec<(usize, usize)>),
    (usize, i64, i64, f64),
    i64,
    i64,
    Vec<i64>,
    Vec<usize>,
    Vec<i64>,
    f64,
);

/// All symbols' feature state (`features::Engine`); made from a FeatureSpec's numbers (`decision/features.py`).
#[pyclass(module = "liqbot_core", name = "FeatureEngine")]
pub struct PyFeatureEngine(pub(crate) Engine);

#[pymethods]
impl PyFeatureEngine {
    #[new]
    fn new(
        liquidation: (Vec<i64>, Vec<usize>, Vec<(usize, usize)>),
        burst: (usize, i64, i64, f64),
        largest_window_ns: i64,
        median_window_ns: i64,
        trade_windows_ns: Vec<i64>,
        depth_levels: Vec<usize>,
        oi_windows_ns: Vec<i64>,
        lateness_ns: f64,
    ) -> Self {
        let (
            (liq_windows_ns, liq_published, acceleration),
            (burst_sums, burst_window_ns, burst_baseline_windows, burst_sigma_floor),
        ) = (liquidation, burst);
        PyFeatureEngine(Engine::new(Spec {
            liq_windows_ns,
            liq_published,
            acceleration,
            burst_sums,
            burst_window_ns,
            burst_baseline_windows,
            burst_sigma_floor,
            largest_window_ns,
            median_window_ns,
            trade_windows_ns,
            depth_levels,
            oi_windows_ns,
            lateness_ns,
        }))
    }

    /// Fold a record (or a `MarketEvent`) into its symbol; False when it was a duplicate or too late (counted
    /// either way).
    fn apply(&mut self, record: &Bound<'_, PyAny>) -> PyResult<bool> {
        if let Ok(event) = record.cast::<MarketEvent>() {
            return self.fold_event(record.py(), &mut event.borrow_mut());
        }
        let schema = attr(record, "SCHEMA")?;
        self.fold(record, text(&schema).unwrap_or(""))
    }

    /// `apply`, and at an applied liquidation its symbol's (watermark, values); None otherwise.
    pub(crate) fn update<'py>(&mut self, record: &Bound<'py, PyAny>) -> PyResult<Option<(i64, Bound<'py, PyTuple>)>> {
        let py = record.py();
        if let Ok(event) = record.cast::<MarketEvent>() {
            let mut event = event.borrow_mut();
            if !self.fold_event(py, &mut event)? || event.name != "liqbot.Liquidation" {
                return Ok(None);
            }
            return self.values(py, &event.venue, &event.symbol).map(Some);
        }
        let schema = attr(record, "SCHEMA")?;
        let schema = text(&schema).unwrap_or("");
        if !self.fold(record, schema)? || schema != "liqbot.Liquidation" {
            return Ok(None);
        }
        self.values(py, &string(record, "venue")?, &string(record, "symbol")?).map(Some)
    }

    /// The (watermark, values) of one symbol, in the spec's order; KeyError for a symbol never seen.
    pub(crate) fn values<'py>(
        &self,
        py: Python<'py>,
        venue: &str,
        symbol: &str,
    ) -> PyResult<(i64, Bound<'py, PyTuple>)> {
        let state = &self.0.states[self.slot(venue, symbol)?];
        Ok((state.watermark_ns, PyTuple::new(py, state.values(&self.0.spec)?)?))
    }

    /// (venue, symbol) of every symbol seen, first seen first.
    fn symbols(&self) -> Vec<(String, String)> {
        self.0.keys.clone()
    }

    /// applied, reordered, late, duplicate and late:<schema>, each once it happened.
    fn counts(&self) -> Vec<(String, u64)> {
        self.0.counts.clone()
    }

    /// A copy of one symbol's book as the features read it; None before its snapshot and after a RESYNC.
    fn book(&self, venue: &str, symbol: &str) -> PyResult<Option<PyBook>> {
        Ok(self.0.states[self.slot(venue, symbol)?].book.clone().map(PyBook))
    }

    /// The mid of one symbol's newest top of book; None before one and after a RESYNC.
    fn mid(&self, venue: &str, symbol: &str) -> PyResult<Option<f64>> {
        Ok(self.0.states[self.slot(venue, symbol)?].mid())
    }

    fn __getnewargs__(&self) -> SpecArgs {
        let s = &self.0.spec;
        let liquidation = (s.liq_windows_ns.clone(), s.liq_published.clone(), s.acceleration.clone());
        let burst = (s.burst_sums, s.burst_window_ns, s.burst_baseline_windows, s.burst_sigma_floor);
        (
            liquidation,
            burst,
            s.largest_window_ns,
            s.median_window_ns,
            s.trade_windows_ns.clone(),
            s.depth_levels.clone(),
            s.oi_windows_ns.clone(),
            s.lateness_ns,
        )
    }

    /// Every symbol's state and the counts, as compact bytes (the agents' changelog snapshots).
    fn __getstate__<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.0.save())
    }

    fn __setstate__(&mut self, state: &[u8]) -> PyResult<()> {
        self.0 = Engine::load(self.0.spec.clone(), state).ok_or_else(bad_state)?;
        Ok(())
    }
}

impl PyFeatureEngine {
    fn slot(&self, venue: &str, symbol: &str) -> PyResult<usize> {
        self.0.find(venue, symbol).ok_or_else(|| PyKeyError::new_err((venue.to_owned(), symbol.to_owned())))
    }

    fn fold(&mut self, record: &Bound<'_, PyAny>, schema: &str) -> PyResult<bool> {
        let py = record.py();
        let (venue, symbol) = (attr(record, "venue")?, attr(record, "symbol")?);
        let event_id = attr(record, "event_id")?;
        let meta = Meta {
            venue: str_of(&venue)?,
            symbol: str_of(&symbol)?,
            schema,
            event_id: str_of(&event_id)?,
            ts_event_ns: record.getattr(intern!(py, "ts_event_ns"))?.extract()?,
            windowed: matches!(schema, "liqbot.Liquidation" | "liqbot.Trade"),
        };
        self.0.apply(&meta, || event(record, schema))
    }
}

impl PyFeatureEngine {
    /// A decoded body (`market.rs`): the same `Engine::apply` as a record's, its text parsed at the same point.
    pub(crate) fn fold_event(&mut self, py: Python<'_>, event: &mut MarketEvent) -> PyResult<bool> {
        let fields = event.take_fields()?;
        self.0.apply(&event.meta(), || market::event(py, fields))
    }
}

fn str_of<'a>(value: &'a Bound<'_, PyAny>) -> PyResult<&'a str> {
    Ok(value.cast::<PyString>()?.to_str()?)
}

fn string(record: &Bound<'_, PyAny>, field: &str) -> PyResult<String> {
    attr(record, field)?.extract()
}

/// `float(value)`: decimal text parsed here (correctly rounded, as Python's is), anything else by Python.
fn number(value: &Bound<'_, PyAny>) -> PyResult<f64> {
    if let Some(parsed) = text(value).and_then(|t| t.parse::<f64>().ok()) {
        return Ok(parsed);
    }
    value.py().get_type::<PyFloat>().call1((value,))?.extract()
}

fn field_number(record: &Bound<'_, PyAny>, field: &Bound<'_, PyString>) -> PyResult<f64> {
    number(&record.getattr(field)?)
}

fn optional_number(record: &Bound<'_, PyAny>, field: &Bound<'_, PyString>) -> PyResult<Option<f64>> {
    let value = record.getattr(field)?;
    if value.is_none() {
        return Ok(None);
    }
    number(&value).map(Some)
}

fn is(record: &Bound<'_, PyAny>, field: &Bound<'_, PyString>, expected: &str) -> PyResult<bool> {
    Ok(text(&record.getattr(field)?) == Some(expected))
}

/// The event a record brings, by its schema; a record of another schema only moves time.
fn event(record: &Bound<'_, PyAny>, schema: &str) -> PyResult<Event> {
    let py = record.py();
    Ok(match schema {
        "liqbot.Liquidation" => Event::Liquidation {
            long: is(record, intern!(py, "position_side"), "LONG")?,
            notional: field_number(record, intern!(py, "bankruptcy_price"))?
                * field_number(record, intern!(py, "size"))?,
        },
        "liqbot.Trade" => Event::Trade {
            price: field_number(record, intern!(py, "price"))?,
            size: field_number(record, intern!(py, "size"))?,
            buy: is(record, intern!(py, "taker_side"), "BUY")?,
        },
        "liqbot.TopOfBook" => Event::Top {
            bid: field_number(record, intern!(py, "bid_price"))?,
            ask: field_number(record, intern!(py, "ask_price"))?,
            mid: record.getattr(intern!(py, "mid"))?.extract()?,
            microprice: record.getattr(intern!(py, "microprice"))?.extract()?,
        },
        "liqbot.BookUpdate" => match text(&record.getattr(intern!(py, "update_type"))?) {
            Some("SNAPSHOT") => Event::Snapshot(book_levels(record)),
            Some("RESYNC") => Event::Resync,
            _ => Event::Delta(book_levels(record)),
        },
        "liqbot.Ticker" => Event::Ticker {
            funding_rate: optional_number(record, intern!(py, "funding_rate"))?,
            next_funding_ns: record.getattr(intern!(py, "next_funding_time_ns"))?.extract()?,
            open_interest: optional_number(record, intern!(py, "open_interest"))?,
        },
        _ => Event::Other,
    })
}

fn book_levels(record: &Bound<'_, PyAny>) -> Levels {
    Ok((levels(record, "bids")?, levels(record, "asks")?, long(record, "update_id")?))
}
