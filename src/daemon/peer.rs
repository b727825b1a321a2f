//! Who is at the other end of a connection: SO_PEERCRED, read once when the connection opens.

use std::os::unix::net::UnixStream;

/// The peer's credentials as the kernel reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerCred {
    /// The peer's effective uid.
    pub uid: u32,
    /// The peer's effective gid.
    pub gid: u32,
    /// The peer's pid at connect time.
    pub pid: i32,
}

impl PeerCred {
    /// Reads SO_PEERCRED of a connected stream.
    pub fn of(stream: &UnixStream) -> std::io::Result<Self> {
        let c = rustix::net::sockopt::socket_peercred(stream)?;
        Ok(Self {
            uid: c.uid.as_raw(),
            gid: c.gid.as_raw(),
            pid: c.pid.as_raw_nonzero().get(),
        })
    }

    /// Checks the peer against a person's bound OS uid, when one is bound. Root (uid 0) is
    /// not exempt: a bound person is only ever served to their own uid.
    pub fn check_bound_uid(&self, person: &str, bound: Option<u32>) -> Result<(), String> {
        match bound {
            Some(uid) if uid != self.uid => Err(format!(
                "{person} is bound to uid {uid}; this connection is from uid {}",
                self.uid
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peercred_of_a_socketpair_is_ourselves() {
        let (a, _b) = UnixStream::pair().expect("socketpair");
        let p = PeerCred::of(&a).expect("peercred");
        assert_eq!(p.uid, rustix::process::geteuid().as_raw());
        assert_eq!(p.pid, rustix::process::getpid().as_raw_nonzero().get());
        assert!(p.check_bound_uid("alice", None).is_ok());
        assert!(p.check_bound_uid("alice", Some(p.uid)).is_ok());
        let e = p
            .check_bound_uid("alice", Some(p.uid.wrapping_add(1)))
            .expect_err("other uid");
        assert!(e.contains("alice"), "{e}");
    }
}
