//! The sequential object the checker holds a key's history to: one register that is missing or
//! holds a value, with the operations dsm offers on it (READ, WRITE, DELETE, compare-and-set,
//! INCR) and the answers they may give from each state.
//!
//! Values are interned: a WRITE's or CAS's value (unique in a run) is a [`State::Text`]; a
//! value in INCR's canonical form (what `i64::to_string` gives) is a [`State::Int`], so that
//! INCR results, which repeat, compare as the numbers they are.

/// The register: missing, or holding a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    Absent,
    /// An interned value that is not an integer in canonical form; `int` is what INCR makes of
    /// it (`"+5"` and `"05"` are 5 to the master, though not the same value as `"5"`).
    Text {
        id: u32,
        int: Option<i64>,
    },
    /// The decimal text of this number, as INCR writes it.
    Int(i64),
}

/// One operation as the model sees it, with the answer it got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    /// A WRITE, answered or not (it sets the state unconditionally either way).
    Write(State),
    /// A successful read that returned this (`Absent`: NOT_FOUND).
    Read(State),
    /// A compare-and-set that wrote `new`: the state was `expected`.
    Cas { expected: State, new: State },
    /// A compare-and-set without an answer: if the state was `expected` it became `new`.
    CasMaybe { expected: State, new: State },
    /// A compare-and-set answered CONFLICT: the state was not `expected`; nothing changed.
    Conflict { expected: State },
    /// A DELETE answered: `found` says whether the key existed; it is missing after.
    Delete { found: bool },
    /// A DELETE without an answer: the key is missing after (it was, or it is now).
    DeleteMaybe,
    /// An INCR answered `result`: the state was an integer (missing: 0) that plus `delta` is it.
    Incr { delta: i64, result: i64 },
    /// An INCR without an answer: an integer state grows by `delta`; any other stays.
    IncrMaybe { delta: i64 },
    /// An INCR answered NOT_AN_INTEGER: the value was there and no integer.
    NotAnInteger,
    /// An INCR answered OVERFLOW: the integer plus `delta` leaves the signed 64-bit range.
    Overflow { delta: i64 },
}

impl State {
    /// The number INCR sees in this state (a missing key counts as 0).
    pub fn int(self) -> Option<i64> {
        match self {
            State::Absent => Some(0),
            State::Text { int, .. } => int,
            State::Int(n) => Some(n),
        }
    }

    /// A 128-bit hash of the state for the search's cache (two random-looking 64-bit halves).
    pub fn hash128(self) -> u128 {
        let (tag, payload) = match self {
            State::Absent => (1, 0),
            State::Text { id, .. } => (2, u64::from(id)),
            State::Int(n) => (3, n as u64),
        };
        let half = |seed: u64| mix(mix(tag ^ seed) ^ payload);
        (u128::from(half(0x243F_6A88_85A3_08D3)) << 64) | u128::from(half(0x1319_8A2E_0370_7344))
    }
}

/// SplitMix64's finaliser.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl CallKind {
    /// The state after this call from `state`, or `None` if its answer cannot come from it.
    pub fn apply(self, state: State) -> Option<State> {
        let sum = |delta: i64| state.int().and_then(|n| n.checked_add(delta));
        match self {
            CallKind::Write(v) => Some(v),
            CallKind::Read(v) => (v == state).then_some(state),
            CallKind::Cas { expected, new } => (state == expected).then_some(new),
            CallKind::CasMaybe { expected, new } => {
                Some(if state == expected { new } else { state })
            }
            CallKind::Conflict { expected } => (state != expected).then_some(state),
            CallKind::Delete { found } => {
                (found == (state != State::Absent)).then_some(State::Absent)
            }
            CallKind::DeleteMaybe => Some(State::Absent),
            CallKind::Incr { delta, result } => {
                (sum(delta) == Some(result)).then_some(State::Int(result))
            }
            CallKind::IncrMaybe { delta } => Some(sum(delta).map_or(state, State::Int)),
            CallKind::NotAnInteger => {
                (state != State::Absent && state.int().is_none()).then_some(state)
            }
            CallKind::Overflow { delta } => {
                (state.int().is_some() && sum(delta).is_none()).then_some(state)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: State = State::Text { id: 0, int: None };
    const B: State = State::Text { id: 1, int: None };
    const FIVE_TEXT: State = State::Text {
        id: 2,
        int: Some(5),
    };

    #[test]
    fn each_answer_fits_only_the_states_that_give_it() {
        use CallKind::*;
        use State::Absent;
        assert_eq!(Write(A).apply(B), Some(A));
        assert_eq!(Read(A).apply(A), Some(A));
        assert_eq!(Read(A).apply(B), None);
        assert_eq!(Read(Absent).apply(A), None);
        assert_eq!(
            Cas {
                expected: A,
                new: B
            }
            .apply(A),
            Some(B)
        );
        assert_eq!(
            Cas {
                expected: A,
                new: B
            }
            .apply(Absent),
            None
        );
        assert_eq!(
            Cas {
                expected: Absent,
                new: B
            }
            .apply(Absent),
            Some(B)
        );
        assert_eq!(
            CasMaybe {
                expected: A,
                new: B
            }
            .apply(A),
            Some(B)
        );
        assert_eq!(
            CasMaybe {
                expected: A,
                new: B
            }
            .apply(Absent),
            Some(Absent)
        );
        assert_eq!(Conflict { expected: A }.apply(A), None);
        assert_eq!(Conflict { expected: A }.apply(B), Some(B));
        assert_eq!(Conflict { expected: Absent }.apply(Absent), None);
        assert_eq!(Delete { found: true }.apply(A), Some(Absent));
        assert_eq!(Delete { found: true }.apply(Absent), None);
        assert_eq!(Delete { found: false }.apply(Absent), Some(Absent));
        assert_eq!(Delete { found: false }.apply(A), None);
        assert_eq!(DeleteMaybe.apply(A), Some(Absent));
        assert_eq!(
            Incr {
                delta: 2,
                result: 2
            }
            .apply(Absent),
            Some(State::Int(2))
        );
        assert_eq!(
            Incr {
                delta: 2,
                result: 7
            }
            .apply(FIVE_TEXT),
            Some(State::Int(7))
        );
        assert_eq!(
            Incr {
                delta: 2,
                result: 3
            }
            .apply(State::Int(2)),
            None
        );
        assert_eq!(
            Incr {
                delta: 2,
                result: 2
            }
            .apply(A),
            None
        );
        assert_eq!(
            IncrMaybe { delta: -1 }.apply(State::Int(2)),
            Some(State::Int(1))
        );
        assert_eq!(IncrMaybe { delta: -1 }.apply(A), Some(A));
        assert_eq!(
            IncrMaybe { delta: 1 }.apply(State::Int(i64::MAX)),
            Some(State::Int(i64::MAX))
        );
        assert_eq!(NotAnInteger.apply(A), Some(A));
        assert_eq!(NotAnInteger.apply(Absent), None);
        assert_eq!(NotAnInteger.apply(FIVE_TEXT), None);
        assert_eq!(
            Overflow { delta: 1 }.apply(State::Int(i64::MAX)),
            Some(State::Int(i64::MAX))
        );
        assert_eq!(Overflow { delta: 1 }.apply(State::Int(3)), None);
        assert_eq!(Overflow { delta: 1 }.apply(A), None);
    }

    #[test]
    fn different_states_hash_apart() {
        let states = [
            State::Absent,
            A,
            B,
            FIVE_TEXT,
            State::Int(0),
            State::Int(1),
            State::Int(2),
            State::Int(-1),
        ];
        let hashes: std::collections::HashSet<u128> = states.iter().map(|s| s.hash128()).collect();
        assert_eq!(hashes.len(), states.len());
    }
}
