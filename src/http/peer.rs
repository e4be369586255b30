//! Where a request comes from: the connection's address, put in each
//! request's extensions by the accept loop, and the client's address behind
//! a trusted proxy, for the per-address limits.

use std::net::{IpAddr, SocketAddr};

use hyper::Request;

/// The address a request's connection comes from, in its extensions.
#[derive(Clone, Copy, Debug)]
pub struct PeerAddr(pub SocketAddr);

/// Whom the per-address limits count a request against: the client's
/// address, or for IPv6 its /64. One subscriber (one household, one phone)
/// commonly has a whole /64 and can pick any address in it, so counting
/// single IPv6 addresses would give one client billions of allowances.
pub fn client_block<B>(trusted_proxies: &[IpAddr], request: &Request<B>) -> IpAddr {
    block_of(client_address(trusted_proxies, request))
}

pub fn block_of(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(std::net::Ipv6Addr::from(bits))
        }
        v4 => v4,
    }
}

/// The client's address: the connection's, or, from a trusted proxy, the
/// last address it appended to `X-Forwarded-For`.
pub fn client_address<B>(trusted_proxies: &[IpAddr], request: &Request<B>) -> IpAddr {
    let peer = request
        .extensions()
        .get::<PeerAddr>()
        .map_or(IpAddr::from([0, 0, 0, 0]), |p| p.0.ip().to_canonical());
    if !trusted_proxies.contains(&peer) {
        return peer;
    }
    request
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|a| a.trim().parse::<IpAddr>().ok())
        .next_back()
        .map_or(peer, |a| a.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv6_client_is_counted_by_its_64_and_ipv4_by_its_address() {
        let cases = [
            ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::"),
            ("2001:db8:1:2::ffff", "2001:db8:1:2::"),
            ("2001:db8:1:3::1", "2001:db8:1:3::"),
            ("::1", "::"),
            ("203.0.113.9", "203.0.113.9"),
        ];
        for (address, block) in cases {
            let address: IpAddr = address.parse().expect("an address");
            let block: IpAddr = block.parse().expect("a block");
            assert_eq!(block_of(address), block, "{address}");
        }
    }
}
