//! The compiled hot path of ingest: Binance USD-M `trade`, `aggTrade` and `bookTicker` frames straight to
//! Avro bodies of `liqbot.Trade` and `liqbot.TopOfBook`.
//!
//! `streams/binance/parse.py` is the specification. This path only ever accepts a frame the Python parser
//! accepts, and then yields exactly the bytes the Python parser plus fastavro would; anything else (another
//! event type, a missing or mistyped field, escaped strings, an overflow) returns None and the caller takes
//! the Python path, which produces the record or the precise error. The tests compare both paths on every
//! frame of the real capture and on mutated frames.

use std::collections::HashMap;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};
use serde_json::value::RawValue;

type Fields<'a> = HashMap<&'a str, &'a RawValue>;

const NS_PER_MS: i64 = 1_000_000;

/// A frame's one record, Avro-encoded: all a sink needs to produce it.
#[pyclass(frozen, get_all, module = "liqbot_native")]
struct Encoded {
    kind: &'static str,
    schema: &'static str,
    key: Py<PyString>,
    body: Py<PyBytes>,
    ts_exchange_ns: i64,
}

/// Avro binary encoding, only the types the two schemas use.
struct Avro(Vec<u8>);

impl Avro {
    fn long(&mut self, value: i64) -> &mut Self {
        let mut n = ((value << 1) ^ (value >> 63)) as u64; // zigzag
        while n >= 0x80 {
            self.0.push((n as u8) | 0x80);
            n >>= 7;
        }
        self.0.push(n as u8);
        self
    }

    fn string(&mut self, value: &str) -> &mut Self {
        self.long(value.len() as i64);
        self.0.extend_from_slice(value.as_bytes());
        self
    }

    fn double(&mut self, value: f64) -> &mut Self {
        self.0.extend_from_slice(&value.to_le_bytes());
        self
    }

    fn boolean(&mut self, value: bool) -> &mut Self {
        self.0.push(value as u8);
        self
    }

    fn null_branch(&mut self) -> &mut Self {
        self.long(0)
    }
}

/// The fields of a combined-stream envelope's `data`, or of a bare event; None unless it is a JSON object.
fn event_of(text: &str) -> Option<Fields<'_>> {
    let top: Fields = serde_json::from_str(text).ok()?;
    match top.get("stream") {
        None => Some(top),
        Some(stream) => {
            serde_json::from_str::<&str>(stream.get()).ok()?; // a stream name that is not a string: Python's call
            serde_json::from_str(top.get("data")?.get()).ok()
        }
    }
}

fn text<'a>(event: &Fields<'a>, name: &str) -> Option<&'a str> {
    serde_json::from_str(event.get(name)?.get()).ok() // borrowed: an escaped string falls back to Python
}

fn integer(event: &Fields, name: &str) -> Option<i64> {
    serde_json::from_str(event.get(name)?.get()).ok()
}

fn millis_as_ns(event: &Fields, name: &str) -> Option<i64> {
    integer(event, name)?.checked_mul(NS_PER_MS)
}

fn boolean(event: &Fields, name: &str) -> Option<bool> {
    serde_json::from_str(event.get(name)?.get()).ok()
}

/// `-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)`, the decimal text `streams/venue.py` accepts.
fn is_decimal(value: &str) -> bool {
    let digits = value.strip_prefix('-').unwrap_or(value).as_bytes();
    let (whole, fraction) = match digits.iter().position(|&b| b == b'.') {
        Some(dot) => (&digits[..dot], Some(&digits[dot + 1..])),
        None => (digits, None),
    };
    let all_digits = |part: &[u8]| part.iter().all(u8::is_ascii_digit);
    match fraction {
        None => !whole.is_empty() && all_digits(whole),
        Some(fraction) => {
            all_digits(whole) && all_digits(fraction) && !(whole.is_empty() && fraction.is_empty())
        }
    }
}

fn decimal<'a>(event: &Fields<'a>, name: &str) -> Option<&'a str> {
    text(event, name).filter(|value| is_decimal(value))
}

fn top_of_book(event: &Fields, venue: &str, ts_recv_ns: i64) -> Option<(String, Vec<u8>, i64)> {
    let symbol = text(event, "s")?;
    let update_id = integer(event, "u")?;
    let (bid, bid_size) = (decimal(event, "b")?, decimal(event, "B")?);
    let (ask, ask_size) = (decimal(event, "a")?, decimal(event, "A")?);
    let ts_event_ns = millis_as_ns(event, "T")?;
    let ts_exchange_ns = millis_as_ns(event, "E")?;
    let bid_f: f64 = bid.parse().ok()?;
    let ask_f: f64 = ask.parse().ok()?;
    let bid_size_f: f64 = bid_size.parse().ok()?;
    let ask_size_f: f64 = ask_size.parse().ok()?;
    let mid = (bid_f + ask_f) / 2.0;
    let total = bid_size_f + ask_size_f;
    let microprice = if total != 0.0 { (bid_f * ask_size_f + ask_f * bid_size_f) / total } else { mid };
    let mut avro = Avro(Vec::with_capacity(96 + 2 * symbol.len()));
    avro.string(venue).string(symbol).string(&format!("{symbol}:bt:{update_id}"));
    avro.long(ts_event_ns).long(ts_exchange_ns).long(ts_recv_ns).long(update_id);
    avro.string(bid).string(bid_size).string(ask).string(ask_size).double(mid).double(microprice);
    Some((symbol.to_owned(), avro.0, ts_exchange_ns))
}

fn trade(event: &Fields, event_id: String, venue: &str, ts_recv_ns: i64) -> Option<(String, Vec<u8>, i64)> {
    let buyer_is_maker = boolean(event, "m")?;
    let symbol = text(event, "s")?;
    let ts_event_ns = millis_as_ns(event, "T")?;
    let ts_exchange_ns = millis_as_ns(event, "E")?;
    let (price, size) = (decimal(event, "p")?, decimal(event, "q")?);
    let mut avro = Avro(Vec::with_capacity(80 + symbol.len()));
    avro.string(venue).string(symbol).string(&event_id);
    avro.long(ts_event_ns).long(ts_exchange_ns).long(ts_recv_ns);
    avro.long(if buyer_is_maker { 1 } else { 0 }); // Side enum: BUY, SELL; a maker buyer means the seller took
    avro.string(price).string(size);
    avro.null_branch().boolean(false).null_branch().null_branch(); // tick_direction, block_trade, rpi, seq
    Some((symbol.to_owned(), avro.0, ts_exchange_ns))
}

/// The record of a Binance trade, aggTrade or bookTicker frame, or None when the Python parser must decide.
#[pyfunction]
fn binance_hot(py: Python<'_>, frame: &str, ts_recv_ns: i64, venue: &str) -> Option<Encoded> {
    let event = event_of(frame)?;
    let (kind, schema, (key, body, ts_exchange_ns)) = match text(&event, "e")? {
        "bookTicker" => ("top_of_book", "liqbot.TopOfBook", top_of_book(&event, venue, ts_recv_ns)?),
        "trade" if text(&event, "X")? == "MARKET" => {
            let event_id = integer(&event, "t")?.to_string();
            ("trade", "liqbot.Trade", trade(&event, event_id, venue, ts_recv_ns)?)
        }
        "aggTrade" => {
            let event_id = format!("agg:{}", integer(&event, "a")?);
            ("trade", "liqbot.Trade", trade(&event, event_id, venue, ts_recv_ns)?)
        }
        _ => return None,
    };
    let (key, body) = (PyString::new(py, &key).unbind(), PyBytes::new(py, &body).unbind());
    Some(Encoded { kind, schema, key, body, ts_exchange_ns })
}

#[pymodule]
fn liqbot_native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<Encoded>()?;
    module.add_function(wrap_pyfunction!(binance_hot, module)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_follow_the_python_pattern() {
        for good in ["0", "-1", "61800.20", "5.", ".5", "-.5", "-0.000"] {
            assert!(is_decimal(good), "{good}");
        }
        for bad in ["", "-", ".", "-.", "1e5", "+1", "1.2.3", " 1", "NaN", "١"] {
            assert!(!is_decimal(bad), "{bad}");
        }
    }

    #[test]
    fn longs_are_zigzag_varints() {
        let mut avro = Avro(Vec::new());
        avro.long(0).long(-1).long(1).long(64).long(-65);
        assert_eq!(avro.0, vec![0, 1, 2, 0x80, 0x01, 0x81, 0x01]);
    }
}
