use super::*;
use crate::clock::ManualClock;

fn limiter(ip: (u32, Duration), credential: (u32, Duration)) -> Limiter {
    limiter_tracking(ip, credential, 1000)
}

fn limiter_tracking(ip: (u32, Duration), credential: (u32, Duration), max_tracked: u64) -> Limiter {
    limiter_on(ip, credential, max_tracked, Clock::Monotonic)
}

fn limiter_on(
    ip: (u32, Duration),
    credential: (u32, Duration),
    max_tracked: u64,
    clock: Clock,
) -> Limiter {
    let budget = |(failures, per)| FailureBudget { failures, per };
    let config = LimitsConfig {
        enabled: true,
        per_ip: budget(ip),
        per_credential: budget(credential),
        max_tracked,
    };
    Limiter::with_clock(&config, clock)
}

fn ip(s: &str) -> Option<IpAddr> {
    Some(s.parse().unwrap())
}

const SECOND: Duration = Duration::from_secs(1);
const MINUTE: Duration = Duration::from_secs(60);

#[test]
fn the_failure_that_empties_the_bucket_blocks() {
    let l = limiter((3, SECOND), (3, SECOND));
    let a = ip("192.0.2.1");
    for _ in 0..2 {
        assert_eq!(l.record_failure(a, None), None);
        assert_eq!(l.blocked(a, None), None);
    }
    assert_eq!(l.record_failure(a, None), Some(SECOND));
    assert_eq!(l.blocked(a, None), Some(SECOND));
    assert_eq!(l.blocked(ip("192.0.2.2"), None), None);
    assert_eq!(l.blocked(None, None), None);
    assert_eq!(l.blocked(None, Some(b"k")), None);
}

#[test]
fn a_block_lasts_until_one_failure_refills_and_the_bucket_refills_in_per() {
    // 3 per second: one failure comes back every 333 ms.
    let time = ManualClock::new();
    let l = limiter_on((3, SECOND), (3, SECOND), 1000, time.clock());
    let a = ip("192.0.2.1");
    for _ in 0..3 {
        l.record_failure(a, None);
    }
    assert!(l.any_blocked());
    time.advance(Duration::from_millis(333));
    assert!(l.blocked(a, None).is_some(), "blocked for a whole interval");
    time.advance(Duration::from_millis(1));
    assert_eq!(l.blocked(a, None), None);
    assert!(!l.any_blocked());
    assert_eq!(l.record_failure(a, None), Some(SECOND), "one came back");
    assert!(l.blocked(a, None).is_some());
    time.advance(SECOND);
    assert_eq!(l.blocked(a, None), None);
    assert_eq!(l.record_failure(a, None), None);
    assert_eq!(l.record_failure(a, None), None);
    assert_eq!(l.record_failure(a, None), Some(SECOND), "full burst again");
}

#[test]
fn retry_after_is_the_refill_time_in_whole_seconds() {
    // 2 per minute: blocked for 30 s after the second failure.
    let l = limiter((2, MINUTE), (1, Duration::from_secs(24 * 3600)));
    let a = ip("192.0.2.1");
    assert_eq!(l.record_failure(a, None), None);
    assert_eq!(l.record_failure(a, None), Some(Duration::from_secs(30)));
    assert_eq!(l.blocked(a, None), Some(Duration::from_secs(30)));
    // A budget of one failure blocks on the first.
    let day = Some(Duration::from_secs(24 * 3600));
    assert_eq!(l.record_failure(None, Some(b"k")), day);
    assert_eq!(l.blocked(None, Some(b"k")), day);
    assert_eq!(l.blocked(a, Some(b"k")), day, "the longer block wins");
}

#[test]
fn ip_and_credential_budgets_are_independent() {
    let l = limiter((5, MINUTE), (2, MINUTE));
    let (a, b) = (ip("192.0.2.1"), ip("198.51.100.7"));
    // One credential tried from two IPs: the credential is blocked, not the IPs.
    assert_eq!(l.record_failure(a, Some(b"cred-x")), None);
    assert!(l.record_failure(b, Some(b"cred-x")).is_some());
    assert!(l.blocked(None, Some(b"cred-x")).is_some());
    assert!(l.blocked(a, Some(b"cred-x")).is_some());
    assert_eq!(l.blocked(a, None), None);
    assert_eq!(l.blocked(a, Some(b"cred-y")), None);
    // One IP trying many credentials: the IP is blocked, not the credentials.
    for i in 0..3 {
        assert_eq!(l.record_failure(b, Some(format!("c{i}").as_bytes())), None);
    }
    assert!(l.record_failure(b, Some(b"c3")).is_some());
    assert!(l.blocked(b, None).is_some(), "five failures from b");
    assert!(l.blocked(b, Some(b"c0")).is_some());
    assert_eq!(l.blocked(None, Some(b"c0")), None);
    assert_eq!(l.blocked(a, Some(b"c0")), None);
}

#[test]
fn ipv6_clients_are_keyed_by_their_64_and_mapped_ipv4_by_the_ipv4() {
    let l = limiter((3, MINUTE), (100, MINUTE));
    for addr in [
        "2001:db8:1:2::1",
        "2001:db8:1:2:ffff::9",
        "2001:db8:1:2:a:b:c:d",
    ] {
        l.record_failure(ip(addr), None);
    }
    assert!(l.blocked(ip("2001:db8:1:2::abcd"), None).is_some());
    assert_eq!(l.blocked(ip("2001:db8:1:3::1"), None), None);

    for _ in 0..3 {
        l.record_failure(ip("::ffff:203.0.113.9"), None);
    }
    assert!(l.blocked(ip("203.0.113.9"), None).is_some());
    assert_eq!(l.blocked(ip("203.0.113.10"), None), None);
    assert_eq!(l.blocked(ip("::"), None), None);
}

#[test]
fn credential_keys_count_up_to_their_first_64_bytes() {
    let l = limiter((100, MINUTE), (2, MINUTE));
    let long = |last: u8| {
        let mut k = vec![b'k'; MAX_CREDENTIAL_KEY_BYTES];
        k.push(last);
        k
    };
    l.record_failure(None, Some(&long(1)));
    assert!(l.record_failure(None, Some(&long(2))).is_some());
    assert!(l.blocked(None, Some(&long(3))).is_some());
    assert_eq!(l.blocked(None, Some(&long(3)[1..])), None);
}

#[test]
fn a_disabled_limiter_never_counts_or_blocks() {
    let l = Limiter::new(&LimitsConfig {
        enabled: false,
        ..LimitsConfig::default()
    });
    for _ in 0..100 {
        assert_eq!(l.record_failure(ip("192.0.2.1"), Some(b"k")), None);
    }
    assert_eq!(l.blocked(ip("192.0.2.1"), Some(b"k")), None);
    assert_eq!(l.tracked(), 0);
}

#[test]
fn a_flood_of_distinct_keys_stays_within_max_tracked() {
    // A budget of one: every key is both counted and blocked.
    let l = limiter_tracking((1, MINUTE), (1, MINUTE), 50);
    for i in 0..5000u32 {
        let addr = IpAddr::from(i.to_be_bytes());
        assert!(
            l.record_failure(Some(addr), Some(&i.to_le_bytes()))
                .is_some()
        );
    }
    let tracked = l.tracked();
    // Buckets and blocks, for IPs and credentials: 4 caches of 50.
    assert!((100..=200).contains(&tracked), "{tracked} entries");
}

#[test]
fn the_defaults_block_an_ip_for_3s_and_a_credential_for_6s() {
    // docs/configuration.md: per / failures once the budget is spent.
    let l = Limiter::new(&LimitsConfig::default());
    let a = ip("192.0.2.1");
    for _ in 0..19 {
        assert_eq!(l.record_failure(a, None), None);
    }
    assert_eq!(l.record_failure(a, None), Some(Duration::from_secs(3)));
    for _ in 0..9 {
        assert_eq!(l.record_failure(None, Some(b"k")), None);
    }
    assert_eq!(
        l.record_failure(None, Some(b"k")),
        Some(Duration::from_secs(6))
    );
}

#[test]
fn a_flood_of_one_time_keys_does_not_evict_a_blocked_attacker() {
    let l = Limiter::new(&LimitsConfig {
        max_tracked: 50,
        ..LimitsConfig::default()
    });
    let attacker = ip("198.51.100.1");
    for _ in 0..20 {
        l.record_failure(attacker, Some(b"stolen"));
    }
    for i in 0..5000u32 {
        l.record_failure(Some(IpAddr::from(i.to_be_bytes())), Some(&i.to_le_bytes()));
        if i % 100 == 0 {
            assert!(l.blocked(attacker, None).is_some(), "after {i}");
        }
    }
    l.tracked();
    assert!(l.blocked(attacker, None).is_some());
    assert!(l.blocked(None, Some(b"stolen")).is_some());
}

#[test]
fn retry_after_rounds_up_to_whole_seconds() {
    for (wait, want) in [
        (Duration::ZERO, 1),
        (Duration::from_nanos(1), 1),
        (SECOND, 1),
        (Duration::from_millis(1001), 2),
        (Duration::from_millis(29_999), 30),
        (MINUTE, 60),
    ] {
        assert_eq!(retry_after(wait), Duration::from_secs(want), "{wait:?}");
    }
}
