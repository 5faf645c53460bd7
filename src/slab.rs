//! A tiny generational slab: the storage behind the timer wheel, the viewer list of a topic and
//! the connection registry.
//!
//! Why our own: each of those needs cheap insert and remove by key, the timer wheel also needs to
//! tell a live key from a stale one (a cancelled timer whose slot was reused), which is what the
//! generation in [`Key`] is for, and all of them must give memory back after a burst. A hundred
//! lines are easier to audit than another crate.
//!
//! Giving memory back: a new value takes the lowest free slot (the free list is a min-heap, so
//! insert costs O(log n) instead of O(1)), so values gather at the front, and removing the last
//! slot drops every free slot at the end, each slot once (amortized O(1)). The slots' allocation
//! shrinks when less than a quarter of it is used. Indices dropped from the end stay in the heap
//! until popped (and are then skipped) or until they are most of it (then the heap is rebuilt),
//! so no remove walks the whole list. A slot made again after being dropped starts at a
//! generation past every dropped slot's, so an old key never matches its new value.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// A handle to a value in a [`Slab`]; stale once the value is removed, even if the index is reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Key {
    index: u32,
    generation: u32,
}

#[derive(Debug)]
struct Slot<T> {
    generation: u32,
    value: Option<T>,
}

/// Allocated slots (and free-list entries) a slab keeps however empty it gets: below this,
/// shrinking is not worth its work.
const SHRINK_FLOOR: usize = 64;

/// Values addressed by [`Key`]s, with freed slots reused.
#[derive(Debug)]
pub struct Slab<T> {
    slots: Vec<Slot<T>>,
    /// Free slots, lowest on top; may also hold indices of slots since dropped or reused, which
    /// are skipped when popped.
    free: BinaryHeap<Reverse<u32>>,
    len: usize,
    /// The generation of a slot made anew: at least that of every slot dropped from the end.
    fresh_generation: u32,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab { slots: Vec::new(), free: BinaryHeap::new(), len: 0, fresh_generation: 0 }
    }
}

impl<T> Slab<T> {
    /// Stores `value` in the lowest free slot and returns its key.
    pub fn insert(&mut self, value: T) -> Key {
        self.len += 1;
        while let Some(Reverse(index)) = self.free.pop() {
            if let Some(slot) = self.slots.get_mut(index as usize)
                && slot.value.is_none()
            {
                slot.value = Some(value);
                return Key { index, generation: slot.generation };
            }
        }
        let index = u32::try_from(self.slots.len()).expect("slab holds at most u32::MAX values");
        let generation = self.fresh_generation;
        self.slots.push(Slot { generation, value: Some(value) });
        Key { index, generation }
    }

    /// Removes and returns the value of a live key; `None` for a stale one.
    pub fn remove(&mut self, key: Key) -> Option<T> {
        let slot = self.slots.get_mut(key.index as usize)?;
        if slot.generation != key.generation {
            return None;
        }
        let value = slot.value.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        self.len -= 1;
        if key.index as usize + 1 == self.slots.len() {
            self.drop_free_tail();
        } else {
            self.free.push(Reverse(key.index));
        }
        Some(value)
    }

    /// Drops the free slots at the end, and the memory of the slots and of the free list once
    /// they are mostly unused.
    fn drop_free_tail(&mut self) {
        while let Some(slot) = self.slots.last()
            && slot.value.is_none()
        {
            self.fresh_generation = self.fresh_generation.max(slot.generation);
            self.slots.pop();
        }
        let floor = |n: usize| (2 * n).max(SHRINK_FLOOR);
        if self.slots.capacity() > 2 * floor(self.slots.len()) {
            self.slots.shrink_to(floor(self.slots.len()));
        }
        // Entries left for dropped slots are O(1) each to leave here; once they are most of the
        // heap, one rebuild (O(n log n), paid for by them) removes them.
        let free_slots = self.slots.len() - self.len;
        if self.free.len() > floor(free_slots) {
            let slots = &self.slots;
            let mut free = std::mem::take(&mut self.free).into_vec();
            free.retain(|&Reverse(i)| slots.get(i as usize).is_some_and(|s| s.value.is_none()));
            free.sort_unstable();
            free.dedup();
            free.shrink_to(floor(free.len()));
            self.free = BinaryHeap::from(free);
        }
    }

    /// Slots allocated now (used or free): what a burst left behind.
    pub fn capacity(&self) -> usize {
        self.slots.capacity()
    }

    /// The value of a live key.
    pub fn get(&self, key: Key) -> Option<&T> {
        let slot = self.slots.get(key.index as usize)?;
        if slot.generation == key.generation { slot.value.as_ref() } else { None }
    }

    /// The value of a live key, mutably.
    pub fn get_mut(&mut self, key: Key) -> Option<&mut T> {
        let slot = self.slots.get_mut(key.index as usize)?;
        if slot.generation == key.generation { slot.value.as_mut() } else { None }
    }

    /// How many values are stored.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no value is stored.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every stored value, in no particular order.
    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.slots.iter().filter_map(|s| s.value.as_ref())
    }

    /// Every stored value, mutably.
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.slots.iter_mut().filter_map(|s| s.value.as_mut())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_keys_do_not_reach_reused_slots() {
        let mut slab = Slab::default();
        let a = slab.insert("a");
        assert_eq!(slab.remove(a), Some("a"));
        let b = slab.insert("b");
        assert_eq!(slab.get(a), None, "the old key must not see the new value");
        assert_eq!(slab.remove(a), None);
        assert_eq!(slab.get(b), Some(&"b"));
        assert_eq!(slab.len(), 1);
    }

    #[test]
    fn a_slab_gives_memory_back_after_a_burst_and_old_keys_stay_stale() {
        let mut slab = Slab::default();
        let keys: Vec<Key> = (0..10_000).map(|i| slab.insert(i)).collect();
        assert!(slab.capacity() >= 10_000);
        // The burst ends, in no particular order, but for three values at the front and one
        // near the end.
        let mut order: Vec<usize> = (3..10_000).filter(|&i| i != 9_000).collect();
        fastrand::Rng::with_seed(7).shuffle(&mut order);
        for &i in &order {
            assert_eq!(slab.remove(keys[i]), Some(i));
        }
        assert_eq!(slab.len(), 4);
        assert!(slab.capacity() < 2 * 9_001, "{} slots kept below the last value held", slab.capacity());
        // The value near the end moves to the front, as a timer does when it is set again.
        assert_eq!(slab.remove(keys[9_000]), Some(9_000));
        let moved = slab.insert(9_000);
        assert!(slab.capacity() <= SHRINK_FLOOR, "{} slots kept for 4 values", slab.capacity());
        assert_eq!(slab.get(moved), Some(&9_000));
        assert_eq!((0..3).map(|i| slab.get(keys[i]).copied()).collect::<Vec<_>>(), [Some(0), Some(1), Some(2)]);

        // Slots made anew never answer to a key from before they were dropped.
        let new: Vec<Key> = (0..10_000).map(|i| slab.insert(100_000 + i)).collect();
        for (i, &key) in keys.iter().enumerate().skip(3) {
            assert_eq!(slab.get(key), None, "old key {i}");
            assert_eq!(slab.remove(key), None, "old key {i}");
        }
        assert_eq!(slab.len(), 10_004);
        assert!(new.iter().enumerate().all(|(i, &k)| slab.get(k) == Some(&(100_000 + i))));
        assert_eq!(slab.values().count(), 10_004);
    }
}
