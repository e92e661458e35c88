//! A fixed-capacity list for reports (check reasons, diff reasons) without allocation.

/// Up to `N` items of `T`; pushing more only counts them in [`FixedList::dropped`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FixedList<T: Copy, const N: usize> {
    items: [Option<T>; N],
    len: usize,
    dropped: usize,
}

impl<T: Copy, const N: usize> Default for FixedList<T, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Copy, const N: usize> FixedList<T, N> {
    /// An empty list.
    pub const fn new() -> Self {
        Self {
            items: [None; N],
            len: 0,
            dropped: 0,
        }
    }

    /// Appends `item`, or counts it as dropped when the list is full.
    pub fn push(&mut self, item: T) {
        match self.items.get_mut(self.len) {
            Some(slot) => {
                *slot = Some(item);
                self.len = self.len.saturating_add(1);
            }
            None => self.dropped = self.dropped.saturating_add(1),
        }
    }

    /// Number of stored items.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing was pushed (stored or dropped).
    pub fn is_empty(&self) -> bool {
        self.len == 0 && self.dropped == 0
    }

    /// Number of items that did not fit.
    pub fn dropped(&self) -> usize {
        self.dropped
    }

    /// The stored items in push order.
    pub fn iter(&self) -> impl Iterator<Item = T> + '_ {
        self.items.iter().take(self.len).filter_map(|x| *x)
    }
}
