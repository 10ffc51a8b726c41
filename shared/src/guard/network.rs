//! The client's network: the unit of the per-network limit and of code-failure caps. An IPv4
//! address's /24, an IPv6 address's /64 (what one subscriber or one host is usually given).

use std::net::IpAddr;

/// The network of `ip` (`203.0.113.0/24`, `2001:db8:1:2::/64`); an address that does not parse
/// is its own network.
pub fn network_of(ip: &str) -> String {
    match ip.trim().parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => network_of(&v4.to_string()),
            None => {
                let s = v6.segments();
                let prefix = std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
                format!("{prefix}/64")
            }
        },
        Err(_) => format!("{ip}/unparsed"),
    }
}

#[cfg(test)]
mod tests {
    use super::network_of;

    #[test]
    fn an_ipv4_network_is_its_slash_24_and_an_ipv6_one_its_slash_64() {
        assert_eq!(network_of("203.0.113.7"), "203.0.113.0/24");
        assert_eq!(network_of("203.0.113.250"), "203.0.113.0/24");
        assert_ne!(network_of("203.0.114.7"), network_of("203.0.113.7"));
        assert_eq!(network_of("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
        assert_eq!(network_of("2001:db8:1:2::9"), "2001:db8:1:2::/64");
        assert_eq!(network_of("::ffff:198.51.100.9"), "198.51.100.0/24");
    }
}
