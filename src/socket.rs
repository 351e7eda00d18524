//! The TCP connections under ureq: socket timeouts in whole seconds and a one-call liveness probe.
//!
//! ureq's own TCP transport costs six system calls an event beyond the exchange itself: its
//! reads and writes get the time left of their phase's budget (http.rs), which changes by a
//! few microseconds from one request to the next, so the socket is re-armed (`setsockopt`)
//! three times a request; and a kept-alive connection is probed before and after each
//! request by switching the socket to non-blocking, reading, and switching back. Here the
//! time left goes to the socket in whole seconds, so it repeats and the socket is left alone
//! (a phase ends up to a second before its budget runs out, never after; under a second
//! left, the time is exact), and the probe is one non-blocking `recv`. Connections through
//! a CONNECT proxy are ureq's own, with the whole-second timeouts.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Weak};
use std::time::{Duration as StdDuration, Instant};
use ureq::unversioned::transport::time::Duration;
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, Either, LazyBuffers, NextTimeout, ShutdownHandle,
    Transport,
};
use ureq::{Error, Timeout};

/// Opens TCP connections (ureq's `TcpConnector` in the chain). A CONNECT proxy's own
/// connection is opened by this chain too, so it is a `Socket` as well; the tunnel
/// through it comes in as `chained` and goes on as it is.
#[derive(Debug, Default)]
pub struct Direct;

impl<In: Transport> Connector<In> for Direct {
    type Out = Either<In, Socket>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, Error> {
        if let Some(tunnel) = chained {
            return Ok(Some(Either::A(tunnel)));
        }
        let stream = connect(&details.addrs, details.timeout)?;
        if details.config.no_delay() {
            stream.set_nodelay(true)?;
        }
        // As ureq's own connector: the agent may shut it down from another thread.
        let stream = Arc::new(stream);
        (details.register_shutdown)(Arc::downgrade(&stream) as Weak<dyn ShutdownHandle>)?;
        let buffers = LazyBuffers::new(
            details.config.input_buffer_size(),
            details.config.output_buffer_size(),
        );
        Ok(Some(Either::B(Socket {
            stream,
            buffers,
            read_timeout: None,
            write_timeout: None,
        })))
    }
}

/// Each address in turn while the failure concerns only that address, as ureq does: the
/// connect budget is split over the addresses as 1/2, 1/4, ... of it (each at least 10 ms),
/// so the first gets the most; the last failure otherwise.
fn connect(addrs: &[SocketAddr], timeout: NextTimeout) -> Result<TcpStream, Error> {
    let started = Instant::now();
    let total_weight = 2.0 * (1.0 - 0.5_f64.powi(addrs.len() as i32));
    let mut weight = 1.0_f64;
    let mut last = None;
    for addr in addrs {
        let share = timeout.not_zero().map(|t| {
            let share = StdDuration::from_secs_f64(t.as_secs_f64() * weight / total_weight);
            share.max(StdDuration::from_millis(10))
        });
        let result = match share {
            Some(share) => TcpStream::connect_timeout(addr, share),
            None => TcpStream::connect(addr),
        };
        match result {
            Ok(stream) => return Ok(stream),
            Err(e) if matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock) => {
                if timeout.not_zero().is_some_and(|t| started.elapsed() > *t) {
                    return Err(Error::Timeout(timeout.reason));
                }
                last = Some(Error::Timeout(Timeout::Connect));
            }
            Err(e) if address_only(&e) => last = Some(Error::Io(e)),
            Err(e) => return Err(Error::Io(e)),
        }
        weight /= 2.0;
    }
    Err(last.unwrap_or_else(|| Error::Io(ErrorKind::ConnectionRefused.into())))
}

/// A failure that another address of the same host may not have.
fn address_only(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::ConnectionRefused
            | ErrorKind::HostUnreachable
            | ErrorKind::NetworkUnreachable
            | ErrorKind::NetworkDown
            | ErrorKind::AddrNotAvailable
    )
}

/// `timeout` with a second or more left rounded down to whole seconds.
fn steady(mut timeout: NextTimeout) -> NextTimeout {
    if let Duration::Exact(left) = timeout.after
        && left >= StdDuration::from_secs(1)
    {
        timeout.after = Duration::Exact(StdDuration::from_secs(left.as_secs()));
    }
    timeout
}

/// A phase whose time is up fails before any IO.
fn check(timeout: NextTimeout) -> Result<NextTimeout, Error> {
    match timeout.after {
        Duration::Exact(left) if left.is_zero() => Err(Error::Timeout(timeout.reason)),
        _ => Ok(timeout),
    }
}

/// A direct TCP connection.
pub struct Socket {
    stream: Arc<TcpStream>,
    buffers: LazyBuffers,
    /// What the socket is set to (`setsockopt` only when it changes).
    read_timeout: Option<StdDuration>,
    write_timeout: Option<StdDuration>,
}

impl std::fmt::Debug for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Socket")
            .field("stream", &self.stream)
            .finish()
    }
}

/// Sets a socket timeout unless it is set to that already.
fn arm(
    stream: &TcpStream,
    current: &mut Option<StdDuration>,
    wanted: Option<StdDuration>,
    set: fn(&TcpStream, Option<StdDuration>) -> io::Result<()>,
) -> io::Result<()> {
    if *current != wanted {
        set(stream, wanted)?;
        *current = wanted;
    }
    Ok(())
}

/// An IO error as ureq reports it: a socket timeout is the phase's timeout.
fn failed(e: io::Error, reason: Timeout) -> Error {
    match e.kind() {
        ErrorKind::TimedOut | ErrorKind::WouldBlock => Error::Timeout(reason),
        _ => Error::Io(e),
    }
}

impl Transport for Socket {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), Error> {
        let timeout = check(steady(timeout).for_write())?;
        let wanted = timeout.not_zero().map(|t| *t);
        arm(
            &self.stream,
            &mut self.write_timeout,
            wanted,
            TcpStream::set_write_timeout,
        )?;
        let output = &self.buffers.output()[..amount];
        (&*self.stream)
            .write_all(output)
            .map_err(|e| failed(e, timeout.reason))
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, Error> {
        let timeout = check(steady(timeout).for_read())?;
        let wanted = timeout.not_zero().map(|t| *t);
        arm(
            &self.stream,
            &mut self.read_timeout,
            wanted,
            TcpStream::set_read_timeout,
        )?;
        let started = Instant::now();
        let input = self.buffers.input_append_buf();
        let amount = loop {
            match (&*self.stream).read(input) {
                Err(e) if e.kind() == ErrorKind::Interrupted => {
                    // Go on with what is left of this read's time.
                    let left = wanted.map(|w| w.saturating_sub(started.elapsed()));
                    if left.is_some_and(|l| l.is_zero()) {
                        return Err(Error::Timeout(timeout.reason));
                    }
                    arm(
                        &self.stream,
                        &mut self.read_timeout,
                        left,
                        TcpStream::set_read_timeout,
                    )?;
                }
                result => break result.map_err(|e| failed(e, timeout.reason))?,
            }
        };
        self.buffers.input_appended(amount);
        Ok(amount > 0)
    }

    /// Open when nothing is waiting to be read and the peer has not closed: anything
    /// readable between requests (stray bytes, an end of file, an error) retires it.
    fn is_open(&mut self) -> bool {
        let mut byte = 0u8;
        // SAFETY: a one-byte buffer on the stack, and a descriptor this socket owns.
        let n = unsafe {
            libc::recv(
                self.stream.as_raw_fd(),
                (&raw mut byte).cast(),
                1,
                libc::MSG_DONTWAIT,
            )
        };
        n < 0 && io::Error::last_os_error().kind() == ErrorKind::WouldBlock
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

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

    fn socket(stream: TcpStream) -> Socket {
        Socket {
            stream: Arc::new(stream),
            buffers: LazyBuffers::new(1024, 1024),
            read_timeout: None,
            write_timeout: None,
        }
    }

    /// Whether a probe says the connection is done within 5 s (what the peer sent may
    /// take a moment to arrive); each probe that finds something consumes it.
    fn retired(s: &mut Socket) -> bool {
        let wait = Instant::now();
        while wait.elapsed() < StdDuration::from_secs(5) {
            if !s.is_open() {
                return true;
            }
            std::thread::yield_now();
        }
        false
    }

    #[test]
    fn a_connection_is_open_until_the_peer_sends_or_closes() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        let mut open = socket(client.try_clone().unwrap());
        assert!(open.is_open(), "nothing to read: open");
        assert!(open.is_open(), "a second probe agrees");
        server.write_all(b"x").unwrap();
        assert!(retired(&mut open), "stray bytes: retired");
        let mut closed = socket(client);
        drop(server);
        assert!(retired(&mut closed), "closed by the peer: retired");
        assert!(!closed.is_open(), "and stays so");
    }

    #[test]
    fn reads_wait_for_the_phase_and_time_out_as_it() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut s = socket(TcpStream::connect(listener.local_addr().unwrap()).unwrap());
        let (mut server, _) = listener.accept().unwrap();
        let timeout = |ms| NextTimeout {
            after: Duration::Exact(StdDuration::from_millis(ms)),
            reason: Timeout::RecvBody,
            per_read: None,
            per_write: None,
        };
        server.write_all(b"hello").unwrap();
        assert!(s.await_input(timeout(5_000)).unwrap());
        assert_eq!(s.buffers.input(), b"hello");
        assert_eq!(s.read_timeout, Some(StdDuration::from_secs(5)));
        let started = Instant::now();
        let err = s.await_input(timeout(200)).unwrap_err();
        assert!(matches!(err, Error::Timeout(Timeout::RecvBody)), "{err:?}");
        assert!(started.elapsed() >= StdDuration::from_millis(150));
        drop(server);
        assert!(!s.await_input(timeout(5_000)).unwrap(), "end of file");
    }
}
