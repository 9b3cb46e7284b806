//! Single flight: concurrent misses for one key make one call (a store
//! read in `lookup.rs`, a new token's verification in `verifications.rs`),
//! and an invalidation that arrives while that call runs wins over it
//! (what the call read may predate the change).
//!
//! moka's per-key compute (`entry().and_try_compute_with`) gave both, at
//! the price of a second concurrent table (its waiters) and three more
//! lookups of the key per miss in a table as large as the cache: measured
//! on the benchmark bed at 2.5 µs of a 20.6 µs all-miss check. Here the
//! table holds only the calls in flight (a few dozen), behind one mutex
//! that is never held across an `.await`.
//!
//! A lead is borrowed by the task that joined ([`Lead`]: a store read
//! lands where it was awaited), or handed to another thread
//! ([`Lead::detach`] → [`Landing`]: a verification lands on the pool
//! thread that ran it, so the task that started it may go away, as the
//! Envoy module's first poll does, without cancelling it).

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use tokio::sync::Notify;

/// The calls in flight, by key.
pub(crate) struct Flights<K, T> {
    table: Mutex<Table<K, T>>,
    /// How many flights have landed, counted under the table's lock.
    landings: AtomicU64,
}

type Table<K, T> = HashMap<K, Arc<Flight<T>>, foldhash::fast::RandomState>;

fn table<K, T>(flights: &Flights<K, T>) -> MutexGuard<'_, Table<K, T>> {
    // Nothing panics while holding the lock; a poisoned table is still
    // consistent.
    flights.table.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Removes `key`'s entry if it is still `flight` (an invalidation may have
/// taken it out, and a new call for the key put in its own).
fn release<K, T, Q>(table: &mut Table<K, T>, key: &Q, flight: &Arc<Flight<T>>)
where
    K: Borrow<Q> + Hash + Eq,
    Q: Hash + Eq + ?Sized,
{
    if table.get(key).is_some_and(|f| Arc::ptr_eq(f, flight)) {
        table.remove(key);
    }
}

/// Ends `flight` with `result`: `store` runs first, under the table's
/// lock, unless an invalidation of the key arrived while it was in flight.
/// Returns whether `store` ran.
fn land<K, T, Q>(
    flights: &Flights<K, T>,
    key: &Q,
    flight: &Arc<Flight<T>>,
    result: T,
    store: impl FnOnce(&T),
) -> bool
where
    K: Borrow<Q> + Hash + Eq,
    Q: Hash + Eq + ?Sized,
{
    let stored = {
        let mut table = table(flights);
        release(&mut table, key, flight);
        let overtaken = flight.invalidated.load(Ordering::SeqCst);
        if !overtaken {
            store(&result);
        }
        flights.landings.fetch_add(1, Ordering::SeqCst);
        !overtaken
    };
    let _ = flight.result.set(result);
    flight.landed.notify_waiters();
    stored
}

/// Releases `key` without a result and tells the followers.
fn abandon<K, T, Q>(flights: &Flights<K, T>, key: &Q, flight: &Arc<Flight<T>>)
where
    K: Borrow<Q> + Hash + Eq,
    Q: Hash + Eq + ?Sized,
{
    release(&mut table(flights), key, flight);
    flight.abandoned.store(true, Ordering::SeqCst);
    flight.landed.notify_waiters();
}

/// One call in flight.
pub(crate) struct Flight<T> {
    /// Set by an invalidation of the key: the result must not be stored.
    invalidated: AtomicBool,
    /// The call's result, once it landed.
    result: OnceLock<T>,
    /// Set if the lead went away (its request was cancelled, its job was
    /// never run) without a result.
    abandoned: AtomicBool,
    landed: Notify,
}

/// What [`Flights::join`] makes a caller.
pub(crate) enum Role<'a, K, T, Q>
where
    K: Borrow<Q> + Hash + Eq,
    Q: Hash + Eq + ?Sized,
{
    /// Nobody calls for this key: call, then [`Lead::land`].
    Leader(Lead<'a, K, T, Q>),
    /// Someone calls already: [`Flight::wait`] for their result.
    Follower(Arc<Flight<T>>),
    /// A flight landed since the caller's [`Flights::epoch`]: it may have
    /// stored this key. Look in the cache again, then join again.
    Landed,
}

/// The obligation to land a flight. Dropped without landing (the call was
/// cancelled), it releases the key and tells the followers.
pub(crate) struct Lead<'a, K, T, Q>
where
    K: Borrow<Q> + Hash + Eq,
    Q: Hash + Eq + ?Sized,
{
    flights: &'a Flights<K, T>,
    key: &'a Q,
    flight: Arc<Flight<T>>,
    landed: bool,
}

/// A [`Lead`] that owns its key and table: it may land on another thread
/// than the one that joined. Dropped without landing (its job never ran),
/// it releases the key and tells the followers.
pub(crate) struct Landing<K: Hash + Eq, T> {
    flights: Arc<Flights<K, T>>,
    key: K,
    flight: Arc<Flight<T>>,
    landed: bool,
}

impl<K: Hash + Eq, T: Clone> Flights<K, T> {
    pub(crate) fn new() -> Self {
        Self {
            table: Mutex::new(HashMap::default()),
            landings: AtomicU64::new(0),
        }
    }

    /// Read before looking in the cache, and handed to [`Flights::join`]:
    /// a flight that lands between the two (removing itself, storing its
    /// result) is then noticed, instead of the caller calling again.
    pub(crate) fn epoch(&self) -> u64 {
        self.landings.load(Ordering::SeqCst)
    }

    /// Leads the call for `key`, or follows the one in flight, or says to
    /// look in the cache again (see [`Flights::epoch`]; without an epoch,
    /// never: a caller looks again at most once).
    pub(crate) fn join<'a, Q>(&'a self, key: &'a Q, epoch: Option<u64>) -> Role<'a, K, T, Q>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
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
        table.insert(key.to_owned(), flight.clone());
        Role::Leader(Lead {
            flights: self,
            key,
            flight,
            landed: false,
        })
    }

    /// Marks the call for `key` in flight, if any, as overtaken, and takes
    /// it out of the table: its followers so far get its answer, but a
    /// caller from now on starts a new call (the old one may predate the
    /// change).
    pub(crate) fn invalidate<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if let Some(flight) = table(self).remove(key) {
            flight.invalidated.store(true, Ordering::SeqCst);
        }
    }

    /// Marks every call in flight as overtaken, and empties the table.
    pub(crate) fn invalidate_all(&self) {
        for (_, flight) in table(self).drain() {
            flight.invalidated.store(true, Ordering::SeqCst);
        }
    }
}

impl<K, T, Q> Lead<'_, K, T, Q>
where
    K: Borrow<Q> + Hash + Eq,
    T: Clone,
    Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
{
    /// Ends the flight with `result`. Unless an invalidation of the key
    /// arrived while it was in flight, `store` runs first, under the
    /// table's lock, so that an invalidation is either seen here or comes
    /// after the store (and then evicts what was stored). Returns whether
    /// `store` ran.
    pub(crate) fn land(mut self, result: T, store: impl FnOnce(&T)) -> bool {
        self.landed = true;
        land(self.flights, self.key, &self.flight, result, store)
    }

    /// The lead as an owned [`Landing`], for a call that ends on another
    /// thread. `flights` is the table this lead joined (the caller holds
    /// it in an `Arc`).
    pub(crate) fn detach(mut self, flights: Arc<Flights<K, T>>) -> Landing<K, T> {
        debug_assert!(std::ptr::eq(Arc::as_ptr(&flights), self.flights));
        self.landed = true;
        Landing {
            flights,
            key: self.key.to_owned(),
            flight: self.flight.clone(),
            landed: false,
        }
    }
}

impl<K, T, Q> Drop for Lead<'_, K, T, Q>
where
    K: Borrow<Q> + Hash + Eq,
    Q: Hash + Eq + ?Sized,
{
    fn drop(&mut self) {
        if !self.landed {
            abandon(self.flights, self.key, &self.flight);
        }
    }
}

impl<K: Hash + Eq, T: Clone> Landing<K, T> {
    /// The flight, for the caller to [`Flight::wait`] on.
    pub(crate) fn flight(&self) -> Arc<Flight<T>> {
        self.flight.clone()
    }

    /// As [`Lead::land`].
    pub(crate) fn land(mut self, result: T, store: impl FnOnce(&T)) -> bool {
        self.landed = true;
        land(&self.flights, &self.key, &self.flight, result, store)
    }
}

impl<K: Hash + Eq, T> Drop for Landing<K, T> {
    fn drop(&mut self) {
        if !self.landed {
            abandon(&self.flights, &self.key, &self.flight);
        }
    }
}

impl<T: Clone> Flight<T> {
    /// The lead's result; `None` if the lead went away first.
    pub(crate) async fn wait(&self) -> Option<T> {
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
mod tests;
