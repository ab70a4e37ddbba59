//! A consumed batch folded into the features agent's states in one call: freshness, decode, merge and fold.
//!
//! The agent's rules are the runner's (`agents/runner.py`), applied here without a Python call per record: a
//! record a state already holds (by offset) is skipped; a body is decoded straight into a `MarketEvent`, or by
//! the serde (`fallback`: a record of an older schema, or None once it is dead-lettered); records wait in the
//! partition's event-time merge (`merge.rs`) until no input can still send an earlier one, an input being idle
//! once read to its high-water mark; released records are folded into the compiled engine. Python gets back the
//! decision points, the counts, and the messages of topics this fold does not read.

use std::collections::{HashMap, HashSet};

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};

use crate::features_py::PyFeatureEngine;
use crate::market::{MarketDecoder, MarketEvent};
use crate::merge::{Entry, Held, PyMerge};

/// A decision point: partition, the liquidation (event or record), the symbol's watermark and its values.
type Made = (i64, Py<PyAny>, i64, Py<PyTuple>);
/// By topic: bodies decoded here, records folded in, and dead letters released.
type Counts = HashMap<String, (u64, u64, u64)>;

/// One partition's state for the length of a call, and where its offsets stood when the call began.
struct Slot<'py> {
    partition: i64,
    engine: PyRefMut<'py, PyFeatureEngine>,
    merge: PyRefMut<'py, PyMerge>,
    applied_dict: Bound<'py, PyDict>,
    applied: Vec<i64>,
    applied_at_start: Vec<i64>,
    read: Vec<i64>,
    read_at_start: Vec<i64>,
    high: Vec<Option<i64>>,
    names: Vec<String>,           // the merge's sources, by rank
    counts: Vec<(u64, u64, u64)>, // by rank: decoded here, folded in, dead letters released
}

/// The features agent's batch path; one per agent, the slots' parts given per call.
#[pyclass(module = "liqbot_core", name = "MarketFold")]
pub struct MarketFold {
    decoder: Py<MarketDecoder>,
    topics: HashSet<String>,
    fallback: Py<PyAny>,
    high: Py<PyAny>,
}

#[pymethods]
impl MarketFold {
    /// `topics`: those it folds; `fallback(topic, payload, key, partition, offset)`: a body the events path does
    /// not read, as a record or None (dead-lettered); `high(topic, partition)`: the high-water mark (-1: unknown).
    #[new]
    fn new(decoder: Py<MarketDecoder>, topics: HashSet<String>, fallback: Py<PyAny>, high: Py<PyAny>) -> Self {
        MarketFold { decoder, topics, fallback, high }
    }

    /// Fold the batch's messages of its topics; `slot(partition)` gives (engine, merge, applied offsets) and
    /// `read` maps (topic, partition) to the newest offset taken (updated here). Returns the other messages (in
    /// order), the decision points and the counts.
    fn fold<'py>(
        &self,
        py: Python<'py>,
        batch: &Bound<'py, PyList>,
        slot: &Bound<'py, PyAny>,
        read: &Bound<'py, PyDict>,
    ) -> PyResult<(Bound<'py, PyList>, Vec<Made>, Counts)> {
        let rest = PyList::empty(py);
        let (mut made, mut counts) = (Vec::new(), Counts::new());
        let mut slots: HashMap<i64, Slot<'py>> = HashMap::new();
        let decoder = self.decoder.get();
        for msg in batch.iter() {
            if !msg.call_method0(intern!(py, "error"))?.is_none() {
                rest.append(msg)?;
                continue;
            }
            let topic = msg.call_method0(intern!(py, "topic"))?;
            let topic = topic.cast::<PyString>()?.to_str()?;
            if !self.topics.contains(topic) {
                rest.append(msg)?;
                continue;
            }
            let partition: i64 = msg.call_method0(intern!(py, "partition"))?.extract()?;
            let offset: i64 = msg.call_method0(intern!(py, "offset"))?.extract()?;
            if !slots.contains_key(&partition) {
                let parts = slot.call1((partition,))?;
                slots.insert(partition, open(py, partition, parts.cast::<PyTuple>()?, read)?);
            }
            let state = slots.get_mut(&partition).expect("opened");
            let Some(rank) = state.merge.0.rank(topic) else {
                rest.append(msg)?; // not an input of this state's merge: the runner's path decides
                continue;
            };
            state.read[rank] = offset;
            if offset <= state.applied[rank] {
                continue; // already folded in (a redelivery after a restart)
            }
            let value = msg.call_method0(intern!(py, "value"))?;
            let payload = value.cast::<PyBytes>().map(|b| b.as_bytes()).unwrap_or(b"");
            let (ts_ns, held) = match decoder.event(py, payload) {
                Some(event) => {
                    state.counts[rank].0 += 1;
                    (event.ts_event_ns, Held::Event(event))
                }
                None => {
                    let key = msg.call_method0(intern!(py, "key"))?;
                    let record = self.fallback.bind(py).call1((topic, &value, key, partition, offset))?;
                    if record.is_none() {
                        (-1, Held::Failed)
                    } else {
                        (record.getattr(intern!(py, "ts_event_ns"))?.extract()?, Held::Py(record.unbind()))
                    }
                }
            };
            state.merge.0.push(rank, ts_ns, offset, held);
            self.release(py, state, &mut made)?;
        }
        for state in slots.into_values() {
            close(py, state, read, &mut counts)?;
        }
        Ok((rest, made, counts))
    }

    /// Release what waited on inputs since read to their end, for one partition's (engine, merge, applied).
    fn drain<'py>(
        &self,
        py: Python<'py>,
        partition: i64,
        parts: &Bound<'py, PyTuple>,
        read: &Bound<'py, PyDict>,
    ) -> PyResult<(Vec<Made>, Counts)> {
        let (mut made, mut counts) = (Vec::new(), Counts::new());
        let mut state = open(py, partition, parts, read)?;
        self.release(py, &mut state, &mut made)?;
        close(py, state, read, &mut counts)?;
        Ok((made, counts))
    }
}

impl MarketFold {
    fn release(&self, py: Python<'_>, state: &mut Slot<'_>, made: &mut Vec<Made>) -> PyResult<()> {
        let Slot { partition, engine, merge, applied, read, high, names, counts, .. } = state;
        let high_of = self.high.bind(py);
        let idle = |rank: usize| -> PyResult<bool> {
            let mark = match high[rank] {
                Some(mark) => mark,
                None => *high[rank].insert(high_of.call1((&names[rank], *partition))?.extract()?),
            };
            Ok(mark >= 0 && read[rank] + 1 >= mark)
        };
        let fold = |entry: Entry| -> PyResult<()> {
            let (rank, offset) = (entry.source(), entry.offset());
            let count = &mut counts[rank];
            match entry.item {
                Held::Event(event) => {
                    count.1 += 1;
                    if let Some(point) = fold_event(py, engine, event)? {
                        made.push((*partition, point.0, point.1, point.2));
                    }
                }
                Held::Py(record) => {
                    count.1 += 1;
                    if let Some((watermark, values)) = engine.update(record.bind(py))? {
                        made.push((*partition, record, watermark, values.unbind()));
                    }
                }
                Held::Failed => count.2 += 1,
            }
            applied[rank] = applied[rank].max(offset);
            Ok(())
        };
        merge.0.release(idle, fold)
    }
}

/// Fold one event; at an applied liquidation, the event as a Python object with its symbol's values.
fn fold_event(
    py: Python<'_>,
    engine: &mut PyFeatureEngine,
    mut event: MarketEvent,
) -> PyResult<Option<(Py<PyAny>, i64, Py<PyTuple>)>> {
    if !engine.fold_event(py, &mut event)? || event.name != "liqbot.Liquidation" {
        return Ok(None);
    }
    let (watermark, values) = engine.values(py, &event.venue, &event.symbol)?;
    Ok(Some((Py::new(py, event)?.into_any(), watermark, values.unbind())))
}

fn open<'py>(
    py: Python<'py>,
    partition: i64,
    parts: &Bound<'py, PyTuple>,
    read: &Bound<'py, PyDict>,
) -> PyResult<Slot<'py>> {
    let engine = parts.get_item(0)?.cast_into::<PyFeatureEngine>()?.borrow_mut();
    let merge = parts.get_item(1)?.cast_into::<PyMerge>()?.borrow_mut();
    let applied_dict = parts.get_item(2)?.cast_into::<PyDict>()?;
    let (mut applied, mut offsets) = (Vec::new(), Vec::new());
    for name in &merge.0.names {
        applied.push(offset_in(&applied_dict, name.into_pyobject(py)?.into_any())?);
        offsets.push(offset_in(read, (name, partition).into_pyobject(py)?.into_any())?);
    }
    let (sources, names) = (merge.0.names.len(), merge.0.names.clone());
    Ok(Slot {
        partition,
        engine,
        merge,
        applied_dict,
        applied_at_start: applied.clone(),
        applied,
        read_at_start: offsets.clone(),
        read: offsets,
        high: vec![None; sources],
        names,
        counts: vec![(0, 0, 0); sources],
    })
}

/// Write back the offsets that moved (the slot's applied ones, which its next snapshot holds, and those read),
/// and add its counts by topic.
fn close(py: Python<'_>, state: Slot<'_>, read: &Bound<'_, PyDict>, counts: &mut Counts) -> PyResult<()> {
    for (rank, name) in state.names.iter().enumerate() {
        let (decoded, fed, failed) = state.counts[rank];
        if decoded + fed + failed > 0 {
            let total = counts.entry(name.clone()).or_default();
            *total = (total.0 + decoded, total.1 + fed, total.2 + failed);
        }
        if state.applied[rank] > state.applied_at_start[rank] {
            state.applied_dict.set_item(name, state.applied[rank])?;
        }
        if state.read[rank] > state.read_at_start[rank] {
            read.set_item((name, state.partition).into_pyobject(py)?, state.read[rank])?;
        }
    }
    Ok(())
}

fn offset_in(dict: &Bound<'_, PyDict>, key: Bound<'_, PyAny>) -> PyResult<i64> {
    dict.get_item(key)?.map_or(Ok(-1), |value| value.extract())
}
