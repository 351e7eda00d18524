//! Socket timeouts in whole seconds, so a kept-alive connection is not re-armed on every request.
//!
//! ureq gives each read and write the time left of its phase's budget (http.rs); a socket
//! whose timeout changes gets a `setsockopt` call, and the time left changes by a few
//! microseconds from one request to the next: three calls an event. Handed on in whole
//! seconds, the timeouts repeat and ureq leaves the socket alone. A phase then ends up to a
//! second before its budget runs out, never after; under a second left, the time is exact.

use std::time::Duration as StdDuration;
use ureq::Error;
use ureq::unversioned::transport::time::Duration;
use ureq::unversioned::transport::{Buffers, ConnectionDetails, Connector, NextTimeout, Transport};

/// Goes between the TCP connector (direct or through a CONNECT proxy) and TLS.
#[derive(Debug, Default)]
pub struct Steady;

impl<In: Transport> Connector<In> for Steady {
    type Out = SteadyTransport<In>;

    fn connect(
        &self,
        _: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, Error> {
        Ok(chained.map(SteadyTransport))
    }
}

/// A connection whose reads and writes get their time left in whole seconds.
#[derive(Debug)]
pub struct SteadyTransport<T>(T);

/// `timeout` with a second or more left rounded down to whole seconds.
pub fn steady(mut timeout: NextTimeout) -> NextTimeout {
    if let Duration::Exact(left) = timeout.after
        && left >= StdDuration::from_secs(1)
    {
        timeout.after = Duration::Exact(StdDuration::from_secs(left.as_secs()));
    }
    timeout
}

impl<T: Transport> Transport for SteadyTransport<T> {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.0.buffers()
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), Error> {
        self.0.transmit_output(amount, steady(timeout))
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, Error> {
        self.0.await_input(steady(timeout))
    }

    fn is_open(&mut self) -> bool {
        self.0.is_open()
    }

    fn is_tls(&self) -> bool {
        self.0.is_tls()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ureq::Timeout;

    fn left(after: Duration) -> Duration {
        let t = NextTimeout {
            after,
            reason: Timeout::RecvResponse,
            per_read: None,
            per_write: None,
        };
        let s = steady(t);
        assert_eq!(s.reason, Timeout::RecvResponse);
        s.after
    }

    #[test]
    fn time_left_is_whole_seconds_from_one_second_up_and_never_more() {
        let exact = |ms| Duration::Exact(StdDuration::from_millis(ms));
        assert_eq!(left(exact(9_999)), exact(9_000));
        assert_eq!(
            left(exact(9_001)),
            exact(9_000),
            "the same from request to request"
        );
        assert_eq!(left(exact(1_000)), exact(1_000));
        assert_eq!(left(exact(1_999)), exact(1_000));
        assert_eq!(left(exact(999)), exact(999), "under a second: exact");
        assert_eq!(left(exact(0)), exact(0), "an ended budget stays ended");
        assert_eq!(left(Duration::NotHappening), Duration::NotHappening);
    }
}
