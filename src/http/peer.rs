//! Where a request comes from: the connection's address, put in each
//! request's extensions by the accept loop, and the client's address behind
//! a trusted proxy, for the per-address limits.

use std::net::{IpAddr, SocketAddr};

use hyper::Request;

/// The address a request's connection comes from, in its extensions.
#[derive(Clone, Copy, Debug)]
pub struct PeerAddr(pub SocketAddr);

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
