//! A fixed-capacity, `Copy`, allocation-free vector for the model state.
//!
//! Every list of the state (items, workers, worklist, ordered lists, …) is
//! tiny and bounded by the setup's sizes, and the explorers clone and hash
//! states millions of times. Keeping them inline makes a state one flat
//! `memcpy`-able value. Equality and hashing look at the used prefix only.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::{Deref, DerefMut};

/// Up to `N` elements of `T`, stored inline.
#[derive(Clone, Copy)]
pub struct Bounded<T: Copy + Default, const N: usize> {
    len: u8,
    buf: [T; N],
}

impl<T: Copy + Default, const N: usize> Default for Bounded<T, N> {
    fn default() -> Self {
        Bounded {
            len: 0,
            buf: [T::default(); N],
        }
    }
}

impl<T: Copy + Default, const N: usize> Bounded<T, N> {
    /// An empty list.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `v`. Panics if full: the setup validation keeps sizes within
    /// the capacities, so a full list is a model bug.
    ///
    /// # Panics
    ///
    /// If the list is full (a model bug: setups are validated against the
    /// capacities).
    pub fn push(&mut self, v: T) {
        assert!((self.len as usize) < N, "Bounded capacity {N} exceeded");
        self.buf[self.len as usize] = v;
        self.len += 1;
    }

    /// Removes and returns the last element.
    pub fn pop(&mut self) -> Option<T> {
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        let v = self.buf[self.len as usize];
        self.buf[self.len as usize] = T::default();
        Some(v)
    }

    /// Removes and returns the element at `i`, shifting the rest down.
    ///
    /// # Panics
    ///
    /// If `i` is out of bounds.
    pub fn remove(&mut self, i: usize) -> T {
        let n = self.len as usize;
        assert!(i < n, "Bounded::remove out of range");
        let v = self.buf[i];
        self.buf.copy_within(i + 1..n, i);
        self.buf[n - 1] = T::default();
        self.len -= 1;
        v
    }

    /// Inserts `v` at `i`, shifting the rest up.
    ///
    /// # Panics
    ///
    /// If the list is full or `i` is past its end.
    pub fn insert(&mut self, i: usize, v: T) {
        let n = self.len as usize;
        assert!(n < N && i <= n, "Bounded::insert out of range");
        self.buf.copy_within(i..n, i + 1);
        self.buf[i] = v;
        self.len += 1;
    }
}

impl<T: Copy + Default, const N: usize> Deref for Bounded<T, N> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.buf[..self.len as usize]
    }
}

impl<T: Copy + Default, const N: usize> DerefMut for Bounded<T, N> {
    fn deref_mut(&mut self) -> &mut [T] {
        &mut self.buf[..self.len as usize]
    }
}

impl<T: Copy + Default + PartialEq, const N: usize> PartialEq for Bounded<T, N> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl<T: Copy + Default + Eq, const N: usize> Eq for Bounded<T, N> {}

impl<T: Copy + Default + Hash, const N: usize> Hash for Bounded<T, N> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (**self).hash(state);
    }
}

impl<T: Copy + Default + fmt::Debug, const N: usize> fmt::Debug for Bounded<T, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'a, T: Copy + Default, const N: usize> IntoIterator for &'a Bounded<T, N> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<T: Copy + Default, const N: usize> FromIterator<T> for Bounded<T, N> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        let mut b = Self::new();
        for v in iter {
            b.push(v);
        }
        b
    }
}

#[cfg(test)]
mod tests {
    use super::Bounded;

    #[test]
    fn behaves_like_a_small_vec() {
        let mut b: Bounded<u8, 4> = [1, 2, 3].into_iter().collect();
        assert_eq!(&*b, &[1, 2, 3]);
        assert_eq!(b.remove(0), 1);
        b.insert(1, 9);
        assert_eq!(&*b, &[2, 9, 3]);
        assert_eq!(b.pop(), Some(3));
        let c: Bounded<u8, 4> = [2, 9].into_iter().collect();
        assert_eq!(b, c);
        b.push(7);
        b.push(8);
        assert_eq!(b.len(), 4);
    }

    #[test]
    #[should_panic(expected = "capacity")]
    fn overflow_panics() {
        let mut b: Bounded<u8, 1> = Bounded::new();
        b.push(1);
        b.push(2);
    }
}
