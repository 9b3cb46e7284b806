//! Placeholder until the brute-force limiter lands (another branch).

use std::net::IpAddr;
use std::time::Duration;

#[derive(Debug, Default)]
pub struct Limiter {
    _private: (),
}

impl Limiter {
    pub fn blocked(&self, _ip: Option<IpAddr>, _credential: Option<&[u8]>) -> Option<Duration> {
        None
    }
    pub fn record_failure(
        &self,
        _ip: Option<IpAddr>,
        _credential: Option<&[u8]>,
    ) -> Option<Duration> {
        None
    }
}
