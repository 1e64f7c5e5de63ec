//! IPv4 CIDR blocks.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An IPv4 block such as `10.42.0.0/16`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Ipv4Cidr {
    /// The network address (host bits zero).
    pub network: Ipv4Addr,
    /// The prefix length.
    pub prefix: u8,
}

impl Ipv4Cidr {
    /// A block from an address (host bits are cleared) and a prefix length up to 30.
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Result<Self, String> {
        if prefix > 30 {
            return Err(format!("/{prefix} leaves no room for pods"));
        }
        let network = Ipv4Addr::from(u32::from(addr) & Self::mask(prefix));
        Ok(Self { network, prefix })
    }

    fn mask(prefix: u8) -> u32 {
        if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - prefix)
        }
    }

    /// Whether `ip` is inside the block.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & Self::mask(self.prefix) == u32::from(self.network)
    }

    /// Whether `other` lies wholly inside this block.
    pub fn covers(&self, other: &Ipv4Cidr) -> bool {
        other.prefix >= self.prefix && self.contains(other.network)
    }

    /// The `n`th address of the block (0 is the network address).
    pub fn nth(&self, n: u32) -> Option<Ipv4Addr> {
        (n < self.size()).then(|| Ipv4Addr::from(u32::from(self.network) + n))
    }

    /// Number of addresses in the block.
    pub fn size(&self) -> u32 {
        1u32 << (32 - self.prefix)
    }

    /// The broadcast address.
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) | !Self::mask(self.prefix))
    }
}

impl FromStr for Ipv4Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, prefix) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not a CIDR block (a.b.c.d/n)"))?;
        let addr: Ipv4Addr = addr.parse().map_err(|e| format!("{s:?}: {e}"))?;
        let prefix: u8 = prefix.parse().map_err(|e| format!("{s:?}: {e}"))?;
        Self::new(addr, prefix)
    }
}

impl TryFrom<String> for Ipv4Cidr {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<Ipv4Cidr> for String {
    fn from(c: Ipv4Cidr) -> String {
        c.to_string()
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_measures_blocks() {
        let c: Ipv4Cidr = "10.42.3.7/16".parse().unwrap();
        assert_eq!(c.to_string(), "10.42.0.0/16");
        assert_eq!(c.nth(1), Some(Ipv4Addr::new(10, 42, 0, 1)));
        assert_eq!(c.broadcast(), Ipv4Addr::new(10, 42, 255, 255));
        assert!(c.covers(&"10.42.8.0/24".parse().unwrap()));
        assert!(!c.covers(&"10.43.0.0/24".parse().unwrap()));
        assert!("10.0.0.0/31".parse::<Ipv4Cidr>().is_err());
    }
}
