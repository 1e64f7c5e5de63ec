//! Pod IP allocation, persisted as one file per address (like CNI's host-local plugin), so a
//! restarted keg never hands out an address a live pod still holds.

use std::io::{ErrorKind, Write};
use std::net::Ipv4Addr;
use std::path::PathBuf;

use super::{Error, Ipv4Cidr, Result};

/// Allocates addresses of `range` to sandboxes; `reserved` are never handed out.
#[derive(Clone, Debug)]
pub(crate) struct Ipam {
    dir: PathBuf,
    range: Ipv4Cidr,
    reserved: Vec<Ipv4Addr>,
}

impl Ipam {
    /// Allocation state lives in `dir`.
    pub(crate) fn new(dir: PathBuf, range: Ipv4Cidr, reserved: Vec<Ipv4Addr>) -> Self {
        Self {
            dir,
            range,
            reserved,
        }
    }

    fn file(&self, ip: Ipv4Addr) -> PathBuf {
        self.dir.join(ip.to_string())
    }

    /// Claims a free address for `owner`, continuing after the last one handed out so that
    /// a freed address is not reused at once.
    pub(crate) fn allocate(&self, owner: &str) -> Result<Ipv4Addr> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| Error::io("create the IPAM directory", e))?;
        let last = std::fs::read_to_string(self.dir.join("last"))
            .ok()
            .and_then(|s| s.trim().parse::<Ipv4Addr>().ok())
            .filter(|ip| self.range.contains(*ip))
            .map(|ip| u32::from(ip) - u32::from(self.range.network))
            .unwrap_or(0);
        let size = self.range.size();
        for step in 1..=size {
            let n = (last + step) % size;
            let ip = self.range.nth(n).expect("n < size");
            if n == 0 || ip == self.range.broadcast() || self.reserved.contains(&ip) {
                continue;
            }
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(self.file(ip))
            {
                Ok(mut f) => {
                    f.write_all(owner.as_bytes())
                        .map_err(|e| Error::io("record an IP owner", e))?;
                    let _ = std::fs::write(self.dir.join("last"), ip.to_string());
                    return Ok(ip);
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Error::io("claim an IP", e)),
            }
        }
        Err(Error::Exhausted(self.range))
    }

    /// Frees `ip` if `owner` holds it.
    pub(crate) fn release(&self, ip: Ipv4Addr, owner: &str) -> Result<()> {
        let path = self.file(ip);
        match std::fs::read_to_string(&path) {
            Ok(holder) if holder.trim() == owner => {
                std::fs::remove_file(&path).map_err(|e| Error::io("free an IP", e))
            }
            Ok(_) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("read an IP owner", e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_round_robin_and_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let range: Ipv4Cidr = "10.9.0.0/29".parse().unwrap();
        let gw = Ipv4Addr::new(10, 9, 0, 1);
        let ipam = Ipam::new(dir.path().to_path_buf(), range, vec![gw]);
        let a = ipam.allocate("a").unwrap();
        assert_eq!(a, Ipv4Addr::new(10, 9, 0, 2));
        let b = ipam.allocate("b").unwrap();
        assert_eq!(b, Ipv4Addr::new(10, 9, 0, 3));
        ipam.release(a, "a").unwrap();
        // A new instance on the same directory skips addresses in use and does not reuse `a`
        // at once.
        let again = Ipam::new(dir.path().to_path_buf(), range, vec![gw]);
        assert_eq!(again.allocate("c").unwrap(), Ipv4Addr::new(10, 9, 0, 4));
        for owner in ["d", "e", "f"] {
            again.allocate(owner).unwrap();
        }
        // .2 (freed), .5, .6 went to d, e, f; .7 is the broadcast address: the range is full.
        assert!(matches!(again.allocate("g"), Err(Error::Exhausted(_))));
        again.release(b, "not-b").unwrap();
        assert!(
            dir.path().join("10.9.0.3").exists(),
            "only the owner frees an address"
        );
    }
}
