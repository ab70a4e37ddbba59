//! Binance USD-M frames the compiled path takes: `trade`, `aggTrade`, `bookTicker` and `depthUpdate`.
//!
//! `streams/binance/parse.py` is the specification: each function here yields what it yields for a frame it
//! accepts, and None for everything else (another event, a missing or mistyped field, an escaped string, an
//! overflow), which the Python parser then decides.

use crate::avro::{self, Quote, Stamp};
use crate::book::{Meta, Schema, Update, UpdateType};
use crate::json::{self, ascii_digits, boolean, decimal, integer, levels, millis_as_ns, text, Fields};

/// A diff-depth stream maintains the whole book, which is built on a REST snapshot of at most 1000 levels.
const DIFF_DEPTH: i64 = 1000;

/// What a frame became.
pub enum Frame {
    /// One record, encoded: (kind, schema, key, body, ts_exchange_ns).
    Record(&'static str, Schema, String, Vec<u8>, i64),
    /// A book update for the order book, and the stream it came on (the topic to resync).
    Book(Update, String),
}

pub fn frame(text_: &str, ts_recv_ns: i64, venue: &str) -> Option<Frame> {
    let (stream, event) = event_of(text_)?;
    let kind = text(&event, "e")?;
    if kind == "depthUpdate" {
        let topic = if stream.is_empty() { kind } else { stream };
        return Some(Frame::Book(depth_update(&event, stream, venue, ts_recv_ns)?, topic.to_owned()));
    }
    let (kind, schema, (key, body, ts_exchange_ns)) = match kind {
        "bookTicker" => ("top_of_book", Schema::TopOfBook, book_ticker(&event, venue, ts_recv_ns)?),
        "trade" if text(&event, "X")? == "MARKET" => {
            let event_id = integer(&event, "t")?.to_string();
            ("trade", Schema::Trade, trade(&event, &event_id, venue, ts_recv_ns)?)
        }
        "aggTrade" => {
            let event_id = format!("agg:{}", integer(&event, "a")?);
            ("trade", Schema::Trade, trade(&event, &event_id, venue, ts_recv_ns)?)
        }
        _ => return None,
    };
    Some(Frame::Record(kind, schema, key, body, ts_exchange_ns))
}

/// The stream name ("" for a bare event) and the event's fields; None unless the event is a JSON object.
fn event_of(text_: &str) -> Option<(&str, Fields<'_>)> {
    let top = json::object(text_)?;
    match top.get("stream") {
        None => Some(("", top)),
        Some(_) => {
            let stream = text(&top, "stream")?; // a stream name that is not a plain string: Python's call
            Some((stream, json::nested(&top, "data")?))
        }
    }
}

fn stamp<'a>(event: &Fields<'a>, venue: &'a str, event_id: &'a str, ts_recv_ns: i64) -> Option<Stamp<'a>> {
    Some(Stamp {
        venue,
        symbol: text(event, "s")?,
        event_id,
        ts_event_ns: millis_as_ns(event, "T")?,
        ts_exchange_ns: millis_as_ns(event, "E")?,
        ts_recv_ns,
    })
}

fn quote<'a>(event: &Fields<'a>, price: &str, size: &str) -> Option<Quote<'a>> {
    let (price, size) = (decimal(event, price)?, decimal(event, size)?);
    Some(Quote { price, size, price_f: price.parse().ok()?, size_f: size.parse().ok()? })
}

fn book_ticker(event: &Fields, venue: &str, ts_recv_ns: i64) -> Option<(String, Vec<u8>, i64)> {
    let symbol = text(event, "s")?;
    let update_id = integer(event, "u")?;
    let (bid, ask) = (quote(event, "b", "B")?, quote(event, "a", "A")?);
    let event_id = format!("{symbol}:bt:{update_id}");
    let stamp = stamp(event, venue, &event_id, ts_recv_ns)?;
    Some((symbol.to_owned(), avro::top_of_book(&stamp, update_id, &bid, &ask), stamp.ts_exchange_ns))
}

fn trade(event: &Fields, event_id: &str, venue: &str, ts_recv_ns: i64) -> Option<(String, Vec<u8>, i64)> {
    let buyer_is_maker = boolean(event, "m")?; // a maker buyer means the seller took
    let stamp = stamp(event, venue, event_id, ts_recv_ns)?;
    let (price, size) = (decimal(event, "p")?, decimal(event, "q")?);
    Some((stamp.symbol.to_owned(), avro::trade(&stamp, buyer_is_maker, price, size), stamp.ts_exchange_ns))
}

fn depth_update(event: &Fields, stream: &str, venue: &str, ts_recv_ns: i64) -> Option<Update> {
    let (depth, kind) = depth_of(stream)?;
    let symbol = text(event, "s")?;
    let update_id = integer(event, "u")?;
    let meta = Meta {
        venue: venue.to_owned(),
        symbol: symbol.to_owned(),
        event_id: format!("{symbol}:{depth}:{update_id}"),
        ts_event_ns: millis_as_ns(event, "T")?,
        ts_exchange_ns: millis_as_ns(event, "E")?,
        ts_recv_ns,
        kind,
        depth,
        update_id,
        seq: None,
        prev_update_id: Some(integer(event, "pu")?),
    };
    Some(Update { meta, bids: levels(event, "b")?, asks: levels(event, "a")? })
}

/// `sym@depth[@speed]` is a diff stream (DELTA); `sym@depthN[@speed]` a full top-N image each time (SNAPSHOT);
/// a bare event is taken as a diff stream.
fn depth_of(stream: &str) -> Option<(i64, UpdateType)> {
    if stream.is_empty() {
        return Some((DIFF_DEPTH, UpdateType::Delta));
    }
    let levels = stream.split('@').nth(1)?.strip_prefix("depth")?;
    if levels.is_empty() {
        return Some((DIFF_DEPTH, UpdateType::Delta));
    }
    ascii_digits(levels).then_some(())?;
    Some((levels.parse().ok()?, UpdateType::Snapshot))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_streams_name_their_kind() {
        assert_eq!(depth_of(""), Some((1000, UpdateType::Delta)));
        assert_eq!(depth_of("btcusdt@depth@0ms"), Some((1000, UpdateType::Delta)));
        assert_eq!(depth_of("btcusdt@depth"), Some((1000, UpdateType::Delta)));
        assert_eq!(depth_of("btcusdt@depth020@100ms"), Some((20, UpdateType::Snapshot)));
        for declined in ["depth", "btcusdt@trade", "btcusdt@depth+5", "btcusdt@depth²", "x@depth99999999999999999999"]
        {
            assert_eq!(depth_of(declined), None, "{declined}");
        }
    }

    #[test]
    fn a_depth_update_keeps_the_venue_text() {
        let frame_ = r#"{"stream":"btcusdt@depth@0ms","data":{"e":"depthUpdate","E":2,"T":1,"s":"BTCUSDT","U":5,
            "u":9,"pu":4,"b":[["61800.20","2.909"]],"a":[["61800.30","0.000"]]}}"#;
        let Some(Frame::Book(update, topic)) = frame(frame_, 3, "binance-usdm") else { panic!("declined") };
        assert_eq!((topic.as_str(), update.meta.event_id.as_str()), ("btcusdt@depth@0ms", "BTCUSDT:1000:9"));
        assert_eq!(
            (update.meta.ts_event_ns, update.meta.ts_exchange_ns, update.meta.prev_update_id),
            (1_000_000, 2_000_000, Some(4))
        );
        assert_eq!((&*update.bids[0].price, &*update.asks[0].size), ("61800.20", "0.000"));
        assert!(frame(&frame_.replace(r#""pu":4"#, r#""pu":"4""#), 3, "v").is_none());
    }
}
