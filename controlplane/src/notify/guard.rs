//! Where webhooks may go. Tenant operators choose webhook URLs, and the server sends to them
//! from inside its own network, so an unguarded webhook is a way to reach the server's
//! loopback services, the cloud metadata endpoint (169.254.169.254) or private hosts (SSRF).
//! By default a webhook target must be a public address: a literal IP or `localhost` in the
//! URL is refused when the channel is saved, and names are resolved through [`PublicOnly`],
//! which drops internal addresses at connect time (so a name that later resolves inward, DNS
//! rebinding, still goes nowhere). `--notify-private-targets` lifts this for deployments that
//! deliver to internal receivers on purpose. The SMS gateway URL is the operator's own
//! configuration and is not guarded.

use std::net::{IpAddr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Whether `ip` is on this host or a network that is not the public internet: loopback,
/// private (RFC 1918, IPv6 unique local), link-local (cloud metadata lives there),
/// carrier-grade NAT, unspecified, multicast, broadcast, and IPv4 addresses mapped or
/// translated into IPv6.
pub(crate) fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal(IpAddr::V4(v4));
            }
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                // NAT64 (64:ff9b::/96) carries an IPv4 address inside.
                || (s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0])
        }
    }
}

/// Why a webhook URL points inward by its text alone (a literal internal IP or a
/// `localhost` name), or `None`.
pub(crate) fn internal_literal(url: &str) -> Option<String> {
    let u = reqwest::Url::parse(url).ok()?;
    let host = u.host_str()?;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return is_internal(ip).then(|| ip.to_string());
    }
    let d = host.trim_end_matches('.').to_ascii_lowercase();
    (d == "localhost" || d.ends_with(".localhost")).then_some(d)
}

/// The message a refused internal target gets (API answers and delivery errors).
pub(crate) fn refusal(what: &str) -> String {
    format!(
        "webhook target {what} is on the server's own network (loopback, private or link-local); \
         such targets need --notify-private-targets"
    )
}

/// A resolver that keeps only public addresses.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = all
                .iter()
                .copied()
                .filter(|a| !is_internal(a.ip()))
                .collect();
            if public.is_empty() {
                return Err(refusal(&host).into());
            }
            Ok(Box::new(public.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:1",
        ] {
            assert!(is_internal(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "93.184.216.34",
            "1.1.1.1",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(!is_internal(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn literal_targets() {
        assert!(internal_literal("http://127.0.0.1:9000/hook").is_some());
        assert!(internal_literal("http://[::1]/hook").is_some());
        assert!(internal_literal("https://LOCALHOST./x").is_some());
        assert!(internal_literal("http://api.localhost/x").is_some());
        assert!(internal_literal("http://169.254.169.254/latest/meta-data").is_some());
        assert!(internal_literal("https://hooks.example.com/x").is_none());
        assert!(internal_literal("https://8.8.8.8/x").is_none());
    }

    #[tokio::test]
    async fn the_resolver_drops_internal_addresses() {
        let e = PublicOnly
            .resolve("localhost".parse().unwrap())
            .await
            .err()
            .expect("localhost resolves inward only");
        assert!(e.to_string().contains("--notify-private-targets"), "{e}");
    }
}
