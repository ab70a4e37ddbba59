//! Per-symbol features in event time, one record at a time: the one implementation, which the agents call per
//! record and a replay calls in a loop.
//!
//! A symbol's state is a function of the records it was given: every record moves all its windows to its time,
//! and reading the values changes nothing. Every float operation is the one the Python oracle
//! (`tests/oracle/features.py`) does, in its order, so the values are bit-equal to it; where Python raises (a
//! zero divisor, `log` of zero), this raises the same exception at the same point.

use std::collections::{HashMap, HashSet, VecDeque};

use pyo3::exceptions::{PyIndexError, PyValueError};
use pyo3::PyResult;

use crate::book::{Book, Level};
use crate::pyfloat::{cos, div, int_div, int_lt_float, log, max, sin, sqrt, square};
use crate::state::{Reader, Writer};
use crate::windows::{load_points, save_points, Max, Median, Sums, ValueAt};

const NAN: f64 = f64::NAN;
const NS_PER_S: u64 = 1_000_000_000;
const NS_PER_HOUR: i64 = 3600 * NS_PER_S as i64;
const NS_PER_DAY: i64 = 24 * NS_PER_HOUR;
const EPOCH_WEEKDAY: i64 = 3; // 1970-01-01 was a Thursday; Monday is 0
const RECENT_IDS: usize = 8192; // event ids remembered per symbol to drop redelivered records

/// The FeatureSpec's numbers, windows in ns and the indices `values` reads them by.
#[derive(Clone, Debug, PartialEq)]
pub struct Spec {
    pub liq_windows_ns: Vec<i64>,          // every liquidation window kept, ascending
    pub liq_published: Vec<usize>,         // indices into liq_windows_ns, in vector order
    pub acceleration: Vec<(usize, usize)>, // (half window, whole window)
    pub burst_sums: usize,
    pub burst_window_ns: i64,
    pub burst_baseline_windows: i64,
    pub burst_sigma_floor: f64,
    pub largest_window_ns: i64,
    pub median_window_ns: i64,
    pub trade_windows_ns: Vec<i64>,
    pub depth_levels: Vec<usize>,
    pub oi_windows_ns: Vec<i64>,
    pub lateness_ns: f64,
}

/// A book update's levels and id, or the error its text gave (raised where the oracle's book raised).
pub type Levels = PyResult<(Vec<Level>, Vec<Level>, i64)>;

/// What a record brings, its numbers already parsed.
pub enum Event {
    Liquidation { long: bool, notional: f64 },
    Trade { buy: bool, price: f64, size: f64 },
    Top { bid: f64, ask: f64, mid: f64, microprice: f64 },
    Snapshot(Levels),
    Delta(Levels),
    Resync,
    Ticker { funding_rate: Option<f64>, next_funding_ns: Option<i64>, open_interest: Option<f64> },
    Other,
}

/// Recently seen record ids as 64-bit digests, oldest first; ids beyond `RECENT_IDS` are forgotten.
#[derive(Clone, Debug, Default, PartialEq)]
struct RecentIds {
    order: VecDeque<u64>,
    seen: HashSet<u64>,
}

impl RecentIds {
    /// False when the id was seen recently (a redelivery); otherwise remember it.
    fn remember(&mut self, digest: u64) -> bool {
        if !self.seen.insert(digest) {
            return false;
        }
        self.order.push_back(digest);
        if self.order.len() > RECENT_IDS {
            let oldest = self.order.pop_front().expect("longer than the capacity");
            self.seen.remove(&oldest);
        }
        true
    }
}

/// FNV-1a over "schema|event_id", then a 64-bit finaliser: stable across builds (snapshots keep digests);
/// two of 8,192 ids share one with odds of about 2^-38.
fn digest(schema: &str, event_id: &str) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for &b in schema.as_bytes().iter().chain(b"|").chain(event_id.as_bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x100000001b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d049bb133111eb);
    h ^ (h >> 31)
}

/// The top of book's numbers the features read.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Top {
    bid: f64,
    ask: f64,
    mid: f64,
    microprice: f64,
}

/// The windows and last values of one symbol.
#[derive(Clone, Debug)]
pub struct Symbol {
    pub watermark_ns: i64,        // newest event time applied
    liq: Vec<Sums>,               // notional, count, long, short
    bursts: VecDeque<(i64, f64)>, // (window index, notional)
    largest: Max,
    median: Median,
    last_liquidation_ns: Option<i64>,
    trades: Vec<Sums>, // buy, sell, count, px*qty, qty, r^2
    last_trade_price: Option<f64>,
    top: Option<Top>,
    pub book: Option<Book>,
    funding_rate: f64,
    next_funding_ns: Option<i64>,
    open_interest: f64,
    open_interest_then: Vec<ValueAt>,
    seen: RecentIds,
}

impl Symbol {
    pub fn new(spec: &Spec) -> Symbol {
        Symbol {
            watermark_ns: -1,
            liq: spec.liq_windows_ns.iter().map(|&w| Sums::new(w, 4)).collect(),
            bursts: VecDeque::new(),
            largest: Max::new(spec.largest_window_ns),
            median: Median::new(spec.median_window_ns),
            last_liquidation_ns: None,
            trades: spec.trade_windows_ns.iter().map(|&w| Sums::new(w, 6)).collect(),
            last_trade_price: None,
            top: None,
            book: None,
            funding_rate: NAN,
            next_funding_ns: None,
            open_interest: NAN,
            open_interest_then: spec.oi_windows_ns.iter().map(|&w| ValueAt::new(w)).collect(),
            seen: RecentIds::default(),
        }
    }

    /// Fold one event in at `ts_ns` (its event time, or the watermark when it came a little late).
    fn apply(&mut self, spec: &Spec, event: Event, ts_ns: i64) -> PyResult<()> {
        self.watermark_ns = ts_ns;
        match event {
            Event::Liquidation { long, notional } => self.liquidation(spec, long, notional, ts_ns),
            Event::Trade { buy, price, size } => self.trade(buy, price, size, ts_ns)?,
            Event::Top { bid, ask, mid, microprice } => self.top = Some(Top { bid, ask, mid, microprice }),
            Event::Snapshot(levels) => {
                let book = self.book.insert(Book::default());
                let (bids, asks, update_id) = levels?;
                book.reset(bids, asks, update_id);
            }
            Event::Resync => (self.book, self.top) = (None, None), // book features are NaN until a snapshot
            Event::Delta(levels) => {
                if let Some(book) = self.book.as_mut() {
                    let (bids, asks, update_id) = levels?;
                    book.apply(bids, asks, update_id);
                }
            }
            Event::Ticker { funding_rate, next_funding_ns, open_interest } => {
                self.ticker(funding_rate, next_funding_ns, open_interest, ts_ns)
            }
            Event::Other => {}
        }
        self.expire(spec, ts_ns)
    }

    fn liquidation(&mut self, spec: &Spec, long: bool, notional: f64, ts_ns: i64) {
        let row = if long { [notional, 1.0, notional, 0.0] } else { [notional, 1.0, 0.0, notional] };
        self.liq.iter_mut().for_each(|sums| sums.add(ts_ns, &row));
        let index = ts_ns.div_euclid(spec.burst_window_ns);
        match self.bursts.back_mut() {
            Some((i, sum)) if *i == index => *sum += notional,
            _ => self.bursts.push_back((index, notional)),
        }
        self.largest.add(ts_ns, notional);
        self.median.add(ts_ns, notional);
        self.last_liquidation_ns = Some(ts_ns);
    }

    fn trade(&mut self, buy: bool, price: f64, size: f64, ts_ns: i64) -> PyResult<()> {
        let r2 = match self.last_trade_price {
            Some(last) if last != 0.0 => square(log(div(price, last)?)?)?,
            _ => 0.0,
        };
        self.last_trade_price = Some(price);
        let bought = if buy { size } else { 0.0 };
        let row = [bought, size - bought, 1.0, price * size, size, r2];
        self.trades.iter_mut().for_each(|sums| sums.add(ts_ns, &row));
        Ok(())
    }

    fn ticker(&mut self, funding_rate: Option<f64>, next_funding_ns: Option<i64>, oi: Option<f64>, ts_ns: i64) {
        if let Some(rate) = funding_rate {
            self.funding_rate = rate;
        }
        if next_funding_ns.is_some() {
            self.next_funding_ns = next_funding_ns;
        }
        if let Some(oi) = oi {
            self.open_interest = oi;
            self.open_interest_then.iter_mut().for_each(|then| then.add(ts_ns, oi));
        }
    }

    fn expire(&mut self, spec: &Spec, now_ns: i64) -> PyResult<()> {
        self.liq.iter_mut().chain(self.trades.iter_mut()).for_each(|sums| sums.expire(now_ns));
        self.largest.expire(now_ns);
        self.median.expire(now_ns).map_err(|()| PyIndexError::new_err("list assignment index out of range"))?;
        let oldest = now_ns.div_euclid(spec.burst_window_ns) - spec.burst_baseline_windows;
        while self.bursts.front().is_some_and(|&(i, _)| i < oldest) {
            self.bursts.pop_front();
        }
        self.open_interest_then.iter_mut().for_each(|then| then.expire(now_ns));
        Ok(())
    }

    /// The mid of the newest top of book; None before one and after a RESYNC.
    pub fn mid(&self) -> Option<f64> {
        self.top.map(|top| top.mid)
    }

    /// The vector at the watermark, in the spec's order; reading it changes nothing.
    pub fn values(&self, spec: &Spec) -> PyResult<Vec<f64>> {
        let now = self.watermark_ns;
        let mut out = Vec::with_capacity(64);
        for &i in &spec.liq_published {
            let [notional, count, long, short] = self.liq[i].sums[..] else { unreachable!("width 4") };
            out.extend([notional, count, ratio(long - short, long + short)]);
        }
        out.push(self.burst_z(spec, now)?);
        for &(half, whole) in &spec.acceleration {
            let (recent, all) = (self.liq[half].sums[1], self.liq[whole].sums[1]);
            out.push(div(recent + 1.0, all - recent + 1.0)?); // +1: defined, and 1.0, when nothing happened
        }
        out.push(self.last_liquidation_ns.map_or(NAN, |t| int_div(i128::from(now) - i128::from(t), NS_PER_S)));
        out.push(ratio(self.largest.value(), self.median.value()));
        for sums in &self.trades {
            out.extend(self.trade_values(&sums.sums)?);
        }
        self.book_values(spec, &mut out)?;
        for then in &self.open_interest_then {
            let before = then.value(now);
            out.push(ratio(self.open_interest - before, before));
        }
        out.push(self.funding_rate);
        out.push(self.next_funding_ns.map_or(NAN, |t| int_div(i128::from(t) - i128::from(now), NS_PER_S)));
        out.extend(calendar(now)?);
        Ok(out)
    }

    fn trade_values(&self, sums: &[f64]) -> PyResult<[f64; 4]> {
        let [buy, sell, count, px_qty, qty, r2] = sums[..] else { unreachable!("width 6") };
        let last = match self.last_trade_price {
            Some(last) if count != 0.0 => last,
            _ => NAN,
        };
        let rv = if count != 0.0 { sqrt(max(r2, 0.0))? } else { NAN };
        Ok([ratio(buy - sell, buy + sell), count, (div(last, ratio(px_qty, qty))? - 1.0) * 1e4, rv])
    }

    fn burst_z(&self, spec: &Spec, now_ns: i64) -> PyResult<f64> {
        let current = self.liq[spec.burst_sums].sums[0];
        let (index, n) = (now_ns.div_euclid(spec.burst_window_ns), spec.burst_baseline_windows);
        let baseline = || self.bursts.iter().filter(|&&(i, _)| index - n <= i && i < index).map(|&(_, x)| x);
        let mean = div(baseline().fold(0.0, |acc, x| acc + x), n as f64)?; // empty windows count as zero notional
        let mut squares = 0.0;
        for x in baseline() {
            squares += square(x - mean)?;
        }
        let variance = squares + (n - baseline().count() as i64) as f64 * square(mean)?;
        let sigma = max(sqrt(div(variance, n as f64)?)?, spec.burst_sigma_floor);
        div(current - mean, sigma)
    }

    fn book_values(&self, spec: &Spec, out: &mut Vec<f64>) -> PyResult<()> {
        match self.top {
            None => out.extend([NAN, NAN]),
            Some(Top { bid, ask, mid, microprice }) => {
                out.extend([div(ask - bid, mid)? * 1e4, div(microprice - mid, mid)? * 1e4]);
            }
        }
        let book = self.book.as_ref().filter(|b| b.len(true) > 0 && b.len(false) > 0);
        let Some(book) = book else {
            out.extend(spec.depth_levels.iter().map(|_| NAN));
            return Ok(());
        };
        let deepest = spec.depth_levels.iter().copied().max().unwrap_or(0);
        let sizes = |bid| book.side(bid).take(deepest).map(|l| l.size_f).collect::<Vec<f64>>();
        let (bids, asks) = (sizes(true), sizes(false));
        for &n in &spec.depth_levels {
            let total = |side: &[f64]| side.iter().take(n).fold(0.0, |acc, x| acc + x);
            let (bid, ask) = (total(&bids), total(&asks));
            out.push(ratio(bid - ask, bid + ask));
        }
        Ok(())
    }
}

fn ratio(numerator: f64, denominator: f64) -> f64 {
    if denominator != 0.0 {
        numerator / denominator
    } else {
        NAN
    }
}

fn calendar(ts_ns: i64) -> PyResult<[f64; 4]> {
    let in_day = ts_ns.rem_euclid(NS_PER_DAY);
    let hour = in_day as f64 / NS_PER_HOUR as f64; // both below 2^53: Python's int division is this one
    let weekday =
        (ts_ns.div_euclid(NS_PER_DAY) + EPOCH_WEEKDAY).rem_euclid(7) as f64 + in_day as f64 / NS_PER_DAY as f64;
    let (h, w) = (2.0 * std::f64::consts::PI * hour / 24.0, 2.0 * std::f64::consts::PI * weekday / 7.0);
    Ok([sin(h)?, cos(h)?, sin(w)?, cos(w)?])
}

/// All symbols' features, keyed by (venue, symbol) in first-seen order, and what was done with each record.
#[derive(Clone, Debug)]
pub struct Engine {
    pub spec: Spec,
    index: HashMap<String, HashMap<String, usize>>,
    pub keys: Vec<(String, String)>,
    pub states: Vec<Symbol>,
    pub counts: Vec<(String, u64)>, // applied, reordered, late, duplicate, late:<schema>; first-seen order
}

/// What `Engine::apply` is told about a record besides its event.
pub struct Meta<'a> {
    pub venue: &'a str,
    pub symbol: &'a str,
    pub schema: &'a str,
    pub event_id: &'a str,
    pub ts_event_ns: i64,
    pub windowed: bool, // a liquidation or a trade: skipped when too late
}

impl Engine {
    pub fn new(spec: Spec) -> Engine {
        Engine { spec, index: HashMap::new(), keys: Vec::new(), states: Vec::new(), counts: Vec::new() }
    }

    pub fn find(&self, venue: &str, symbol: &str) -> Option<usize> {
        self.index.get(venue)?.get(symbol).copied()
    }

    fn slot(&mut self, venue: &str, symbol: &str) -> usize {
        if let Some(i) = self.find(venue, symbol) {
            return i;
        }
        let i = self.states.len();
        self.index.entry(venue.to_owned()).or_default().insert(symbol.to_owned(), i);
        self.keys.push((venue.to_owned(), symbol.to_owned()));
        self.states.push(Symbol::new(&self.spec));
        i
    }

    fn count(&mut self, key: &str) {
        match self.counts.iter_mut().find(|(k, _)| k == key) {
            Some((_, n)) => *n += 1,
            None => self.counts.push((key.to_owned(), 1)),
        }
    }

    /// Fold a record into its symbol; false when it was a duplicate or too late (counted either way).
    ///
    /// `event` is parsed before: its error, if any, is raised where the oracle's parsing raised.
    pub fn apply(&mut self, meta: &Meta<'_>, event: impl FnOnce() -> PyResult<Event>) -> PyResult<bool> {
        let i = self.slot(meta.venue, meta.symbol);
        let watermark = self.states[i].watermark_ns;
        let mut ts_ns = meta.ts_event_ns;
        if meta.windowed && int_lt_float(ts_ns, watermark as f64 - self.spec.lateness_ns) {
            self.count("late");
            self.count(&format!("late:{}", meta.schema));
            return Ok(false);
        }
        if !self.states[i].seen.remember(digest(meta.schema, meta.event_id)) {
            self.count("duplicate");
            return Ok(false);
        }
        if ts_ns < watermark {
            self.count("reordered");
            ts_ns = watermark;
        }
        self.states[i].watermark_ns = ts_ns;
        let event = event()?;
        self.states[i].apply(&self.spec, event, ts_ns)?;
        self.count("applied");
        Ok(true)
    }

    /// Every symbol's state and the counts as bytes (the spec is not in them: the engine is made from it).
    pub fn save(&self) -> Vec<u8> {
        let mut out = Writer::default();
        out.u64(self.counts.len() as u64);
        for (key, n) in &self.counts {
            out.str(key);
            out.u64(*n);
        }
        out.u64(self.states.len() as u64);
        for ((venue, symbol), state) in self.keys.iter().zip(&self.states) {
            out.str(venue);
            out.str(symbol);
            state.save(&mut out);
        }
        out.into_bytes()
    }

    /// The engine `save` wrote, for this spec; None when the bytes are not such a state.
    pub fn load(spec: Spec, bytes: &[u8]) -> Option<Engine> {
        let mut engine = Engine::new(spec);
        let mut input = Reader::new(bytes);
        for _ in 0..input.len(16)? {
            let key = input.str()?.to_owned();
            engine.counts.push((key, input.u64()?));
        }
        for _ in 0..input.len(16)? {
            let (venue, symbol) = (input.str()?, input.str()?);
            let i = engine.slot(venue, symbol);
            engine.states[i].load(&mut input)?;
        }
        input.done().then_some(engine)
    }
}

impl Symbol {
    fn save(&self, out: &mut Writer) {
        out.i64(self.watermark_ns);
        self.liq.iter().chain(&self.trades).for_each(|sums| sums.save(out));
        save_points(out, &self.bursts);
        self.largest.save(out);
        self.median.save(out);
        save_option(out, self.last_liquidation_ns);
        out.f64(self.last_trade_price.unwrap_or(NAN));
        out.u64(u64::from(self.last_trade_price.is_some()));
        match self.top {
            Some(top) => out.f64s([1.0, top.bid, top.ask, top.mid, top.microprice].into_iter()),
            None => out.f64s([].into_iter()),
        }
        save_book(out, self.book.as_ref());
        out.f64(self.funding_rate);
        save_option(out, self.next_funding_ns);
        out.f64(self.open_interest);
        self.open_interest_then.iter().for_each(|then| then.save(out));
        out.i64s(self.seen.order.iter().map(|&d| d as i64));
    }

    fn load(&mut self, input: &mut Reader) -> Option<()> {
        self.watermark_ns = input.i64()?;
        for sums in self.liq.iter_mut().chain(self.trades.iter_mut()) {
            sums.load(input)?;
        }
        self.bursts = load_points(input)?;
        self.largest.load(input)?;
        self.median.load(input)?;
        self.last_liquidation_ns = load_option(input)?;
        let (price, known) = (input.f64()?, input.u64()?);
        self.last_trade_price = (known == 1).then_some(price);
        self.top = match input.f64s()?[..] {
            [] => None,
            [_, bid, ask, mid, microprice] => Some(Top { bid, ask, mid, microprice }),
            _ => return None,
        };
        self.book = load_book(input)?;
        self.funding_rate = input.f64()?;
        self.next_funding_ns = load_option(input)?;
        self.open_interest = input.f64()?;
        for then in self.open_interest_then.iter_mut() {
            then.load(input)?;
        }
        for d in input.i64s()? {
            self.seen.remember(d as u64);
        }
        Some(())
    }
}

fn save_option(out: &mut Writer, value: Option<i64>) {
    out.u64(u64::from(value.is_some()));
    out.i64(value.unwrap_or(0));
}

fn load_option(input: &mut Reader) -> Option<Option<i64>> {
    let (known, value) = (input.u64()?, input.i64()?);
    Some((known == 1).then_some(value))
}

/// A book as its levels' text (parsed again on load, as the book parsed it at first), update id, freshness.
fn save_book(out: &mut Writer, book: Option<&Book>) {
    let Some(book) = book else {
        out.u64(0);
        return;
    };
    out.u64(1);
    for bid in [true, false] {
        out.u64(book.len(bid) as u64);
        for level in book.side(bid) {
            out.str(&level.price);
            out.str(&level.size);
        }
    }
    out.i64(book.update_id);
    out.u64(u64::from(book.fresh));
}

fn load_book(input: &mut Reader) -> Option<Option<Book>> {
    if input.u64()? == 0 {
        return Some(None);
    }
    let mut sides = Vec::new();
    for _ in 0..2 {
        let n = input.len(16)?;
        sides.push((0..n).map(|_| Level::new(input.str()?, input.str()?)).collect::<Option<Vec<_>>>()?);
    }
    let asks = sides.pop()?;
    let bids = sides.pop()?;
    let mut book = Book::default();
    book.reset(bids, asks, input.i64()?);
    book.fresh = input.u64()? == 1;
    Some(Some(book))
}

/// A ValueError for bytes that are not a saved engine of this spec.
pub fn bad_state() -> pyo3::PyErr {
    PyValueError::new_err("not a saved feature engine of this spec")
}
