//! The single-flight table: leads, followers, landings, invalidations.

use super::*;

fn lead<'a>(f: &'a Flights<String, u32>, key: &'a str) -> Lead<'a, String, u32, str> {
    match f.join(key, Some(f.epoch())) {
        Role::Leader(l) => l,
        _ => panic!("{key} already in flight"),
    }
}

fn follow(f: &Flights<String, u32>, key: &str) -> Arc<Flight<u32>> {
    match f.join(key, Some(f.epoch())) {
        Role::Follower(flight) => flight,
        _ => panic!("{key} not in flight"),
    }
}

#[tokio::test]
async fn followers_get_the_leads_result_and_the_key_is_free_again() {
    let f = Flights::<String, u32>::new();
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
    let f = Flights::<String, u32>::new();
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
    let f = Flights::<String, u32>::new();
    let before = f.epoch(); // a caller looks in the cache: a miss
    lead(&f, "a").land(1, |_| {}); // meanwhile "a" lands and is stored
    assert!(matches!(f.join("a", Some(before)), Role::Landed));
    assert!(matches!(f.join("a", None), Role::Leader(_)));
}

#[tokio::test]
async fn a_cancelled_lead_frees_the_key_and_wakes_its_followers() {
    let f = Flights::<String, u32>::new();
    let l = lead(&f, "a");
    let follower = follow(&f, "a");
    let waiting = tokio::spawn(async move { follower.wait().await });
    tokio::task::yield_now().await;
    drop(l);
    assert_eq!(waiting.await.unwrap(), None);
    drop(lead(&f, "a"));
}

#[tokio::test]
async fn a_detached_lead_lands_on_another_thread_or_frees_the_key_when_dropped() {
    let f = Arc::new(Flights::<String, u32>::new());
    let landing = lead(&f, "a").detach(f.clone());
    let follower = follow(&f, "a");
    let thread = std::thread::spawn(move || landing.land(5, |_| {}));
    assert!(thread.join().unwrap());
    assert_eq!(follower.wait().await, Some(5));

    let never_run = lead(&f, "b").detach(f.clone());
    let waiting = never_run.flight();
    drop(never_run);
    assert_eq!(waiting.wait().await, None);
    drop(lead(&f, "b")); // the key is free again
}
