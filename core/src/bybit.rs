//! Bybit v5 `orderbook.{depth}.{symbol}` frames, snapshot and delta, as `streams/bybit/parse.py` reads them;
//! None for every other frame and for anything that parser might read differently.

use crate::book::{Meta, Update, UpdateType};
use crate::json::{self, ascii_digits, integer, levels, millis_as_ns, optional_integer, text};

/// The book update of an order-book frame, and its topic (to resubscribe on a gap).
pub fn book_frame(text_: &str, ts_recv_ns: i64, venue: &str) -> Option<(Update, String)> {
    if !text_.contains("\"orderbook.") {
        return None; // not worth a JSON parse: trades, tickers, liquidations
    }
    let frame = json::object(text_)?;
    let topic = text(&frame, "topic")?;
    let mut parts = topic.split('.');
    let (channel, depth, topic_symbol) = (parts.next()?, parts.next()?, parts.next()?);
    if channel != "orderbook" || parts.next().is_some() || !ascii_digits(depth) {
        return None;
    }
    let kind = match text(&frame, "type")? {
        "snapshot" => UpdateType::Snapshot,
        "delta" => UpdateType::Delta,
        _ => return None,
    };
    let ts_exchange_ns = millis_as_ns(&frame, "ts")?;
    let ts_event_ns = if frame.contains_key("cts") { millis_as_ns(&frame, "cts")? } else { ts_exchange_ns };
    let data = json::nested(&frame, "data")?;
    let symbol = text(&data, "s").filter(|s| !s.is_empty())?;
    let update_id = integer(&data, "u")?;
    let meta = Meta {
        venue: venue.to_owned(),
        symbol: symbol.to_owned(),
        event_id: format!("{topic_symbol}:{depth}:{update_id}"),
        ts_event_ns,
        ts_exchange_ns,
        ts_recv_ns,
        kind,
        depth: depth.parse().ok()?,
        update_id,
        seq: optional_integer(&data, "seq")?,
        prev_update_id: None,
    };
    Some((Update { meta, bids: levels(&data, "b")?, asks: levels(&data, "a")? }, topic.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DELTA: &str = r#"{"topic":"orderbook.0200.BTCUSDT","type":"delta","ts":1786310818130,"data":{"s":"BTCUSDT",
        "b":[["65095.30","0.005"]],"a":[["65116.60","0"]],"u":7,"seq":12},"cts":1786310818129}"#;

    #[test]
    fn the_event_id_keeps_the_topic_text_and_the_depth_is_its_value() {
        let (update, topic) = book_frame(DELTA, 5, "bybit-linear").unwrap();
        assert_eq!(
            (topic.as_str(), update.meta.event_id.as_str(), update.meta.depth),
            ("orderbook.0200.BTCUSDT", "BTCUSDT:0200:7", 200)
        );
        assert_eq!(
            (update.meta.kind, update.meta.seq, update.meta.ts_event_ns),
            (UpdateType::Delta, Some(12), 1_786_310_818_129_000_000)
        );
    }

    #[test]
    fn other_shapes_decline() {
        for (from, to) in [
            ("orderbook.0200.BTCUSDT", "orderbook.200.BTC.USDT"),
            ("orderbook.0200", "orderbook.+200"),
            (r#""delta""#, r#""Delta""#),
            (r#""seq":12"#, r#""seq":true"#),
            (r#""cts":1786310818129"#, r#""cts":null"#),
            (r#""s":"BTCUSDT""#, r#""s":"""#),
            (r#""u":7"#, r#""u":"7""#),
            (r#""ts":1786310818130"#, r#""ts":1.5"#),
        ] {
            assert!(book_frame(&DELTA.replace(from, to), 5, "v").is_none(), "{to}");
        }
        let without_seq = DELTA.replace(r#","seq":12"#, "");
        assert_eq!(book_frame(&without_seq, 5, "v").unwrap().0.meta.seq, None);
        let bare_time = DELTA.replace(r#","cts":1786310818129"#, "");
        assert_eq!(book_frame(&bare_time, 5, "v").unwrap().0.meta.ts_event_ns, 1_786_310_818_130_000_000);
    }
}
