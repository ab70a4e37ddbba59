//! The order books of a feed: levels, continuity of update ids, held deltas bridged to a late snapshot,
//! RESYNC markers on a gap or a crossed book, and the top of book after each update.
//!
//! This is the one book implementation: the compiled frame path and the Python path (`streams/orderbook.py`,
//! which wraps it) both apply updates here, and what they publish comes out of here as Avro bodies.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};

use crate::avro;

/// Deltas held per book while its first snapshot is on its way.
pub const MAX_PENDING: usize = 10_000;

/// `-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)`, the decimal text `streams/venue.py` accepts.
pub fn is_decimal(value: &str) -> bool {
    let digits = value.strip_prefix('-').unwrap_or(value).as_bytes();
    let (whole, fraction) = match digits.iter().position(|&b| b == b'.') {
        Some(dot) => (&digits[..dot], Some(&digits[dot + 1..])),
        None => (digits, None),
    };
    let all_digits = |part: &[u8]| part.iter().all(u8::is_ascii_digit);
    match fraction {
        None => !whole.is_empty() && all_digits(whole),
        Some(fraction) => all_digits(whole) && all_digits(fraction) && !(whole.is_empty() && fraction.is_empty()),
    }
}

/// Text kept as sent, inline up to 22 bytes (prices and sizes are shorter): a book holds thousands and a
/// delta brings dozens, so one allocation each was a fifth of a depth frame's cost.
#[derive(Clone, Debug, PartialEq)]
pub enum Text {
    Inline(u8, [u8; 22]),
    Boxed(Box<str>),
}

impl Text {
    pub fn new(value: &str) -> Text {
        let mut bytes = [0u8; 22];
        match bytes.get_mut(..value.len()) {
            Some(prefix) => {
                prefix.copy_from_slice(value.as_bytes());
                Text::Inline(value.len() as u8, bytes)
            }
            None => Text::Boxed(value.into()),
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Text::Inline(len, bytes) => &bytes[..*len as usize],
            Text::Boxed(text) => text.as_bytes(),
        }
    }
}

impl std::ops::Deref for Text {
    type Target = str;

    fn deref(&self) -> &str {
        std::str::from_utf8(self.as_bytes()).expect("a Text is made from a str")
    }
}

impl std::fmt::Display for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self)
    }
}

/// One price level: the venue's decimal text, kept as sent, and its float value (which orders the book).
#[derive(Clone, Debug, PartialEq)]
pub struct Level {
    pub price: Text,
    pub size: Text,
    pub price_f: f64,
    pub size_f: f64,
}

impl Level {
    /// None unless both are decimal text.
    pub fn new(price: &str, size: &str) -> Option<Level> {
        if !is_decimal(price) || !is_decimal(size) {
            return None;
        }
        Some(Level {
            price_f: price.parse().ok()?,
            size_f: size.parse().ok()?,
            price: Text::new(price),
            size: Text::new(size),
        })
    }
}

/// A price as a map key: ordered by value, and -0.0 is 0.0 (as Python's float keys were).
#[derive(Clone, Copy, Debug)]
pub struct Price(f64);

impl Price {
    fn of(value: f64) -> Price {
        Price(if value == 0.0 { 0.0 } else { value })
    }
}

impl PartialEq for Price {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Price {}

impl PartialOrd for Price {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Price {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0) // decimal text never parses to NaN
    }
}

/// The price levels of one book, and the update id it is at.
#[derive(Clone, Debug)]
pub struct Book {
    bids: BTreeMap<Price, Level>,
    asks: BTreeMap<Price, Level>,
    pub update_id: i64,
    /// A snapshot and no delta yet: the next delta may bridge it.
    pub fresh: bool,
}

impl Default for Book {
    fn default() -> Self {
        Book { bids: BTreeMap::new(), asks: BTreeMap::new(), update_id: -1, fresh: false }
    }
}

impl Book {
    /// The book a snapshot describes; levels of size 0 are left out.
    pub fn reset(&mut self, bids: Vec<Level>, asks: Vec<Level>, update_id: i64) {
        for (side, levels) in [(&mut self.bids, bids), (&mut self.asks, asks)] {
            side.clear();
            for level in levels.into_iter().filter(|l| l.size_f != 0.0) {
                side.insert(Price::of(level.price_f), level);
            }
        }
        self.update_id = update_id;
        self.fresh = true;
    }

    /// A delta: each level replaces the one at its price, size 0 removes it.
    pub fn apply(&mut self, bids: Vec<Level>, asks: Vec<Level>, update_id: i64) {
        for (side, levels) in [(&mut self.bids, bids), (&mut self.asks, asks)] {
            for level in levels {
                if level.size_f == 0.0 {
                    side.remove(&Price::of(level.price_f));
                } else {
                    side.insert(Price::of(level.price_f), level);
                }
            }
        }
        self.update_id = update_id;
        self.fresh = false;
    }

    /// Best bid and best ask, or None while a side is empty.
    pub fn best(&self) -> Option<(&Level, &Level)> {
        Some((self.bids.values().next_back()?, self.asks.values().next()?))
    }

    /// Bids from the highest price down (`bid`), or asks from the lowest up.
    pub fn side(&self, bid: bool) -> Box<dyn Iterator<Item = &Level> + '_> {
        if bid {
            Box::new(self.bids.values().rev())
        } else {
            Box::new(self.asks.values())
        }
    }

    pub fn len(&self, bid: bool) -> usize {
        if bid {
            self.bids.len()
        } else {
            self.asks.len()
        }
    }

    pub fn level(&self, bid: bool, price: f64) -> Option<&Level> {
        if bid { &self.bids } else { &self.asks }.get(&Price::of(price))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpdateType {
    Snapshot = 0,
    Delta = 1,
    Resync = 2,
}

/// Every field of a `liqbot.BookUpdate` but its levels.
#[derive(Clone, Debug)]
pub struct Meta {
    pub venue: String,
    pub symbol: String,
    pub event_id: String,
    pub ts_event_ns: i64,
    pub ts_exchange_ns: i64,
    pub ts_recv_ns: i64,
    pub kind: UpdateType,
    pub depth: i64,
    pub update_id: i64,
    pub seq: Option<i64>,
    pub prev_update_id: Option<i64>,
}

impl Meta {
    pub fn stamp(&self) -> avro::Stamp<'_> {
        avro::Stamp {
            venue: &self.venue,
            symbol: &self.symbol,
            event_id: &self.event_id,
            ts_event_ns: self.ts_event_ns,
            ts_exchange_ns: self.ts_exchange_ns,
            ts_recv_ns: self.ts_recv_ns,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Update {
    pub meta: Meta,
    pub bids: Vec<Level>,
    pub asks: Vec<Level>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Schema {
    Trade,
    TopOfBook,
    BookUpdate,
}

/// One record to publish, Avro-encoded.
#[derive(Debug)]
pub struct Record {
    pub schema: Schema,
    pub body: Vec<u8>,
    pub ts_exchange_ns: i64,
}

/// What one update produced: records to publish, and whether it revealed a gap or was dropped.
#[derive(Debug, Default)]
pub struct Step {
    pub records: Vec<Record>,
    pub gap: bool,
    pub dropped: bool,
    pub reason: String,
}

impl Step {
    fn dropped(reason: &str) -> Step {
        Step { dropped: true, reason: reason.to_owned(), ..Step::default() }
    }
}

type Key = (String, String, i64);

/// All books of one feed, keyed by (venue, symbol, depth).
///
/// Deltas that arrive before a book's snapshot are held: Binance's procedure subscribes first and fetches the
/// REST snapshot afterwards, and the delta that bridges it (pu < lastUpdateId <= u) may well come first.
#[derive(Default)]
pub struct Builder {
    books: HashMap<Key, Book>,
    pending: HashMap<Key, Vec<Update>>,
}

impl Builder {
    pub fn book(&self, venue: &str, symbol: &str, depth: i64) -> Option<&Book> {
        self.books.get(&(venue.to_owned(), symbol.to_owned(), depth))
    }

    pub fn apply(&mut self, update: Update) -> Step {
        let key = (update.meta.venue.clone(), update.meta.symbol.clone(), update.meta.depth);
        if update.meta.kind == UpdateType::Snapshot {
            return self.snapshot(key, update);
        }
        let Some(book) = self.books.get(&key) else {
            let held = self.pending.entry(key).or_default();
            if held.len() < MAX_PENDING {
                held.push(update);
            }
            return Step::dropped("delta before any snapshot (held for the snapshot)");
        };
        if book.fresh && update.meta.update_id <= book.update_id {
            return Step::dropped("delta older than the snapshot");
        }
        self.delta(key, update)
    }

    fn snapshot(&mut self, key: Key, update: Update) -> Step {
        let Update { meta, bids, asks } = update;
        let mut records = vec![record(Schema::BookUpdate, &meta, avro::book_update(&meta, &bids, &asks, None))];
        let book = self.books.entry(key.clone()).or_default();
        book.reset(bids, asks, meta.update_id);
        records.extend(top(&meta, book));
        for held in self.pending.remove(&key).unwrap_or_default() {
            if held.meta.update_id <= self.books[&key].update_id {
                continue; // already in the snapshot
            }
            let step = self.delta(key.clone(), held);
            records.extend(step.records);
            if step.gap {
                return Step { records, gap: true, reason: step.reason, ..Step::default() };
            }
        }
        Step { records, ..Step::default() }
    }

    fn delta(&mut self, key: Key, update: Update) -> Step {
        let Update { meta, bids, asks } = update;
        let book = self.books.get_mut(&key).expect("a delta is applied to a book that exists");
        if !follows(book, &meta) {
            let expected = meta.prev_update_id.map_or(meta.update_id as i128 - 1, i128::from);
            let reason = format!("update {} follows {expected}, book is at {}", meta.update_id, book.update_id);
            return self.gap(&key, &meta, reason);
        }
        let body = avro::book_update(&meta, &bids, &asks, None); // before the levels move into the book
        book.apply(bids, asks, meta.update_id);
        if let Some((bid, ask)) = book.best() {
            if bid.price_f >= ask.price_f {
                let reason = format!("crossed book: bid {} >= ask {}", bid.price, ask.price);
                return self.gap(&key, &meta, reason);
            }
        }
        let mut records = vec![record(Schema::BookUpdate, &meta, body)];
        records.extend(top(&meta, book));
        Step { records, ..Step::default() }
    }

    /// Forget the book: nothing more is published for it until the next snapshot.
    fn gap(&mut self, key: &Key, meta: &Meta, reason: String) -> Step {
        self.pending.remove(key);
        let book = self.books.remove(key).expect("a gap is found in a book that exists");
        let marker = avro::book_update(meta, &[], &[], Some(book.update_id));
        Step { records: vec![record(Schema::BookUpdate, meta, marker)], gap: true, reason, ..Step::default() }
    }
}

/// Continuity: the venue's previous id when it sends one, else consecutive ids; a snapshot may be bridged.
fn follows(book: &Book, meta: &Meta) -> bool {
    match meta.prev_update_id {
        None => book.update_id.checked_add(1) == Some(meta.update_id),
        Some(prev) if book.fresh => prev <= book.update_id && book.update_id <= meta.update_id,
        Some(prev) => prev == book.update_id,
    }
}

fn record(schema: Schema, meta: &Meta, body: Vec<u8>) -> Record {
    Record { schema, body, ts_exchange_ns: meta.ts_exchange_ns }
}

fn top(meta: &Meta, book: &Book) -> Option<Record> {
    let (bid, ask) = book.best()?;
    Some(record(Schema::TopOfBook, meta, avro::top_of_book(&meta.stamp(), meta.update_id, &bid.quote(), &ask.quote())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn levels(pairs: &[(&str, &str)]) -> Vec<Level> {
        pairs.iter().map(|(p, s)| Level::new(p, s).unwrap()).collect()
    }

    fn update(
        kind: UpdateType,
        update_id: i64,
        prev: Option<i64>,
        bids: &[(&str, &str)],
        asks: &[(&str, &str)],
    ) -> Update {
        let meta = Meta {
            venue: "v".into(),
            symbol: "S".into(),
            event_id: format!("S:50:{update_id}"),
            ts_event_ns: 1,
            ts_exchange_ns: 2,
            ts_recv_ns: 3,
            kind,
            depth: 50,
            update_id,
            seq: None,
            prev_update_id: prev,
        };
        Update { meta, bids: levels(bids), asks: levels(asks) }
    }

    fn schemas(step: &Step) -> Vec<Schema> {
        step.records.iter().map(|r| r.schema).collect()
    }

    #[test]
    fn decimals_follow_the_python_pattern() {
        for good in ["0", "-1", "61800.20", "5.", ".5", "-.5", "-0.000"] {
            assert!(is_decimal(good), "{good}");
            assert!(Level::new(good, good).is_some(), "{good}");
        }
        for bad in ["", "-", ".", "-.", "1e5", "+1", "1.2.3", " 1", "NaN", "inf", "١"] {
            assert!(!is_decimal(bad), "{bad}");
        }
    }

    #[test]
    fn text_is_kept_as_sent_inline_or_not() {
        for value in ["", "61800.20", "1234567890.123456789012", "1234567890.1234567890123"] {
            let text = Text::new(value);
            assert_eq!(
                (&*text, text.as_bytes(), matches!(text, Text::Inline(..))),
                (value, value.as_bytes(), value.len() <= 22)
            );
        }
    }

    #[test]
    fn levels_order_by_value_and_zero_removes() {
        let mut book = Book::default();
        book.reset(levels(&[("10.0", "1"), ("9.5", "2"), ("11", "0")]), levels(&[("12", "1"), ("12.50", "3")]), 7);
        assert_eq!((book.len(true), book.len(false), book.update_id, book.fresh), (2, 2, 7, true));
        book.apply(levels(&[("10", "0"), ("9.50", "4")]), levels(&[("11.5", "1")]), 8);
        let (bid, ask) = book.best().unwrap();
        assert_eq!((&*bid.price, &*bid.size, &*ask.price), ("9.50", "4", "11.5")); // the latest text of a price
        assert_eq!(book.side(false).map(|l| &*l.price).collect::<Vec<_>>(), ["11.5", "12", "12.50"]);
        assert!(!book.fresh && book.level(true, 10.0).is_none() && book.level(true, 9.5).is_some());
    }

    #[test]
    fn negative_zero_is_the_same_price_as_zero() {
        let mut book = Book::default();
        book.reset(levels(&[("0", "1")]), vec![], 1);
        book.apply(levels(&[("-0.0", "0")]), vec![], 2);
        assert_eq!(book.len(true), 0);
    }

    #[test]
    fn consecutive_ids_publish_update_and_top() {
        let mut builder = Builder::default();
        let step = builder.apply(update(UpdateType::Snapshot, 10, None, &[("1", "1")], &[("2", "1")]));
        assert_eq!(schemas(&step), [Schema::BookUpdate, Schema::TopOfBook]);
        let step = builder.apply(update(UpdateType::Delta, 11, None, &[("1.5", "1")], &[]));
        assert_eq!(
            (schemas(&step), step.gap, step.dropped),
            (vec![Schema::BookUpdate, Schema::TopOfBook], false, false)
        );
        let step = builder.apply(update(UpdateType::Delta, 13, None, &[], &[]));
        assert_eq!((step.gap, step.reason.as_str()), (true, "update 13 follows 12, book is at 11"));
        assert!(builder.book("v", "S", 50).is_none());
        let step = builder.apply(update(UpdateType::Delta, 14, None, &[], &[]));
        assert!(step.dropped && step.records.is_empty());
    }

    #[test]
    fn held_deltas_bridge_a_late_snapshot() {
        let mut builder = Builder::default();
        for (id, prev) in [(100, 90), (110, 100), (120, 110)] {
            let step = builder.apply(update(UpdateType::Delta, id, Some(prev), &[("1", "2")], &[]));
            assert_eq!(step.reason, "delta before any snapshot (held for the snapshot)");
        }
        let step = builder.apply(update(UpdateType::Snapshot, 105, None, &[("1", "1")], &[("2", "1")]));
        // the snapshot, then 110 (bridges: 100 <= 105 <= 110) and 120; 100 is already in the snapshot
        assert_eq!(step.records.len(), 6);
        assert_eq!(builder.book("v", "S", 50).unwrap().update_id, 120);
        let step = builder.apply(update(UpdateType::Delta, 130, Some(121), &[], &[]));
        assert_eq!((step.gap, step.reason.as_str()), (true, "update 130 follows 121, book is at 120"));
    }

    #[test]
    fn a_delta_older_than_the_snapshot_is_dropped() {
        let mut builder = Builder::default();
        builder.apply(update(UpdateType::Snapshot, 105, None, &[("1", "1")], &[("2", "1")]));
        let step = builder.apply(update(UpdateType::Delta, 104, Some(100), &[], &[]));
        assert_eq!((step.dropped, step.reason.as_str()), (true, "delta older than the snapshot"));
    }

    #[test]
    fn a_crossed_book_is_a_gap() {
        let mut builder = Builder::default();
        builder.apply(update(UpdateType::Snapshot, 1, None, &[("1", "1")], &[("2", "1")]));
        let step = builder.apply(update(UpdateType::Delta, 2, None, &[("2.0", "1")], &[]));
        assert_eq!((step.gap, step.reason.as_str()), (true, "crossed book: bid 2.0 >= ask 2"));
        assert_eq!(schemas(&step), [Schema::BookUpdate]);
    }

    #[test]
    fn ids_at_the_end_of_the_range_do_not_wrap() {
        let mut builder = Builder::default();
        builder.apply(update(UpdateType::Snapshot, i64::MAX - 1, None, &[], &[]));
        assert!(!builder.apply(update(UpdateType::Delta, i64::MAX, None, &[], &[])).gap);
        let step = builder.apply(update(UpdateType::Delta, i64::MIN, None, &[], &[]));
        assert!(step.gap);
        assert_eq!(
            step.reason,
            format!("update {} follows {}, book is at {}", i64::MIN, i64::MIN as i128 - 1, i64::MAX)
        );
    }
}
