//! Avro binary encoding of the records the compiled path makes, exactly as fastavro writes them.

use crate::book::{Level, Meta, UpdateType};

/// An Avro body being written; only the types the market schemas use.
pub struct Avro(pub Vec<u8>);

impl Avro {
    pub fn with_capacity(capacity: usize) -> Self {
        Avro(Vec::with_capacity(capacity))
    }

    /// `long` and `int` alike: a zigzag varint.
    pub fn long(&mut self, value: i64) -> &mut Self {
        let mut n = ((value << 1) ^ (value >> 63)) as u64;
        while n >= 0x80 {
            self.0.push((n as u8) | 0x80);
            n >>= 7;
        }
        self.0.push(n as u8);
        self
    }

    pub fn string(&mut self, value: &str) -> &mut Self {
        self.bytes(value.as_bytes())
    }

    /// A string given as its UTF-8 bytes.
    pub fn bytes(&mut self, value: &[u8]) -> &mut Self {
        self.long(value.len() as i64);
        self.0.extend_from_slice(value);
        self
    }

    pub fn double(&mut self, value: f64) -> &mut Self {
        self.0.extend_from_slice(&value.to_le_bytes());
        self
    }

    pub fn boolean(&mut self, value: bool) -> &mut Self {
        self.0.push(value as u8);
        self
    }

    pub fn null_branch(&mut self) -> &mut Self {
        self.long(0)
    }

    /// A `["null", "long"]` union.
    pub fn optional_long(&mut self, value: Option<i64>) -> &mut Self {
        match value {
            None => self.long(0),
            Some(v) => self.long(1).long(v),
        }
    }

    /// An array of `liqbot.BookLevel`: one block of all items, then the empty block (fastavro's layout).
    pub fn levels(&mut self, levels: &[Level]) -> &mut Self {
        if !levels.is_empty() {
            self.long(levels.len() as i64);
            for level in levels {
                self.bytes(level.price.as_bytes()).bytes(level.size.as_bytes());
            }
        }
        self.long(0)
    }
}

/// A `liqbot.BookUpdate` body: the update as given, or (with `resync`) its RESYNC marker.
pub fn book_update(meta: &Meta, bids: &[Level], asks: &[Level], resync: Option<i64>) -> Vec<u8> {
    let size: usize = bids.iter().chain(asks).map(|l| l.price.len() + l.size.len() + 2).sum();
    let mut avro = Avro::with_capacity(96 + meta.venue.len() + 2 * meta.symbol.len() + size);
    avro.string(&meta.venue).string(&meta.symbol);
    match resync {
        None => avro.string(&meta.event_id),
        Some(_) => avro.string(&format!("{}:resync", meta.event_id)),
    };
    avro.long(meta.ts_event_ns).long(meta.ts_exchange_ns).long(meta.ts_recv_ns);
    let kind = if resync.is_some() { UpdateType::Resync } else { meta.kind };
    avro.long(kind as i64).long(meta.depth).long(meta.update_id).optional_long(meta.seq);
    avro.levels(bids).levels(asks).optional_long(resync.or(meta.prev_update_id));
    avro.0
}

/// The fields every market record starts with.
pub struct Stamp<'a> {
    pub venue: &'a str,
    pub symbol: &'a str,
    pub event_id: &'a str,
    pub ts_event_ns: i64,
    pub ts_exchange_ns: i64,
    pub ts_recv_ns: i64,
}

/// One side's best level: its text as sent, and the float values of price and size.
pub struct Quote<'a> {
    pub price: &'a str,
    pub size: &'a str,
    pub price_f: f64,
    pub size_f: f64,
}

impl Level {
    pub fn quote(&self) -> Quote<'_> {
        Quote { price: &self.price, size: &self.size, price_f: self.price_f, size_f: self.size_f }
    }
}

/// A `liqbot.TopOfBook` body; mid and microprice from the float values.
pub fn top_of_book(stamp: &Stamp, update_id: i64, bid: &Quote, ask: &Quote) -> Vec<u8> {
    let mid = (bid.price_f + ask.price_f) / 2.0;
    let total = bid.size_f + ask.size_f;
    // Sizes that cancel out (only negative sizes can) leave no weighting: the mid, as for Binance's bookTicker.
    let microprice = if total != 0.0 { (bid.price_f * ask.size_f + ask.price_f * bid.size_f) / total } else { mid };
    let mut avro = Avro::with_capacity(96 + stamp.venue.len() + stamp.symbol.len() + stamp.event_id.len());
    avro.string(stamp.venue).string(stamp.symbol).string(stamp.event_id);
    avro.long(stamp.ts_event_ns).long(stamp.ts_exchange_ns).long(stamp.ts_recv_ns).long(update_id);
    avro.string(bid.price).string(bid.size).string(ask.price).string(ask.size);
    avro.double(mid).double(microprice);
    avro.0
}

/// A `liqbot.Trade` body of a venue without tick direction, block trades, RPI flags or trade sequence.
pub fn trade(stamp: &Stamp, sell: bool, price: &str, size: &str) -> Vec<u8> {
    let mut avro = Avro::with_capacity(80 + stamp.venue.len() + stamp.symbol.len() + stamp.event_id.len());
    avro.string(stamp.venue).string(stamp.symbol).string(stamp.event_id);
    avro.long(stamp.ts_event_ns).long(stamp.ts_exchange_ns).long(stamp.ts_recv_ns);
    avro.long(sell as i64); // Side enum: BUY, SELL
    avro.string(price).string(size);
    avro.null_branch().boolean(false).null_branch().null_branch(); // tick_direction, block_trade, rpi, seq
    avro.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longs_are_zigzag_varints() {
        let mut avro = Avro(Vec::new());
        avro.long(0).long(-1).long(1).long(64).long(-65).long(i64::MAX).long(i64::MIN);
        let mut expected = vec![0, 1, 2, 0x80, 0x01, 0x81, 0x01];
        expected.extend([0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
        expected.extend([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
        assert_eq!(avro.0, expected);
    }

    #[test]
    fn arrays_are_one_block_then_the_end_marker() {
        let level = Level::new("1.5", "2").unwrap();
        let mut avro = Avro(Vec::new());
        avro.levels(&[]).levels(&[level]);
        assert_eq!(avro.0, vec![0, 2, 6, b'1', b'.', b'5', 2, b'2', 0]);
    }
}
