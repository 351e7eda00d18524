//! Stop signals (SIGTERM, SIGINT, SIGHUP, SIGQUIT) and sleeps that a signal or a clock change ends early.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use time::OffsetDateTime;

/// How long a stop may wait for the request in flight before the process exits anyway.
/// Every state write is crash-safe, so exiting at any instant loses nothing.
pub const GRACE: Duration = Duration::from_millis(1500);

/// The signals that ask the process to stop: each is a clean stop (exit 0), also as PID 1.
pub const STOP_SIGNALS: [libc::c_int; 4] =
    [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGQUIT];

pub struct Signals {
    stop: Arc<AtomicBool>,
    wake_read: libc::c_int,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Wake {
    /// The time was reached.
    Due,
    /// A stop signal: finish up and exit.
    Stop,
    /// The wall clock was set (NTP step, manual change): compute again.
    ClockChanged,
}

fn stop_set() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset initialise and fill a local set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for signal in STOP_SIGNALS {
            libc::sigaddset(&mut set, signal);
        }
        set
    }
}

/// Blocks the stop signals in this thread and in every thread started after it: a signal
/// that comes now stays pending (never the default action, which kills) until `install`
/// waits for it. The first thing `main` does.
pub fn block() {
    let set = stop_set();
    // SAFETY: a valid, initialised set; the old mask is not wanted.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
}

fn name(signal: libc::c_int) -> &'static str {
    match signal {
        libc::SIGINT => "SIGINT",
        libc::SIGHUP => "SIGHUP",
        libc::SIGQUIT => "SIGQUIT",
        _ => "SIGTERM",
    }
}

/// Waits for the stop signals in a thread of their own, which works for PID 1 too (a
/// blocked signal is never discarded). Blocks them first (see `block`), so call it before
/// any other thread starts. `on_exit` runs before the process exits without returning
/// through main: after GRACE, or at a second signal (it marks the service stopped).
pub fn install(on_exit: fn()) -> Signals {
    block();
    let stop = Arc::new(AtomicBool::new(false));
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: plain libc calls with valid pointers to local storage.
    unsafe {
        // Past a file-size limit, a write should fail with EFBIG (reported, state intact)
        // rather than kill the process.
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        if libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) != 0 {
            fds = [-1, -1];
        }
    }
    let (flag, wake_write) = (stop.clone(), fds[1]);
    std::thread::spawn(move || {
        let set = stop_set();
        let mut first = true;
        loop {
            let mut signal: libc::c_int = 0;
            // SAFETY: a valid set and a valid out pointer.
            if unsafe { libc::sigwait(&set, &mut signal) } != 0 {
                continue;
            }
            let name = name(signal);
            if !first {
                crate::warn!("second {name}: exiting now");
                on_exit();
                std::process::exit(128 + signal);
            }
            first = false;
            crate::info!(
                "{name} received: no new request is made; finishing the one in flight, then exiting"
            );
            flag.store(true, Ordering::SeqCst);
            // SAFETY: writing one byte from a local buffer to our own pipe.
            unsafe { libc::write(wake_write, [1u8].as_ptr().cast(), 1) };
            std::thread::spawn(move || {
                std::thread::sleep(GRACE);
                on_exit();
                crate::info!(
                    "stopped (the request in flight was abandoned; it will be sent again)"
                );
                std::process::exit(0);
            });
        }
    });
    Signals {
        stop,
        wake_read: fds[0],
    }
}

impl Signals {
    /// Signals that are never raised: for tests and embedding.
    pub fn none() -> Signals {
        Signals {
            stop: Arc::new(AtomicBool::new(false)),
            wake_read: -1,
        }
    }

    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Sleeps for `d` unless a stop comes first; returns true when stopping.
    pub fn sleep_for(&self, d: Duration) -> bool {
        if self.stopping() {
            return true;
        }
        let ms = d.as_millis().min(i32::MAX as u128) as libc::c_int;
        let mut fds = [libc::pollfd {
            fd: self.wake_read,
            events: libc::POLLIN,
            revents: 0,
        }];
        // SAFETY: one valid pollfd; a negative fd is ignored by poll.
        unsafe { libc::poll(fds.as_mut_ptr(), 1, ms) };
        self.stopping()
    }

    /// Sleeps until the wall clock reads `when` (UTC). A realtime absolute timer follows
    /// clock steps and suspend, and wakes nothing in between.
    pub fn sleep_until(&self, when: OffsetDateTime) -> Wake {
        if self.stopping() {
            return Wake::Stop;
        }
        // SAFETY: timerfd and poll on descriptors we own; structs are fully initialised.
        unsafe {
            let tfd = libc::timerfd_create(libc::CLOCK_REALTIME, libc::TFD_CLOEXEC);
            if tfd < 0 {
                let left = (when - OffsetDateTime::now_utc()).max(time::Duration::ZERO);
                return if self.sleep_for(left.try_into().unwrap_or_default()) {
                    Wake::Stop
                } else {
                    Wake::Due
                };
            }
            let nanos = when.unix_timestamp_nanos();
            let spec = libc::itimerspec {
                it_interval: libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                },
                it_value: libc::timespec {
                    tv_sec: (nanos / 1_000_000_000).max(0) as _,
                    tv_nsec: (nanos % 1_000_000_000).max(1) as libc::c_long,
                },
            };
            let armed = |flags| libc::timerfd_settime(tfd, flags, &spec, std::ptr::null_mut()) == 0;
            // Without CANCEL_ON_SET (some sandboxed kernels), a clock step is noticed at the
            // due time instead; with no timer at all, fall back to a plain timed sleep.
            if !armed(libc::TFD_TIMER_ABSTIME | libc::TFD_TIMER_CANCEL_ON_SET)
                && !armed(libc::TFD_TIMER_ABSTIME)
            {
                libc::close(tfd);
                let left = (when - OffsetDateTime::now_utc()).max(time::Duration::ZERO);
                return if self.sleep_for(left.try_into().unwrap_or_default()) {
                    Wake::Stop
                } else {
                    Wake::Due
                };
            }
            let mut fds = [
                libc::pollfd {
                    fd: tfd,
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: self.wake_read,
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            let wake = loop {
                if libc::poll(fds.as_mut_ptr(), 2, -1) < 0 {
                    if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                        continue;
                    }
                    break Wake::ClockChanged;
                }
                if self.stopping() {
                    break Wake::Stop;
                }
                let mut expirations = 0u64;
                let n = libc::read(tfd, (&mut expirations as *mut u64).cast(), 8);
                break if n < 0 { Wake::ClockChanged } else { Wake::Due };
            };
            libc::close(tfd);
            wake
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_past_instant_is_due_at_once() {
        let past = OffsetDateTime::now_utc() - time::Duration::seconds(5);
        assert_eq!(Signals::none().sleep_until(past), Wake::Due);
    }

    #[test]
    fn a_near_instant_is_reached() {
        let soon = OffsetDateTime::now_utc() + time::Duration::milliseconds(50);
        assert_eq!(Signals::none().sleep_until(soon), Wake::Due);
        assert!(OffsetDateTime::now_utc() >= soon);
    }
}
