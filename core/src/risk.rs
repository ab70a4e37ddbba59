//! `SymbolRisk`: the per-symbol risk state the decide step folds every market record into (the heartbeat for the
//! dead-man switch, the liquidation-spike circuit breaker, the pause after an abnormal loss). The rule it keeps,
//! line for line: `tests/oracle/risk.py`.
//!
//! Every market record of a symbol passes through `observe`, so its common case (no liquidation, the heartbeat
//! alive) reads one attribute and touches no Python object. The rare paths (a liquidation, a rule tripping) call
//! back into Python where the rule is Python's: `float()` of a decimal text, `RiskLimits.spike_notional`, and the
//! reasons' number formatting, so their text and their errors are the oracle's.

use pyo3::exceptions::PyValueError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict, PyFloat, PyType};

use crate::state::{Reader, Writer};
use crate::windows::Sums;

const NS_PER_MS: i128 = 1_000_000;

static LIQUIDATION: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// The state, apart from Python: what is compared, saved and loaded.
#[derive(Clone, Debug)]
struct Risk {
    liquidations: Sums, // liquidation notional over the spike window
    heartbeat_ns: Option<i64>,
    // Python ints in the rule: a timer's `now_ns` plus a cool-down may pass i64, so these are wider
    heartbeat_lost_until_ns: i128,
    paused_until_ns: i128,
    pause_reason: Option<String>,
    counts: Vec<(String, u64)>, // first-seen order, as a Counter keeps it
}

impl Risk {
    fn new(window_ns: i64) -> Risk {
        Risk {
            liquidations: Sums::new(window_ns, 1),
            heartbeat_ns: None,
            heartbeat_lost_until_ns: -1,
            paused_until_ns: -1,
            pause_reason: None,
            counts: vec![],
        }
    }

    fn count(&mut self, key: &str) {
        match self.counts.iter_mut().find(|(k, _)| k == key) {
            Some((_, n)) => *n += 1,
            None => self.counts.push((key.to_owned(), 1)),
        }
    }

    /// The heartbeat moved on to `ts_ns` (never back) and the spike window expired to it.
    fn beat(&mut self, ts_ns: i64) -> i64 {
        let heartbeat = self.heartbeat_ns.map_or(ts_ns, |h| h.max(ts_ns));
        self.heartbeat_ns = Some(heartbeat);
        self.liquidations.expire(heartbeat);
        heartbeat
    }

    /// The gap in ms when more than `timeout_ns` passed since the heartbeat (the cool-down then starts).
    fn lost(
        &mut self,
        now_ns: i128,
        timeout_ns: i128,
        cooldown_ns: impl FnOnce() -> PyResult<i128>,
    ) -> PyResult<Option<i128>> {
        let Some(heartbeat) = self.heartbeat_ns else { return Ok(None) };
        let gap_ns = now_ns - i128::from(heartbeat);
        if gap_ns <= timeout_ns {
            return Ok(None);
        }
        self.heartbeat_lost_until_ns = self.heartbeat_lost_until_ns.max(now_ns + cooldown_ns()?);
        self.count("heartbeat_lost");
        Ok(Some(gap_ns.div_euclid(NS_PER_MS)))
    }

    fn pause(&mut self, ts_ns: i128, pause_ns: i128, reason: String) -> String {
        self.paused_until_ns = self.paused_until_ns.max(ts_ns + pause_ns);
        let said = format!("circuit breaker: {reason}");
        self.pause_reason = Some(reason);
        self.count("circuit_breaker");
        said
    }

    fn save(&self) -> Vec<u8> {
        let mut out = Writer::default();
        self.liquidations.save(&mut out);
        out.u64(u64::from(self.heartbeat_ns.is_some()));
        out.i64(self.heartbeat_ns.unwrap_or(0));
        for wide in [self.heartbeat_lost_until_ns, self.paused_until_ns] {
            out.i64((wide >> 64) as i64);
            out.u64(wide as u64);
        }
        out.u64(u64::from(self.pause_reason.is_some()));
        out.str(self.pause_reason.as_deref().unwrap_or(""));
        out.u64(self.counts.len() as u64);
        for (key, n) in &self.counts {
            out.str(key);
            out.u64(*n);
        }
        out.into_bytes()
    }

    fn load(window_ns: i64, bytes: &[u8]) -> Option<Risk> {
        let mut risk = Risk::new(window_ns);
        let mut input = Reader::new(bytes);
        risk.liquidations.load(&mut input)?;
        let (beat, heartbeat) = (flag(&mut input)?, input.i64()?);
        risk.heartbeat_ns = beat.then_some(heartbeat);
        let mut wide = || Some((i128::from(input.i64()?) << 64) | i128::from(input.u64()?));
        (risk.heartbeat_lost_until_ns, risk.paused_until_ns) = (wide()?, wide()?);
        let (paused, reason) = (flag(&mut input)?, input.str()?);
        risk.pause_reason = paused.then(|| reason.to_owned());
        for _ in 0..input.len(16)? {
            let key = input.str()?.to_owned();
            risk.counts.push((key, input.u64()?));
        }
        input.done().then_some(risk)
    }
}

fn flag(input: &mut Reader<'_>) -> Option<bool> {
    match input.u64()? {
        0 => Some(false),
        1 => Some(true),
        _ => None,
    }
}

/// The per-symbol risk state (`decision.risk`): heartbeat, liquidation-spike circuit breaker, pause.
#[pyclass(module = "liqbot_core", name = "SymbolRisk")]
pub struct PySymbolRisk {
    risk: Risk,
    // the heartbeat timeout of the last `RiskLimits` seen (frozen: the same object has the same value), held so
    // that the identity compared is never a freed object's
    timeout: Option<(Py<PyAny>, i128)>,
}

#[pymethods]
impl PySymbolRisk {
    /// A fresh state whose spike window is `window_ns` long.
    #[new]
    fn new(window_ns: i64) -> Self {
        PySymbolRisk { risk: Risk::new(window_ns), timeout: None }
    }

    /// A fresh state for `limits` (a `RiskLimits`): its spike window.
    #[staticmethod]
    fn for_limits(limits: &Bound<'_, PyAny>) -> PyResult<Self> {
        let window_ms: i64 = limits.getattr(intern!(limits.py(), "breaker_spike_window_ms"))?.extract()?;
        let window_ns = window_ms
            .checked_mul(NS_PER_MS as i64)
            .ok_or_else(|| PyValueError::new_err(format!("breaker_spike_window_ms {window_ms} is too long")))?;
        Ok(PySymbolRisk::new(window_ns))
    }

    /// Fold any record of the symbol; returns a cancel-all reason when a rule has just tripped.
    fn observe(&mut self, record: &Bound<'_, PyAny>, limits: &Bound<'_, PyAny>) -> PyResult<Option<String>> {
        let py = record.py();
        let ts_ns: i64 = record.getattr(intern!(py, "ts_event_ns"))?.extract()?;
        let lost = self.heartbeat_lost(i128::from(ts_ns), limits)?;
        let heartbeat = self.risk.beat(ts_ns);
        let class = LIQUIDATION.import(py, "schemas.records", "Liquidation")?;
        let spike = if record.is_instance(class)? { self.liquidation(record, limits, ts_ns, heartbeat)? } else { None };
        Ok(match (lost, spike) {
            (Some(lost), Some(spike)) => Some(format!("{lost}; {spike}")),
            (lost, spike) => lost.or(spike),
        })
    }

    /// When nothing arrived for longer than the timeout: start the cool-down and say why (dead-man switch).
    fn heartbeat_lost(&mut self, now_ns: i128, limits: &Bound<'_, PyAny>) -> PyResult<Option<String>> {
        let timeout_ns = self.timeout_ns(limits)?;
        let cooldown = || -> PyResult<i128> {
            let ms: i128 = limits.getattr(intern!(limits.py(), "heartbeat_cooldown_ms"))?.extract()?;
            Ok(ms * NS_PER_MS)
        };
        let gap_ms = self.risk.lost(now_ns, timeout_ns, cooldown)?;
        Ok(gap_ms.map(|ms| format!("heartbeat lost: no record for {ms} ms")))
    }

    /// A closed order that lost abnormally much (an `Outcome`) pauses the symbol; returns the reason when it did.
    fn on_outcome(&mut self, outcome: &Bound<'_, PyAny>, limits: &Bound<'_, PyAny>) -> PyResult<Option<String>> {
        let py = outcome.py();
        let net_return = outcome.getattr(intern!(py, "net_return"))?;
        if net_return.is_none() {
            return Ok(None);
        }
        let loss: f64 = limits.getattr(intern!(py, "breaker_loss_return"))?.extract()?;
        if net_return.gt(-loss)? {
            return Ok(None);
        }
        let order = outcome.getattr(intern!(py, "intent"))?.getattr(intern!(py, "client_order_id"))?;
        let reason = format!("abnormal loss: {} on {}", shown(&net_return, ".2%")?, order.str()?);
        let ts_ns: i128 = outcome.getattr(intern!(py, "ts_event_ns"))?.extract()?;
        Ok(Some(self.risk.pause(ts_ns, pause_ns(limits)?, reason)))
    }

    #[getter]
    fn heartbeat_ns(&self) -> Option<i64> {
        self.risk.heartbeat_ns
    }

    #[getter]
    fn heartbeat_lost_until_ns(&self) -> i128 {
        self.risk.heartbeat_lost_until_ns
    }

    #[getter]
    fn paused_until_ns(&self) -> i128 {
        self.risk.paused_until_ns
    }

    #[getter]
    fn pause_reason(&self) -> Option<&str> {
        self.risk.pause_reason.as_deref()
    }

    /// The liquidation notional within the spike window as of the heartbeat.
    #[getter]
    fn window_notional(&self) -> f64 {
        self.risk.liquidations.sums[0]
    }

    /// How often each rule tripped, in first-seen order.
    #[getter]
    fn counts<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let counts = PyDict::new(py);
        for (key, n) in &self.risk.counts {
            counts.set_item(key, n)?;
        }
        Ok(counts)
    }

    /// Equal saved bytes: floats compare by their bits, so a restored NaN sum equals the saved one.
    fn __eq__(&self, other: &Self) -> bool {
        self.risk.save() == other.risk.save()
    }

    fn __repr__(&self) -> String {
        let Risk { heartbeat_ns, paused_until_ns, pause_reason, .. } = &self.risk;
        format!("SymbolRisk(heartbeat_ns={heartbeat_ns:?}, paused_until_ns={paused_until_ns}, pause_reason={pause_reason:?})")
    }

    fn __getnewargs__(&self) -> (i64,) {
        (self.risk.liquidations.window_ns(),)
    }

    /// The state as compact bytes (the agents' snapshots).
    fn __getstate__<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.risk.save())
    }

    fn __setstate__(&mut self, state: &[u8]) -> PyResult<()> {
        self.risk = Risk::load(self.risk.liquidations.window_ns(), state)
            .ok_or_else(|| PyValueError::new_err("not a saved SymbolRisk: the state is truncated or foreign"))?;
        Ok(())
    }
}

impl PySymbolRisk {
    fn timeout_ns(&mut self, limits: &Bound<'_, PyAny>) -> PyResult<i128> {
        if let Some((seen, timeout_ns)) = &self.timeout {
            if seen.bind(limits.py()).is(limits) {
                return Ok(*timeout_ns);
            }
        }
        let ms: i128 = limits.getattr(intern!(limits.py(), "heartbeat_timeout_ms"))?.extract()?;
        self.timeout = Some((limits.clone().unbind(), ms * NS_PER_MS));
        Ok(ms * NS_PER_MS)
    }

    /// A liquidation's notional into the spike window at the heartbeat; the breaker's reason when it trips.
    fn liquidation(
        &mut self,
        record: &Bound<'_, PyAny>,
        limits: &Bound<'_, PyAny>,
        ts_ns: i64,
        heartbeat: i64,
    ) -> PyResult<Option<String>> {
        let py = record.py();
        let float = py.get_type::<PyFloat>();
        let price: f64 = float.call1((record.getattr(intern!(py, "bankruptcy_price"))?,))?.extract()?;
        let size: f64 = float.call1((record.getattr(intern!(py, "size"))?,))?.extract()?;
        self.risk.liquidations.add(heartbeat, &[price * size]); // a late one counts at the newest time
        let spike = PyFloat::new(py, self.risk.liquidations.sums[0]);
        let threshold =
            limits.call_method1(intern!(py, "spike_notional"), (record.getattr(intern!(py, "symbol"))?,))?;
        if !spike.ge(&threshold)? {
            return Ok(None);
        }
        let window_ms = limits.getattr(intern!(py, "breaker_spike_window_ms"))?;
        let reason = format!(
            "liquidation spike: {} within {} ms (limit {})",
            shown(&spike, ",.0f")?,
            window_ms.str()?,
            shown(&threshold, ",.0f")?
        );
        Ok(Some(self.risk.pause(i128::from(ts_ns), pause_ns(limits)?, reason)))
    }
}

fn pause_ns(limits: &Bound<'_, PyAny>) -> PyResult<i128> {
    let ms: i128 = limits.getattr(intern!(limits.py(), "breaker_pause_ms"))?.extract()?;
    Ok(ms * NS_PER_MS)
}

/// `format(value, spec)`, as the rule's f-strings print a number.
fn shown(value: &Bound<'_, PyAny>, spec: &str) -> PyResult<String> {
    value.call_method1(intern!(value.py(), "__format__"), (spec,))?.extract()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_heartbeat_gap_longer_than_the_timeout_is_lost_once_and_starts_the_cooldown() {
        let mut risk = Risk::new(60_000 * NS_PER_MS as i64);
        assert_eq!(risk.lost(5, 10, || Ok(100)).unwrap(), None); // no heartbeat yet
        risk.beat(1_000_000);
        assert_eq!(risk.lost(11_000_000, 10_000_000, || Ok(100)).unwrap(), None); // exactly the timeout
        assert_eq!(risk.lost(13_500_000, 10_000_000, || Ok(100)).unwrap(), Some(12));
        assert_eq!(risk.heartbeat_lost_until_ns, 13_500_100);
        assert_eq!(risk.counts, vec![("heartbeat_lost".to_owned(), 1)]);
        assert_eq!(risk.beat(500), 1_000_000); // an older record does not move it back
    }

    #[test]
    fn saved_state_loads_equal_and_bad_bytes_do_not() {
        let mut risk = Risk::new(60);
        risk.beat(10);
        risk.liquidations.add(10, &[f64::NAN]);
        risk.pause(i128::from(i64::MAX), i128::from(i64::MAX), "spike".to_owned());
        let bytes = risk.save();
        let loaded = Risk::load(60, &bytes).expect("its own bytes");
        assert_eq!(loaded.paused_until_ns, 2 * i128::from(i64::MAX));
        assert_eq!(loaded.save(), bytes);
        assert!(Risk::load(60, &bytes[..bytes.len() - 1]).is_none());
        assert!(Risk::load(60, &[bytes.as_slice(), &[0]].concat()).is_none());
    }
}
