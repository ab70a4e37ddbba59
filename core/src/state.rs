//! Compact little-endian bytes for saved state (the agents' changelog snapshots): lengths, then raw columns.

#[derive(Default)]
pub struct Writer(Vec<u8>);

impl Writer {
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    pub fn u64(&mut self, value: u64) {
        self.0.extend_from_slice(&value.to_le_bytes());
    }

    pub fn i64(&mut self, value: i64) {
        self.0.extend_from_slice(&value.to_le_bytes());
    }

    pub fn f64(&mut self, value: f64) {
        self.0.extend_from_slice(&value.to_bits().to_le_bytes());
    }

    pub fn str(&mut self, value: &str) {
        self.u64(value.len() as u64);
        self.0.extend_from_slice(value.as_bytes());
    }

    pub fn i64s(&mut self, values: impl ExactSizeIterator<Item = i64>) {
        self.u64(values.len() as u64);
        values.for_each(|v| self.i64(v));
    }

    pub fn f64s(&mut self, values: impl ExactSizeIterator<Item = f64>) {
        self.u64(values.len() as u64);
        values.for_each(|v| self.f64(v));
    }
}

/// Reads what a `Writer` wrote; None at the first byte that does not fit (truncated or foreign state).
pub struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader(bytes)
    }

    pub fn done(&self) -> bool {
        self.0.is_empty()
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn word(&mut self) -> Option<[u8; 8]> {
        self.take(8)?.try_into().ok()
    }

    pub fn u64(&mut self) -> Option<u64> {
        self.word().map(u64::from_le_bytes)
    }

    pub fn i64(&mut self) -> Option<i64> {
        self.word().map(i64::from_le_bytes)
    }

    pub fn f64(&mut self) -> Option<f64> {
        self.word().map(|w| f64::from_bits(u64::from_le_bytes(w)))
    }

    /// A length, refused when more than the bytes left could hold (`unit` bytes each).
    pub fn len(&mut self, unit: usize) -> Option<usize> {
        let n = usize::try_from(self.u64()?).ok()?;
        (n.checked_mul(unit)? <= self.0.len()).then_some(n)
    }

    pub fn str(&mut self) -> Option<&'a str> {
        let n = self.len(1)?;
        std::str::from_utf8(self.take(n)?).ok()
    }

    pub fn i64s(&mut self) -> Option<Vec<i64>> {
        let n = self.len(8)?;
        (0..n).map(|_| self.i64()).collect()
    }

    pub fn f64s(&mut self) -> Option<Vec<f64>> {
        let n = self.len(8)?;
        (0..n).map(|_| self.f64()).collect()
    }
}
