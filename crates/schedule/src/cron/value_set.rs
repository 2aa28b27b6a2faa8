//! A small fixed-size set of field values (minutes, hours, days, months, years).

const WORD_BITS: u16 = 64;

/// A set of values in `base..base + 64 * WORDS`, stored as a bitmap so that
/// "first member at or after v" is a few word scans. One word covers every
/// field but the year, which needs four (1970-2199 is 230 values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ValueSet<const WORDS: usize = 1> {
    base: u16,
    words: [u64; WORDS],
}

/// The set of years 1970-2199.
pub(crate) type YearSet = ValueSet<4>;

impl<const WORDS: usize> ValueSet<WORDS> {
    /// How many consecutive values the set can hold, counted from its base.
    const CAPACITY: u16 = WORDS as u16 * WORD_BITS;

    /// An empty set whose smallest possible member is `base`.
    pub(crate) fn empty(base: u16) -> Self {
        ValueSet {
            base,
            words: [0; WORDS],
        }
    }

    /// Adds `value`; values outside the set's window are ignored (callers
    /// validate ranges before inserting).
    pub(crate) fn insert(&mut self, value: u16) {
        if let Some(index) = self.index_of(value) {
            self.words[usize::from(index / WORD_BITS)] |= 1 << (index % WORD_BITS);
        }
    }

    /// Whether `value` is a member.
    pub(crate) fn contains(&self, value: u16) -> bool {
        self.index_of(value).is_some_and(|index| {
            self.words[usize::from(index / WORD_BITS)] & (1 << (index % WORD_BITS)) != 0
        })
    }

    /// The smallest member that is `>= value`.
    pub(crate) fn first_from(&self, value: u16) -> Option<u16> {
        let start = value.saturating_sub(self.base);
        if start >= Self::CAPACITY {
            return None;
        }
        let mut word = start / WORD_BITS;
        let mut bits = self.words[usize::from(word)] & (u64::MAX << (start % WORD_BITS));
        loop {
            if bits != 0 {
                // trailing_zeros of a non-zero u64 is below 64, so it fits in u16.
                let bit = bits.trailing_zeros() as u16;
                return Some(self.base + word * WORD_BITS + bit);
            }
            word += 1;
            bits = *self.words.get(usize::from(word))?;
        }
    }

    /// The members `>= value`, in increasing order.
    pub(crate) fn iter_from(&self, value: u16) -> impl Iterator<Item = u16> + '_ {
        std::iter::successors(self.first_from(value), |&member| {
            self.first_from(member + 1)
        })
    }

    fn index_of(&self, value: u16) -> Option<u16> {
        value
            .checked_sub(self.base)
            .filter(|&index| index < Self::CAPACITY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_members_across_words() {
        let mut set = YearSet::empty(1970);
        for year in [1970, 2033, 2100, 2199] {
            set.insert(year);
        }
        assert!(set.contains(2100));
        assert!(!set.contains(2101));
        assert_eq!(set.first_from(1900), Some(1970));
        assert_eq!(set.first_from(1971), Some(2033));
        assert_eq!(set.first_from(2034), Some(2100));
        assert_eq!(set.first_from(2101), Some(2199));
        assert_eq!(set.first_from(2200), None);
        assert_eq!(
            set.iter_from(2000).collect::<Vec<_>>(),
            vec![2033, 2100, 2199]
        );
    }

    #[test]
    fn empty_set_has_no_members() {
        let set = ValueSet::<1>::empty(0);
        assert_eq!(set.first_from(0), None);
        assert_eq!(set.iter_from(0).count(), 0);
    }

    #[test]
    fn ignores_values_outside_the_window() {
        let mut set = ValueSet::<1>::empty(1);
        set.insert(0);
        set.insert(65);
        assert_eq!(set.first_from(0), None);
    }
}
