//! Which network addresses count as the inside of a network: what outbound connections
//! (webhooks, mailboxes) may not reach unless allow-listed, and what mailbox settings may
//! not name. Below every layer that decides or dials.

use std::net::IpAddr;

/// Whether `host` names this machine: the only hosts a connection without TLS may reach.
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Addresses outbound connections may not reach unless allow-listed.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || a == 0
                || (a == 100 && (64..=127).contains(&b)) // carrier-grade NAT
                || (a == 192 && b == 0 && v4.octets()[2] == 0) // IETF protocol assignments
                || (a == 198 && (18..=19).contains(&b)) // benchmarking
                || a >= 240
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal(IpAddr::V4(v4));
            }
            let segments = v6.segments();
            let first = segments[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link-local
                || (first & 0xffc0) == 0xfec0 // site-local (deprecated, still routed inside)
                || first == 0x2002 // 6to4: an IPv4 address inside
                || (segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0]) // NAT64 to any IPv4 address
                || segments[..6] == [0, 0, 0, 0, 0, 0] // IPv4-compatible (::a.b.c.d)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_are_recognised() {
        for host in ["localhost", "LOCALHOST", "127.0.0.1", "127.8.9.1", "::1", "[::1]"] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in ["10.0.0.1", "example.com", "localhost.example.com", "0.0.0.0", ""] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }

    #[test]
    fn internal_addresses_are_recognised() {
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::1",
            "::127.0.0.1",
            "fec0::1",
            "198.18.0.1",
        ] {
            assert!(is_internal(internal.parse().expect("ip")), "{internal}");
        }
        for public in ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"] {
            assert!(!is_internal(public.parse().expect("ip")), "{public}");
        }
    }
}
