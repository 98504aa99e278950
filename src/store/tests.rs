//! Behaviour of the core against `LocMemCache`'s, with time injected so nothing sleeps.

use super::*;

/// Tables whose attachments are `String`s (the binding attaches Python `str` objects).
type T = Table<String>;

/// A value as these tests write it: the store's native integer, opaque bytes, or text held as an
/// attachment (as the binding holds a `str` object).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum V {
    Int(i64),
    Data(Vec<u8>),
    Text(String),
}

const DATA: Kind = 1;
const TEXT: Kind = 2;

impl V {
    pub(super) fn item(&self, key: &[u8]) -> Item<String> {
        match self {
            Self::Int(n) => Record::int(key, *n).into(),
            Self::Data(bytes) => Record::new(key, DATA, bytes).into(),
            Self::Text(text) => Item {
                record: Record::new(key, TEXT, b""),
                attachment: Some(Attachment {
                    object: text.clone(),
                    weight: text.len(),
                }),
            },
        }
    }

    pub(super) fn record(&self, key: &[u8]) -> Record {
        self.item(key).record
    }

    /// The bytes an entry holding this value under `key` is charged.
    pub(super) fn bytes(&self, key: &[u8]) -> usize {
        let item = self.item(key);
        entry_bytes(&item.record) + item.attachment.map_or(0, |a| a.weight)
    }

    pub(super) fn of(record: &Record, attachment: Option<&String>) -> Self {
        match (record.as_int(), attachment) {
            (Some(n), _) => Self::Int(n),
            (None, Some(text)) => Self::Text(text.clone()),
            (None, None) => Self::Data(record.value().to_vec()),
        }
    }
}

/// The table's operations with the key and value apart, as the tests think of them.
pub(super) trait TableExt {
    fn put(&mut self, key: &[u8], value: V, ttl: Ttl, limits: &Limits, now: &Now) -> Result<(), StoreError>;
    fn put_new(&mut self, key: &[u8], value: V, ttl: Ttl, limits: &Limits, now: &Now) -> Result<bool, StoreError>;
    fn get_v(&mut self, key: &[u8], now: &Now) -> Option<V>;
}

impl TableExt for T {
    fn put(&mut self, key: &[u8], value: V, ttl: Ttl, limits: &Limits, now: &Now) -> Result<(), StoreError> {
        self.set(value.item(key), ttl, limits, now)
    }

    fn put_new(&mut self, key: &[u8], value: V, ttl: Ttl, limits: &Limits, now: &Now) -> Result<bool, StoreError> {
        self.add(value.item(key), ttl, limits, now)
    }

    fn get_v(&mut self, key: &[u8], now: &Now) -> Option<V> {
        self.get(key, now).map(|(record, attachment)| V::of(record, attachment))
    }
}

fn at(secs: u64) -> Now {
    Now::at_secs(1_700_000_000.0 + secs as f64)
}

fn limits(max_entries: i64, cull_frequency: i64) -> Limits {
    Limits {
        max_entries,
        cull_frequency,
        max_bytes: None,
    }
}

fn data(s: &str) -> V {
    V::Data(s.as_bytes().to_vec())
}

fn set(t: &mut T, key: &str, value: V, lim: &Limits) {
    t.put(key.as_bytes(), value, Ttl::Forever, lim, &at(0)).expect("set");
}

fn count_present(t: &mut T, keys: impl Iterator<Item = String>) -> usize {
    keys.filter(|k| t.contains(k.as_bytes(), &at(0))).count()
}

#[test]
fn cull_keeps_exactly_what_locmem_keeps() {
    // Django's test_cull: 49 sets into MAX_ENTRIES=30 leave 29; test_zero_cull leaves 19.
    for (freq, expected) in [(3, 29), (0, 19)] {
        let mut t = T::default();
        let lim = limits(30, freq);
        for i in 1..50 {
            t.put(
                format!("cull{i}").as_bytes(),
                data("value"),
                Ttl::Seconds(1000.0),
                &lim,
                &at(0),
            )
            .expect("set");
        }
        assert_eq!(count_present(&mut t, (1..50).map(|i| format!("cull{i}"))), expected);
        t.check_invariants().expect("invariants");
    }
}

#[test]
fn forced_cull_on_empty_store_still_stores() {
    // test_cull_delete_when_store_empty: MAX_ENTRIES=-1 culls on every write, yet the write lands.
    let mut t = T::default();
    set(&mut t, "k", data("v"), &limits(-1, 3));
    assert!(t.contains(b"k", &at(0)));
}

#[test]
fn lru_get_set_and_incr_move_keys_to_the_front() {
    // test_lru_get / test_lru_set / test_lru_incr with MAX_ENTRIES=9.
    let lim = limits(9, 3);
    let mut t = T::default();
    for k in 0..9 {
        set(&mut t, &k.to_string(), V::Int(k), &lim);
    }
    for k in 0..6 {
        assert!(t.get_v(k.to_string().as_bytes(), &at(0)).is_some());
    }
    set(&mut t, "9", V::Int(9), &lim);
    for k in 0..6 {
        assert!(t.contains(k.to_string().as_bytes(), &at(0)), "{k} kept");
    }
    for k in 6..9 {
        assert!(!t.contains(k.to_string().as_bytes(), &at(0)), "{k} culled");
    }

    let mut t = T::default();
    for k in 0..9 {
        set(&mut t, &k.to_string(), V::Int(k), &lim);
    }
    for k in 0..6 {
        assert_eq!(t.incr(k.to_string().as_bytes(), 1, &at(0)), Ok(k + 1));
    }
    set(&mut t, "9", V::Int(9), &lim);
    for k in 6..9 {
        assert!(!t.contains(k.to_string().as_bytes(), &at(0)));
    }
    assert_eq!(t.get_v(b"0", &at(0)), Some(V::Int(1)));
}

#[test]
fn has_key_and_failed_add_do_not_reorder() {
    let lim = limits(3, 3);
    let mut t = T::default();
    for k in ["a", "b", "c"] {
        set(&mut t, k, data(k), &lim);
    }
    assert!(t.contains(b"a", &at(0)));
    assert_eq!(t.put_new(b"a", data("x"), Ttl::Forever, &lim, &at(0)), Ok(false));
    // "a" is still least recently used, so the cull of one entry (3 / 3) takes it.
    set(&mut t, "d", data("d"), &lim);
    assert!(!t.contains(b"a", &at(0)));
    assert!(t.contains(b"b", &at(0)));
}

#[test]
fn expiry_follows_the_injected_clock() {
    let lim = Limits::default();
    let mut t = T::default();
    t.put(b"k", data("v"), Ttl::Seconds(10.0), &lim, &at(0)).expect("set");
    assert_eq!(t.get_v(b"k", &at(9)), Some(data("v")));
    assert_eq!(t.get_v(b"k", &at(10)), None, "a deadline equal to now has passed");
    assert!(t.is_empty(), "the expired entry met by get is removed");
    assert_eq!(t.snapshot().counters.expirations, 1);
}

#[test]
fn zero_and_negative_timeouts_store_nothing() {
    let lim = Limits::default();
    let mut t = T::default();
    set(&mut t, "k", data("old"), &lim);
    t.put(b"k", data("new"), Ttl::Seconds(0.0), &lim, &at(0)).expect("set");
    assert!(!t.contains(b"k", &at(0)), "set with timeout 0 removes the key");
    assert_eq!(t.put_new(b"k", data("v"), Ttl::Seconds(-1.0), &lim, &at(0)), Ok(true));
    assert!(t.is_empty());
    set(&mut t, "k", data("v"), &lim);
    assert!(t.touch(b"k", Ttl::Seconds(0.0), &at(0)), "touch(k, 0) reports success");
    assert!(!t.contains(b"k", &at(0)), "and removes the key");
}

#[test]
fn touch_and_incr_keep_or_change_deadlines_as_locmem() {
    let lim = Limits::default();
    let mut t = T::default();
    t.put(b"n", V::Int(1), Ttl::Seconds(10.0), &lim, &at(0)).expect("set");
    let deadline = t.deadline(b"n", &at(0));
    assert_eq!(t.incr(b"n", 5, &at(1)), Ok(6));
    assert_eq!(t.deadline(b"n", &at(1)), deadline, "incr keeps the deadline");
    assert!(t.touch(b"n", Ttl::Forever, &at(2)));
    assert_eq!(t.get_v(b"n", &at(1_000_000)), Some(V::Int(6)));
    assert!(!t.touch(b"missing", Ttl::Forever, &at(2)));
    t.check_invariants().expect("invariants");
}

#[test]
fn incr_errors_leave_the_value_alone() {
    let lim = Limits::default();
    let mut t = T::default();
    assert_eq!(t.incr(b"missing", 1, &at(0)), Err(StoreError::NotFound));
    set(&mut t, "max", V::Int(i64::MAX), &lim);
    assert_eq!(t.incr(b"max", 1, &at(0)), Err(StoreError::Overflow));
    assert_eq!(t.get_v(b"max", &at(0)), Some(V::Int(i64::MAX)));
    set(&mut t, "s", data("text"), &lim);
    assert_eq!(t.incr(b"s", 1, &at(0)), Err(StoreError::NotAnInteger));
    t.put(b"gone", V::Int(1), Ttl::Seconds(1.0), &lim, &at(0)).expect("set");
    assert_eq!(t.incr(b"gone", 1, &at(5)), Err(StoreError::NotFound));
}

fn unchanged(before: &Record) -> impl Fn(&Record, Option<&String>) -> bool + '_ {
    move |r, _| r.same_value(before)
}

#[test]
fn compare_and_swap_detects_interleaved_writes() {
    let lim = Limits::default();
    let mut t = T::default();
    t.put(b"f", data("1.5"), Ttl::Seconds(10.0), &lim, &at(0)).expect("set");
    let read = |t: &mut T| t.get_for_update(b"f", &at(0)).expect("present").0.clone();
    let before = read(&mut t);
    set(&mut t, "f", data("2.5"), &lim);
    assert_eq!(
        t.replace_if(data("3.0").record(b"f"), &lim, &at(0), unchanged(&before)),
        Ok(false)
    );
    let before = read(&mut t);
    assert_eq!(
        t.replace_if(data("3.5").record(b"f"), &lim, &at(0), unchanged(&before)),
        Ok(true)
    );
    assert_eq!(t.get_v(b"f", &at(0)), Some(data("3.5")));
    assert_eq!(
        t.replace_if(data("x").record(b"nope"), &lim, &at(0), unchanged(&before)),
        Ok(false)
    );
    // A value changed and changed back is the value that was read: the swap goes ahead.
    let before = read(&mut t);
    set(&mut t, "f", data("9"), &lim);
    set(&mut t, "f", data("3.5"), &lim);
    assert_eq!(
        t.replace_if(data("4").record(b"f"), &lim, &at(0), unchanged(&before)),
        Ok(true)
    );
    assert_eq!(
        t.deadline(b"f", &at(0)),
        Some(Timestamp::NEVER),
        "the deadline of the last set stays"
    );
}

#[test]
fn byte_accounting_is_exact() {
    let lim = Limits::default();
    let mut t = T::default();
    set(&mut t, "a", data("12345"), &lim);
    set(&mut t, "bb", V::Int(7), &lim);
    let expected = (1 + 5 + ENTRY_OVERHEAD) + (2 + 8 + ENTRY_OVERHEAD);
    assert_eq!(t.snapshot().bytes, expected);
    set(&mut t, "a", data("1"), &lim);
    assert_eq!(t.snapshot().bytes, expected - 4);
    assert_eq!(t.incr(b"bb", 1, &at(0)), Ok(8));
    assert_eq!(t.snapshot().bytes, expected - 4);
    assert!(t.delete(b"a", &at(0)));
    assert_eq!(t.snapshot().bytes, 2 + 8 + ENTRY_OVERHEAD);
    t.clear();
    assert_eq!(t.snapshot().bytes, 0);
    t.check_invariants().expect("invariants");
}

#[test]
fn byte_budget_evicts_lru_and_refuses_oversized_values() {
    let per = entry_bytes(&data("0123456789").record(b"k0"));
    let lim = Limits {
        max_entries: 1000,
        cull_frequency: 3,
        max_bytes: Some(per * 3),
    };
    let mut t = T::default();
    for i in 0..5 {
        set(&mut t, &format!("k{i}"), data("0123456789"), &lim);
        assert!(t.snapshot().bytes <= per * 3);
    }
    assert_eq!(t.len(), 3);
    assert!(!t.contains(b"k0", &at(0)) && !t.contains(b"k1", &at(0)));
    let huge = data(&"x".repeat(per * 3));
    let err = t.put(b"k4", huge, Ttl::Forever, &lim, &at(0));
    assert!(matches!(err, Err(StoreError::TooLarge { .. })));
    assert_eq!(t.get_v(b"k4", &at(0)), None, "the old value is removed, not served");
    assert_eq!(t.len(), 2, "nothing else is lost");
    assert_eq!(t.snapshot().counters.refused, 1);
    let err = t.put(b"absent", data(&"x".repeat(per * 3)), Ttl::Forever, &lim, &at(0));
    assert!(matches!(err, Err(StoreError::TooLarge { .. })));
    assert_eq!((t.len(), t.snapshot().counters.refused), (2, 2));
}

#[test]
fn expired_entries_are_reclaimed_by_writes_to_other_keys() {
    let lim = Limits {
        max_entries: 1_000_000,
        ..Limits::default()
    };
    let mut t = T::default();
    for i in 0..1000 {
        t.put(
            format!("short{i}").as_bytes(),
            data("v"),
            Ttl::Seconds(1.0),
            &lim,
            &at(0),
        )
        .expect("set");
    }
    for i in 0..300 {
        t.put(format!("other{i}").as_bytes(), data("v"), Ttl::Forever, &lim, &at(2))
            .expect("set");
    }
    assert_eq!(t.len(), 300, "every expired entry is gone after n/4 writes");
    t.check_invariants().expect("invariants");
}

/// Five live and five short-lived entries in a cache of ten; then, once the short-lived ones have
/// expired, one more write.
fn full_of_live_and_expired(eviction: Eviction) -> T {
    let lim = limits(10, 3);
    let mut t = T::with_eviction(eviction);
    for i in 0..5 {
        t.put(format!("live{i}").as_bytes(), data("v"), Ttl::Forever, &lim, &at(0))
            .expect("set");
    }
    for i in 0..5 {
        t.put(
            format!("short{i}").as_bytes(),
            data("v"),
            Ttl::Seconds(1.0),
            &lim,
            &at(0),
        )
        .expect("set");
    }
    t.put(b"new", data("v"), Ttl::Forever, &lim, &at(5)).expect("set");
    t
}

#[test]
fn cull_takes_expired_entries_first() {
    let mut t = full_of_live_and_expired(Eviction::Lru);
    for i in 0..5 {
        assert!(t.contains(format!("live{i}").as_bytes(), &at(5)));
    }
    assert_eq!(t.len(), 6);
}

#[test]
fn store_drops_removed_values_after_unlocking() {
    let store: Store<String> = Store::new();
    store.with(|t| set(t, "k", data("v"), &Limits::default()));
    store.with(|t| assert!(t.delete(b"k", &at(0))));
    let snap = store.snapshot();
    assert_eq!((snap.entries, snap.counters.sets, snap.counters.deletes), (0, 1, 1));
    store.with(|t| assert!(t.sink.garbage.is_empty(), "the sink was emptied"));
}

#[test]
fn adaptive_eviction_holds_exactly_max_entries_and_keeps_a_hot_set() {
    let lim = limits(100, 3);
    let mut t = T::with_eviction(Eviction::Adaptive);
    for round in 0..20 {
        for hot in 0..50 {
            let key = format!("hot{hot}");
            if t.get_v(key.as_bytes(), &at(0)).is_none() {
                set(&mut t, &key, data("v"), &lim);
            }
        }
        for cold in 0..200 {
            set(&mut t, &format!("scan{round}-{cold}"), data("v"), &lim);
            assert!(t.len() <= 100);
        }
    }
    assert_eq!(t.len(), 100);
    let hot_kept = (0..50)
        .filter(|h| t.contains(format!("hot{h}").as_bytes(), &at(0)))
        .count();
    assert!(
        hot_kept >= 45,
        "a scan does not flush the hot set ({hot_kept} of 50 kept)"
    );
    t.check_invariants().expect("invariants");
}

#[test]
fn adaptive_eviction_takes_expired_entries_before_live_ones() {
    let mut t = full_of_live_and_expired(Eviction::Adaptive);
    assert!((0..5).all(|i| t.contains(format!("live{i}").as_bytes(), &at(5))));
    t.check_invariants().expect("invariants");
}

fn attached(key: &[u8], text: &str) -> Item<String> {
    Item {
        record: Record::new(key, 2, b""),
        attachment: Some(Attachment {
            object: text.to_owned(),
            weight: text.len(),
        }),
    }
}

#[test]
fn attachments_are_handed_back_charged_and_released_with_their_entry() {
    let lim = limits(3, 3);
    let mut t = T::default();
    t.set(attached(b"a", "hello"), Ttl::Forever, &lim, &at(0)).expect("set");
    let (record, object) = t.get(b"a", &at(0)).expect("present");
    assert_eq!(
        (record.kind(), object),
        (2, Some(&"hello".to_owned())),
        "the binding's kind, unflagged"
    );
    assert_eq!(t.snapshot().bytes, 1 + 5 + ENTRY_OVERHEAD);
    // Overwrites in every direction keep the attachments and the byte count exact.
    t.set(attached(b"a", "hi"), Ttl::Forever, &lim, &at(0)).expect("set");
    assert_eq!(
        std::mem::take(&mut t.sink.objects).into_vec(),
        ["hello"],
        "the old object goes to the sink"
    );
    assert_eq!(t.snapshot().bytes, 1 + 2 + ENTRY_OVERHEAD);
    set(&mut t, "a", data("xyz"), &lim);
    assert_eq!(t.get(b"a", &at(0)).map(|(_, o)| o.cloned()), Some(None));
    assert_eq!(t.snapshot().bytes, 1 + 3 + ENTRY_OVERHEAD);
    t.set(attached(b"a", "again"), Ttl::Forever, &lim, &at(0)).expect("set");
    t.check_invariants().expect("invariants");
    // Removal by delete, by cull, by expiry and by clear releases the object.
    t.set(attached(b"b", "bee"), Ttl::Seconds(1.0), &lim, &at(0))
        .expect("set");
    assert!(t.delete(b"a", &at(0)));
    assert_eq!(t.get_v(b"b", &at(2)), None, "expired");
    for k in ["c", "d", "e", "f"] {
        t.set(attached(k.as_bytes(), k), Ttl::Forever, &lim, &at(0))
            .expect("set");
    }
    t.check_invariants().expect("invariants");
    t.clear();
    t.check_invariants().expect("invariants");
    let released = t.sink.objects.len();
    assert_eq!(
        released,
        4 + 2 + 1,
        "every object ever replaced or removed is in the sink ({released})"
    );
    // A compare-and-delete sees the attachment.
    t.set(attached(b"lock", "token"), Ttl::Forever, &lim, &at(0))
        .expect("set");
    assert!(!t.delete_if(b"lock", &at(0), |_, o| o.is_some_and(|o| o == "other")));
    assert!(t.delete_if(b"lock", &at(0), |_, o| o.is_some_and(|o| o == "token")));
    assert!(t.is_empty());
}

/// A pinned item (a held lock's entry).
fn pinned(key: &[u8], value: &str) -> Item<String> {
    let mut record = data(value).record(key);
    record.pin();
    record.into()
}

#[test]
fn pinned_entries_are_never_culled_or_evicted_but_still_expire() {
    for eviction in [Eviction::Lru, Eviction::Adaptive] {
        for max_bytes in [None, Some(40 * entry_bytes(&data("v").record(b"k000")))] {
            let lim = Limits {
                max_entries: 10,
                cull_frequency: 3,
                max_bytes,
            };
            let mut t = T::with_eviction(eviction);
            assert_eq!(
                t.add(pinned(b"lock", "token"), Ttl::Seconds(60.0), &lim, &at(0)),
                Ok(true)
            );
            for i in 0..1000 {
                set(&mut t, &format!("k{i:03}"), data("v"), &lim);
                assert!(t.get(b"lock", &at(0)).is_some(), "{eviction:?}: evicted after {i} sets");
                t.check_invariants().expect("invariants");
            }
            assert!(t.snapshot().counters.evictions > 0);
            // A lock's entry overwritten by a plain value joins the order, and can be evicted again.
            set(&mut t, "lock", data("plain"), &lim);
            t.check_invariants().expect("invariants");
            for i in 0..20 {
                set(&mut t, &format!("again{i}"), data("v"), &lim);
            }
            if eviction == Eviction::Lru {
                // (The adaptive policy may rightly keep it: the 1,000 reads above made it hot.)
                assert!(!t.contains(b"lock", &at(0)), "unpinned, it is evicted as any entry");
            }
            // Pinned entries still expire.
            assert_eq!(
                t.add(pinned(b"lock2", "token"), Ttl::Seconds(5.0), &lim, &at(0)),
                Ok(true)
            );
            assert!(t.contains(b"lock2", &at(4)));
            assert!(!t.contains(b"lock2", &at(5)));
            t.check_invariants().expect("invariants");
        }
    }
}

#[test]
fn a_compare_and_swap_on_a_pinned_entry_keeps_it_pinned() {
    for eviction in [Eviction::Lru, Eviction::Adaptive] {
        let lim = limits(5, 3);
        let mut t = T::with_eviction(eviction);
        assert_eq!(
            t.add(pinned(b"lock", "token"), Ttl::Seconds(60.0), &lim, &at(0)),
            Ok(true)
        );
        assert!(t.get_for_update(b"lock", &at(0)).is_some());
        let swapped = t.replace_if(data("token-suffix").item(b"lock"), &lim, &at(0), |_, _| true);
        assert_eq!(swapped, Ok(true));
        t.check_invariants().expect("invariants after the swap");
        for i in 0..50 {
            set(&mut t, &format!("k{i}"), data("v"), &lim);
        }
        assert!(t.contains(b"lock", &at(0)), "{eviction:?}: still pinned after the swap");
        assert!(t.delete(b"lock", &at(0)));
        t.check_invariants().expect("invariants after the delete");
    }
}
