//! Token counts of texts seen before ([`CountCache`]): agent clients send
//! the whole conversation again on every turn, so most texts a budget (or a
//! token-count request) counts were counted a moment ago.
//!
//! A fixed table of [`SLOTS`] words, each a text's keyed hash (its top
//! [`TAG_BITS`] bits) and its count: a look-up is one hash of the text and
//! one atomic load, an entry is one atomic store, and a newer text simply
//! takes the slot of an older one. The hash is keyed with a secret drawn at
//! start (SipHash-1-3), so nobody can make two texts share an entry; even
//! then the worst would be one wrong estimate, never a wrong charge (answers
//! are charged from the upstream's usage).

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};

/// Entries in the table (64 KiB).
pub(super) const SLOTS: usize = 8192;

/// Texts shorter than this are counted each time (one or two tokens; even
/// a short text costs the tokenizer some 50 times what its hash costs).
pub(super) const MIN_CACHED_BYTES: usize = 4;

/// Bits of the hash kept to tell texts apart; the rest of the word holds
/// the count.
const TAG_BITS: u32 = 40;
const COUNT_MASK: u64 = (1 << (64 - TAG_BITS)) - 1;

/// The cache: a fixed table of keyed hashes and counts.
#[derive(Debug)]
pub struct CountCache {
    hasher: RandomState,
    slots: Box<[AtomicU64]>,
}

impl Default for CountCache {
    fn default() -> Self {
        CountCache {
            hasher: RandomState::new(),
            slots: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl CountCache {
    /// The count of `text`, from the table or from `count` (then kept).
    ///
    /// ```
    /// use llm_router::__private::tokens::CountCache;
    ///
    /// let cache = CountCache::default();
    /// let text = "a text long enough to be worth keeping: sixty-four bytes or more.";
    /// assert_eq!(cache.count(text, |t| t.len() as u64 / 4), 16);
    /// // Known now: `count` is not called again.
    /// assert_eq!(cache.count(text, |_| unreachable!()), 16);
    /// ```
    pub fn count(&self, text: &str, count: impl FnOnce(&str) -> u64) -> u64 {
        if text.len() < MIN_CACHED_BYTES {
            return count(text);
        }
        let hash = self.hasher.hash_one(text.as_bytes());
        let tag = hash >> (64 - TAG_BITS);
        // A tag of 0 would read as an empty slot.
        let tag = tag.max(1);
        let slot = hash
            .checked_rem(SLOTS as u64)
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| self.slots.get(i));
        let Some(slot) = slot else {
            return count(text);
        };
        let word = slot.load(Ordering::Relaxed);
        if word >> (64 - TAG_BITS) == tag {
            return word & COUNT_MASK;
        }
        let n = count(text);
        // Counts past the field's range are not kept.
        if n <= COUNT_MASK {
            slot.store((tag << (64 - TAG_BITS)) | n, Ordering::Relaxed);
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_told_apart_and_short_ones_not_kept() {
        let cache = CountCache::default();
        let texts: Vec<String> = (0..20_000)
            .map(|i| format!("message number {i:06} of a long conversation, padded to size"))
            .collect();
        // More texts than slots: whatever is found is the right count.
        for (i, t) in texts.iter().enumerate() {
            assert_eq!(cache.count(t, |_| i as u64), i as u64);
        }
        for (i, t) in texts.iter().enumerate() {
            assert_eq!(cache.count(t, |_| i as u64), i as u64);
        }
        let mut calls = 0;
        cache.count("sh", |_| {
            calls += 1;
            1
        });
        cache.count("sh", |_| {
            calls += 1;
            1
        });
        assert_eq!(calls, 2);
    }

    #[test]
    fn a_count_too_large_for_the_field_is_not_kept() {
        let cache = CountCache::default();
        let text = "x".repeat(100);
        assert_eq!(cache.count(&text, |_| COUNT_MASK + 1), COUNT_MASK + 1);
        assert_eq!(cache.count(&text, |_| 7), 7);
        assert_eq!(cache.count(&text, |_| unreachable!()), 7);
    }
}
