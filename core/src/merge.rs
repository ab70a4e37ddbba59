//! The agents' event-time merge of several inputs of one partition (`streams/merge.py` says why it exists).
//!
//! Items wait until no input can still send an earlier one: every other input has sent something at least as
//! late, or is idle (read to its high-water mark). They come out in (event time, source rank, offset) order, an
//! item earlier than its source's newest keeping its place behind it, so a source's offsets stay a prefix.
//! Compiled so that the batch fold (`fold.rs`) merges without a Python call per record; the agents' other
//! inputs go through the same merge with Python objects as items.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyIterator, PyList, PyString, PyTuple};

use crate::market::MarketEvent;

/// What waits in a merge: a Python item, or a body the batch fold decoded (Failed: a dead letter's offset).
pub enum Held {
    Py(Py<PyAny>),
    Event(MarketEvent),
    Failed,
}

pub struct Entry {
    key: (i64, usize, i64, u64), // time held to its source's newest, source rank, offset, push order
    pub item: Held,
}

impl Entry {
    pub fn source(&self) -> usize {
        self.key.1
    }

    pub fn offset(&self) -> i64 {
        self.key.2
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

impl Eq for Entry {}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key.cmp(&other.key)
    }
}

#[derive(Default)]
pub struct Merge {
    pub names: Vec<String>, // by rank
    ranks: HashMap<String, usize>,
    newest: Vec<i64>,
    by_newest: Vec<usize>, // ranks from the least advanced, kept as they move
    heap: BinaryHeap<Reverse<Entry>>,
    pushed: u64,
}

impl Merge {
    pub fn add_source(&mut self, name: &str) -> usize {
        if let Some(&rank) = self.ranks.get(name) {
            return rank;
        }
        let rank = self.names.len();
        self.names.push(name.to_owned());
        self.ranks.insert(name.to_owned(), rank);
        self.newest.push(-1);
        self.by_newest.insert(0, rank);
        rank
    }

    pub fn rank(&self, name: &str) -> Option<usize> {
        self.ranks.get(name).copied()
    }

    pub fn push(&mut self, rank: usize, ts_ns: i64, offset: i64, item: Held) {
        let ts_ns = if ts_ns > self.newest[rank] {
            self.advance(rank, ts_ns);
            ts_ns
        } else {
            self.newest[rank]
        };
        self.pushed += 1;
        self.heap.push(Reverse(Entry { key: (ts_ns, rank, offset, self.pushed), item }));
    }

    /// Move `rank` up the order past every source now behind it (a few sources: a short walk).
    fn advance(&mut self, rank: usize, ts_ns: i64) {
        self.newest[rank] = ts_ns;
        let mut i = self.by_newest.iter().position(|&r| r == rank).expect("a known source");
        while i + 1 < self.by_newest.len() && self.newest[self.by_newest[i + 1]] < ts_ns {
            self.by_newest[i] = self.by_newest[i + 1];
            i += 1;
        }
        self.by_newest[i] = rank;
    }

    /// Every entry no source can precede any more, in order, to `out`; `idle(rank)` is asked only of a source
    /// that would hold something back.
    pub fn release(
        &mut self,
        mut idle: impl FnMut(usize) -> PyResult<bool>,
        mut out: impl FnMut(Entry) -> PyResult<()>,
    ) -> PyResult<()> {
        for i in 0..self.by_newest.len() {
            let rank = self.by_newest[i];
            let bound = self.newest[rank];
            while self.heap.peek().is_some_and(|top| top.0.key.0 <= bound) {
                out(self.heap.pop().expect("peeked").0)?;
            }
            if self.heap.is_empty() || !idle(rank)? {
                return Ok(());
            }
        }
        while let Some(Reverse(entry)) = self.heap.pop() {
            out(entry)?;
        }
        Ok(())
    }

    /// Each source's newest time as of its last released item (a held item's place bounds its source's).
    pub fn resume_points(&self) -> Vec<(String, i64)> {
        let mut points = self.newest.clone();
        for Reverse(entry) in &self.heap {
            let (ts_ns, rank, ..) = entry.key;
            points[rank] = points[rank].min(ts_ns);
        }
        self.names.iter().cloned().zip(points).collect()
    }

    pub fn resume(&mut self, name: &str, ts_ns: i64) {
        if let Some(rank) = self.rank(name) {
            if ts_ns > self.newest[rank] {
                self.advance(rank, ts_ns);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }
}

/// An item as Python sees it: a decoded body comes out as (topic, offset, event), as the agents hold records.
fn to_python(py: Python<'_>, merge: &Merge, entry: Entry) -> PyResult<Py<PyAny>> {
    let (topic, offset) = (&merge.names[entry.source()], entry.offset());
    Ok(match entry.item {
        Held::Py(item) => item,
        Held::Event(event) => PyTuple::new(
            py,
            [
                topic.into_pyobject(py)?.into_any(),
                offset.into_pyobject(py)?.into_any(),
                Py::new(py, event)?.into_bound(py).into_any(),
            ],
        )?
        .into_any()
        .unbind(),
        Held::Failed => PyTuple::new(
            py,
            [topic.into_pyobject(py)?.into_any(), offset.into_pyobject(py)?.into_any(), py.None().into_bound(py)],
        )?
        .into_any()
        .unbind(),
    })
}

impl PyMerge {
    fn rank(&mut self, source: &Bound<'_, PyString>) -> PyResult<usize> {
        let rank = self.0.add_source(source.to_str()?);
        if rank == self.1.len() {
            self.1.push(source.clone().unbind());
        }
        Ok(rank)
    }
}

/// `EventTimeMerge`: the merge with Python items (`streams/merge.py`); sources are topic names.
#[pyclass(module = "liqbot_core", name = "EventTimeMerge")]
#[derive(Default)]
pub struct PyMerge(pub Merge, Vec<Py<PyString>>); // the merge, and its sources as Python strings (by rank)

#[pymethods]
impl PyMerge {
    #[new]
    fn new() -> Self {
        PyMerge::default()
    }

    /// A source the merge waits on, ranked after those added before it (ties in event time).
    fn add_source(&mut self, source: &Bound<'_, PyString>) -> PyResult<()> {
        self.rank(source)?;
        Ok(())
    }

    /// Queue an item; one earlier in time than its source's newest keeps its place behind it (offset order).
    fn push(&mut self, source: &Bound<'_, PyString>, ts_ns: i64, offset: i64, item: Py<PyAny>) -> PyResult<()> {
        let rank = self.rank(source)?;
        self.0.push(rank, ts_ns, offset, Held::Py(item));
        Ok(())
    }

    /// Every item no source can precede any more; `idle(source)`: it has nothing unread right now.
    fn release<'py>(&mut self, py: Python<'py>, idle: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyList>> {
        let out = PyList::empty(py);
        let names = &self.1;
        let mut entries = Vec::new();
        self.0.release(
            |rank| idle.call1((names[rank].bind(py),))?.is_truthy(),
            |entry| {
                entries.push(entry);
                Ok(())
            },
        )?;
        for entry in entries {
            out.append(to_python(py, &self.0, entry)?)?;
        }
        Ok(out)
    }

    /// Each source's newest time as of its last released item, for a snapshot (`resume` continues from them).
    fn resume_points<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let points = PyDict::new(py);
        for (name, ts_ns) in self.0.resume_points() {
            points.set_item(name, ts_ns)?;
        }
        Ok(points)
    }

    /// Continue from a snapshot's `resume_points`; sources this merge does not wait on are ignored.
    fn resume(&mut self, points: &Bound<'_, PyDict>) -> PyResult<()> {
        for (name, ts_ns) in points.iter() {
            if let Ok(name) = name.extract::<String>() {
                self.0.resume(&name, ts_ns.extract()?);
            }
        }
        Ok(())
    }

    /// Source -> rank.
    #[getter]
    fn sources<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let out = PyDict::new(py);
        for (rank, name) in self.0.names.iter().enumerate() {
            out.set_item(name, rank)?;
        }
        Ok(out)
    }

    /// Source -> the newest event time it sent (-1 before any).
    #[getter]
    fn newest_ns<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let out = PyDict::new(py);
        for (name, ts_ns) in self.0.names.iter().zip(&self.0.newest) {
            out.set_item(name, ts_ns)?;
        }
        Ok(out)
    }

    fn __len__(&self) -> usize {
        self.0.len()
    }

    fn __repr__(&self) -> String {
        format!("EventTimeMerge(sources={:?}, held={})", self.0.names, self.0.len())
    }

    #[classmethod]
    fn __class_getitem__(cls: &Bound<'_, pyo3::types::PyType>, _item: &Bound<'_, PyAny>) -> Py<PyAny> {
        cls.clone().into_any().unbind() // EventTimeMerge[T] in annotations
    }
}

/// `streams.merge.ordered`: complete sources, each an iterable of (ts_ns, offset, item) in offset order, merged
/// lazily in the order the merge releases them once every source is read to its end: (time held to its source's
/// newest, source rank, offset). One item per source waits here, so history streams through.
#[pyclass(module = "liqbot_core", name = "Ordered")]
pub struct PyOrdered {
    sources: Vec<Py<PyIterator>>,
    heads: Vec<Option<(i64, Py<PyAny>)>>, // each source's next item and its own time
    newest: Vec<i64>,                     // each source's newest time so far (-1 before any)
    keys: BinaryHeap<Reverse<(i64, usize, i64)>>,
    pending: Option<usize>, // the source whose item went out last: read on only when the next is asked for
}

impl PyOrdered {
    fn pull(&mut self, py: Python<'_>, rank: usize) -> PyResult<()> {
        let Some(next) = self.sources[rank].bind(py).clone().next() else { return Ok(()) };
        let (ts_ns, offset, item): (i64, i64, Py<PyAny>) = next?.extract()?;
        self.newest[rank] = self.newest[rank].max(ts_ns); // an item earlier than its source's newest waits behind it
        self.keys.push(Reverse((self.newest[rank], rank, offset)));
        self.heads[rank] = Some((ts_ns, item));
        Ok(())
    }
}

#[pymethods]
impl PyOrdered {
    #[new]
    fn new(py: Python<'_>, sources: &Bound<'_, PyAny>) -> PyResult<Self> {
        let sources: Vec<Py<PyIterator>> =
            sources.try_iter()?.map(|s| Ok(s?.try_iter()?.unbind())).collect::<PyResult<_>>()?;
        let n = sources.len();
        let mut ordered = PyOrdered {
            sources,
            heads: (0..n).map(|_| None).collect(),
            newest: vec![-1; n],
            keys: BinaryHeap::with_capacity(n),
            pending: None,
        };
        for rank in 0..n {
            ordered.pull(py, rank)?;
        }
        Ok(ordered)
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    /// (source rank, the item's own ts_ns, item).
    fn __next__(&mut self, py: Python<'_>) -> PyResult<Option<(usize, i64, Py<PyAny>)>> {
        if let Some(rank) = self.pending.take() {
            self.pull(py, rank)?;
        }
        let Some(Reverse((_, rank, _))) = self.keys.pop() else { return Ok(None) };
        let (ts_ns, item) = self.heads[rank].take().expect("a waiting item per key");
        self.pending = Some(rank);
        Ok(Some((rank, ts_ns, item)))
    }
}
