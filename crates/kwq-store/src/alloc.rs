//! The block allocator: a bitmap of used blocks plus the *pending-free*
//! list.
//!
//! # Invariant (the on-disk identity rule)
//!
//! A block is free in the bitmap only if no durable superblock, and no
//! commit being written, can reach it. So:
//!
//! * blocks written by the transaction being built, and dropped before it
//!   commits, are freed at once ([`Allocator::free_now`]);
//! * blocks reachable from the last durable superblock, and dropped by the
//!   live state, go on the pending list ([`Allocator::defer_free`]) and are
//!   released only after the *next* superblock is durable
//!   ([`Allocator::release_pending`]).
//!
//! This is kwq's release rule on disk: nothing is recycled while anything
//! may still depend on it.

/// A bitmap allocator over `blocks` blocks, first `reserved` never free.
#[derive(Debug, Clone)]
pub(crate) struct Allocator {
    bits: Vec<u64>,
    blocks: u64,
    used: u64,
    cursor: u64,
    pending: Vec<(u64, u64)>,
}

impl Allocator {
    pub(crate) fn new(blocks: u64, reserved: u64) -> Self {
        let mut a = Self {
            bits: vec![0; blocks.div_ceil(64) as usize],
            blocks,
            used: 0,
            cursor: reserved,
            pending: Vec::new(),
        };
        a.mark(0, reserved.min(blocks));
        a
    }

    fn get(&self, b: u64) -> bool {
        self.bits[(b / 64) as usize] >> (b % 64) & 1 == 1
    }

    fn set(&mut self, b: u64, v: bool) {
        let w = &mut self.bits[(b / 64) as usize];
        if v {
            *w |= 1 << (b % 64);
        } else {
            *w &= !(1 << (b % 64));
        }
    }

    /// Marks `start..start + n` used; returns false (and marks nothing) if
    /// any block is out of range or already used — a cross-link.
    pub(crate) fn mark(&mut self, start: u64, n: u64) -> bool {
        let Some(end) = start.checked_add(n) else {
            return false;
        };
        if end > self.blocks || (start..end).any(|b| self.get(b)) {
            return false;
        }
        for b in start..end {
            self.set(b, true);
        }
        self.used += n;
        true
    }

    /// Allocates `n` consecutive blocks (next fit), or `None` if no run of
    /// that length is free.
    pub(crate) fn alloc(&mut self, n: u64) -> Option<u64> {
        if n == 0 || n > self.blocks {
            return None;
        }
        let start = self.cursor.min(self.blocks);
        for (lo, hi) in [
            (start, self.blocks),
            (0, start.saturating_add(n).min(self.blocks)),
        ] {
            let mut run = 0;
            let mut b = lo;
            while b < hi {
                if self.get(b) {
                    run = 0;
                    // Skip whole used words quickly.
                    if b % 64 == 0 && self.bits[(b / 64) as usize] == u64::MAX {
                        b += 64;
                        continue;
                    }
                } else {
                    run += 1;
                    if run == n {
                        let s = b + 1 - n;
                        self.mark(s, n);
                        self.cursor = b + 1;
                        return Some(s);
                    }
                }
                b += 1;
            }
        }
        None
    }

    /// Frees blocks no durable superblock can reach.
    pub(crate) fn free_now(&mut self, start: u64, n: u64) {
        for b in start..start + n {
            if b < self.blocks && self.get(b) {
                self.set(b, false);
                self.used -= 1;
            }
        }
    }

    /// Frees blocks once the next superblock is durable.
    pub(crate) fn defer_free(&mut self, start: u64, n: u64) {
        self.pending.push((start, n));
    }

    /// The next superblock is durable: the pending blocks are free.
    pub(crate) fn release_pending(&mut self) {
        for (s, n) in std::mem::take(&mut self.pending) {
            self.free_now(s, n);
        }
    }

    pub(crate) fn used(&self) -> u64 {
        self.used
    }

    pub(crate) fn blocks(&self) -> u64 {
        self.blocks
    }

    /// Blocks used but not pending release.
    pub(crate) fn free(&self) -> u64 {
        self.blocks - self.used
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alloc_free_and_pending() {
        let mut a = Allocator::new(100, 2);
        let x = a.alloc(10).unwrap();
        assert_eq!(x, 2);
        let y = a.alloc(90).map(|_| ());
        assert!(y.is_none(), "only 88 free");
        a.defer_free(x, 10);
        assert!(a.alloc(89).is_none(), "pending blocks stay used");
        a.release_pending();
        assert_eq!(a.alloc(98), Some(2));
        assert_eq!(a.free(), 0);
        assert!(!a.mark(5, 1), "double use is detected");
    }
}
