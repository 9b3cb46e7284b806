//! Single-flight for store reads: concurrent misses for one key make one
//! store call, and an invalidation that arrives while that call is on the
//! wire wins over it (what the call read may predate the change).
//!
//! moka's per-key compute (`entry().and_try_compute_with`) gave both, at
//! the price of a second concurrent table (its waiters) and three more
//! lookups of the key per miss in a table as large as the cache: measured
//! on the benchmark bed at 2.5 µs of a 20.6 µs all-miss check. Here the
//! table holds only the reads in flight (a few dozen), behind one mutex
//! that is never held across an `.await`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use tokio::sync::Notify;

/// The reads in flight, by key.
pub(super) struct Flights<T> {
    table: Mutex<Table<T>>,
    /// How many flights have landed, counted under the table's lock.
    landings: AtomicU64,
}

type Table<T> = HashMap<String, Arc<Flight<T>>, foldhash::fast::RandomState>;

fn table<T>(flights: &Flights<T>) -> MutexGuard<'_, Table<T>> {
    // Nothing panics while holding the lock; a poisoned table is still
    // consistent.
    flights.table.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Removes `key`'s entry if it is still `flight` (an invalidation may have
/// taken it out, and a new read of the key put in its own).
fn release<T>(table: &mut Table<T>, key: &str, flight: &Arc<Flight<T>>) {
    if table.get(key).is_some_and(|f| Arc::ptr_eq(f, flight)) {
        table.remove(key);
    }
}

/// One read in flight.
pub(super) struct Flight<T> {
    /// Set by an invalidation of the key: the read must not be stored.
    invalidated: AtomicBool,
    /// The read's result, once it landed.
    result: OnceLock<T>,
    /// Set if the reader went away (its request was cancelled) without a
    /// result: followers then try again themselves.
    abandoned: AtomicBool,
    landed: Notify,
}

/// What [`Flights::join`] makes a caller.
pub(super) enum Role<'a, T> {
    /// Nobody reads this key: read it, then [`Lead::land`].
    Leader(Lead<'a, T>),
    /// Someone reads it already: [`Flight::wait`] for their result.
    Follower(Arc<Flight<T>>),
    /// A flight landed since the caller's [`Flights::epoch`]: it may have
    /// stored this key. Look in the cache again, then join again.
    Landed,
}

/// The obligation to land a flight. Dropped without landing (the read was
/// cancelled), it releases the key and tells the followers to retry.
pub(super) struct Lead<'a, T> {
    flights: &'a Flights<T>,
    key: &'a str,
    flight: Arc<Flight<T>>,
    landed: bool,
}

impl<T: Clone> Flights<T> {
    pub(super) fn new() -> Self {
        Self {
            table: Mutex::new(HashMap::default()),
            landings: AtomicU64::new(0),
        }
    }

    /// Read before looking in the cache, and handed to [`Flights::join`]:
    /// a flight that lands between the two (removing itself, storing its
    /// read) is then noticed, instead of the caller reading the key again.
    pub(super) fn epoch(&self) -> u64 {
        self.landings.load(Ordering::SeqCst)
    }

    /// Leads the read of `key`, or follows the one in flight, or says to
    /// look in the cache again (see [`Flights::epoch`]; without an epoch,
    /// never: a caller looks again at most once).
    pub(super) fn join<'a>(&'a self, key: &'a str, epoch: Option<u64>) -> Role<'a, T> {
        let mut table = table(self);
        if let Some(flight) = table.get(key) {
            return Role::Follower(flight.clone());
        }
        if epoch.is_some_and(|e| self.landings.load(Ordering::SeqCst) != e) {
            return Role::Landed;
        }
        let flight = Arc::new(Flight {
            invalidated: AtomicBool::new(false),
            result: OnceLock::new(),
            abandoned: AtomicBool::new(false),
            landed: Notify::new(),
        });
        table.insert(key.to_string(), flight.clone());
        Role::Leader(Lead {
            flights: self,
            key,
            flight,
            landed: false,
        })
    }

    /// Marks the read of `key` in flight, if any, as overtaken, and takes
    /// it out of the table: its followers so far get its answer, but a
    /// caller from now on starts a new read (the old one may predate the
    /// change).
    pub(super) fn invalidate(&self, key: &str) {
        if let Some(flight) = table(self).remove(key) {
            flight.invalidated.store(true, Ordering::SeqCst);
        }
    }

    /// Marks every read in flight as overtaken, and empties the table.
    pub(super) fn invalidate_all(&self) {
        for (_, flight) in table(self).drain() {
            flight.invalidated.store(true, Ordering::SeqCst);
        }
    }
}

impl<T: Clone> Lead<'_, T> {
    /// Ends the flight with `result`. Unless an invalidation of the key
    /// arrived while it was in flight, `store` runs first, under the
    /// table's lock, so that an invalidation is either seen here or comes
    /// after the store (and then evicts what was stored). Returns whether
    /// `store` ran.
    pub(super) fn land(mut self, result: T, store: impl FnOnce(&T)) -> bool {
        let stored = {
            let mut table = table(self.flights);
            release(&mut table, self.key, &self.flight);
            let overtaken = self.flight.invalidated.load(Ordering::SeqCst);
            if !overtaken {
                store(&result);
            }
            self.flights.landings.fetch_add(1, Ordering::SeqCst);
            !overtaken
        };
        let _ = self.flight.result.set(result);
        self.flight.landed.notify_waiters();
        self.landed = true;
        stored
    }
}

impl<T> Drop for Lead<'_, T> {
    fn drop(&mut self) {
        if self.landed {
            return;
        }
        release(&mut table(self.flights), self.key, &self.flight);
        self.flight.abandoned.store(true, Ordering::SeqCst);
        self.flight.landed.notify_waiters();
    }
}

impl<T: Clone> Flight<T> {
    /// The lead's result; `None` if the lead was cancelled first.
    pub(super) async fn wait(&self) -> Option<T> {
        loop {
            // Registered before the checks: a landing in between still
            // wakes it.
            let landed = self.landed.notified();
            if let Some(result) = self.result.get() {
                return Some(result.clone());
            }
            if self.abandoned.load(Ordering::SeqCst) {
                return None;
            }
            landed.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lead<'a>(f: &'a Flights<u32>, key: &'a str) -> Lead<'a, u32> {
        match f.join(key, Some(f.epoch())) {
            Role::Leader(l) => l,
            _ => panic!("{key} already in flight"),
        }
    }

    fn follow(f: &Flights<u32>, key: &str) -> Arc<Flight<u32>> {
        match f.join(key, Some(f.epoch())) {
            Role::Follower(flight) => flight,
            _ => panic!("{key} not in flight"),
        }
    }

    #[tokio::test]
    async fn followers_get_the_leads_result_and_the_key_is_free_again() {
        let f = Flights::new();
        let l = lead(&f, "a");
        let (f1, f2) = (follow(&f, "a"), follow(&f, "a"));
        let _other = lead(&f, "b"); // other keys are independent
        let waiting = tokio::spawn(async move { (f1.wait().await, f2.wait().await) });
        tokio::task::yield_now().await;
        let mut stored = None;
        assert!(l.land(7, |v| stored = Some(*v)));
        assert_eq!(stored, Some(7));
        assert_eq!(waiting.await.unwrap(), (Some(7), Some(7)));
        drop(lead(&f, "a")); // landed: the next miss leads a new read
    }

    #[tokio::test]
    async fn an_invalidation_in_flight_stops_the_store_but_not_the_answer() {
        let f = Flights::new();
        let l = lead(&f, "a");
        let follower = follow(&f, "a");
        f.invalidate("a");
        f.invalidate("not-in-flight");
        // A caller after the invalidation does not join the old read: it
        // reads again, and that read may store.
        let again = lead(&f, "a");
        assert!(!l.land(1, |_| panic!("stored after an invalidation")));
        assert_eq!(follower.wait().await, Some(1));
        assert!(again.land(2, |_| {}));

        let (a, b) = (lead(&f, "a"), lead(&f, "b"));
        f.invalidate_all();
        assert!(!a.land(2, |_| panic!("stored after invalidate_all")));
        assert!(!b.land(3, |_| panic!("stored after invalidate_all")));
    }

    #[test]
    fn a_landing_after_the_callers_cache_lookup_sends_it_back_to_the_cache() {
        let f = Flights::new();
        let before = f.epoch(); // a caller looks in the cache: a miss
        lead(&f, "a").land(1, |_| {}); // meanwhile "a" lands and is stored
        assert!(matches!(f.join("a", Some(before)), Role::Landed));
        assert!(matches!(f.join("a", None), Role::Leader(_)));
    }

    #[tokio::test]
    async fn a_cancelled_lead_frees_the_key_and_wakes_its_followers() {
        let f = Flights::new();
        let l = lead(&f, "a");
        let follower = follow(&f, "a");
        let waiting = tokio::spawn(async move { follower.wait().await });
        tokio::task::yield_now().await;
        drop(l);
        assert_eq!(waiting.await.unwrap(), None);
        drop(lead(&f, "a"));
    }
}
